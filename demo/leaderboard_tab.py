"""The Leaderboard tab: per style x method, a rank, mean rating, picks and Bradley–Terry strength.

The numbers and ranks are the pipeline's (pipelines/feedback/leaderboard.py); the tab words them
and draws the strengths as horizontal bars with their ranges, one line per series, in HTML (it
reflows to any width and never overlaps labels, however many series there are).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Any

import gradio as gr

from demo.formatting import plain_md
from pipelines.core.errors import UserError
from pipelines.feedback.errors import FilterError
from pipelines.feedback.leaderboard import BlindSessionHidden, LeaderboardQuery, hidden_session
from pipelines.feedback.records import to_utc_iso
from pipelines.feedback.sessions import SessionConfig
from pipelines.feedback.store import RecordFilter

ALL = "all"
BLIND_CHOICES = [
    ("Both, kept apart", ALL),
    ("Blind votes only", "blind"),
    ("Labelled votes only", "open"),
]
SOURCE_CHOICES = [
    ("Every source", ALL),
    ("This page only (no API or MCP votes)", "page"),
]
# the tab's reads share one line of their own: tables are cached, so two at a time keep up,
# and a flood of reads waits there, never in the votes' or the renders' line
BOARD_LIMIT = 2
LEGEND = (
    "**Rank** by *strength*: every rater's 1–5 ratings compared in pairs within a row (equal "
    "ratings half each, the best pick decides them). Methods whose 95% strength ranges overlap "
    "share a rank (`=`); a few votes give wide ranges, never a certainty."
)
DETAILS = (
    "**How it is computed.** *Strength*: a Bradley–Terry fit, 0 = the style's average, higher "
    "= preferred more often. Its 95% range comes from a weak prior (each method starts with "
    "half a win and half a loss against an average one), widened where resampling the rated "
    "rows gives a wider range (raters who disagree). *Mean rating*: the average 1–5 score, its "
    "range a t-interval with a prior spread of 1 point. *Picked as best*: how often raters "
    "chose it as the best of its row. Blind and labelled votes are never pooled."
)


@dataclass(frozen=True)
class LeaderboardCallbacks:
    """What the tab needs from the app."""

    table: LeaderboardQuery  # filter -> per style x method table
    session: Callable[[], SessionConfig]  # the live session: the tab opens on its tag
    styles: Sequence[tuple[str, str]]


def create_leaderboard_tab(cb: LeaderboardCallbacks, tab: gr.Tab) -> None:
    """Builds the tab's contents; it opens on the live session and refreshes when opened."""
    with gr.Row():
        style = gr.Dropdown([("All styles", ALL), *cb.styles], value=ALL, label="Style")
        tag = gr.Textbox(label="Session tag (empty = all)", elem_id="lb-session")
        deck = gr.Textbox(label="Deck (empty = all)", elem_id="lb-deck")
        since = gr.Textbox(label="From (YYYY-MM-DD)", placeholder="2026-01-31", elem_id="lb-since")
        until = gr.Textbox(label="To (YYYY-MM-DD)", placeholder="2026-12-31", elem_id="lb-until")
        blind = gr.Radio(BLIND_CHOICES, value=ALL, label="Votes", elem_id="lb-votes")
        source = gr.Radio(SOURCE_CHOICES, value=ALL, label="Votes from", elem_id="lb-source")
        refresh = gr.Button("Refresh", elem_id="lb-refresh")
    summary = gr.Markdown(elem_id="lb-summary")
    gr.Markdown(LEGEND, elem_id="lb-legend")
    table = gr.Dataframe(interactive=False, wrap=True, elem_id="lb-table")
    chart = gr.HTML(elem_id="lb-chart")
    gr.Markdown(DETAILS, elem_id="lb-details")

    style_names = {sid: name for name, sid in cb.styles}

    def compute(
        style_id: str,
        session_tag: str,
        deck_id: str,
        from_day: str,
        to_day: str,
        votes: str,
        source_id: str = ALL,
    ) -> tuple[Any, Any, Any]:
        # an API client may send null for a text box: read it as empty, never crash on it
        session_tag, deck_id = session_tag or "", deck_id or ""
        from_day, to_day = from_day or "", to_day or ""
        hidden = hidden_session(cb.session())
        said = day_problem(from_day, "From") or day_problem(to_day, "To")
        if said:  # in the page's words, the table left as it was
            return f"⚠️ {said}", gr.update(), gr.update()
        try:
            flt = RecordFilter(
                style=None if style_id == ALL else style_id,
                session_tag=session_tag.strip() or None,
                deck_id=deck_id.strip() or None,
                since=from_day.strip() or None,
                until=to_day.strip() or None,
                blind={"blind": True, "open": False}.get(votes),
                source=None if source_id in (ALL, None) else source_id,
            )
            df = cb.table(flt)
        except BlindSessionHidden as exc:  # a peek at a running blind session: say why not
            text = f"{str(exc)[0].upper()}{str(exc)[1:]}."
            return text, gr.update(), gr.update()
        except UserError as exc:  # a bad date: say so, keep what is on screen
            gr.Warning(f"{exc} Use dates like 2026-12-01.")
            return f"⚠️ {exc} Use dates like 2026-12-01.", gr.update(), gr.update()
        note = (
            f" The ratings of the running blind session “{hidden}” are left out until the "
            "facilitator ends it."
            if hidden
            else ""
        )
        if df.empty:
            where = f" for session “{session_tag.strip()}”" if session_tag.strip() else ""
            return f"No ratings match these filters yet{where}.{note}", "", readable(df)
        df = with_style_names(df, style_names)
        n = int(df["ratings"].sum())
        ratings = "1 rating" if n == 1 else f"{n} ratings"
        pairs = "1 style × method pair" if len(df) == 1 else f"{len(df)} style × method pairs"
        return (
            f"{ratings} across {pairs}.{note}",
            chart_html(df),
            readable(df),
        )

    def opened() -> tuple[Any, ...]:
        """On opening: the live session's tag and every vote (a running blind session's board
        stays hidden: then every other rating)."""
        session = cb.session()
        live_tag = "" if hidden_session(session) else session.session_tag
        return (live_tag, ALL, ALL, *compute(ALL, live_tag, "", "", "", ALL, ALL))

    inputs = [style, tag, deck, since, until, blind, source]
    outputs = [summary, chart, table]
    line = {"concurrency_id": "board", "concurrency_limit": BOARD_LIMIT, "api_name": False}
    refresh.click(compute, inputs, outputs, **line).then(None, js=SHOW_SUMMARY)
    tab.select(opened, None, [tag, blind, source, *outputs], **line)
    for control in (style, blind, source):
        control.change(compute, inputs, outputs, **line)


