"""Staff tools: run a feedback session, style references, export ratings, retrain the learned
method, and why a method cannot run here (the technical reasons participants never see); the
loaded deck's report (report.md and report.png, as ``python -m pipelines.decks report`` writes
them, with the ratings so far), so a facilitator never needs the command line."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image as PILImage

from demo.clients import address as caller_address
from demo.errors import user_errors
from demo.formatting import plain_md
from demo.leaderboard_tab import readable, with_style_names
from demo.transient import forget_upload
from pipelines.decks.assign import Coverage
from pipelines.decks.board import DeckBoard, LoadedDeck
from pipelines.decks.report import DeckReport, write_report
from pipelines.feedback.retrain import RetrainPolicy, RetrainReport, UseReport
from pipelines.feedback.sessions import SessionConfig
from pipelines.feedback.versions import ModelVersion
from pipelines.styles.references import AddedReferences


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
    # extra training files -> a candidate trained, checked and kept as a version (not in use)
    retrain: Callable[[list[Path]], RetrainReport]
    # (version id, the version the person was shown it replaces, or None) -> it is in use
    use_model: Callable[[str, str | None], UseReport]
    model_versions: Callable[[], Sequence[ModelVersion]]  # newest first, the bundled one last
    model_in_use: Callable[[], str]  # the version id of the model in use
    model_summary: Callable[[], str]
    availability: Callable[[], dict[str, str | None]]  # method -> None or the technical reason
    server_details: Callable[[], list[str]]  # engine reason, notes: what the banner leaves out
    add_references: Callable[[str, list[str]], AddedReferences]  # style, files -> report
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
    retrain_policy: RetrainPolicy = RetrainPolicy()  # what the retrain panel says it needs
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


def candidate_md(report: RetrainReport, replaced: str) -> str:
    """A candidate's held-out check as a facilitator reads it, and what **Use this model**
    would change; ``replaced``: the model in use, in words (``describe_model``)."""
    lines = [
        f"**Candidate `{report.version}`** trained on {report.rows} rows "
        f"({plain_md(', '.join(report.sources))}) in {report.seconds:.1f} s."
    ]
    in_use = f"`{report.replaces}`" if report.replaces else "none"
    if report.pearson_after is not None:
        before = "n/a" if report.pearson_before is None else f"{report.pearson_before:.2f}"
        lines.append(
            f"Held-out check on {report.held_out_rows} rating rows it never saw: Pearson "
            f"{before} for the model in use ({in_use}) → **{report.pearson_after:.2f}** for "
            "the candidate."
        )
        if report.stages:  # the fast stage and the contextual re-ranker, each before → after
            lines.append(f"By stage: {plain_md(report.stages_line())}.")
    if not report.passed:
        lines.append(
            f"⚠️ **Not put in use**: {plain_md(report.verdict)}. The model in use ({in_use}) "
            f"stays. The candidate is kept as version `{report.version}`: you can still restore "
            "it from the versions below."
        )
    elif report.in_use:
        lines.append(f"✅ It passed ({plain_md(report.verdict)}) and is in use now.")
    else:
        lines.append(f"✅ It passes: {plain_md(report.verdict)}.")
        lines.append(
            f"**Use this model** replaces {in_use} ({plain_md(replaced)}) for every new "
            "comparison. Until you press it nothing changes; every version stays below to "
            "restore."
        )
    return "  \n".join(lines)


def refs_md(report: AddedReferences, style_name: str) -> str:
    """What an upload of reference images did, the files not added named with why."""
    text = f"Added {report.added} new image(s) to {style_name}"
    if report.already_there:
        text += f" ({report.already_there} already there)"
    text += "."
    if report.refused:
        text += " ⚠️ Not added: " + "; ".join(
            f"**{plain_md(name)}**: {plain_md(why)}" for name, why in report.refused
        )
    return text


def use_md(report: UseReport) -> str:
    """What putting a version in use did."""
    if not report.changed:
        return f"Version `{report.version}` already is the model in use: nothing changed."
    replaced = f"`{report.replaced}`" if report.replaced else "no model"
    synced = f"; {plain_md(report.synced_to)}" if report.synced_to else ""
    return (
        f"✅ Version `{report.version}` is in use now, in place of {replaced}: new comparisons "
        f"rank with it. Saved to `{report.path}`{synced}."
    )


def _pearson(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def version_line(v: ModelVersion) -> str:
    """One version in words: when, on what, its held-out check."""
    parts = [f"trained {v.date}" if v.date else "trained ?", f"{v.rows} rows"]
    if v.held_out_rows:
        parts.append(
            f"held-out Pearson {_pearson(v.pearson_parent)} → {_pearson(v.pearson)} "
            f"on {v.held_out_rows} rows"
        )
    if v.passed is not None:
        parts.append("passed its check" if v.passed else "did not pass its check")
    elif v.verdict:
        parts.append(v.verdict)
    return " · ".join(parts)


def versions_md(versions: Sequence[ModelVersion], in_use: str) -> str:
    """Every kept version, the one in use marked."""
    if not versions:
        return "No model versions are kept here (the bundled model file is missing)."
    rows = [
        f"- `{v.id}`{' **(in use)**' if v.id == in_use else ''}: {plain_md(version_line(v))}"
        for v in versions
    ]
    if in_use and in_use not in {v.id for v in versions}:
        rows.insert(0, f"- `{in_use}` **(in use)**: not kept here")
    return "\n".join(rows)


def version_choices(versions: Sequence[ModelVersion], in_use: str) -> list[tuple[str, str]]:
    """(label, version id) for the restore dropdown."""
    return [
        (f"{v.id}{' (in use)' if v.id == in_use else ''} — {version_line(v)}", v.id)
        for v in versions
    ]


def client_key(request: gr.Request | None, trusted_proxies: int = 0) -> str:
    """Who is trying the password: the caller's address, never its page session (a reload, or
    a client that opens a new session per guess, is the same caller)."""
    return caller_address(request, trusted_proxies)


EXPORT_TYPES = {"csv": "text/csv", "jsonl": "application/jsonl"}
# the browser saves the export from memory, then the page forgets its text: no file of it is
# served from the server's cache, where it once lived for up to 20 minutes
SAVE_EXPORT = """(payload) => {
  if (!payload) return '';
  const {name, type, text} = JSON.parse(payload);
  const url = URL.createObjectURL(new Blob([text], {type}));
  const link = Object.assign(document.createElement('a'), {href: url, download: name});
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  const said = document.querySelector('#export-status');  // what happened, where they clicked
  if (said) requestAnimationFrame(() => said.scrollIntoView({block: 'nearest'}));
  return '';
}"""


def read_export(path: Path, now: time.struct_time) -> dict[str, str]:
    """An export file for :data:`SAVE_EXPORT` (name, type, text); the file and its folder are
    deleted once read, whatever happens."""
    try:
        text = path.read_text(encoding="utf-8")
    finally:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty, or already gone: leave it
            path.parent.rmdir()
    ext = path.suffix.lstrip(".")
    name = f"become-ratings-{time.strftime('%Y%m%d-%H%M', now)}.{ext}"
    return {"name": name, "type": EXPORT_TYPES.get(ext, "text/plain"), "text": text}


def export_payload(path: Path, now: time.struct_time) -> str:
    """:func:`read_export` as the JSON the page's :data:`SAVE_EXPORT` reads."""
    return json.dumps(read_export(path, now))


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
        retrain=_retrain_panel(cb.retrain_policy),
    )
    handlers = StaffHandlers(cb)
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
    payload: gr.Textbox  # hidden: the file's text, handed to the browser and cleared at once
    status: gr.Markdown

    def outputs(self) -> list[Any]:
        """What :meth:`StaffHandlers.export` fills."""
        return [self.payload, self.status]


