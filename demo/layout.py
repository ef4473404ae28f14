"""The page: engine banner, then one tab per job."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from demo.api import create_compare_api, create_feedback_api
from demo.compare_tab import (
    CompareCallbacks,
    availability_info,
    create_compare_tab,
    method_choices,
)
from demo.deck_panel import DeckCallbacks, create_deck_panel, deck_mode, wire_deck_panel
from demo.feedback_panel import FeedbackCallbacks, create_feedback_panel
from demo.leaderboard_tab import LeaderboardCallbacks, create_leaderboard_tab
from demo.rows import restore_row
from demo.staff_tab import StaffCallbacks, create_staff_tab
from pipelines.faces.analysis import load_image
from pipelines.feedback.export import export_to_temp
from pipelines.feedback.retrain import describe_model

if TYPE_CHECKING:
    from pipelines.app.bootstrap import Services

THEME = gr.themes.Soft(primary_hue="violet", secondary_hue="pink")
CSS = """
#engine-banner {border-radius: 8px; padding: 6px 12px;}
#engine-banner.preview {background: #fff4d6;}
/* an equal grid of output cards, whatever the number of methods */
#results-row {display: grid !important; gap: 12px;
  grid-template-columns: repeat(auto-fill, minmax(210px, 1fr));}
#results-row > .slot-card {min-width: 0 !important; width: auto !important;
  border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 8px;}
#results-row .prose {overflow-wrap: break-word; word-break: normal;}
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


def engine_banner(services: Services) -> str:
    """What renders, in plain words for everyone on the page: the engine, the model family and
    its licence class, whether the safety checker is off, and the live learned model. Setting
    names, paths and reasons are for staff (:func:`server_details`)."""
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
    if not choice.is_preview:
        family, safety = services.engine.family, services.engine.safety
        lines.append(
            f"Model family: **{family.id}** ({family.title}) · licence class: **{family.licence}**."
        )
        if not safety.on:
            lines.append("⚠️ Safety checker off: outputs are shown unchecked.")
    lines.append(f"Learned method: {describe_model(services.scorer)}.")
    return "  \n".join(lines)


def server_details(services: Services) -> list[str]:
    """The technical side of the banner, for the Staff tab: why this engine, notes, safety."""
    choice = services.engine.choice
    lines = [f"Engine **{choice.name}**: {choice.reason}."]
    if not services.engine.safety.on:
        lines.append(f"Safety checker off: {services.engine.safety.reason}.")
    lines += [f"Note: {n}." for n in services.engine.notes]
    return lines


