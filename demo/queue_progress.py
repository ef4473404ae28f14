"""Progress and cancellation for a batched Gradio event: every person in the batch sees it.

Gradio shows no ``gr.Progress`` for a batched call and cannot stop a function that is already
running. :func:`batch_progress` reports each step to every event of the batch, tells the pages
still waiting in the queue where they stand, and stops the render once every page that asked for
it has closed, through :mod:`demo.gradio_internals` (the one module that reads Gradio's
internals). Where those internals have changed it falls back to plain ``gr.Progress`` (which a
batched call does not show) and never cancels, and says so once in the log;
``tests/test_gradio_internals.py`` fails in that case.

Time left is measured, never guessed from Gradio's average, and told only once it can be
trusted, erring long: from this process's finished renders (the slowest recent seconds per row,
times the rows of the batch actually formed, with a margin; nothing before three have finished)
and, once a render is a fifth done, from its own pace, whichever is longer. It is re-estimated
at every step, so it never reads as already exceeded. :data:`RENDERS` keeps every render's
outcome, cancelled ones included.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import gradio as gr

from demo.gradio_internals import GradioInternalsChanged, RunningBatch, running_batch

log = logging.getLogger(__name__)
_warned: set[str] = set()
TELL_WAITING_EVERY = 0.5  # seconds between queue messages to the pages still waiting
# a wait is told only once it can be trusted, and errs long (bench/bench_waits.py measures how
# often a told wait is too short, in a seeded simulation of renders; tests/test_waits.py too)
TRUSTED_AFTER = 3  # finished renders before any number is told
WINDOW = 10  # the latest finished renders an estimate reads
MARGIN = 1.25  # on top of the slowest recent render, per row
OWN_STEPS_FROM = 0.2  # this render's own pace is read once this far along


class RenderCancelled(Exception):
    """Every page that asked for this render has closed or reloaded: stop rendering."""


@dataclass(frozen=True)
class RenderRecord:
    """One batched render: how many rows, how long, how far it got, whether it was cancelled."""

    rows: int
    seconds: float
    fraction: float
    cancelled: bool


class RenderClock:
    """This process's renders: the measured seconds per row, and which renders were cancelled."""

    def __init__(self, keep: int = 200) -> None:
        self._records: deque[RenderRecord] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, record: RenderRecord) -> None:
        with self._lock:
            self._records.append(record)
        if record.cancelled:
            log.info(
                "render of %d row(s) cancelled at %.0f%% after %.1f s: no page waits for it",
                record.rows,
                100 * record.fraction,
                record.seconds,
            )

    def records(self) -> list[RenderRecord]:
        """Every kept render, oldest first."""
        with self._lock:
            return list(self._records)

    def estimate(self, rows: int) -> float | None:
        """Seconds a render of ``rows`` rows takes at most, or None while no number can be
        trusted (fewer than :data:`TRUSTED_AFTER` finished renders). An upper bound, so a wait
        errs long: ``rows`` times the slowest seconds per row among the last
        :data:`WINDOW` finished renders, times :data:`MARGIN`. Once there are five or more, the
        single slowest is left out (the first render after a start loads the models and takes
        many times longer; while it is one of three, it makes every wait long, not short)."""
        done = [r for r in self.records() if not r.cancelled and r.rows > 0][-WINDOW:]
        if len(done) < TRUSTED_AFTER:
            return None
        per_row = sorted(r.seconds / r.rows for r in done)
        if len(per_row) >= 5:
            per_row = per_row[:-1]
        return rows * per_row[-1] * MARGIN


RENDERS = RenderClock()


def seconds_left(
    elapsed: float, fraction: float, prior: float | None, rate: float | None = None
) -> float:
    """Time left of a render ``fraction`` done after ``elapsed`` s, erring long: the longest of
    what its own pace says (overall, and over its latest steps at ``rate``, fraction per
    second; once it is :data:`OWN_STEPS_FROM` along, times :data:`MARGIN`) and what ``prior``
    (an upper estimate of the whole render) leaves. NaN while neither is known: no number."""
    candidates: list[float] = []
    if prior is not None:
        candidates.append(prior - elapsed)
    if fraction >= OWN_STEPS_FROM and elapsed > 0:
        candidates.append(MARGIN * elapsed * (1.0 - fraction) / fraction)
        if rate is not None and rate > 0:
            candidates.append(MARGIN * (1.0 - fraction) / rate)
    if not candidates:
        return math.nan
    return max(max(candidates), 0.0)


def in_words(seconds: float) -> str:
    """Time left in words ("about 12 s left", "about 2 min left", "almost done"); "" while
    nothing has been measured yet."""
    if math.isnan(seconds):
        return ""
    if seconds < 1:
        return "almost done"
    if seconds < 90:
        return f"about {math.ceil(seconds)} s left"
    return f"about {math.ceil(seconds / 60)} min left"


def wait_words(seconds: float) -> str:
    """A wait in words, rounded up: "about 40 s", "about 3 min"."""
    if seconds < 90:
        return f"about {max(math.ceil(seconds), 1)} s"
    return f"about {math.ceil(seconds / 60)} min"


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


