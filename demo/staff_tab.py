"""Staff tools: run a feedback session, style references, export ratings, retrain the learned
method, and why a method cannot run here (the technical reasons participants never see); the
loaded deck's report (report.md and report.png, as ``python -m pipelines.decks report`` writes
them, with the ratings so far), so a facilitator never needs the command line."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image as PILImage

from demo.clients import address as caller_address
from demo.errors import user_errors
from demo.formatting import plain_md
from demo.leaderboard_tab import readable
from pipelines.decks.assign import Coverage
from pipelines.decks.board import DeckBoard, LoadedDeck
from pipelines.decks.report import DeckReport, write_report
from pipelines.feedback.retrain import RetrainReport
from pipelines.feedback.sessions import SessionConfig


@dataclass(frozen=True)
class StaffCallbacks:
    """What the Staff tab needs from the app."""

    # (password, caller's address) -> ok; always True when no staff password is set; raises a
    # UserError, at once, while that address is locked out or every address is backed off
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
    # writes the loaded deck's report.md and report.png with the ratings so far (None: no deck
    # loaded); see loaded_deck_report. Unset: the Staff tab has no report panel
    deck_report: Callable[[], DeckReport | None] | None = None
    # a session tag -> its leaderboard, every rating included (a running blind session's too,
    # which participants do not see); unset: no standings button
    session_standings: Callable[[str], Any] | None = None
    trusted_proxies: int = 0  # proxies whose X-Forwarded-For names the caller (demo.clients)


def loaded_deck_report(decks: DeckBoard, n_boot: int = 200) -> Callable[[], DeckReport | None]:
    """``StaffCallbacks.deck_report`` for the app's deck board: the report of the deck loaded
    now, with every rating of it in the board's store, written into the deck folder."""

    def report() -> DeckReport | None:
        deck = decks.current()
        return None if deck is None else write_report(deck.folder, decks.store, n_boot=n_boot)

    return report


def deck_report_md(report: DeckReport) -> str:
    """The report as the Staff tab shows it: report.md's text (the chart is shown beside it),
    and the Leaderboard tab's filter for this deck's ratings."""
    where = f"`{report.markdown_path}`" if report.markdown_path else "the deck folder"
    return (
        f"Leaderboard of this deck's ratings: **Leaderboard** tab → Deck: `{report.deck}` "
        f'(API: `/leaderboard` with `deck="{report.deck}"`). Written to {where}.\n\n'
        + report.markdown
    )


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
        if report.stages:  # the fast stage and the contextual re-ranker, each before → after
            lines.append(f"By stage: {plain_md(report.stages_line())}.")
    else:
        lines.append(
            f"Held-out check: too few varied ratings to measure ({report.held_out_rows} held out)."
        )
    lines.append(
        f"Saved to `{report.path}`" + (f"; {report.synced_to}." if report.synced_to else ".")
    )
    return "  \n".join(lines)


def client_key(request: gr.Request | None, trusted_proxies: int = 0) -> str:
    """Who is trying the password: the caller's address, never its page session (a reload, or
    a client that opens a new session per guess, is the same caller)."""
    return caller_address(request, trusted_proxies)


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
    password = gr.Textbox(
        label="Staff password", type="password", visible=cb.password_required, elem_id="staff-pw"
    )
    if not cb.password_required:
        gr.Markdown(
            "⚠️ No `BECOME_STAFF_PASSWORD` is set: anyone who can open this page can export "
            "the ratings (rater names, comments) and retrain the learned method."
        )
    session = _session_form(cb)
    server, server_button = _server_panel(cb.password_required)
    page = StaffPage(
        password=password,
        session=session,
        server=server,
        server_button=server_button,
        refs=_references_panel(cb),
        deck=_deck_form(with_report=cb.deck_report is not None),
        export=_export_panel(),
        retrain=_retrain_panel(),
    )
    handlers = StaffHandlers(cb, serve=lambda path: serve_once(page.export.file, path))
    _wire(page, handlers, tab)


# ----------------------------------------------------------------------------- layout


