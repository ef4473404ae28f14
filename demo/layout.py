"""The page: engine banner, then one tab per job."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from demo.api import FeedbackApi, create_compare_api, create_feedback_api
from demo.compare_handlers import SAVED_INPUTS, saved_inputs
from demo.compare_tab import (
    CompareCallbacks,
    CompareTab,
    availability_info,
    create_compare_tab,
    method_choices,
)
from demo.deck_panel import (
    DeckCallbacks,
    DeckPanel,
    create_deck_panel,
    deck_mode,
    wire_deck_panel,
)
from demo.feedback_panel import FeedbackCallbacks, PageLoad, create_feedback_panel
from demo.gradio_internals import plain_download_errors, point_mcp_uploads
from demo.leaderboard_tab import LeaderboardCallbacks, create_leaderboard_tab
from demo.rows import restore_row
from demo.staff_tab import StaffCallbacks, create_staff_tab, loaded_deck_report
from demo.temp_cache import KEEP_FOR_S, SWEEP_EVERY_S
from demo.transient import file_digest
from pipelines.faces.photo import load_image
from pipelines.feedback.export import export_to_temp
from pipelines.feedback.retrain import describe_model
from pipelines.feedback.sessions import SessionConfig
from pipelines.feedback.store import RecordFilter

if TYPE_CHECKING:
    from pipelines.app.bootstrap import Services

THEME = gr.themes.Soft(primary_hue="violet", secondary_hue="pink")
CSS = """
#engine-banner {border-radius: 8px; padding: 6px 12px;}
#engine-banner.preview {background: #fff4d6;}
/* one row of equal output cards, whatever the number of methods: it scrolls sideways when
   they do not fit (never wraps into ragged rows) */
#results-row {display: grid !important; gap: 10px; grid-auto-flow: column;
  grid-auto-columns: minmax(168px, 1fr); grid-template-columns: none !important;
  overflow-x: auto; scroll-snap-type: x proximity; padding-bottom: 4px;}
#results-row > .slot-card {min-width: 0 !important; width: auto !important;
  border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 6px;
  scroll-snap-align: start;}
#results-row .prose {overflow-wrap: break-word; word-break: normal;}
#results-row {align-items: stretch !important;}
#results-row [data-testid="block-info"] {font-size: 12px; line-height: 1.3;}
/* every card's prompt box the same height (it scrolls), so the cards line up */
#results-row textarea {height: 6.6em !important; overflow-y: auto !important;}
/* the 1-5 rating buttons on one line under each image: numbers as buttons, no circles */
#results-row .slot-card fieldset .wrap {flex-wrap: nowrap !important; gap: 3px !important;}
#results-row .slot-card fieldset .wrap label {flex: 1 1 0; min-width: 0 !important;
  padding: 6px 0 !important; justify-content: center; margin: 0 !important;}
#results-row .slot-card fieldset .wrap label input {position: absolute; opacity: 0;
  width: 1px; height: 1px;}
#results-row .slot-card fieldset .wrap label:has(input:checked) {
  background: var(--color-accent); color: white; font-weight: 600;}
/* the status under Generate shows one text at a time: the app's own line ("checked, your
   render starts as soon as it is its turn", a refusal, the finished row) until a progress line
   (place in line, step, time left, bar) arrives, which then replaces it. Gradio's bare
   "queue: 3/7 | 0.6s" or timer alone would cover the app's line half-drawn, so it is not shown */
#run-status [data-testid="status-tracker"]:not(:has(.progress-level)) {display: none !important;}
#run-status:has(.progress-level) .pending {visibility: hidden;}
#run-status [data-testid="status-tracker"] {background: var(--block-background-fill);}
#run-status .progress-level-inner {font-size: 14px; font-family: var(--font);}
/* Generate within reach wherever the controls are scrolled: it sticks to the screen's bottom
   edge until its own place in the column comes into view (#28 item 20) */
#generate {position: sticky; bottom: 10px; z-index: 20;
  box-shadow: 0 4px 14px rgba(0, 0, 0, 0.18);}
/* Gradio's container clips with overflow: hidden, which makes it the button's scroll box and
   stops it sticking; clip cuts the same overflow without being one */
