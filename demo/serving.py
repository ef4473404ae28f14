"""How the page's requests queue: one line per kind of request, each with its own limits.

Every event runs in a concurrency group (renders share ``render``, the page's votes
``ratings``, the API's ``api-votes``, the Leaderboard tab's reads ``board``, the API's
``api-board``, the staff password checks ``staff-check``; any other event is a group of its
own), and each group may hold at most ``BECOME_MAX_QUEUE`` waiting requests
(:func:`demo.gradio_internals.cap_waiting`). So 200 reads of the leaderboard, or a flood of
wrong passwords, fill their own line and are refused there; a vote is never refused because of
them. A password check never sleeps, so guesses barely wait even in their own line.
"""

from __future__ import annotations

import gradio as gr

from demo.gradio_internals import cap_waiting
from pipelines.core.settings import Settings


def queue_demo(
    demo: gr.Blocks, settings: Settings, *, default_concurrency_limit: int | None = None
) -> gr.Blocks:
    """``demo`` queued as the app serves it; returns it, for ``.launch``.

    ``default_concurrency_limit`` (``BECOME_QUEUE_CONCURRENCY`` unless given) is the
    concurrency of events that set none. Gradio's own bound on all waiting requests together
    is the sum of the lines', so only a line's own bound ever refuses a request.
    """
    groups = {fn.concurrency_id for fn in demo.fns.values()}
    limit = default_concurrency_limit
    if limit is None:
        limit = settings.queue_concurrency
    demo.queue(default_concurrency_limit=limit, max_size=settings.max_queue * max(1, len(groups)))
    cap_waiting(demo, settings.max_queue)
    return demo