@dataclass
class SessionForm:
    summary: gr.Markdown
    tag: gr.Textbox
    blind: gr.Checkbox
    styles: gr.CheckboxGroup
    methods: gr.CheckboxGroup
    start: gr.Button
    end: gr.Button
    status: gr.Markdown
    standings: gr.Button | None  # the live session's board, for staff (hidden while blind)
    standings_md: gr.Markdown | None
    standings_table: gr.Dataframe | None

    def fields(self) -> list[Any]:
        """What :meth:`StaffHandlers.live` fills: the summary and the form's values."""
        return [self.summary, self.tag, self.blind, self.styles, self.methods]


@dataclass
class ReferencesPanel:
    style: gr.Dropdown
    files: gr.File
    add: gr.Button
    clear: gr.Button
    status: gr.Markdown


@dataclass
class DeckForm:
    source: gr.Textbox
    blind: gr.Checkbox
    load: gr.Button
    unload: gr.Button
    info: gr.Markdown
    report: gr.Button | None = None  # None: the app gives no deck report
    report_md: gr.Markdown | None = None
    chart: gr.Image | None = None


@dataclass
class ExportPanel:
    fmt: gr.Radio
    button: gr.Button
    file: gr.File


@dataclass
class RetrainPanel:
    extra: gr.File
    button: gr.Button
    report: gr.Markdown
    model: gr.Markdown


@dataclass
class StaffPage:
    """The Staff tab's components, one group per accordion."""

    password: gr.Textbox
    session: SessionForm
    server: gr.Markdown  # engine, notes and why each method can or cannot run
    server_button: gr.Button | None  # shows them once the password is checked (when one is set)
    refs: ReferencesPanel
    deck: DeckForm
    export: ExportPanel
    retrain: RetrainPanel


def _session_form(cb: StaffCallbacks) -> SessionForm:
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
        status = gr.Markdown(elem_id="fac-status")
        standings = standings_md = standings_table = None
        if cb.session_standings is not None:
            standings = gr.Button(
                "Show this session's standings", size="sm", elem_id="fac-standings"
            )
            standings_md = gr.Markdown(elem_id="fac-standings-summary")
            standings_table = gr.Dataframe(interactive=False, wrap=True, visible=False)
    return SessionForm(
        summary,
        tag,
        blind,
        styles,
        methods,
        start,
        end,
        status,
        standings,
        standings_md,
        standings_table,
    )


def scroll_to(elem_id: str) -> str:
    """A browser step that brings ``elem_id`` into view: an answer shown where it was asked."""
    return f"() => document.getElementById('{elem_id}')?.scrollIntoView({{block: 'nearest'}})"


SCROLL_TO_SERVER = scroll_to("staff-methods")
SERVER_LOCKED = (
    "Enter the staff password above and press **Show server details**: the engine, its settings "
    "and the learned model's figures are for staff."
)


def _server_panel(password_required: bool) -> tuple[gr.Markdown, gr.Button | None]:
    with gr.Accordion("This server: engine, notes, methods", open=False):
        button = gr.Button("Show server details", size="sm") if password_required else None
        return gr.Markdown(elem_id="staff-methods"), button


def _references_panel(cb: StaffCallbacks) -> ReferencesPanel:
    with gr.Accordion("Style reference images (inversion and ensemble)", open=False):
        gr.Markdown(
            "Upload a few images that show a style (your own or public-domain art you may use). "
            "They are kept in the app's data folder, synced with the feedback dataset when "
            "that is configured, and used as CLIP targets. A style without references uses its "
            'own description instead, and says so in "why this prompt".'
        )
        with gr.Row():
            style = gr.Dropdown(list(cb.styles), value=cb.styles[0][1], label="Style")
            files = gr.File(
                label="Images", file_count="multiple", file_types=["image"], type="filepath"
            )
        with gr.Row():
            add = gr.Button("Add to this style", elem_id="refs-add")
            clear = gr.Button("Remove this style's uploads", variant="stop")
        status = gr.Markdown(elem_id="refs-status")
    return ReferencesPanel(style, files, add, clear, status)


