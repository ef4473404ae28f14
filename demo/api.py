"""Named API endpoints for gradio_client; hidden from the page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr


def create_compare_api(
    compare: Callable[..., Any],
    methods: Sequence[str],
    user_errors: tuple[type[BaseException], ...],
) -> None:
    """``/compare``: (selfie, style id, base prompt, methods, seed) -> (images, JSON)."""
    with gr.Column(visible=False):
        selfie = gr.Image(type="filepath", label="selfie")
        style = gr.Textbox(label="style")
        prompt = gr.Textbox(label="base_prompt")
        chosen = gr.Dropdown(choices=list(methods), multiselect=True, label="methods")
        seed = gr.Number(precision=0, label="seed")
        gallery = gr.Gallery(label="images")
        meta = gr.JSON(label="comparison")
        trigger = gr.Button("compare")

    def api_compare(
        selfie_path: str | None, style_id: str, base_prompt: str, names: list[str], seed_value: Any
    ) -> tuple[list[tuple[Any, str]], dict[str, Any]]:
        if not selfie_path:
            raise gr.Error("selfie is required: pass handle_file('photo.jpg')")
        try:
            res = compare(
                selfie_path,
                style_id,
                base_prompt,
                list(names or []),
                None if seed_value is None else int(seed_value),
            )
        except user_errors as exc:
            raise gr.Error(str(exc)) from None
        images = [(o.image, o.method) for o in res.outputs if o.image is not None]
        return images, res.to_json()

    trigger.click(
        api_compare,
        inputs=[selfie, style, prompt, chosen, seed],
        outputs=[gallery, meta],
        api_name="compare",
        concurrency_id="render",
        concurrency_limit=1,
    )
