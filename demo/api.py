"""Named API endpoints for gradio_client; hidden from the page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

log = logging.getLogger(__name__)


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
        # custom values pass through so the service's own message names an unknown method
        chosen = gr.Dropdown(
            choices=list(methods), multiselect=True, allow_custom_value=True, label="methods"
        )
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
        except Exception as exc:  # never a bare traceback for API clients either
            log.exception("/compare failed")
            raise gr.Error(f"The comparison failed: {exc}") from None
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


def create_feedback_api(services: Any, user_errors: tuple[type[BaseException], ...]) -> None:
    """``/rate`` and ``/leaderboard``: JSON in, JSON out."""

    def rate(
        comparison_id: str,
        ratings: dict[str, int],
        rater: str,
        best: str = "",
        session_tag: str = "",
        comment: str = "",
        blind: bool = False,
        keep_images: bool = False,
    ) -> dict[str, Any]:
        """Rate the outputs of a /compare result: {method: 1-5}, optional best method."""
        try:
            receipt = services.ratings.submit(
                comparison_id,
                {str(k): (None if v is None else int(v)) for k, v in (ratings or {}).items()},
                rater=rater,
                best=best or None,
                session_tag=session_tag,
                comment=comment,
                blind=blind,
                consent_images=keep_images,
            )
        except (*user_errors, TypeError, ValueError) as exc:
            raise gr.Error(str(exc)) from None
        return {
            "saved": receipt.saved,
            "replaced_earlier": receipt.replaced_earlier,
            "outputs": receipt.outputs,
        }

    def leaderboard(
        style: str = "", session_tag: str = "", since: str = "", until: str = "", votes: str = "all"
    ) -> list[dict[str, Any]]:
        """Per style x method: ratings, mean with 95% CI, win rate, Bradley-Terry strength."""
        if votes not in {"all", "blind", "open"}:
            raise gr.Error(f"votes={votes!r} is not allowed: use all, blind or open")
        try:
            df = services.leaderboard_table(
                style=style or None,
                session_tag=session_tag or None,
                since=since or None,
                until=until or None,
                blind={"blind": True, "open": False}.get(votes),
            )
        except user_errors as exc:
            raise gr.Error(str(exc)) from None
        return df.to_dict(orient="records")

    gr.api(rate, api_name="rate", concurrency_limit=None)
    gr.api(leaderboard, api_name="leaderboard", concurrency_limit=4)