def _deck_form(with_report: bool) -> DeckForm:
    with gr.Accordion("Rate a deck in this session", open=False):
        gr.Markdown(
            "Load a rendered deck (`python -m pipelines.decks render`): a folder on this "
            "machine or a dataset repo id (`owner/name`, pulled with the feedback token). "
            "While it is loaded, pages opened in this session rate its rows instead of "
            "rendering live ones."
        )
        with gr.Row():
            source = gr.Textbox(
                label="Deck folder or dataset repo id", elem_id="deck-source", scale=3
            )
            blind = gr.Checkbox(value=True, label="Blind", elem_id="deck-blind")
        with gr.Row():
            load = gr.Button("Load deck", variant="primary", elem_id="deck-load")
            unload = gr.Button("Unload (back to live)", elem_id="deck-unload")
        info = gr.Markdown(elem_id="deck-info")
        if not with_report:
            return DeckForm(source, blind, load, unload, info)
        report = gr.Button("Show the loaded deck's report", elem_id="deck-report")
        report_md = gr.Markdown(elem_id="deck-report-md")
        chart = gr.Image(
            label="report.png: measures and strengths per style x method",
            type="pil",
            interactive=False,
            visible=False,
            elem_id="deck-report-png",
        )
    return DeckForm(source, blind, load, unload, info, report, report_md, chart)


def _export_panel() -> ExportPanel:
    with gr.Accordion("Export ratings", open=False):
        with gr.Row():
            fmt = gr.Radio(["csv", "jsonl"], value="csv", label="Format")
            button = gr.Button("Export", elem_id="export")
        file = gr.File(label="Ratings file (prompt, score, style, comment, ...)")
    return ExportPanel(fmt, button, file)


def _retrain_panel() -> RetrainPanel:
    with gr.Accordion("Retrain the learned method", open=False):
        gr.Markdown(
            "Trains the prompt scorer on every rating in the store (plus any CSV/JSONL files "
            "below, columns `prompt`, `score`, optional `style`) and swaps it in without a restart."
        )
        extra = gr.File(label="Extra training files", file_count="multiple", type="filepath")
        button = gr.Button("Retrain learned method", variant="primary", elem_id="retrain")
        report = gr.Markdown(elem_id="retrain-report")
        model = gr.Markdown(elem_id="learned-model")
    return RetrainPanel(extra, button, report, model)


# ----------------------------------------------------------------------------- handlers


