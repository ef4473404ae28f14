"""The page: engine banner, then one tab per job."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from demo.api import create_compare_api
from demo.compare_tab import CompareCallbacks, create_compare_tab

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
    choice = services.engine.choice
    if choice.is_preview:
        head = "🖌️ **Preview engine — stylised previews, not AI results.**"
    elif choice.name == "tiny":
        head = "🧪 **Tiny engine — random weights for tests; images are noise.**"
    else:
        head = f"✨ **Engine: diffusers** · {services.settings.base_model}"
    lines = [f"{head} {choice.reason}."]
    lines += [f"Note: {n}." for n in services.engine.notes]
    meta = services.scorer.get().metadata
    sources = ", ".join(
        f"{s.get('name', s.get('path', '?'))} ({s.get('rows', '?')} rows)"
        for s in meta.get("sources", [])
    )
    if sources:
        lines.append(f"Learned method trained on: {sources}.")
    return "  \n".join(lines)


def build_demo(services: Services) -> gr.Blocks:
    from pipelines.augment.base import UnknownMethodError
    from pipelines.face import FaceError
    from pipelines.service import CompareInputError
    from pipelines.styles import UnknownStyleError

    user_errors = (FaceError, CompareInputError, UnknownStyleError, UnknownMethodError)
    s = services.settings
    registry = services.registry
    callbacks = CompareCallbacks(
        compare=services.comparison.compare,
        styles=[(st.name, st.id) for st in services.catalog.styles.values()],
        methods=registry.names(),
        availability=registry.availability,
        examples=example_photos(),
        default_prompt="a portrait of a person",
        default_methods=["raw", "template", "learned"],
        steps=s.steps,
        guidance=s.guidance,
        size=s.size,
        user_errors=user_errors,
    )
    with gr.Blocks(title="Become Lab") as demo:
        gr.Markdown("# Become Lab\nOne selfie, one seed, several prompt-augmentation methods.")
        gr.Markdown(
            engine_banner(services),
            elem_id="engine-banner",
            elem_classes=["preview"] if services.engine.choice.is_preview else [],
        )
        with gr.Tabs():
            with gr.Tab("Compare", id="compare"):
                create_compare_tab(callbacks)
        create_compare_api(services.comparison.compare, registry.names(), user_errors)
    return demo
