"""Staff tools: run a feedback session, export ratings, retrain the learned method."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from demo.errors import user_errors
from demo.formatting import plain_md
from pipelines.feedback.retrain import RetrainReport
from pipelines.feedback.sessions import SessionConfig


@dataclass(frozen=True)
class StaffCallbacks:
    """What the Staff tab needs from the app."""

    # (password, client key) -> ok; always True when no staff password is set; raises a
    # UserError while that client is locked out after repeated wrong passwords
    check_password: Callable[[str, str], bool]
    password_required: bool
    session: Callable[[], SessionConfig]
    start_session: Callable[[str, list[str], list[str], bool], SessionConfig]
    export: Callable[[str], Path]  # format "csv" | "jsonl" -> a new file, deleted once served
    retrain: Callable[[list[Path]], RetrainReport]  # extra training files -> report
    model_metadata: Callable[[], dict[str, Any]]
    styles: Sequence[tuple[str, str]]
    methods: Sequence[str]


def client_key(request: gr.Request | None) -> str:
    """Who is trying the password: the browser's address and its page session."""
    if request is None:
        return ""
    host = request.client.host if request.client else ""
    return f"{host}|{request.session_hash or ''}"


def serve_once(component: gr.File, path: Path) -> str:
    """Copy ``path`` into ``component``'s Gradio cache and delete it (and its folder if empty).

    The copy is the only one left: it is served to the browser and removed with the cache
    (after 10 minutes, and when the app stops), so exports with rater names do not linger.
    """
    try:
        cached = component.move_resource_to_block_cache(path)
    finally:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty, or already gone: leave it
            path.parent.rmdir()
    if cached is None:
        raise gr.Error("The export could not be prepared for download.")
    return cached


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

    def guard(pw: str, request: gr.Request | None) -> None:
        with user_errors("Checking the staff password"):
            ok = cb.check_password(pw or "", client_key(request))
        if not ok:
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

    def on_start(
        pw: str, t: str, st: list[str], ms: list[str], b: bool, request: gr.Request
    ) -> str:
        guard(pw, request)
        with user_errors("Starting the session"):
            config = cb.start_session(t, st, ms, b)
        tag = plain_md(config.session_tag) if config.session_tag else "(untagged)"
        return f"Session **{tag}** is live: new pages open with it."

    start.click(on_start, [password, tag, styles, methods, blind], session_status, api_name=False)

    with gr.Accordion("Export ratings", open=False):
        with gr.Row():
            fmt = gr.Radio(["csv", "jsonl"], value="csv", label="Format")
            export = gr.Button("Export")
        export_file = gr.File(label="Ratings file (columns prompt, score, style, ...)")

    def on_export(pw: str, f: str, request: gr.Request) -> str:
        guard(pw, request)
        with user_errors("The export"):
            return serve_once(export_file, cb.export(f))

    export.click(on_export, [password, fmt], export_file, api_name=False)

    with gr.Accordion("Retrain the learned method", open=False) as retrain_box:
        gr.Markdown(
            "Trains the prompt scorer on every rating in the store (plus any CSV/JSONL files "
            "below, columns `prompt`, `score`, optional `style`) and swaps it in without a restart."
        )
        extra = gr.File(label="Extra training files", file_count="multiple", type="filepath")
        retrain = gr.Button("Retrain learned method", variant="primary", elem_id="retrain")
        # filled behind the password: a gr.JSON(value=callable) would be an open API endpoint
        meta = gr.JSON(label="Current learned model")

    def on_show_model(pw: str, request: gr.Request) -> dict[str, Any]:
        guard(pw, request)
        with user_errors("Reading the learned model"):
            return cb.model_metadata()

    retrain_box.expand(on_show_model, [password], meta, api_visibility="private")
    password.submit(on_show_model, [password], meta, api_visibility="private")

    def on_retrain(pw: str, files: list[str] | None, request: gr.Request) -> dict[str, Any]:
        guard(pw, request)
        with user_errors("Retraining"):
            report = cb.retrain([Path(f) for f in files or []])
        return {
            **report.metadata,
            "saved_to": str(report.path),
            "synced_to": report.synced_to,
            "seconds": round(report.seconds, 2),
        }

    retrain.click(on_retrain, [password, extra], meta, api_name=False, concurrency_limit=1)
