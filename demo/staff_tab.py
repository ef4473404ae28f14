"""Staff tools: run a feedback session, style references, export ratings, retrain the learned
method, and why a method cannot run here (the technical reasons participants never see)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from demo.errors import user_errors
from demo.formatting import plain_md
from pipelines.decks.assign import Coverage
from pipelines.decks.board import LoadedDeck
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
    end_session: Callable[[], SessionConfig]
    export: Callable[[str], Path]  # format "csv" | "jsonl" -> a new file, deleted once served
    retrain: Callable[[list[Path]], RetrainReport]  # extra training files -> report
    model_summary: Callable[[], str]
    availability: Callable[[], dict[str, str | None]]  # method -> None or the technical reason
    server_details: Callable[[], list[str]]  # engine reason, notes: what the banner leaves out
    add_references: Callable[[str, list[str]], int]  # style, files -> how many were new
    clear_references: Callable[[str], int]
    reference_counts: Callable[[], dict[str, int]]
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


def session_summary(config: SessionConfig, names: dict[str, str]) -> str:
    """The live session in one paragraph, user text escaped."""
    if not config.session_tag and not config.styles and not config.blind:
        head = "**No session is running**: pages open untagged, with every style."
    else:
        tag = plain_md(config.session_tag) if config.session_tag else "(untagged)"
        head = f"**Current session: {tag}**"
    styles = ", ".join(names.get(s, s) for s in config.styles) or "all styles"
    blind = "blind" if config.blind else "labelled"
    return f"{head}  \nMethods: {', '.join(config.methods)} · styles: {styles} · {blind} votes."


def retrain_md(report: RetrainReport) -> str:
    """A retrain report as a facilitator reads it."""
    lines = [
        f"✅ **Retrained** on {report.rows} rows ({', '.join(report.sources)}) in "
        f"{report.seconds:.1f} s; the learned method uses it now."
    ]
    if report.pearson_before is not None and report.pearson_after is not None:
        lines.append(
            f"Held-out check on {report.held_out_rows} rating rows: Pearson "
            f"{report.pearson_before:.2f} before → {report.pearson_after:.2f} after."
        )
    else:
        lines.append(
            f"Held-out check: too few varied ratings to measure ({report.held_out_rows} held out)."
        )
    lines.append(
        f"Saved to `{report.path}`" + (f"; {report.synced_to}." if report.synced_to else ".")
    )
    return "  \n".join(lines)


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


def create_staff_tab(cb: StaffCallbacks, tab: gr.Tab) -> None:
    """Every Staff tool; the session form and panels reload whenever the tab is opened."""
    names = {sid: name for name, sid in cb.styles}
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
        summary = gr.Markdown(elem_id="fac-summary")
        with gr.Row():
            tag = gr.Textbox(label="Session tag", elem_id="fac-tag")
            blind = gr.Checkbox(label="Blind mode by default", elem_id="fac-blind")
        styles = gr.CheckboxGroup(list(cb.styles), label="Styles (none ticked = all)")
        methods = gr.CheckboxGroup(list(cb.methods), label="Methods participants compare")
        with gr.Row():
            start = gr.Button("Start / update session", variant="primary", elem_id="fac-start")
            end = gr.Button("End session", variant="stop", elem_id="fac-end")
        session_status = gr.Markdown(elem_id="fac-status")

    def live() -> list[Any]:
        """The form as the live session has it: nothing the facilitator did not set changes."""
        config = cb.session()
        return [
            session_summary(config, names),
            config.session_tag,
            config.blind,
            list(config.styles),
            list(config.methods),
        ]

    form = [summary, tag, blind, styles, methods]

    def on_start(
        pw: str, t: str, b: bool, st: list[str], ms: list[str], request: gr.Request
    ) -> list[Any]:
        guard(pw, request)
        with user_errors("Starting the session"):
            config = cb.start_session(t, st, ms, b)
        tag_md = plain_md(config.session_tag) if config.session_tag else "(untagged)"
        return [f"Session **{tag_md}** is live: new pages open with it.", *live()]

    def on_end(pw: str, request: gr.Request) -> list[Any]:
        guard(pw, request)
        cb.end_session()
        return ["Session ended: new pages open untagged.", *live()]

    start.click(
        on_start, [password, tag, blind, styles, methods], [session_status, *form], api_name=False
    )
    end.click(on_end, [password], [session_status, *form], api_name=False)

    with gr.Accordion("This server: engine, notes, methods", open=False):
        methods_md = gr.Markdown(elem_id="staff-methods")

    def methods_report() -> str:
        rows = [f"- {plain_md(line)}" for line in cb.server_details()]
        rows += [
            f"- **{m}**: " + ("runs here" if why is None else f"cannot run: {plain_md(why)}")
            for m, why in cb.availability().items()
        ]
        return "\n".join(rows)

    with gr.Accordion("Style reference images (inversion and ensemble)", open=False):
        gr.Markdown(
            "Upload a few images that show a style (your own or public-domain art you may use). "
            "They are kept in the app's data folder, synced with the feedback dataset when "
            "that is configured, and used as CLIP targets. A style without references uses its "
            'own description instead, and says so in "why this prompt".'
        )
        with gr.Row():
            ref_style = gr.Dropdown(list(cb.styles), value=cb.styles[0][1], label="Style")
            ref_files = gr.File(
                label="Images", file_count="multiple", file_types=["image"], type="filepath"
            )
        with gr.Row():
            add_refs = gr.Button("Add to this style", elem_id="refs-add")
            clear_refs = gr.Button("Remove this style's uploads", variant="stop")
        refs_md = gr.Markdown(elem_id="refs-status")

    def refs_report() -> str:
        counts = cb.reference_counts()
        if not counts:
            return "No uploaded references yet."
        return "Uploaded: " + ", ".join(f"{names.get(s, s)} {n}" for s, n in counts.items())

    def on_add_refs(pw: str, style: str, files: list[str] | None, request: gr.Request) -> str:
        guard(pw, request)
        if not files:
            raise gr.Error("Choose one or more image files first.")
        with user_errors("Adding the references"):
            added = cb.add_references(style, list(files))
        return f"Added {added} new image(s) to {names.get(style, style)}. " + refs_report()

    def on_clear_refs(pw: str, style: str, request: gr.Request) -> str:
        guard(pw, request)
        removed = cb.clear_references(style)
        return f"Removed {removed} image(s) from {names.get(style, style)}. " + refs_report()

    add_refs.click(on_add_refs, [password, ref_style, ref_files], refs_md, api_name=False)
    clear_refs.click(on_clear_refs, [password, ref_style], refs_md, api_name=False)

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
        deck_info = gr.Markdown(elem_id="deck-info")

    def on_load_deck(pw: str, source: str, is_blind: bool, request: gr.Request) -> str:
        guard(pw, request)
        with user_errors("Loading the deck"):
            deck = cb.load_deck(source, is_blind)
        return deck_status(deck.deck_id, cb.deck_coverage())

    def on_unload_deck(pw: str, request: gr.Request) -> str:
        guard(pw, request)
        cb.unload_deck()
        return deck_status("", None)

    load_deck.click(on_load_deck, [password, deck_source, deck_blind], deck_info, api_name=False)
    unload_deck.click(on_unload_deck, [password], deck_info, api_name=False)

    with gr.Accordion("Export ratings", open=False):
        with gr.Row():
            fmt = gr.Radio(["csv", "jsonl"], value="csv", label="Format")
            export = gr.Button("Export", elem_id="export")
        export_file = gr.File(label="Ratings file (prompt, score, style, comment, ...)")

    def on_export(pw: str, f: str, request: gr.Request) -> str:
        guard(pw, request)
        with user_errors("The export"):
            return serve_once(export_file, cb.export(f))

    export.click(on_export, [password, fmt], export_file, api_name=False)

    with gr.Accordion("Retrain the learned method", open=False):
        gr.Markdown(
            "Trains the prompt scorer on every rating in the store (plus any CSV/JSONL files "
            "below, columns `prompt`, `score`, optional `style`) and swaps it in without a restart."
        )
        extra = gr.File(label="Extra training files", file_count="multiple", type="filepath")
        retrain = gr.Button("Retrain learned method", variant="primary", elem_id="retrain")
        retrain_report = gr.Markdown(elem_id="retrain-report")
        model_md = gr.Markdown(elem_id="learned-model")

    def on_retrain(pw: str, files: list[str] | None, request: gr.Request) -> tuple[str, str]:
        guard(pw, request)
        with user_errors("Retraining"):
            report = cb.retrain([Path(f) for f in files or []])
        return retrain_md(report), "Current learned model: " + cb.model_summary()

    retrain.click(
        on_retrain,
        [password, extra],
        [retrain_report, model_md],
        api_name=False,
        concurrency_limit=1,
    )

    def on_open() -> list[Any]:
        model = "Current learned model: " + cb.model_summary()
        deck = deck_status(cb.session().deck_id, cb.deck_coverage())
        return [*live(), methods_report(), refs_report(), model, deck]

    outputs = [*form, methods_md, refs_md, model_md, deck_info]
    tab.select(on_open, None, outputs, api_name=False)
