"""Named API endpoints for gradio_client and MCP clients; hidden from the page.

``/compare``, ``/rate`` and ``/leaderboard`` are the app's whole API: with the MCP server on
(``BECOME_MCP_SERVER``) each is also an MCP tool, described by its function's docstring (Gradio
reads the summary, ``Args:`` and ``Returns:``), so the docstrings below are written for an
assistant. Staff actions are never endpoints (``api_name=False``): no client reaches them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from demo.clients import api_caller
from demo.errors import user_errors
from demo.queue_progress import RenderCancelled, batch_progress
from demo.raw_inputs import raw_image, raw_number
from demo.transient import forget_upload
from pipelines.core.request import CompareRequest, Progress
from pipelines.core.results import ComparisonResult
from pipelines.core.settings import Settings
from pipelines.faces.photo import ImageSource, load_image
from pipelines.feedback.leaderboard import LeaderboardQuery
from pipelines.feedback.ratings import SubmitRatings
from pipelines.feedback.store import RecordFilter

Compare = Callable[[ImageSource, CompareRequest, Progress], ComparisonResult]


def create_compare_api(
    render: Compare, methods: Sequence[str], settings: Settings, keep: Collection[str] = ()
) -> None:
    """``/compare``: (selfie, style id, base prompt, methods, seed) -> (images, JSON).

    The selfie is decoded once and every copy Gradio wrote of it (the upload; an MCP client's
    base64 image, which Gradio's MCP layer writes once more) is deleted before the render;
    ``keep``: sha256 of files never deleted (the example photos Gradio serves to every page)."""
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

    def compare(
        selfie: str | bytes | None,
        style: str,
        prompt: str,
        methods: list[str],
        seed: Any,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio finds the bar by this default)
    ) -> tuple[list[tuple[Any, str]], dict[str, Any]]:
        """Render one selfie in one style with several prompt-augmentation methods, side by side.

        Every method turns the same base prompt into its own final prompt, and all are rendered
        with the same seed, so the images differ only by the method. Each output carries
        automatic measures (identity, style, prompt alignment, learned score).

        Args:
            selfie: a photo with one clearly visible face (URL or file), the person to portray.
            style: a style id, e.g. watercolor, anime, oil_painting, pencil_sketch, pop_art.
            prompt: the base prompt, e.g. "a portrait of a person".
            methods: methods to compare: raw, template, learned, inversion, ensemble.
            seed: a whole number; the same seed gives the same images.

        Returns:
            the images, one per method with the method as caption, and the comparison as JSON:
            comparison_id (to rate it), per method the final prompt and measures, timings.
        """
        if not selfie:
            raise gr.Error("selfie is required: pass handle_file('photo.jpg')")
        # the pages waiting behind this render are told their place, and it feeds the estimates
        report = batch_progress(progress, 1)
        with user_errors("The comparison", passthrough=(RenderCancelled,)):
            try:
                photo = load_image(selfie)
            finally:  # read or not, nothing of it stays on disk
                forget_upload(selfie, keep)
            request = CompareRequest.from_settings(
                settings, style=style, prompt=prompt, methods=list(methods or []), seed=seed
            )
            try:
                res = render(photo, request, report)
            except RenderCancelled:  # the client went away: nobody waits for this row
                report.done(cancelled=True)
                raise
            report.done()
        images = [(o.image, o.method) for o in res.outputs if o.image is not None]
        return images, res.to_json()

    trigger.click(
        compare,
        inputs=[selfie, style, prompt, chosen, seed],
        outputs=[gallery, meta],
        api_name="compare",
        concurrency_id="render",
        concurrency_limit=1,
    )


@dataclass(frozen=True)
class FeedbackApi:
    """What ``/rate`` and ``/leaderboard`` need from the app."""

    submit: SubmitRatings
    table: LeaderboardQuery  # as participants may read it (cached)
    # an address -> what a voter stores in its place (the app's keyed hash, VoterIds.pseudonym)
    pseudonym: Callable[[str], str]
    # counts one /rate call from an address; raises a UserError past the address's limit
    count_vote: Callable[[str], None] = lambda address: None
    trusted_proxies: int = 0  # proxies whose X-Forwarded-For names the caller (see clients)


# the read endpoint's own line: a flood of reads waits (and is refused) there, never in the
# votes' or the renders' line; table reads are cached, so two at once keep up
BOARD_API_LIMIT = 2
SOURCE_CHOICES = ("all", "page", "api", "mcp")


def create_feedback_api(api: FeedbackApi) -> None:
    """``/rate`` and ``/leaderboard``: JSON in, JSON out."""
    submit, table = api.submit, api.table

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
        """Rate the outputs of a /compare result on a person's behalf: their 1-5 per method.

        Ratings are what people think of the images; submit only ratings a person gave. The
        voter is the client and the rater name together: a gradio_client is its session, an
        MCP client its network address. A second client with the same rater name adds its own
        votes instead of replacing the first one's, and so does one client sending another
        name. Rating the row again changes the methods it rates; this voter's other ratings of
        the row stay as they were. Votes are stored as API or MCP votes (a leaderboard can
        leave them out), and one address may rate a limited number of times per minute.

        Args:
            comparison_id: the comparison_id a compare call returned (rateable for 24 hours).
            ratings: {method: rating}, each rating a whole number from 1 (worst) to 5 (best).
            rater: the name of the person rating.
            best: the method the person liked best, or empty.
            session_tag: a tag grouping ratings of one session, or empty.
            comment: the person's comment, or empty.
            blind: whether the person rated without seeing which method made which image.
            keep_images: whether the person agrees that the rated images are kept.

        Returns:
            saved (ratings stored), replaced_earlier (this voter had rated this row before),
            outputs (the methods rated).
        """
        voter, source, address = api_caller(request, api.trusted_proxies, api.pseudonym)
        with user_errors("Saving the ratings"):
            api.count_vote(address)
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
                source=source,
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
        source: str = "all",
    ) -> list[dict[str, Any]]:
        """Which prompt-augmentation method people prefer, per style: the ratings leaderboard.

        One row per style x method: rank (ties share a rank), ratings, mean rating with its 95%
        interval, win rate and Bradley-Terry strength with its interval. Every filter is
        optional; empty means all.

        Args:
            style: a style id, or empty for every style.
            session_tag: only ratings given with this session tag.
            since: only ratings from this UTC date or time on (ISO 8601, e.g. 2026-11-01).
            until: only ratings before this UTC date or time (ISO 8601).
            votes: all, blind (raters did not see the methods) or open.
            deck: only the ratings of one deck's rows (its deck id).
            source: all, page (only votes given on the app's page: API and MCP votes left
                out), api or mcp.

        Returns:
            a list of rows, one per style x method: by style (blind and open votes apart),
            best rank first.
        """
        if votes not in {"all", "blind", "open"}:
            raise gr.Error(f"votes={votes!r} is not allowed: use all, blind or open")
        if source not in SOURCE_CHOICES:
            raise gr.Error(f"source={source!r} is not allowed: use {', '.join(SOURCE_CHOICES)}")
        with user_errors("The leaderboard"):
            df = table(
                RecordFilter(
                    style=style or None,
                    session_tag=session_tag or None,
                    since=since or None,
                    until=until or None,
                    blind={"blind": True, "open": False}.get(votes),
                    deck_id=deck or None,
                    source=None if source == "all" else source,
                )
            )
        return df.to_dict(orient="records")

    # off the queue: an MCP client's call then reaches rate() with its own HTTP request (its
    # address), not through Gradio's one shared loopback client; gradio_client and REST calls
    # still queue, in a line of their own
    gr.api(rate, api_name="rate", queue=False, concurrency_id="api-votes", concurrency_limit=None)
    gr.api(
        leaderboard,
        api_name="leaderboard",
        concurrency_id="api-board",
        concurrency_limit=BOARD_API_LIMIT,
    )