@dataclass
class RetrainPanel:
    accordion: gr.Accordion  # opening it lists the versions (when no password is set)
    extra: gr.File
    button: gr.Button  # step 1: train and check a candidate
    report: gr.Markdown  # its check, and what step 2 changes
    use: gr.Button  # step 2, shown for a candidate that passed: "Use this model"
    candidate: gr.State  # (candidate id, the version it was checked against) or None
    model: gr.Markdown
    versions: gr.Dropdown  # every kept version, to restore
    restore: gr.Button
    show_versions: gr.Button
    versions_md: gr.Markdown
    restored: gr.Markdown


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
VERSIONS_LOCKED = (
    "Enter the staff password above and press **Show versions** to list the model versions."
)
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
            style = gr.Dropdown(
                list(cb.styles), value=cb.styles[0][1], label="Style", elem_id="refs-style"
            )
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
        payload = gr.Textbox(visible=False)
        status = gr.Markdown(elem_id="export-status")
    return ExportPanel(fmt, button, payload, status)


def _retrain_panel(policy: RetrainPolicy) -> RetrainPanel:
    with gr.Accordion("Retrain the learned method", open=False) as accordion:
        gr.Markdown(
            "**Step 1** trains a candidate scorer on every rating in the store (plus any "
            "CSV/JSONL files below, columns `prompt`, `score`, optional `style`) and checks it "
            "against the model in use on the ratings of one prompt in five, which no model "
            "trains on. Nothing changes yet. **Step 2**, *Use this model*, swaps it in without "
            "a restart; it is offered only when the candidate does at least as well as the model "
            f"in use and better than chance. Retraining needs at least {policy.min_rows} rating "
            f"rows, {policy.min_held_out} of them held out. Every model is kept as a version "
            "below, the bundled one too, to put back in one click."
        )
        extra = gr.File(label="Extra training files", file_count="multiple", type="filepath")
        button = gr.Button("Train and check a candidate", variant="primary", elem_id="retrain")
        report = gr.Markdown(elem_id="retrain-report")
        use = gr.Button("Use this model", variant="primary", visible=False, elem_id="retrain-use")
        candidate = gr.State(None)
        model = gr.Markdown(elem_id="learned-model")
        with gr.Row():
            versions = gr.Dropdown(
                [], label="Model versions", scale=3, elem_id="model-versions", interactive=True
            )
            with gr.Column(scale=1, min_width=160):
                restore = gr.Button("Restore this version", elem_id="version-restore")
                show = gr.Button("Show versions", size="sm", elem_id="versions-show")
        restored = gr.Markdown(elem_id="version-status")
        listing = gr.Markdown(elem_id="versions-list")
    return RetrainPanel(
        accordion,
        extra,
        button,
        report,
        use,
        candidate,
        model,
        versions,
        restore,
        show,
        listing,
        restored,
    )


