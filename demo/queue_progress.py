"""Progress and cancellation for a batched Gradio event: every person in the batch sees it.

Gradio sends ``gr.Progress`` updates of a batched call to the first event only, and cannot stop a
function that is already running. These helpers read the queue's own state (gradio is pinned in
requirements.txt) to report each step to every event of the batch and to stop the render once
every page that asked for it has closed. Where gradio's internals differ they fall back to plain
``gr.Progress`` and never cancel.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gradio as gr

from pipelines.core.request import Progress

log = logging.getLogger(__name__)


class RenderCancelled(Exception):
    """Every page that asked for this render has closed or reloaded: stop rendering."""


def _batch_events() -> tuple[Any, list[Any]]:
    """(the queue, the events of the running batch) or (None, []) outside a queued call."""
    try:
        from gradio.context import LocalContext

        blocks = LocalContext.blocks.get(None)
        event_id = LocalContext.event_id.get(None)
        queue = blocks._queue if blocks is not None else None
        for job in queue.active_jobs if queue is not None else []:
            if job and any(e._id == event_id for e in job):
                return queue, list(job)
    except Exception:  # gradio internals changed: plain progress
        log.debug("batch progress unavailable", exc_info=True)
    return None, []


def batch_progress(progress: gr.Progress, started: float | None = None) -> Progress:
    """A :data:`Progress` that updates every event of the batch, with a time-left estimate,
    and raises :class:`RenderCancelled` once no one in the batch is still waiting."""
    queue, events = _batch_events()
    t0 = started if started is not None else time.monotonic()

    def report(fraction: float, message: str) -> None:
        if events and not any(getattr(e, "alive", True) for e in events):
            raise RenderCancelled("every page of this batch closed")
        elapsed = time.monotonic() - t0
        if 0.05 < fraction < 1.0:
            message += f" · about {elapsed / fraction - elapsed:.0f} s left"
        progress(fraction, desc=message)
        if queue is None:
            return
        try:
            from gradio.helpers import TrackedIterable

            for event in events[1:]:  # the first gets it from gr.Progress itself
                queue.set_progress(
                    event._id, [TrackedIterable(None, None, None, message, "steps", None, fraction)]
                )
        except Exception:
            log.debug("batch progress not sent", exc_info=True)

    return report
