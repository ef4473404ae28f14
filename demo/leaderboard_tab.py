"""The Leaderboard tab: per style x method, mean rating, win rate and Bradley–Terry strength."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from demo.errors import user_errors
from pipelines.feedback.leaderboard import LeaderboardQuery
from pipelines.feedback.store import RecordFilter

ALL = "all"
BLIND_CHOICES = [("Blind votes only", "blind"), ("Labelled votes only", "open"), ("Both", ALL)]


@dataclass(frozen=True)
class LeaderboardCallbacks:
    """What the tab needs from the app."""

    table: LeaderboardQuery  # filter -> per style x method table
    styles: Sequence[tuple[str, str]]


def create_leaderboard_tab(cb: LeaderboardCallbacks, tab: gr.Tab) -> None:
    """Builds the tab's contents; the table refreshes whenever the tab is opened."""
    with gr.Row():
        style = gr.Dropdown([("All styles", ALL), *cb.styles], value=ALL, label="Style")
        tag = gr.Textbox(label="Session tag (empty = all)", elem_id="lb-session")
        deck = gr.Textbox(label="Deck (empty = all)", elem_id="lb-deck")
        since = gr.Textbox(label="From (YYYY-MM-DD)", placeholder="2026-01-31")
        until = gr.Textbox(label="To (YYYY-MM-DD)", placeholder="2026-12-31")
        blind = gr.Radio(BLIND_CHOICES, value="blind", label="Votes")
        refresh = gr.Button("Refresh", elem_id="lb-refresh")
    summary = gr.Markdown(elem_id="lb-summary")
    chart = gr.BarPlot(
        x="method",
        y="bt_strength",
        color="series",
        title="Bradley–Terry strength (log scale, 0 = average)",
        height=280,
    )
    table = gr.Dataframe(interactive=False, wrap=True, elem_id="lb-table")

    def compute(
        style_id: str, session_tag: str, deck_id: str, from_day: str, to_day: str, votes: str
    ) -> tuple[str, Any, Any]:
        with user_errors("The leaderboard"):
            df = cb.table(
                RecordFilter(
                    style=None if style_id == ALL else style_id,
                    session_tag=session_tag.strip() or None,
                    deck_id=deck_id.strip() or None,
                    since=from_day.strip() or None,
                    until=to_day.strip() or None,
                    blind={"blind": True, "open": False}.get(votes),
                )
            )
        if df.empty:
            return "No ratings match these filters yet.", None, df
        n = int(df["ratings"].sum())
        # one bar per style and kind of vote: blind and labelled votes are never pooled
        votes_kind = df["blind"].map({True: "blind", False: "labelled"})
        chart_df = df.assign(series=df["style"] + " · " + votes_kind)
        return f"{n} ratings across {len(df)} style × method pairs.", chart_df, readable(df)

    inputs = [style, tag, deck, since, until, blind]
    outputs = [summary, chart, table]
    refresh.click(compute, inputs, outputs, api_name=False)
    tab.select(compute, inputs, outputs, api_name=False)
    for control in (style, blind):
        control.change(compute, inputs, outputs, api_name=False)


def _interval(low: Any, high: Any) -> str:
    if low is None or high is None or low != low or high != high:  # too few ratings (None/NaN)
        return "—"
    return f"{low:.2f} – {high:.2f}"


def readable(df: Any) -> Any:
    """The leaderboard as people read it: rounded, intervals as ranges, plain column names."""
    import pandas as pd

    def ranges(low: str, high: str) -> list[str]:
        return [_interval(a, b) for a, b in zip(df[low], df[high], strict=True)]

    return pd.DataFrame(
        {
            "votes": df["blind"].map({True: "blind", False: "labelled"}),
            "style": df["style"],
            "method": df["method"],
            "ratings": df["ratings"],
            "mean rating": df["mean"].round(2),
            "mean 95% CI": ranges("mean_low", "mean_high"),
            # None for every row when no rater picked a best (object dtype): numbers first
            "best-pick rate": pd.to_numeric(df["pick_rate"]).round(2),
            "picks / rows": [f"{p} / {r}" for p, r in zip(df["picks"], df["rows"], strict=True)],
            "Bradley–Terry": df["bt_strength"].round(2),
            "BT 95% CI": ranges("bt_low", "bt_high"),
        }
    ).sort_values(["votes", "style", "Bradley–Terry"], ascending=[True, True, False])