.gradio-container {overflow: clip !important;}
/* on a phone: two cards side by side, swipe for the others; with three or more, a line says so */
#swipe-hint {display: none !important;}
@media (max-width: 640px) {
  #results-row {grid-auto-columns: calc(50% - 5px); scroll-snap-type: x mandatory;}
  #results-col:has(#results-row > .slot-card:nth-child(3)) #swipe-hint {
    display: block !important; font-size: 13px; text-align: center;}
}
"""


def example_photos() -> list[str]:
    """The real photos insightface ships (one portrait, one group): no photos of ours in git."""
    try:
        import insightface
    except ImportError:
        return []
    folder = Path(insightface.__file__).parent / "data" / "images"
    names = ["Tom_Hanks_54745.png", "t1.jpg"]
    return [str(folder / n) for n in names if (folder / n).exists()]


GUIDE = (
    "**1** Upload a selfie (or try a photo) · **2** Pick a style · **3** Press **Generate**, "
    "then rate each picture from 1 to 5 and submit."
)
DECK_GUIDE = (
    "**1** Type your name · **2** Press **Show my next row** · **3** Rate each picture from "
    "1 to 5 and submit, then on to the next row."
)


def engine_banner(services: Services) -> str:
    """What renders, in plain words for everyone on the page: what kind of pictures these are,
    and whether the safety checker is off. The model family, its licence class, the learned
    model's figures, setting names, paths and reasons are for staff (:func:`server_details`)."""
    choice = services.engine.choice
    if choice.is_preview:
        head = (
            "🖌️ **Preview engine — stylised previews, not AI results** (the model weights are "
            "not installed on this server)."
        )
    elif choice.name == "tiny":
        head = "🧪 **Tiny engine — random weights for tests; images are noise.**"
    else:
        head = "✨ **AI portraits rendered on this server.**"
    lines = [head]
    if not choice.is_preview and not services.engine.safety.on:
        lines.append("⚠️ Safety checker off: outputs are shown unchecked.")
    if learned_fast_only(services) is not None:
        lines.append(
            "ℹ️ The learned method runs on its fast stage only: its contextual encoders are not "
            "available on this server."
        )
    if services.settings.unverified_weights:
        lines.append(
            "⚠️ Unverified model files: this server may load weights that are not checked "
            "against their published hashes."
        )
    return "  \n".join(lines)


def learned_fast_only(services: Services) -> str | None:
    """Why the learned method ranks with its fast stage alone here (its contextual encoders
    missing or refused), or None when it ranks in two stages or has no second stage."""
    if not services.scorer.loaded:
        return None
    scorer = services.scorer.get()
    if scorer.context is None:  # trained fast-only on purpose: nothing is missing
        return None
    return scorer.context_reason()


def server_details(services: Services) -> list[str]:
    """The technical side of the banner, for the Staff tab: why this engine, the model family
    and its licence class, safety, the learned model, the measures' CLIP, notes."""
    choice = services.engine.choice
    lines = [f"Engine {choice.name}: {choice.reason}."]  # shown escaped: no Markdown
    if not choice.is_preview:
        family = services.engine.family
        lines.append(f"Model family: {family.id} ({family.title}), licence class {family.licence}.")
    lines.append(f"Learned method: {describe_model(services.scorer)}.")
    if services.scorer.loaded:
        lines.append(f"Learned method ranks with: {services.scorer.get().stage_label()}.")
    if services.settings.unverified_weights:
        lines.append(
            "BECOME_UNVERIFIED_WEIGHTS=1: weights that are not pinned, or differ from their "
            "pins, load unverified."
        )
    lines.append(
        f"CLIP (inversion, ensemble, and the style and prompt measures): "
        f"{services.engine.clip.model_id}."
    )
    if not services.engine.safety.on:
        lines.append(f"Safety checker off: {services.engine.safety.reason}.")
    lines += [f"Note: {n}." for n in services.engine.notes]
    return lines


def build_demo(services: Services) -> gr.Blocks:
    """The whole page, wired to ``services``; the caller queues and launches it."""
    # Gradio keeps outputs in its temp cache (uploads are deleted once read): swept as it says
    if temp := os.environ.get("GRADIO_TEMP_DIR"):  # MCP images under the app's cleaned folder
        point_mcp_uploads(str(Path(temp) / "mcp"))
    plain_download_errors()  # a selfie URL that cannot be fetched says why
    with gr.Blocks(title="Become Lab", delete_cache=(SWEEP_EVERY_S, KEEP_FOR_S)) as demo:
        gr.Markdown(
            "# Become Lab\nOne selfie, one seed, several ways of writing the prompt: which "
            "picture do you like best?"
        )
        guide = gr.Markdown(GUIDE, elem_id="guide")  # a deck's raters get DECK_GUIDE
        banner = gr.Markdown(
            engine_banner(services),
            elem_id="engine-banner",
            elem_classes=["preview"] if services.engine.choice.is_preview else [],
        )
        with gr.Tabs():
            with gr.Tab("Compare", id="compare"):
                deck_panel = create_deck_panel()  # above the row; shown while a deck is loaded
                tab = create_compare_tab(compare_callbacks(services))
                rater_load = create_feedback_panel(feedback_callbacks(services), tab)
                wire_deck_panel(
                    deck_panel,
                    deck_callbacks(services),
                    tab,
                    rater_load.outputs[0],  # the rating panel's name box
                    rater_load.inputs[1],  # this browser's voter id
                    next_below=rater_load.next_row,  # its twin beside Submit
                )
            with gr.Tab("Leaderboard", id="leaderboard") as board:
                create_leaderboard_tab(leaderboard_callbacks(services), board)
            with gr.Tab("Staff", id="staff") as staff:
                create_staff_tab(staff_callbacks(services), staff)
        create_compare_api(
            services.comparison.compare,
            services.registry.names(),
            services.settings,
            keep=frozenset(file_digest(p) for p in example_photos()),
        )
        create_feedback_api(
            FeedbackApi(
                services.ratings.submit,
                services.leaderboard,
                services.voters.pseudonym,
                count_vote=services.api_votes.check,
                trusted_proxies=services.settings.trusted_proxies,
            )
        )
        _wire_page_open(
            demo, PageOpen(services, len(tab.slots), rater_load), banner, tab, deck_panel, guide
        )
    return demo