class BatchProgress:
    """A :data:`~pipelines.core.request.Progress` for one batched render: each step goes to every
    page of the batch with the time left, the pages still in the queue get their place, and
    :class:`RenderCancelled` is raised once no page of the batch waits. Call :meth:`done` when
    the render ends (it records the render in :data:`RENDERS`)."""

    def __init__(self, progress: gr.Progress, rows: int, clock: RenderClock = RENDERS) -> None:
        self.progress, self.rows, self.clock = progress, max(rows, 1), clock
        self.batch = _current_batch()
        self.t0 = time.monotonic()
        self.prior = clock.estimate(self.rows)
        self.fraction = 0.0
        self._marks: deque[tuple[float, float]] = deque(maxlen=64)  # (time, fraction) per step
        self._told = -math.inf  # when the waiting pages were last told

    def rate(self) -> float | None:
        """Fraction done per second over the latest steps (about the last 3 s): the stage the
        render is in now (finding faces, writing prompts, denoising) sets the pace."""
        if len(self._marks) < 2:
            return None
        t1, f1 = self._marks[-1]
        t0, f0 = next(((t, f) for t, f in self._marks if t1 - t <= 3.0), self._marks[0])
        if t1 - t0 < 0.2 or f1 <= f0:
            t0, f0 = self._marks[0]
        return (f1 - f0) / (t1 - t0) if t1 > t0 and f1 > f0 else None

    def left(self) -> float:
        """Seconds left of this render, as measured so far."""
        return seconds_left(time.monotonic() - self.t0, self.fraction, self.prior, self.rate())

    def __call__(self, fraction: float, message: str) -> None:
        self.fraction = max(self.fraction, min(fraction, 1.0))
        self._marks.append((time.monotonic(), self.fraction))
        message = re.sub(r"(\d+)/(\d+)", r"\1 of \2", message)  # "step 6 of 93"
        left = in_words(self.left()) if fraction < 1.0 else ""
        if left:
            message += " · " + left
        if self.batch is None:
            self.progress(fraction, desc=message)
            return
        try:
            if not self.batch.anyone_waiting():
                raise RenderCancelled("every page of this batch closed")
            self.batch.send_progress(fraction, message)
        except GradioInternalsChanged as exc:
            _fallback(exc)
            self.batch = None
            self.progress(fraction, desc=message)
            return
        try:
            self._tell_waiting()
        except GradioInternalsChanged as exc:  # the batch's own progress still goes out
            _fallback(exc)
            self._told = math.inf  # no more queue messages for this render

    def _tell_waiting(self) -> None:
        """Each page still in the queue: how many renders come before its own, and when its
        own starts (this render's time left, then each call ahead at its measured time)."""
        now = time.monotonic()
        if self.batch is None or now - self._told < TELL_WAITING_EVERY:
            return
        self._told = now
        waiting = self.batch.waiting()
        if not waiting:
            return
        ahead_of = turns([(fn, size) for _, fn, size in waiting])
        calls = {k: rows for k, rows in ahead_of}  # call number -> its rows
        for (event, _, _), (call, _) in zip(waiting, ahead_of, strict=True):
            before = [self.clock.estimate(calls[k]) for k in range(call)]
            measured = all(b is not None for b in before)
            start = self.left() + sum(b for b in before if b is not None)
            renders = "1 render" if call == 0 else f"{call + 1} renders"
            when = (
                f"yours starts in {wait_words(start)}"
                if not math.isnan(start) and measured
                else "the wait is told once a few renders have been timed"
            )
            self.batch.tell_waiting(event, f"In line: {renders} before yours · {when}")

    def done(self, cancelled: bool = False) -> None:
        """Record this render (its time feeds the next estimates unless it was cancelled)."""
        seconds = time.monotonic() - self.t0
        self.clock.add(RenderRecord(self.rows, seconds, self.fraction, cancelled))


def turns(line: Sequence[tuple[object, int]]) -> list[tuple[int, int]]:
    """Where each waiting request will render, as Gradio's queue forms its calls: ``line`` is,
    in queue order, each request's function and how many requests one call of it takes; a call
    takes the first request still waiting and the next ones of the same function, up to that
    size. Returns, per request, (its call's number counted from 0 = next, that call's rows)."""
    call_of: dict[int, int] = {}
    rows: list[int] = []
    for i, (fn, size) in enumerate(line):
        if i in call_of:
            continue
        members = [i] + [
            j for j in range(i + 1, len(line)) if j not in call_of and line[j][0] is fn
        ]
        for j in members[: max(size, 1)]:
            call_of[j] = len(rows)
        rows.append(min(len(members), max(size, 1)))
    return [(call_of[i], rows[call_of[i]]) for i in range(len(line))]


def batch_progress(
    progress: gr.Progress, rows: int = 1, clock: RenderClock = RENDERS
) -> BatchProgress:
    """The progress of a batched render of ``rows`` rows (see :class:`BatchProgress`)."""
    return BatchProgress(progress, rows, clock)