# ----------------------------------------------------------------------------- handlers


class StaffHandlers:
    """The Staff tab's handlers. Each staff action checks the password first (``guard``);
    ``request`` is Gradio's, and None where a test calls the handler directly."""

    def __init__(self, cb: StaffCallbacks) -> None:
        self.cb = cb
        self.names = {sid: name for name, sid in cb.styles}
        self._refusals: dict[str, str] = {}  # page -> its last refused staff click

    def guard(self, pw: str, request: gr.Request | None) -> None:
        """Refuse a wrong staff password (and a client locked out after several)."""
        with user_errors("Checking the staff password"):
            ok = self.cb.check_password(pw or "", client_key(request, self.cb.trusted_proxies))
        if not ok:
            raise gr.Error("Wrong staff password.")

    def check(self, pw: str, request: gr.Request | None = None) -> None:
        """The first step of every staff click: a refusal here targets no component, so a
        wrong password leaves the form as it was (no "Error" badges on its fields). Each
        action checks again itself (``guard``): a handler is never reachable without it. A
        refusal is kept for :meth:`refused`, which says it beside the button."""
        try:
            self.guard(pw, request)
        except gr.Error as exc:
            page = getattr(request, "session_hash", None) or ""
            self._refusals[page] = str(exc.message)
            while len(self._refusals) > 512:  # pages that never came back for theirs
                self._refusals.pop(next(iter(self._refusals)))
            raise

    def refused(self, request: gr.Request | None = None) -> str:
        """After a refused staff click: why, for the panel of the button pressed (the toast
        alone faded far from it)."""
        page = getattr(request, "session_hash", None) or ""
        why = self._refusals.pop(page, "That staff action was refused.")
        return f"⚠️ {why} Type the staff password in the box at the top of this tab."

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

    def refresh(self, tag: str, blind: bool, styles: list[str], methods: list[str]) -> list[Any]:
        """:meth:`live` as the tab opens, leaving alone each field that already shows the live
        session's value (``tag`` ... ``methods``: the fields as the tab was opened). The
        answer can land after a person has started typing (a busy page mounts the tab
        first): a field set anyway would lose what they typed."""
        summary, *live = self.live()
        shown = [tag, blind, list(styles or []), list(methods or [])]
        return [summary] + [
            gr.skip() if _same(now, was) else now for now, was in zip(live, shown, strict=True)
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
        shown = readable(with_style_names(df, self.names))
        return text, gr.update(value=shown, visible=not df.empty)

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
    ) -> tuple[str, None]:
        """Add uploaded images to a style's references: (what was added and what was not, and
        why; the upload list emptied). The uploaded files are deleted once read."""
        self.guard(pw, request)
        if not files:
            raise gr.Error("Choose one or more image files first.")
        try:
            with user_errors("Adding the references"):
                report = self.cb.add_references(style, list(files))
        finally:
            for f in files:
                forget_upload(f)
        return refs_md(report, self.names.get(style, style)) + " " + self.refs_report(), None

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

    def export(self, pw: str, fmt: str, request: gr.Request | None = None) -> tuple[str, str]:
        """(the ratings file for the browser to save, what happened): the file is read into
        memory and deleted at once; the page saves it and forgets it (:data:`SAVE_EXPORT`)."""
        self.guard(pw, request)
        with user_errors("The export"):
            file = read_export(self.cb.export(fmt), time.gmtime())
        size = len(file["text"].encode())
        return json.dumps(file), (
            f"✅ Your browser is saving **{file['name']}** ({size / 1024:.1f} KB): it holds "
            "rater names and comments, so keep it safe. No copy of it stays on this server."
        )

    def retrain(
        self, pw: str, files: list[str] | None, request: gr.Request | None = None
    ) -> list[Any]:
        """Step 1: train and check a candidate, kept as a version; nothing changes in use.
        [report, Use button, candidate state, model, *versions]."""
        self.guard(pw, request)
        replaced = self.cb.model_summary()
        with user_errors("Retraining"):
            report = self.cb.retrain([Path(f) for f in files or []])
        offer = report.passed and not report.in_use
        state = (report.version, report.replaces) if offer else None
        return [
            candidate_md(report, replaced),
            gr.update(visible=offer),
            state,
            self.model_md(),
            *self._versions(),
        ]

    def use(
        self, pw: str, candidate: tuple[str, str] | None, request: gr.Request | None = None
    ) -> list[Any]:
        """Step 2: put the checked candidate in use, unless another model is in use by now.
        [report, Use button, candidate state, model, *versions]."""
        self.guard(pw, request)
        if not candidate:
            raise gr.Error("Train and check a candidate first.")
        version, replaces = candidate
        with user_errors("Putting the model in use"):
            report = self.cb.use_model(version, replaces)
        return [
            use_md(report),
            gr.update(visible=False),
            None,
            self.model_md(),
            *self._versions(),
        ]

    def restore(self, pw: str, version: str | None, request: gr.Request | None = None) -> list[Any]:
        """Put a kept version (or the bundled model) back in use; an offered candidate's
        check no longer holds, so its button goes. [status, report, model, Use, state,
        *versions]."""
        self.guard(pw, request)
        if not version:
            raise gr.Error("Choose a version to restore first.")
        with user_errors("Restoring the version"):
            report = self.cb.use_model(version, None)
        return [
            use_md(report),
            "",  # the retrain report above is about what was in use before
            self.model_md(),
            gr.update(visible=False),
            None,
            *self._versions(),
        ]

    def versions(self, pw: str, request: gr.Request | None = None) -> list[Any]:
        """[the versions list, the restore dropdown] once the password is checked."""
        self.guard(pw, request)
        return self._versions()

    def versions_panel(self) -> list[Any]:
        """The versions as the retrain panel opens: listed without a staff password, else they
        wait for it (**Show versions**, or any retrain action)."""
        if self.cb.password_required:  # never a password check here: it would count a failure
            return [VERSIONS_LOCKED, gr.update(choices=[], value=None)]
        return self._versions()

    def _versions(self) -> list[Any]:
        """[the versions list, the restore dropdown with the one in use chosen]."""
        versions, in_use = self.cb.model_versions(), self.cb.model_in_use()
        choices = version_choices(versions, in_use)
        chosen = in_use if in_use in {v for _, v in choices} else None
        return [versions_md(versions, in_use), gr.update(choices=choices, value=chosen)]

    def model_md(self) -> str:
        """The learned model in use: its version and what it was trained on."""
        version = self.cb.model_in_use()
        named = f"version `{version}`, " if version else ""
        return f"Current learned model: {named}{self.cb.model_summary()}"

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
                self.model_md(),
            )
        return [server, self.refs_report(), model, deck]

    def server(self, pw: str | None, request: gr.Request | None = None) -> tuple[str, str]:
        """(the server's details, the learned model in use) once the password is checked."""
        self.guard(pw or "", request)
        return self.methods_report(), self.model_md()