def build_demo(services: Services) -> gr.Blocks:
    """The whole page, wired to ``services``; the caller queues and launches it."""
    s = services.settings
    registry = services.registry
    styles = [(st.name, st.id) for st in services.catalog.styles.values()]
    summaries = {m: registry.get(m).summary for m in registry.names()}
    compare_cb = CompareCallbacks(
        compare_many=services.comparison.compare_many,
        recent=services.comparison.recent.get,
        styles=styles,
        methods=registry.names(),
        summaries=summaries,
        examples=example_photos(),
        default_prompt="a portrait of a person",
        default_methods=list(services.sessions.get().methods),
        settings=s,
    )
    # Gradio keeps uploads (selfies) and outputs in its temp cache: delete them after 10 minutes
    with gr.Blocks(title="Become Lab", delete_cache=(600, 600)) as demo:
        gr.Markdown("# Become Lab\nOne selfie, one seed, several prompt-augmentation methods.")
        banner = gr.Markdown(
            engine_banner(services),
            elem_id="engine-banner",
            elem_classes=["preview"] if services.engine.choice.is_preview else [],
        )
        with gr.Tabs():
            with gr.Tab("Compare", id="compare"):
                deck_panel = create_deck_panel()  # above the row; shown while a deck is loaded
                tab = create_compare_tab(compare_cb)
                rater_load = create_feedback_panel(
                    FeedbackCallbacks(
                        submit=services.ratings.submit, session=services.sessions.get
                    ),
                    tab,
                )
                wire_deck_panel(
                    deck_panel,
                    DeckCallbacks(next_row=services.decks.next_row, session=services.sessions.get),
                    tab,
                    rater_load.outputs[0],
                )
            with gr.Tab("Leaderboard", id="leaderboard") as board:
                create_leaderboard_tab(
                    LeaderboardCallbacks(
                        table=services.leaderboard, session=services.sessions.get, styles=styles
                    ),
                    board,
                )
            with gr.Tab("Staff", id="staff") as staff:
                create_staff_tab(
                    StaffCallbacks(
                        check_password=services.staff.check,
                        password_required=services.staff.required,
                        session=services.sessions.get,
                        start_session=services.sessions.start,
                        end_session=services.end_session,
                        export=lambda fmt: export_to_temp(services.store, fmt),
                        retrain=services.retrainer.retrain,
                        model_summary=lambda: describe_model(services.scorer),
                        availability=registry.availability,
                        server_details=lambda: server_details(services),
                        add_references=lambda style, files: services.references.add(
                            style, files, load_image
                        ),
                        clear_references=services.references.clear,
                        reference_counts=services.references.counts,
                        styles=styles,
                        methods=registry.names(),
                        load_deck=services.load_deck,
                        unload_deck=services.unload_deck,
                        deck_coverage=services.decks.coverage,
                    ),
                    staff,
                )
        create_compare_api(services.comparison.compare, registry.names(), s)
        create_feedback_api(services.ratings.submit, services.leaderboard)

        checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="availability")
        pending: list[Future[dict[str, str | None]]] = []

        def availability_now() -> dict[str, str | None] | None:
            """The methods' availability, or None while CLIP is still loading."""
            # checking inversion may mean loading CLIP: never hold a page load for that
            if not pending or (pending[-1].done() and pending[-1].exception() is not None):
                pending.append(checker.submit(registry.availability))
            try:
                return pending[-1].result(timeout=1.0)
            except TimeoutError:  # concurrent.futures raises the builtin since 3.11
                return None

        def methods_update(chosen: list[str] | None = None) -> tuple[Any, Any]:
            """Only methods that can run here can be ticked; poll again while CLIP loads."""
            av = availability_now()
            if av is None:
                info = "Checking which methods can run here (CLIP is loading)…"
                return gr.update(info=info), gr.Timer(active=True)
            usable = [m for m in registry.names() if not av.get(m)]
            update: dict[str, Any] = {
                "choices": method_choices(usable, summaries),
                "info": availability_info(av),
            }
            if chosen is not None:
                update["value"] = [m for m in chosen if m in usable] or usable[:2]
            return gr.update(**update), gr.Timer(active=False)

        poll = gr.Timer(2.0, active=False)
        poll.tick(
            lambda chosen: methods_update(chosen),
            tab.methods,
            [tab.methods, poll],
            api_name=False,
            show_progress="hidden",
        )

        def on_load(*saved: Any) -> list[Any]:
            *saved_rater, saved_row = saved  # the panel's remembered values, then the row key
            session = services.sessions.get()
            # a saved session may name styles or methods that no longer exist: ignore those
            allowed = [c for c in styles if c[1] in session.styles] or list(styles)
            chosen = [m for m in session.methods if m in registry] or ["raw", "template"]
            style_update = gr.update(choices=allowed, value=allowed[0][1])
            methods, timer = methods_update(chosen)
            row, row_values = restore_row(services.comparison.recent.get, saved_row, len(tab.slots))
            rater = rater_load.fn(*saved_rater)
            deck = deck_mode(session, rater[0])  # a loaded deck replaces live renders
            return [
                engine_banner(services),  # the live learned model, after a retrain too
                style_update,
                methods,
                timer,
                row,
                *row_values,
                *rater,
                *deck,
            ]

        demo.load(
            on_load,
            inputs=[*rater_load.inputs, tab.row_key],
            outputs=[
                banner,
                tab.style,
                tab.methods,
                poll,
                tab.result,
                *tab.row_outputs,
                *rater_load.outputs,
                deck_panel.group,
                deck_panel.intro,
                deck_panel.rater,
                tab.controls,
            ],
            api_name=False,
        )
    return demo