# ----------------------------------------------------------------------------- callbacks


def style_choices(services: Services) -> list[tuple[str, str]]:
    """(display name, id) of every style, in catalog order."""
    return [(st.name, st.id) for st in services.catalog.styles.values()]


def method_summaries(services: Services) -> dict[str, str]:
    """Each method's few plain words."""
    return {m: services.registry.get(m).summary for m in services.registry.names()}


def compare_callbacks(services: Services) -> CompareCallbacks:
    """What the Compare tab reads from the app."""
    return CompareCallbacks(
        compare_many=services.comparison.compare_many,
        recent=services.comparison.recent.get,
        styles=style_choices(services),
        methods=services.registry.names(),
        summaries=method_summaries(services),
        examples=example_photos(),
        default_prompt="a portrait of a person",
        default_methods=list(services.sessions.get().methods),
        settings=services.settings,
    )


def feedback_callbacks(services: Services) -> FeedbackCallbacks:
    """What the rating panel reads from the app."""
    return FeedbackCallbacks(
        submit=services.ratings.submit,
        session=services.sessions.get,
        browser_secret=services.settings.browser_secret,
        vouch=services.voters.vouch,
    )


def deck_callbacks(services: Services) -> DeckCallbacks:
    """What the deck panel reads from the app."""
    return DeckCallbacks(
        next_row=services.decks.next_row, session=services.sessions.get, vouch=services.voters.vouch
    )


def leaderboard_callbacks(services: Services) -> LeaderboardCallbacks:
    """What the Leaderboard tab reads from the app."""
    return LeaderboardCallbacks(
        table=services.leaderboard, session=services.sessions.get, styles=style_choices(services)
    )


def staff_callbacks(services: Services) -> StaffCallbacks:
    """What the Staff tab reads from (and does to) the app."""
    return StaffCallbacks(
        check_password=services.staff.check,
        password_required=services.staff.required,
        session=services.sessions.get,
        start_session=services.sessions.start,
        end_session=services.end_session,
        export=lambda fmt: export_to_temp(services.store, fmt),
        retrain=services.retrainer.candidate,
        use_model=services.retrainer.use,
        model_versions=services.retrainer.versions.all,
        model_in_use=services.retrainer.in_use,
        model_summary=lambda: describe_model(services.scorer),
        availability=services.registry.availability,
        server_details=lambda: server_details(services),
        add_references=lambda style, files: services.references.add(style, files, load_image),
        clear_references=services.references.clear,
        reference_counts=services.references.counts,
        styles=style_choices(services),
        methods=services.registry.names(),
        load_deck=services.load_deck,
        unload_deck=services.unload_deck,
        deck_coverage=services.decks.coverage,
        deck_report=loaded_deck_report(services.decks),
        session_standings=lambda tag: services.staff_leaderboard(RecordFilter(session_tag=tag)),
        retrain_policy=services.retrainer.policy,
        trusted_proxies=services.settings.trusted_proxies,
    )


# ----------------------------------------------------------------------------- page open