class StaffHandlers:
    """The Staff tab's handlers. Each staff action checks the password first (``guard``);
    ``request`` is Gradio's, and None where a test calls the handler directly."""

    def __init__(self, cb: StaffCallbacks, serve: Callable[[Path], str]) -> None:
        self.cb = cb
        self.serve = serve  # an export file -> what the file component serves (serve_once)
        self.names = {sid: name for name, sid in cb.styles}

    def guard(self, pw: str, request: gr.Request | None) -> None:
        """Refuse a wrong staff password (and a client locked out after several)."""
        with user_errors("Checking the staff password"):
            ok = self.cb.check_password(pw or "", client_key(request, self.cb.trusted_proxies))
        if not ok:
            raise gr.Error("Wrong staff password.")

    def check(self, pw: str, request: gr.Request | None = None) -> None:
        """The first step of every staff click: a refusal here targets no component, so a
        wrong password leaves the form as it was (no "Error" badges on its fields). Each
        action checks again itself (``guard``): a handler is never reachable without it."""
        self.guard(pw, request)

    def live(self) -> list[Any]:
        """The form as the live session has it: nothing the facilitator did not set changes."""
        config = self.cb.session()
        return [
            session_summary(config, self.names),
            config.session_tag,
            config.blind,
            list(config.styles),
            list(config.methods),
        ]

    def start(
        self,
        pw: str,
        tag: str,
        blind: bool,
        styles: list[str],
        methods: list[str],
        request: gr.Request | None = None,
    ) -> list[Any]:
        """Start (or update) the session; [status line, *live form]."""
        self.guard(pw, request)
        with user_errors("Starting the session"):
            config = self.cb.start_session(tag, styles, methods, blind)
        tag_md = plain_md(config.session_tag) if config.session_tag else "(untagged)"
        return [f"Session **{tag_md}** is live: new pages open with it.", *self.live()]

    def end(self, pw: str, request: gr.Request | None = None) -> list[Any]:
        """End the session; [status line, *live form]."""
        self.guard(pw, request)
        self.cb.end_session()
        return ["Session ended: new pages open untagged.", *self.live()]

    def standings(self, pw: str, request: gr.Request | None = None) -> tuple[str, Any]:
        """The live session's leaderboard, every rating (a blind one's too); (summary, table)."""
        self.guard(pw, request)
        session = self.cb.session()
        tag = session.session_tag
        if not tag or self.cb.session_standings is None:
            text = "No tagged session is running: the Leaderboard tab shows every rating."
            return text, gr.update(value=None, visible=False)
        with user_errors("The session's standings"):
            df = self.cb.session_standings(tag)
        n = int(df["ratings"].sum()) if not df.empty else 0
        hidden = " Participants do not see them until you end the session." if session.blind else ""
        text = f"Session **{plain_md(tag)}**: {n} rating{'s' if n != 1 else ''}.{hidden}"
        return text, gr.update(value=readable(df), visible=not df.empty)

    def methods_report(self) -> str:
        """The engine's notes, then each method and why it cannot run here, if it cannot."""
        rows = [f"- {plain_md(line)}" for line in self.cb.server_details()]
        rows += [
            f"- **{m}**: " + ("runs here" if why is None else f"cannot run: {plain_md(why)}")
            for m, why in self.cb.availability().items()
        ]
        return "\n".join(rows)

    def refs_report(self) -> str:
        """How many reference images were uploaded to each style."""
        counts = self.cb.reference_counts()
        if not counts:
            return "No uploaded references yet."
        return "Uploaded: " + ", ".join(f"{self.names.get(s, s)} {n}" for s, n in counts.items())

    def add_refs(
        self, pw: str, style: str, files: list[str] | None, request: gr.Request | None = None
    ) -> str:
        """Add uploaded images to a style's references."""
        self.guard(pw, request)
        if not files:
            raise gr.Error("Choose one or more image files first.")
        with user_errors("Adding the references"):
            added = self.cb.add_references(style, list(files))
        name = self.names.get(style, style)
        return f"Added {added} new image(s) to {name}. " + self.refs_report()

    def clear_refs(self, pw: str, style: str, request: gr.Request | None = None) -> str:
        """Remove a style's uploaded references."""
        self.guard(pw, request)
        removed = self.cb.clear_references(style)
        name = self.names.get(style, style)
        return f"Removed {removed} image(s) from {name}. " + self.refs_report()

    def load_deck(
        self, pw: str, source: str, blind: bool, request: gr.Request | None = None
    ) -> str:
        """Load a deck for this session's raters."""
        self.guard(pw, request)
        with user_errors("Loading the deck"):
            deck = self.cb.load_deck(source, blind)
        return deck_status(deck.deck_id, self.cb.deck_coverage())

    def unload_deck(self, pw: str, request: gr.Request | None = None) -> str:
        """Back to live comparisons."""
        self.guard(pw, request)
        self.cb.unload_deck()
        return deck_status("", None)

    def deck_report(self, pw: str, request: gr.Request | None = None) -> tuple[str, Any]:
        """The loaded deck's report, written now with the ratings so far: (text, chart)."""
        self.guard(pw, request)
        if self.cb.deck_report is None:
            raise gr.Error("This app gives no deck report.")
        with user_errors("The deck report"):
            report = self.cb.deck_report()
        if report is None:
            return "No deck is loaded: load one above to see its report.", gr.update(
                value=None, visible=False
            )
        chart = None
        if report.chart_path is not None:
            with PILImage.open(report.chart_path) as png:
                chart = png.copy()  # served from Gradio's cache, wherever the deck folder is
        return deck_report_md(report), gr.update(value=chart, visible=chart is not None)

    def export(self, pw: str, fmt: str, request: gr.Request | None = None) -> str:
        """The ratings as a file to download, served once."""
        self.guard(pw, request)
        with user_errors("The export"):
            return self.serve(self.cb.export(fmt))

    def retrain(
        self, pw: str, files: list[str] | None, request: gr.Request | None = None
    ) -> tuple[str, str]:
        """Retrain the learned method; (report, the model now in use)."""
        self.guard(pw, request)
        with user_errors("Retraining"):
            report = self.cb.retrain([Path(f) for f in files or []])
        return retrain_md(report), "Current learned model: " + self.cb.model_summary()

    def open(self) -> list[Any]:
        """The tab's panels as they are now: [*live form, server, references, model, deck]."""
        return [*self.live(), *self.panels()]

    def panels(self) -> list[Any]:
        """[server, references, model, deck] as they are now. With a staff password set, the
        server's details and the model's figures wait for it (:meth:`server`)."""
        deck = deck_status(self.cb.session().deck_id, self.cb.deck_coverage())
        if self.cb.password_required:  # never a password check here: it would count a failure
            server, model = SERVER_LOCKED, "Current learned model: shown with the server details."
        else:
            server, model = (
                self.methods_report(),
                "Current learned model: " + self.cb.model_summary(),
            )
        return [server, self.refs_report(), model, deck]

    def server(self, pw: str | None, request: gr.Request | None = None) -> tuple[str, str]:
        """(the server's details, the learned model in use) once the password is checked."""
        self.guard(pw or "", request)
        return self.methods_report(), "Current learned model: " + self.cb.model_summary()