def day_problem(text: str, box: str) -> str | None:
    """Why ``text`` typed in the ``box`` date box is not a date the board reads, in plain words
    (a day-month-year or month-day-year date gets both readings spelled out); None when it is
    one, or empty."""
    text = text.strip()
    if not text:
        return None
    try:
        to_utc_iso(text, box)
        return None
    except FilterError:
        pass
    found = re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})", text)
    readings = []
    if found:
        first, second, year = (int(g) for g in found.groups())
        for day, month in ((first, second), (second, first)):
            with contextlib.suppress(ValueError):
                when = date(year, month, day)
                readings.append(f"{when.isoformat()} for {when.day} {when:%B %Y}")
    if readings:
        return (
            f"“{plain_md(text)}” in {box}: write dates as year-month-day, e.g. "
            + " or ".join(dict.fromkeys(readings))
            + "."
        )
    return (
        f"“{plain_md(text)}” in {box} is not a date: write it as year-month-day, e.g. 2026-12-01."
    )


# what Refresh found (or why not), where the person pressed it: on a phone it sat off-screen
SHOW_SUMMARY = """() => {
  requestAnimationFrame(() => {
    const said = document.querySelector('#lb-summary');
    if (!said) return;
    const box = said.getBoundingClientRect();
    // out of view: to the top, with the legend and the first ranks under it
    if (box.top < 0 || box.bottom > window.innerHeight) said.scrollIntoView({block: 'start'});
  });
}"""


def series_label(df: Any) -> Any:
    """Each row's line label: "method (style · kind of vote)", one per style x method x kind."""
    kind = df["blind"].map({True: "blind", False: "labelled"})
    return df["method"] + " (" + df["style"] + " · " + kind + ")"


