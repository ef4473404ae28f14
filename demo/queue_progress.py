"""Progress and cancellation for a batched Gradio event: every person in the batch sees it.

Gradio shows no ``gr.Progress`` for a batched call and cannot stop a function that is already
running. :func:`batch_progress` reports each step to every event of the batch and stops the
render once every page that asked for it has closed, through :mod:`demo.gradio_internals` (the
one module that reads Gradio's internals). Where those internals have changed it falls back to
plain ``gr.Progress`` (which a batched call does not show) and never cancels, and says so once in
the log; ``tests/test_gradio_internals.py`` fails in that case.
"""

from __future__ import annotations

import logging
import time

import gradio as gr

from demo.gradio_internals import GradioInternalsChanged, RunningBatch, running_batch
from pipelines.core.request import Progress

log = logging.getLogger(__name__)
_warned: set[str] = set()


class RenderCancelled(Exception):
    """Every page that asked for this render has closed or reloaded: stop rendering."""


def _fallback(exc: GradioInternalsChanged) -> None:
    """Log once per message: progress goes to the first page only, nothing is cancelled."""
    if str(exc) not in _warned:
        _warned.add(str(exc))
        log.warning("%s; batch progress falls back to gr.Progress", exc)


def _current_batch() -> RunningBatch | None:
    try:
        return running_batch()
    except GradioInternalsChanged as exc:
        _fallback(exc)
        return None


def batch_progress(progress: gr.Progress, started: float | None = None) -> Progress:
    """A :data:`Progress` that updates every event of the batch, with a time-left estimate,
    and raises :class:`RenderCancelled` once no one in the batch is still waiting."""
    batch = _current_batch()
    t0 = started if started is not None else time.monotonic()

    def report(fraction: float, message: str) -> None:
        nonlocal batch
        elapsed = time.monotonic() - t0
        if 0.05 < fraction < 1.0:
            message += f" · about {elapsed / fraction - elapsed:.0f} s left"
        if batch is None:
            progress(fraction, desc=message)
            return
        try:
            if not batch.anyone_waiting():
                raise RenderCancelled("every page of this batch closed")
            batch.send_progress(fraction, message)
        except GradioInternalsChanged as exc:
            _fallback(exc)
            batch = None
            progress(fraction, desc=message)

    return report