class MethodAvailability:
    """Which methods can run here, checked off the page-load path: checking inversion may mean
    loading CLIP, and a page load never waits for that."""

    def __init__(
        self,
        availability: Callable[[], dict[str, str | None]],
        methods: Sequence[str],
        summaries: Mapping[str, str],
        wait: float = 1.0,
        session_methods: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        self.availability, self.methods, self.summaries = availability, list(methods), summaries
        # the live tagged session's methods: the only ones its pages offer (empty: no limit)
        self.session_methods = session_methods
        self.wait = wait  # seconds a page load waits for the answer before polling for it
        self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="availability")
        self._pending: list[Future[dict[str, str | None]]] = []

    def now(self) -> dict[str, str | None] | None:
        """The methods' availability, or None while it is still being checked (CLIP loading)."""
        if not self._pending or (
            self._pending[-1].done() and self._pending[-1].exception() is not None
        ):
            self._pending.append(self._checker.submit(self.availability))
        try:
            return self._pending[-1].result(timeout=self.wait)
        except TimeoutError:  # concurrent.futures raises the builtin since 3.11
            return None

    def update(self, chosen: list[str] | None = None) -> tuple[Any, Any]:
        """(methods checkbox update, poll timer): only methods that can run here can be ticked;
        the timer polls again while CLIP loads."""
        av = self.now()
        if av is None:
            info = "Checking which methods can run here (CLIP is loading)…"
            return gr.update(info=info), gr.Timer(active=True)
        limit = set(self.session_methods())
        usable = [m for m in self.methods if not av.get(m) and (not limit or m in limit)]
        info = availability_info(av)
        if limit:
            info = "The facilitator chose these methods for this session."
        update: dict[str, Any] = {"choices": method_choices(usable, self.summaries), "info": info}
        if chosen is not None:
            update["value"] = [m for m in chosen if m in usable] or usable[:2]
        return gr.update(**update), gr.Timer(active=False)


def session_methods(session: SessionConfig) -> tuple[str, ...]:
    """The methods a tagged live session limits its pages to (a deck's rows bring their own;
    outside a session, none: every method can be ticked)."""
    if not session.session_tag or session.deck_id:
        return ()
    return session.methods


class PageOpen:
    """What a page gets when it opens: the live banner, the session's styles and methods, its
    last row back, the rater's remembered name, and the deck panel when a deck is loaded."""

    def __init__(self, services: Services, n_slots: int, rater_load: PageLoad) -> None:
        self.services, self.n_slots, self.rater_load = services, n_slots, rater_load
        registry = services.registry
        self.methods = MethodAvailability(
            registry.availability,
            registry.names(),
            method_summaries(services),
            session_methods=lambda: session_methods(services.sessions.get()),
        )

    def __call__(self, *saved: Any) -> list[Any]:
        """Values for :func:`_wire_page_open`'s outputs, from the browser's saved values."""
        # the panel's remembered values, the row key, the controls at the last click
        *saved_rater, saved_row, saved_controls = saved
        last = saved_inputs(saved_controls)
        services = self.services
        session = services.sessions.get()
        styles = style_choices(services)
        # a saved session may name styles or methods that no longer exist: ignore those
        allowed = [c for c in styles if c[1] in session.styles] or list(styles)
        chosen = [m for m in session.methods if m in services.registry] or ["raw", "template"]
        chosen = [m for m in last.get("methods") or () if m in services.registry] or chosen
        style = last.get("style") if last.get("style") in {c[1] for c in allowed} else None
        methods, timer = self.methods.update(chosen)
        recent = services.comparison.recent.get
        row, row_values = restore_row(recent, saved_row, self.n_slots)
        rater = self.rater_load.fn(*saved_rater)
        return [
            engine_banner(services),  # the live learned model, after a retrain too
            gr.update(choices=allowed, value=style or allowed[0][1]),
            methods,
            timer,
            row,
            *row_values,
            *rater,
            *deck_mode(session, rater[0]),  # a loaded deck replaces live renders
            DECK_GUIDE if session.deck_id else GUIDE,
            # the rest of the page's controls as its last click sent them (blind: the panel's)
            *(gr.update(value=last[n]) if n in last else gr.update() for n in RESTORED),
        ]


# restored by the page load beside style and methods (blind is the rating panel's to set)
RESTORED = tuple(n for n in SAVED_INPUTS if n not in {"style", "methods", "blind"})


def _wire_page_open(
    demo: gr.Blocks,
    page: PageOpen,
    banner: gr.Markdown,
    tab: CompareTab,
    deck: DeckPanel,
    guide: gr.Markdown,
) -> None:
    """The page-load event, and the timer that polls for methods while CLIP loads."""
    poll = gr.Timer(2.0, active=False)
    poll.tick(
        page.methods.update,
        tab.methods,
        [tab.methods, poll],
        api_name=False,
        show_progress="hidden",
    )
    demo.load(
        page,
        inputs=[*page.rater_load.inputs, tab.row_key, tab.saved_inputs],
        outputs=[
            banner,
            tab.style,
            tab.methods,
            poll,
            tab.result,
            *tab.row_outputs,
            *page.rater_load.outputs,
            deck.group,
            deck.intro,
            deck.rater,
            tab.controls,
            guide,
            *(tab.inputs[SAVED_INPUTS.index(n)] for n in RESTORED),
        ],
        api_name=False,
        # no "processing" overlay on every control (with Gradio's own estimate, soon exceeded
        # on a busy server) while the page fills itself in: the controls work meanwhile
        show_progress="hidden",
    )
