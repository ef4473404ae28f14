"""The Leaderboard tab: per style x method, mean rating, win rate and Bradley–Terry strength."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pipelines.core.errors import UserError
from pipelines.feedback.leaderboard import LeaderboardQuery
from pipelines.feedback.sessions import SessionConfig
from pipelines.feedback.store import RecordFilter

ALL = "all"
BLIND_CHOICES = [
    ("Both, kept apart", ALL),
    ("Blind votes only", "blind"),
    ("Labelled votes only", "open"),
]
MIN_FOR_INTERVAL = 3  # ratings before an interval means anything
LEGEND = (
    "**How to read it.** *Mean rating*: the average 1–5 score, with its 95% range. *Picked as "
    "best*: how often raters chose it as the best of its row. *Strength*: how likely it is to "
    "be preferred over the others (0 = average, higher is better), with its 95% range. Ranges "
    f"show from {MIN_FOR_INTERVAL} ratings; methods whose strength ranges overlap share a rank "
    "(`=`). Blind and labelled votes are never pooled."
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
        refresh = gr.Button("Refresh", elem_id="lb-refresh")
    summary = gr.Markdown(elem_id="lb-summary")
    chart = gr.BarPlot(
        x="bar",
        y="strength",
        color="series",
        title="Strength (0 = average, higher = preferred)",
        x_title="method (style · kind of vote)",
        y_title="strength",
        height=300,
        elem_id="lb-chart",
    )
    table = gr.Dataframe(interactive=False, wrap=True, elem_id="lb-table")
    gr.Markdown(LEGEND)

    def compute(
        style_id: str, session_tag: str, deck_id: str, from_day: str, to_day: str, votes: str
    ) -> tuple[Any, Any, Any]:
        try:
            flt = RecordFilter(
                style=None if style_id == ALL else style_id,
                session_tag=session_tag.strip() or None,
                deck_id=deck_id.strip() or None,
                since=from_day.strip() or None,
                until=to_day.strip() or None,
                blind={"blind": True, "open": False}.get(votes),
            )
            df = cb.table(flt)
        except UserError as exc:  # a bad date: say so, keep what is on screen
            gr.Warning(f"{exc} Use dates like 2026-12-01.")
            return f"⚠️ {exc} Use dates like 2026-12-01.", gr.update(), gr.update()
        if df.empty:
            where = f" for session “{session_tag.strip()}”" if session_tag.strip() else ""
            return f"No ratings match these filters yet{where}.", None, readable(df)
        n = int(df["ratings"].sum())
        ratings = "1 rating" if n == 1 else f"{n} ratings"
        pairs = "1 style × method pair" if len(df) == 1 else f"{len(df)} style × method pairs"
        return (
            f"{ratings} across {pairs}.",
            chart_frame(df),
            readable(df),
        )

    def opened() -> tuple[Any, ...]:
        """On opening: the live session's tag and every vote."""
        live_tag = cb.session().session_tag
        return (live_tag, ALL, *compute(ALL, live_tag, "", "", "", ALL))

    inputs = [style, tag, deck, since, until, blind]
    outputs = [summary, chart, table]
    refresh.click(compute, inputs, outputs, api_name=False)
    tab.select(opened, None, [tag, blind, *outputs], api_name=False)
    for control in (style, blind):
        control.change(compute, inputs, outputs, api_name=False)


def chart_frame(df: Any) -> Any:
    """One bar per style × method × kind of vote, so no series hides another."""
    kind = df["blind"].map({True: "blind", False: "labelled"})
    series = df["style"] + " · " + kind
    return df.assign(
        series=series,
        bar=df["method"] + " (" + series + ")",
        strength=df["bt_strength"].round(3),
    )[["bar", "strength", "series"]]


def _interval(low: Any, high: Any, n: int) -> str:
    if n < MIN_FOR_INTERVAL or low is None or high is None or low != low or high != high:
        return "—"
    return f"{low:.2f} – {high:.2f}"


def tied_ranks(df: Any) -> list[str]:
    """Rank by strength within each (votes, style) group; overlapping ranges share a rank.

    A row's rank is 1 + the number of rows whose whole range lies above its range; rows with
    too few ratings for a range are compared by their point estimate.
    """

    def span(row: Any) -> tuple[float, float]:
        low, high = row["bt_low"], row["bt_high"]
        if row["ratings"] < MIN_FOR_INTERVAL or low != low or high != high or low is None:
            return row["bt_strength"], row["bt_strength"]
        return low, high

    spans = [span(row) for _, row in df.iterrows()]
    keys = list(zip(df["blind"], df["style"], strict=True))
    ranks = [
        1 + sum(1 for k2, s2 in zip(keys, spans, strict=True) if k2 == k and s2[0] > s[1])
        for k, s in zip(keys, spans, strict=True)
    ]
    counts: dict[tuple[Any, Any, int], int] = {}
    for k, r in zip(keys, ranks, strict=True):
        counts[(*k, r)] = counts.get((*k, r), 0) + 1
    return [f"={r}" if counts[(*k, r)] > 1 else str(r) for k, r in zip(keys, ranks, strict=True)]


def readable(df: Any) -> Any:
    """The leaderboard as people read it: plain column names, rounded, ranges, ranks."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame(columns=["votes", "style", "method", "rank", "ratings"])

    def ranges(low: str, high: str) -> list[str]:
        return [
            _interval(a, b, int(n))
            for a, b, n in zip(df[low], df[high], df["ratings"], strict=True)
        ]

    out = pd.DataFrame(
        {
            "votes": df["blind"].map({True: "blind", False: "labelled"}),
            "style": df["style"],
            "method": df["method"],
            "rank": tied_ranks(df),
            "ratings": df["ratings"],
            "mean rating": df["mean"].round(2),
            "mean range (95%)": ranges("mean_low", "mean_high"),
            "picked as best": [f"{p} of {r}" for p, r in zip(df["picks"], df["rows"], strict=True)],
            "strength": df["bt_strength"].round(2),
            "strength range (95%)": ranges("bt_low", "bt_high"),
        }
    )
    out["_order"] = df["bt_strength"]
    out = out.sort_values(["votes", "style", "_order"], ascending=[True, True, False])
    return out.drop(columns="_order")