# ----------------------------------------------------------------------------- wiring


def _guarded(
    h: StaffHandlers,
    button: gr.Button,
    pw: gr.Textbox,
    fn: Callable[..., Any],
    inputs: list[Any],
    outputs: Any,
    **kwargs: Any,
) -> Any:
    """``button`` runs ``fn`` once the password is checked in a step of its own, without
    outputs: Gradio marks every output of a failed step with an "Error" badge. Every button's
    check shares one line of its own, with no limit on how many run at once: a check answers at
    once (a locked-out caller is refused without a comparison, nothing sleeps), so a flood of
    guesses never holds a worker, nor waits where votes and renders wait. (Off the queue, the
    page would not show the check's refusal.) Returns the event, for a step after it."""
    check = button.click(
        h.check,
        [pw],
        None,
        api_name=False,
        show_progress="hidden",
        concurrency_id="staff-check",
        concurrency_limit=None,
    )
    return check.success(fn, inputs, outputs, api_name=False, **kwargs)


def _wire(page: StaffPage, h: StaffHandlers, tab: gr.Tab) -> None:
    """Every button to its handler (the password first); opening the tab refreshes the panels."""
    pw, form, refs, deck = page.password, page.session, page.refs, page.deck
    fields = [pw, form.tag, form.blind, form.styles, form.methods]
    _guarded(h, form.start, pw, h.start, fields, [form.status, *form.fields()])
    _guarded(h, form.end, pw, h.end, [pw], [form.status, *form.fields()])
    if form.standings is not None:
        outputs = [form.standings_md, form.standings_table]
        shown = _guarded(h, form.standings, pw, h.standings, [pw], outputs)
        shown.success(None, None, None, js=scroll_to("fac-standings-summary"))
    _guarded(h, refs.add, pw, h.add_refs, [pw, refs.style, refs.files], refs.status)
    _guarded(h, refs.clear, pw, h.clear_refs, [pw, refs.style], refs.status)
    _guarded(h, deck.load, pw, h.load_deck, [pw, deck.source, deck.blind], deck.info)
    _guarded(h, deck.unload, pw, h.unload_deck, [pw], deck.info)
    if deck.report is not None:
        _guarded(h, deck.report, pw, h.deck_report, [pw], [deck.report_md, deck.chart])
    export = page.export
    _guarded(h, export.button, pw, h.export, [pw, export.fmt], export.file)
    retrain = page.retrain
    _guarded(
        h,
        retrain.button,
        pw,
        h.retrain,
        [pw, retrain.extra],
        [retrain.report, retrain.model],
        concurrency_limit=1,
    )
    if page.server_button is not None:  # the details where the person pressed for them
        shown = _guarded(
            h, page.server_button, pw, h.server, [pw], [page.server, page.retrain.model]
        )
        shown.success(None, None, None, js=SCROLL_TO_SERVER)
    panels = [page.server, refs.status, page.retrain.model, deck.info]
    # the form first, off the queue and alone (it must land before anyone types in it), then
    # the panels, which may take longer (which methods can run here)
    tab.select(h.live, None, form.fields(), api_name=False, queue=False).then(
        h.panels, None, panels, api_name=False
    )
