"""The page: engine banner, then one tab per job."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from demo.api import create_compare_api, create_feedback_api
from demo.compare_tab import CompareCallbacks, availability_info, create_compare_tab
from demo.deck_panel import DeckCallbacks, create_deck_panel, deck_mode, wire_deck_panel
from demo.feedback_panel import FeedbackCallbacks, create_feedback_panel
from demo.leaderboard_tab import LeaderboardCallbacks, create_leaderboard_tab
from demo.staff_tab import StaffCallbacks, create_staff_tab
from pipelines.feedback.export import export_to_temp
from pipelines.feedback.retrain import describe_model

if TYPE_CHECKING:
    from pipelines.bootstrap import Services

THEME = gr.themes.Soft(primary_hue="violet", secondary_hue="pink")
CSS = """
#engine-banner {border-radius: 8px; padding: 6px 12px;}
#engine-banner.preview {background: #fff4d6;}
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
    """Which engine renders and why, notes, and the live learned model."""
    choice = services.engine.choice
    if choice.is_preview:
        head = "🖌️ **Preview engine — stylised previews, not AI results.**"
    elif choice.name == "tiny":
        head = "🧪 **Tiny engine — random weights for tests; images are noise.**"
    else:
        head = f"✨ **Engine: diffusers** · {services.settings.base_model}"
    lines = [f"{head} {choice.reason}."]
    lines += [f"Note: {n}." for n in services.engine.notes]
    lines.append(f"Learned method: {describe_model(services.scorer)}.")
    return "  \n".join(lines)


def build_demo(services: Services) -> gr.Blocks:
    """The whole page, wired to ``services``; the caller queues and launches it."""
    s = services.settings
    registry = services.registry
    styles = [(st.name, st.id) for st in services.catalog.styles.values()]
    compare_cb = CompareCallbacks(
        compare=services.comparison.compare,
        styles=styles,
        methods=registry.names(),
        availability=registry.availability,
        examples=example_photos(),
        default_prompt="a portrait of a person",
        default_methods=list(services.sessions.get().methods),
        settings=s,
    )
    # Gradio keeps uploads (selfies) and outputs in its temp cache: delete them after 10 minutes
    with gr.Blocks(title="Become Lab", delete_cache=(600, 600)) as demo:
        gr.Markdown("# Become Lab\nOne selfie, one seed, several prompt-augmentation methods.")
        gr.Markdown(
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
                    LeaderboardCallbacks(table=services.leaderboard, styles=styles),
                    board,
                )
            with gr.Tab("Staff", id="staff"):
                create_staff_tab(
                    StaffCallbacks(
                        check_password=services.staff.check,
                        password_required=services.staff.required,
                        session=services.sessions.get,
                        start_session=services.sessions.start,
                        export=lambda fmt: export_to_temp(services.store, fmt),
                        retrain=services.retrainer.retrain,
                        model_metadata=lambda: services.scorer.get().metadata,
                        styles=styles,
                        methods=registry.names(),
                        load_deck=services.load_deck,
                        unload_deck=services.unload_deck,
                        deck_coverage=services.decks.coverage,
                    )
                )
        create_compare_api(services.comparison.compare, registry.names(), s)
        create_feedback_api(services.ratings.submit, services.leaderboard)

        checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="availability")

        def availability_now() -> str:
            # checking inversion may mean loading CLIP: never hold a page load for that
            pending = checker.submit(registry.availability)
            try:
                return availability_info(pending.result(timeout=1.0))
            except TimeoutError:  # concurrent.futures raises the builtin since 3.11
                return "Checking which methods can run here (CLIP is loading)…"

        def on_load(saved: Any) -> list[Any]:
            session = services.sessions.get()
            # a saved session may name styles or methods that no longer exist: ignore those
            allowed = [c for c in styles if c[1] in session.styles] or list(styles)
            chosen = [m for m in session.methods if m in registry] or ["raw", "template"]
            style_update = gr.update(choices=allowed, value=allowed[0][1])
            methods_update = gr.update(value=chosen, info=availability_now())
            rater = rater_load.fn(saved)
            deck = deck_mode(session, rater[0])  # a loaded deck replaces live renders
            return [style_update, methods_update, *rater, *deck]

        demo.load(
            on_load,
            inputs=rater_load.inputs,
            outputs=[
                tab.style,
                tab.methods,
                *rater_load.outputs,
                deck_panel.group,
                deck_panel.intro,
                deck_panel.rater,
                tab.controls,
            ],
            api_name=False,
        )
    return demo
