"""Staff tools: run a feedback session, export ratings, retrain the learned method."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr


@dataclass(frozen=True)
class StaffCallbacks:
    check_password: Callable[[str], bool]  # always True when no staff password is set
    password_required: bool
    session: Callable[[], Any]  # current SessionConfig
    set_session: Callable[[str, list[str], list[str], bool], Any]
    export: Callable[[str], str]  # format "csv" | "jsonl" -> file path
    retrain: Callable[[list[str]], dict[str, Any]]  # extra training files -> model metadata
    model_metadata: Callable[[], dict[str, Any]]
    styles: Sequence[tuple[str, str]]
    methods: Sequence[str]
    user_errors: tuple[type[BaseException], ...]


def create_staff_tab(cb: StaffCallbacks) -> None:
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
        if not ms:
            raise gr.Error("Tick at least one method for the session.")
        try:
            cb.set_session(t.strip(), st, ms, b)
        except cb.user_errors as exc:
            raise gr.Error(str(exc)) from None
        return f"Session **{t.strip() or '(untagged)'}** is live: new pages open with it."

    start.click(on_start, [password, tag, styles, methods, blind], session_status, api_name=False)

    with gr.Accordion("Export ratings", open=False):
        with gr.Row():
            fmt = gr.Radio(["csv", "jsonl"], value="csv", label="Format")
            export = gr.Button("Export")
        export_file = gr.File(label="Ratings file (columns prompt, score, style, ...)")

    def on_export(pw: str, f: str) -> str:
        guard(pw)
        try:
            return cb.export(f)
        except (*cb.user_errors, OSError) as exc:
            raise gr.Error(f"Export failed: {exc}") from None

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
        try:
            return cb.retrain(list(files or []))
        except cb.user_errors as exc:
            raise gr.Error(str(exc)) from None

    retrain.click(on_retrain, [password, extra], meta, api_name=False, concurrency_limit=1)
