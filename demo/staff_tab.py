"""Staff tools: run a feedback session, export ratings, retrain the learned method."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from demo.errors import user_errors
from pipelines.decks.assign import Coverage
from pipelines.decks.board import LoadedDeck
from pipelines.feedback.retrain import RetrainReport
from pipelines.feedback.sessions import SessionConfig


@dataclass(frozen=True)
class StaffCallbacks:
    """What the Staff tab needs from the app."""

    check_password: Callable[[str], bool]  # always True when no staff password is set
    password_required: bool
    session: Callable[[], SessionConfig]
    start_session: Callable[[str, list[str], list[str], bool], SessionConfig]
    export: Callable[[str], Path]  # format "csv" | "jsonl" -> file
    retrain: Callable[[list[Path]], RetrainReport]  # extra training files -> report
    model_metadata: Callable[[], dict[str, Any]]
    styles: Sequence[tuple[str, str]]
    methods: Sequence[str]
    load_deck: Callable[[str, bool], LoadedDeck]  # folder or dataset repo id, blind
    unload_deck: Callable[[], None]
    deck_coverage: Callable[[], Coverage | None]  # the loaded deck's ratings per row


def deck_status(deck_id: str, cov: Coverage | None) -> str:
    """One line about the loaded deck (or that live comparisons run)."""
    if not deck_id or cov is None:
        return "No deck loaded: participants render live comparisons."
    return (
        f"Deck **{deck_id}** is loaded: {cov.rows} rows, {cov.ratings} rated so far "
        f"({cov.min_per_row}–{cov.max_per_row} raters per row). New pages rate its rows."
    )


def create_staff_tab(cb: StaffCallbacks) -> None:
    """Facilitate a session, export ratings, retrain the learned method (password-guarded)."""
    password = gr.Textbox(
        label="Staff password", type="password", visible=cb.password_required, elem_id="staff-pw"
    )
    if not cb.password_required:
        gr.Markdown(
            "⚠️ No `BECOME_STAFF_PASSWORD` is set: anyone who can open this page can export "
            "the ratings (rater names, comments) and retrain the learned method."
        )

    def guard(pw: str) -> None:
        if not cb.check_password(pw or ""):
            raise gr.Error("Wrong staff password.")

    with gr.Accordion("Facilitate a feedback session", open=True):
        current = cb.session()
        with gr.Row():
            tag = gr.Textbox(value=current.session_tag, label="Session tag", elem_id="fac-tag")
            blind = gr.Checkbox(value=current.blind, label="Blind mode by default")
        styles = gr.CheckboxGroup(
            list(cb.styles), value=list(current.styles), label="Styles (none ticked = all)"
        )
        methods = gr.CheckboxGroup(
            list(cb.methods), value=list(current.methods), label="Methods participants compare"
        )
        start = gr.Button("Start / update session", elem_id="fac-start")
        session_status = gr.Markdown()

    def on_start(pw: str, t: str, st: list[str], ms: list[str], b: bool) -> str:
        guard(pw)
        with user_errors("Starting the session"):
            config = cb.start_session(t, st, ms, b)
        return f"Session **{config.session_tag or '(untagged)'}** is live: new pages open with it."

    start.click(on_start, [password, tag, styles, methods, blind], session_status, api_name=False)

    with gr.Accordion("Rate a deck in this session", open=False):
        gr.Markdown(
            "Load a rendered deck (`python -m pipelines.decks render`): a folder on this "
            "machine or a dataset repo id (`owner/name`, pulled with the feedback token). "
            "While it is loaded, pages opened in this session rate its rows instead of "
            "rendering live ones."
        )
        with gr.Row():
            deck_source = gr.Textbox(
                label="Deck folder or dataset repo id", elem_id="deck-source", scale=3
            )
            deck_blind = gr.Checkbox(value=True, label="Blind", elem_id="deck-blind")
        with gr.Row():
            load_deck = gr.Button("Load deck", variant="primary", elem_id="deck-load")
            unload_deck = gr.Button("Unload (back to live)", elem_id="deck-unload")
        loaded = cb.session()
        deck_info = gr.Markdown(
            deck_status(loaded.deck_id, cb.deck_coverage()), elem_id="deck-info"
        )

    def on_load_deck(pw: str, source: str, is_blind: bool) -> str:
        guard(pw)
        with user_errors("Loading the deck"):
            deck = cb.load_deck(source, is_blind)
        return deck_status(deck.deck_id, cb.deck_coverage())

    def on_unload_deck(pw: str) -> str:
        guard(pw)
        cb.unload_deck()
        return deck_status("", None)

    load_deck.click(on_load_deck, [password, deck_source, deck_blind], deck_info, api_name=False)
    unload_deck.click(on_unload_deck, [password], deck_info, api_name=False)

    with gr.Accordion("Export ratings", open=False):
        with gr.Row():
            fmt = gr.Radio(["csv", "jsonl"], value="csv", label="Format")
            export = gr.Button("Export")
        export_file = gr.File(label="Ratings file (columns prompt, score, style, ...)")

    def on_export(pw: str, f: str) -> str:
        guard(pw)
        with user_errors("The export"):
            return str(cb.export(f))

    export.click(on_export, [password, fmt], export_file, api_name=False)

    with gr.Accordion("Retrain the learned method", open=False):
        gr.Markdown(
            "Trains the prompt scorer on every rating in the store (plus any CSV/JSONL files "
            "below, columns `prompt`, `score`, optional `style`) and swaps it in without a restart."
        )
        extra = gr.File(label="Extra training files", file_count="multiple", type="filepath")
        retrain = gr.Button("Retrain learned method", variant="primary", elem_id="retrain")
        meta = gr.JSON(value=cb.model_metadata, label="Current learned model")

    def on_retrain(pw: str, files: list[str] | None) -> dict[str, Any]:
        guard(pw)
        with user_errors("Retraining"):
            report = cb.retrain([Path(f) for f in files or []])
        return {
            **report.metadata,
            "saved_to": str(report.path),
            "synced_to": report.synced_to,
            "seconds": round(report.seconds, 2),
        }

    retrain.click(on_retrain, [password, extra], meta, api_name=False, concurrency_limit=1)
