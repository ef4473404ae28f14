"""Rating a deck: while the facilitator has a deck loaded, raters get its pre-rendered rows
(no upload, no GPU) instead of live renders, one at a time, blind by default."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from demo.compare_tab import CompareTab
from demo.errors import user_errors
from demo.rows import row_values, shown_row_of
from pipelines.decks.board import DeckTurn
from pipelines.feedback.sessions import SessionConfig
from pipelines.feedback.voters import Voter, VoterIds


@dataclass(frozen=True)
class DeckCallbacks:
    """What the panel needs from the app."""

    # (rater name, browser id) -> the voter's next row (or wait / done)
    next_row: Callable[[str, str], DeckTurn]
    session: Callable[[], SessionConfig]  # the live session: its deck and blind mode
    # the voter a kept token names when the server signed it, else a new one (see
    # FeedbackCallbacks.vouch; unset: a key of this process alone, for tests)
    vouch: Callable[[str | None], Voter] = field(
        default_factory=lambda: VoterIds(secrets.token_hex(32)).vouch
    )


@dataclass
class DeckPanel:
    """The panel's components; created above the compare row, wired once the tab exists."""

    group: gr.Group
    intro: gr.Markdown
    rater: gr.Textbox
    next: gr.Button
    status: gr.Markdown


def create_deck_panel() -> DeckPanel:
    """The hidden "rate a deck" panel (shown on page load when a deck is loaded)."""
    with gr.Group(visible=False, elem_id="deck-panel") as group:
        intro = gr.Markdown(elem_id="deck-intro")
        with gr.Row():
            rater = gr.Textbox(
                label="Your name or nickname", elem_id="deck-rater", max_length=80, scale=3
            )
            nxt = gr.Button("Show my next row", variant="primary", elem_id="deck-next", scale=1)
        status = gr.Markdown(elem_id="deck-status")
    return DeckPanel(group, intro, rater, nxt, status)


def wire_deck_panel(
    panel: DeckPanel,
    cb: DeckCallbacks,
    tab: CompareTab,
    rater: Any,
    voter: Any,
    next_below: Any = None,
) -> None:
    """ "Show my next row" fills the compare row with the voter's next deck row: the voter is
    this browser (``voter``, the token the server issued it) and the typed name, so two people
    who type one name on two browsers get rows independently. A token the server did not sign
    is replaced by a new voter's (given back to the browser)."""
    n = len(tab.slots)

    def on_next(name: str, token: str | None) -> list[Any]:
        session = cb.session()
        voter = cb.vouch(token)
        with user_errors("Fetching your next row"):
            turn = cb.next_row(name, voter.id)
        keep = [gr.update()] * (len(tab.row_outputs) + 1)
        if turn.state == "done":
            msg = f"🎉 You have rated all {turn.total} rows of deck **{turn.deck_id}**. Thank you!"
            return [msg, name, *keep, voter.token]
        if turn.state == "wait":
            msg = (
                "⏳ The rows you have not rated are ahead of the others: give the room a few "
                "seconds to catch up, then press the button again."
            )
            return [msg, name, *keep, voter.token]
        assert turn.result is not None
        res = turn.result
        values = row_values(res, session.blind, n, shuffle_key=f"{turn.row_id}:{name}")
        row = shown_row_of(res, values)
        values[0] = f"Pre-rendered row · seed {res.request.seed}" + (
            " · **blind mode**: methods are revealed once you rate every output and submit"
            if session.blind
            else ""
        )
        values[1] = None  # decks carry no selfie crop (the face column is hidden anyway)
        msg = (
            f"Row {turn.rated + 1} of {turn.total}: rate each output below and submit, "
            "then press **Show my next row** (beside Submit) for the next one."
        )
        return [msg, name, *values, row, voter.token]

    # the button here, and its twin beside Submit (where a rater is after submitting)
    triggers = [panel.next.click] + ([next_below.click] if next_below is not None else [])
    gr.on(
        triggers,
        on_next,
        inputs=[panel.rater, voter],
        outputs=[panel.status, rater, *tab.row_outputs, tab.result, voter],
        api_name=False,
        concurrency_id="deck-rows",
        concurrency_limit=None,  # rows come from disk: no GPU, every rater at once
        scroll_to_output=True,  # from beside Submit, back up to the new row
    ).then(None, js=FIRST_CARD)


# a new row opens on its first card: the last row's sideways scroll hid Output A on a phone
FIRST_CARD = """() => {
  const row = document.querySelector('#results-row');
  if (row) row.scrollLeft = 0;
}"""


def deck_mode(session: SessionConfig, saved_name: str) -> list[Any]:
    """Page-load values for [panel group, intro, rater name, compare controls]."""
    if not session.deck_id:
        return [gr.update(visible=False), "", saved_name, gr.update(visible=True)]
    intro = (
        f"### Rating deck **{session.deck_id}**\n"
        "This session rates pre-rendered rows: no selfie needed. Each of you gets the row with "
        "the fewest ratings that you have not rated yet"
        + (
            ", with the methods hidden until you have rated every output of it."
            if session.blind
            else "."
        )
    )
    return [gr.update(visible=True), intro, saved_name, gr.update(visible=False)]
