"""Named API endpoints for gradio_client; hidden from the page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from demo.errors import user_errors
from demo.raw_inputs import raw_image, raw_number
from pipelines.core.request import CompareRequest, Progress, no_progress
from pipelines.core.results import ComparisonResult
from pipelines.core.settings import Settings
from pipelines.faces.photo import ImageSource
from pipelines.feedback.leaderboard import LeaderboardQuery
from pipelines.feedback.ratings import SubmitRatings
from pipelines.feedback.store import RecordFilter

Compare = Callable[[ImageSource, CompareRequest, Progress], ComparisonResult]


def create_compare_api(compare: Compare, methods: Sequence[str], settings: Settings) -> None:
    """``/compare``: (selfie, style id, base prompt, methods, seed) -> (images, JSON)."""
    with gr.Column(visible=False):
        selfie = raw_image(label="selfie")  # the app decodes the upload, with its own checks
        style = gr.Textbox(label="style")
        prompt = gr.Textbox(label="base_prompt")
        # custom values pass through so the service's own message names an unknown method
        chosen = gr.Dropdown(
            choices=list(methods), multiselect=True, allow_custom_value=True, label="methods"
        )
        seed = raw_number(precision=0, label="seed")  # "42" is fine, "abc" gets a message
        gallery = gr.Gallery(label="images")
        meta = gr.JSON(label="comparison")
        trigger = gr.Button("compare")

    def api_compare(
        selfie: str | bytes | None, style: str, prompt: str, methods: list[str], seed: Any
    ) -> tuple[list[tuple[Any, str]], dict[str, Any]]:
        if not selfie:
            raise gr.Error("selfie is required: pass handle_file('photo.jpg')")
        with user_errors("The comparison"):
            request = CompareRequest.from_settings(
                settings, style=style, prompt=prompt, methods=list(methods or []), seed=seed
            )
            res = compare(selfie, request, no_progress)
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


def create_feedback_api(submit: SubmitRatings, table: LeaderboardQuery) -> None:
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
        request: gr.Request | None = None,
    ) -> dict[str, Any]:
        """Rate the outputs of a /compare result: {method: 1-5}, optional best method.

        The voter is the client's session and the rater name together: a second client with
        the same rater name adds its own votes instead of replacing the first one's, and so
        does one client sending another name."""
        voter = f"api:{request.session_hash}" if request and request.session_hash else ""
        with user_errors("Saving the ratings"):
            # passed on as sent: the service refuses 3.5, true or "five" (int() would not)
            receipt = submit(
                comparison_id,
                ratings,
                rater=rater,
                best=best or None,
                session_tag=session_tag,
                comment=comment,
                blind=blind,
                consent_images=keep_images,
                voter=voter,
            )
        return {
            "saved": receipt.saved,
            "replaced_earlier": receipt.replaced_earlier,
            "outputs": list(receipt.outputs),
        }

    def leaderboard(
        style: str = "",
        session_tag: str = "",
        since: str = "",
        until: str = "",
        votes: str = "all",
        deck: str = "",
    ) -> list[dict[str, Any]]:
        """Per style x method: ratings, mean with 95% CI, win rate, Bradley-Terry strength;
        ``deck`` keeps the ratings of one deck's rows."""
        if votes not in {"all", "blind", "open"}:
            raise gr.Error(f"votes={votes!r} is not allowed: use all, blind or open")
        with user_errors("The leaderboard"):
            df = table(
                RecordFilter(
                    style=style or None,
                    session_tag=session_tag or None,
                    since=since or None,
                    until=until or None,
                    blind={"blind": True, "open": False}.get(votes),
                    deck_id=deck or None,
                )
            )
        return df.to_dict(orient="records")

    gr.api(rate, api_name="rate", concurrency_limit=None)
    gr.api(leaderboard, api_name="leaderboard", concurrency_limit=4)