def chart_html(df: Any) -> str:
    """Horizontal strength bars, one line per series, each with its 95% range as a whisker.

    Rows come in table order (kind of vote, style, rank). The label sits on its own line above
    its bar, so labels never overlap, and the HTML reflows to the page's width.
    """
    if df.empty:
        return ""
    table = _ordered(df)
    lows = [lo if lo == lo and lo is not None else s for lo, s in _pairs(table, "bt_low")]
    highs = [hi if hi == hi and hi is not None else s for hi, s in _pairs(table, "bt_high")]
    lo, hi = min(0.0, *lows), max(0.0, *highs)
    span = (hi - lo) or 1.0

    def pct(v: float) -> float:
        return round(100.0 * (v - lo) / span, 2)

    zero = pct(0.0)
    lines = []
    for label, rank, s, low, high in zip(
        series_label(table), rank_labels(table), table["bt_strength"], lows, highs, strict=True
    ):
        left, right = sorted((zero, pct(s)))
        ranged = f" [{low:+.2f}, {high:+.2f}]" if high > low else ""
        lines.append(
            '<div class="lb-series" style="margin:0 0 6px">'
            '<div class="lb-label" style="font-size:0.85rem;line-height:1.25;'
            'overflow-wrap:anywhere">'
            f"<b>{escape(rank)}</b> · {escape(label)} "
            f'<span style="opacity:0.75">{s:+.2f}{ranged}</span></div>'
            '<div class="lb-track" style="position:relative;height:14px;'
            'background:rgba(128,128,128,0.12);border-radius:3px">'
            f'<div class="lb-zero" style="position:absolute;left:{zero}%;top:0;bottom:0;'
            'border-left:1px solid rgba(128,128,128,0.8)"></div>'
            f'<div class="lb-bar" style="position:absolute;left:{left}%;'
            f"width:{max(right - left, 0.3):.2f}%;top:2px;bottom:2px;background:#7c5cbf;"
            'border-radius:2px"></div>'
            f'<div class="lb-whisker" style="position:absolute;left:{pct(low)}%;'
            f"width:{pct(high) - pct(low):.2f}%;top:2px;height:10px;box-sizing:border-box;"
            'border-left:2px solid currentColor;border-right:2px solid currentColor">'
            '<div style="position:absolute;left:0;right:0;top:4px;'
            'border-top:2px solid currentColor"></div></div>'
            "</div></div>"
        )
    return (
        '<div class="lb-bars" role="img" aria-label="Strength of each style and method, with '
        'its 95% range">'
        '<div style="font-weight:600;margin:4px 0 8px">Strength (0 = average, higher = '
        f"preferred), bar = estimate, whisker = 95% range; axis {lo:+.2f} to {hi:+.2f}</div>"
        + "".join(lines)
        + "</div>"
    )


def _pairs(df: Any, column: str) -> list[tuple[Any, float]]:
    return list(zip(df[column], df["bt_strength"], strict=True))


def _ordered(df: Any) -> Any:
    """The pipeline's order within a group (rank, then strength), groups by kind then style."""
    return (
        df.assign(_kind=~df["blind"])
        .sort_values(["_kind", "style", "rank", "bt_strength"], ascending=[True, True, True, False])
        .drop(columns="_kind")
    )


def _interval(low: Any, high: Any) -> str:
    if low is None or high is None or low != low or high != high:
        return "—"
    return f"{low:.2f} – {high:.2f}"


def rank_labels(df: Any) -> list[str]:
    """The pipeline's ranks as shown: "=2" where another row of the group shares rank 2."""
    return [f"={r}" if tied else str(r) for r, tied in zip(df["rank"], df["tied"], strict=True)]


def with_style_names(df: Any, names: Mapping[str, str]) -> Any:
    """The board with each style's display name ("Oil painting"), not its id ("oil_painting")."""
    if df.empty:
        return df
    return df.assign(style=df["style"].map(lambda sid: names.get(sid, sid)))


def readable(df: Any) -> Any:
    """The leaderboard as people read it: plain column names, rounded, ranges, ranks."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame(columns=["rank", "method", "style", "votes", "ratings"])

    df = _ordered(df)

    def ranges(low: str, high: str) -> list[str]:
        return [_interval(a, b) for a, b in zip(df[low], df[high], strict=True)]

    out = pd.DataFrame(
        {
            "rank": rank_labels(df),  # first: the column a phone shows without scrolling
            "method": df["method"],
            "style": df["style"],
            "votes": df["blind"].map({True: "blind", False: "labelled"}),
            "ratings": df["ratings"],
            "mean rating": df["mean"].round(2),
            "mean range (95%)": ranges("mean_low", "mean_high"),
            "picked as best": [f"{p} of {r}" for p, r in zip(df["picks"], df["rows"], strict=True)],
            "strength": df["bt_strength"].round(2),
            "strength range (95%)": ranges("bt_low", "bt_high"),
        }
    )
    return out.reset_index(drop=True)