def _same(now: Any, shown: Any) -> bool:
    """Whether a form field already shows ``now`` (choices in any order)."""
    if isinstance(now, list):
        return sorted(now) == sorted(shown or [])
    return now == shown


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
    page would not show the check's refusal.) A refusal is said in the button's panel (its
    first Markdown output), scrolled into view. Returns the event, for a step after it."""
    check = button.click(
        h.check,
        [pw],
        None,
        api_name=False,
        show_progress="hidden",
        concurrency_id="staff-check",
        concurrency_limit=None,
    )
    said = next((o for o in _as_list(outputs) if isinstance(o, gr.Markdown)), None)
    if said is not None:
        refused = check.failure(h.refused, None, said, api_name=False, show_progress="hidden")
        if said.elem_id:
            refused.then(None, js=scroll_to(said.elem_id))
    return check.success(fn, inputs, outputs, api_name=False, **kwargs)


def _as_list(outputs: Any) -> list[Any]:
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]


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
    _guarded(h, refs.add, pw, h.add_refs, [pw, refs.style, refs.files], [refs.status, refs.files])
    _guarded(h, refs.clear, pw, h.clear_refs, [pw, refs.style], refs.status)
    _guarded(h, deck.load, pw, h.load_deck, [pw, deck.source, deck.blind], deck.info)
    _guarded(h, deck.unload, pw, h.unload_deck, [pw], deck.info)
    if deck.report is not None:
        _guarded(h, deck.report, pw, h.deck_report, [pw], [deck.report_md, deck.chart])
    export = page.export
    exported = _guarded(h, export.button, pw, h.export, [pw, export.fmt], export.outputs())
    exported.then(None, [export.payload], [export.payload], js=SAVE_EXPORT)
    _wire_retrain(page.retrain, h, pw)
    if page.server_button is not None:  # the details where the person pressed for them
        shown = _guarded(
            h, page.server_button, pw, h.server, [pw], [page.server, page.retrain.model]
        )
        shown.success(None, None, None, js=SCROLL_TO_SERVER)
    panels = [page.server, refs.status, page.retrain.model, deck.info]
    # the form first, off the queue and alone (it must land before anyone types in it; a
    # field that already shows the live value is left alone in case it lands later), then the
    # panels, which may take longer (which methods can run here)
    shown = [form.tag, form.blind, form.styles, form.methods]
    tab.select(h.refresh, shown, form.fields(), api_name=False, queue=False).then(
        h.panels, None, panels, api_name=False
    )


# the Use button when it is offered (the check sits right above it), else the report
SCROLL_TO_CANDIDATE = """() => {
    const use = document.getElementById('retrain-use');
    const to = use && use.offsetParent ? use : document.getElementById('retrain-report');
    to?.scrollIntoView({block: 'nearest'});
}"""


def _wire_retrain(r: RetrainPanel, h: StaffHandlers, pw: gr.Textbox) -> None:
    """Train and check (one at a time), then Use this model; restore and list the versions.
    The answer is scrolled into view where it was asked."""
    listing = [r.versions_md, r.versions]
    shown = [r.report, r.use, r.candidate, r.model, *listing]
    one_at_a_time = {"concurrency_limit": 1, "concurrency_id": "learned-model"}
    trained = _guarded(h, r.button, pw, h.retrain, [pw, r.extra], shown, **one_at_a_time)
    trained.success(None, None, None, js=SCROLL_TO_CANDIDATE)
    used = _guarded(h, r.use, pw, h.use, [pw, r.candidate], shown, **one_at_a_time)
    used.success(None, None, None, js=scroll_to("retrain-report"))
    restored = _guarded(
        h,
        r.restore,
        pw,
        h.restore,
        [pw, r.versions],
        [r.restored, r.report, r.model, r.use, r.candidate, *listing],
        **one_at_a_time,
    )
    restored.success(None, None, None, js=scroll_to("version-status"))
    _guarded(h, r.show_versions, pw, h.versions, [pw], listing)
    # listed when the panel opens, not when the tab does: a third step after the tab's own
    # made its form lose what a person had just typed in it
    r.accordion.expand(h.versions_panel, None, listing, api_name=False)
