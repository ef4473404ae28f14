"""demo/gradio_internals.py against the installed Gradio: a live batched call finds its batch and
shows progress on every page of it; a missing internal fails with the Gradio version and its name.

If a Gradio upgrade fails these tests, update demo/gradio_internals.py (the only module that reads
Gradio's internals) or keep the Gradio version pinned in requirements.txt.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.utils import Status

from demo import gradio_internals, queue_progress
from demo.gradio_internals import GRADIO_VERSION, GradioInternalsChanged, RunningBatch
from demo.queue_progress import RenderCancelled, RenderClock, batch_progress, turns

DEADLINE = 60.0  # seconds any one wait may take on a loaded machine before the test fails


def wait_until(condition: Any, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after :data:`DEADLINE`."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)  # a poll interval, not a wait for something to happen


class BatchProbe:
    """A queued app with a gate (holds the queue) and a batched call that reads its batch."""

    def __init__(self) -> None:
        self.gate_open = threading.Event()
        self.gate_entered = threading.Event()
        self.seen_progress = threading.Event()
        self.found: list[tuple[int, bool] | str] = []

    def gate(self, x: str) -> str:
        self.gate_entered.set()
        self.gate_open.wait(DEADLINE)
        return x

    def batched(self, xs: list[str]) -> list[list[str]]:
        try:
            batch = gradio_internals.running_batch()
            if batch is None:
                self.found.append("no running batch found")
            else:
                self.found.append((len(batch.events), batch.anyone_waiting()))
                batch.send_progress(0.5, "probe step")
                self.seen_progress.wait(DEADLINE)  # until the test has seen it on every page
        except GradioInternalsChanged as exc:
            self.found.append(str(exc))
        return [xs]

    def blocks(self) -> gr.Blocks:
        with gr.Blocks() as demo:
            box, out = gr.Textbox(), gr.Textbox()
            gr.Button().click(
                self.gate, box, out, api_name="gate", concurrency_id="probe", concurrency_limit=1
            )
            gr.Button().click(
                self.batched,
                box,
                out,
                api_name="batched",
                batch=True,
                max_batch_size=4,
                concurrency_id="probe",
                concurrency_limit=1,
            )
        return demo


def test_a_batched_call_finds_its_batch_and_shows_progress_on_every_page():
    probe = BatchProbe()
    demo = probe.blocks()
    demo.queue().launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        client = Client(demo.local_url, verbose=False)
        gate = client.submit("gate", api_name="/gate")
        assert probe.gate_entered.wait(DEADLINE), "the gate call never started"
        jobs = [client.submit(x, api_name="/batched") for x in ("a", "b")]
        wait_until(
            lambda: all(j.status().code == Status.IN_QUEUE for j in jobs), "both calls queued"
        )
        probe.gate_open.set()  # both run now, as one batch

        def shows_progress(job: Any) -> bool:
            units = job.status().progress_data or []
            return any(u.desc == "probe step" for u in units)

        wait_until(
            lambda: (
                probe.found and (isinstance(probe.found[0], str) or all(map(shows_progress, jobs)))
            ),
            "the progress line on both pages",
        )
        probe.seen_progress.set()
        assert [j.result(timeout=DEADLINE) for j in jobs] == ["a", "b"]
        assert gate.result(timeout=DEADLINE) == "gate"
    finally:
        probe.gate_open.set()
        probe.seen_progress.set()
        demo.close()
    assert probe.found == [(2, True)], f"Gradio {GRADIO_VERSION}: {probe.found}"


def test_a_missing_internal_names_itself_and_the_gradio_version(monkeypatch):
    class OldContext:  # a LocalContext that lost ``event_id``
        blocks = gr.context.LocalContext.blocks

    monkeypatch.setattr(gr.context, "LocalContext", OldContext)
    with pytest.raises(GradioInternalsChanged) as caught:
        gradio_internals.running_batch()
    message = str(caught.value)
    assert f"Gradio {GRADIO_VERSION}" in message
    assert "gradio.context.LocalContext.event_id" in message
    assert "demo/gradio_internals.py" in message


def test_changed_internals_fall_back_to_plain_progress(monkeypatch, caplog):
    def changed() -> None:
        raise GradioInternalsChanged("Gradio 9.9 has no gradio.context.LocalContext.event_id")

    monkeypatch.setattr(queue_progress, "running_batch", changed)
    shown: list[tuple[float, str]] = []
    # a clock without finished renders: no time-left estimate yet
    report = batch_progress(
        lambda fraction, desc: shown.append((fraction, desc)), clock=RenderClock()
    )
    report(0.02, "Finding the face")
    assert shown == [(0.02, "Finding the face")]
    assert "LocalContext.event_id" in caplog.text  # said once in the log


def test_a_batch_whose_pages_all_closed_stops_the_render(monkeypatch):
    sent: list[tuple[str, str]] = []
    queue = SimpleNamespace(
        set_progress=lambda event_id, units: sent.append((event_id, units[0].desc))
    )
    events = [SimpleNamespace(_id="a", alive=True), SimpleNamespace(_id="b", alive=True)]
    monkeypatch.setattr(queue_progress, "running_batch", lambda: RunningBatch(queue, tuple(events)))
    report = batch_progress(
        lambda fraction, desc: pytest.fail("sent to the batch instead"), clock=RenderClock()
    )
    report(0.02, "step 1")
    assert sent == [("a", "step 1"), ("b", "step 1")]  # every page of the batch, not the first
    events[0].alive = False
    report(0.03, "step 2")  # one page still waits: the render goes on
    events[1].alive = False
    with pytest.raises(RenderCancelled):
        report(0.04, "step 3")


def test_pages_waiting_behind_another_functions_render_are_told_their_place():
    """An API render (unbatched, same concurrency group as the page's batched render) tells
    the pages waiting behind it where they stand: both batched requests share the next call."""
    release, entered = threading.Event(), threading.Event()

    def api_render(x: str, progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008
        entered.set()
        report = batch_progress(progress, 1, clock=RenderClock())
        while not release.is_set():
            report(0.5, "Rendering step 1/2")
            release.wait(0.2)  # report again until the test has seen the queue messages
        report.done()
        return x

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(
            api_render, box, out, api_name="api", concurrency_id="render", concurrency_limit=1
        )
        gr.Button().click(
            lambda xs: [xs],
            box,
            out,
            api_name="page",
            batch=True,
            max_batch_size=4,
            concurrency_id="render",
            concurrency_limit=1,
        )
    demo.queue().launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        client = Client(demo.local_url, verbose=False)
        running = client.submit("api", api_name="/api")
        assert entered.wait(DEADLINE), "the API render never started"
        pages = [client.submit(x, api_name="/page") for x in ("a", "b")]

        def told(job: Any) -> str:
            units = job.status().progress_data or []
            return " ".join(u.desc or "" for u in units)

        wait_until(
            lambda: all("In line: 1 render before yours" in told(j) for j in pages),
            "both waiting pages told their place in words",
        )
        release.set()
        assert [j.result(timeout=DEADLINE) for j in pages] == ["a", "b"]
        assert running.result(timeout=DEADLINE) == "api"
    finally:
        release.set()
        demo.close()


def test_turns_follow_how_gradios_queue_forms_its_calls():
    page, api = object(), object()  # a batched function (4 a call) and an unbatched one
    line = [(page, 4), (api, 1), (page, 4), (api, 1), (page, 4), (page, 4), (page, 4), (page, 4)]
    # call 0 takes the first page request and the next three of its function; the API requests
    # go one a call; the last two page requests share a call after them
    assert turns(line) == [(0, 4), (1, 1), (0, 4), (2, 1), (0, 4), (0, 4), (3, 2), (3, 2)]
    assert turns([]) == []


def test_each_concurrency_group_waits_in_a_line_of_its_own():
    """cap_waiting against the installed Gradio: a group whose line is full refuses one more,
    while another group's request is still taken (Gradio's max_size bounds all lines together,
    so a flood of reads refused votes)."""
    gate_open, entered = threading.Event(), threading.Event()

    def held(x: str) -> str:
        entered.set()
        gate_open.wait(DEADLINE)
        return x

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(held, box, out, api_name="read", concurrency_id="reads")
        gr.Button().click(lambda x: x, box, out, api_name="vote", concurrency_id="votes")
    demo.queue(default_concurrency_limit=1, max_size=100)
    gradio_internals.cap_waiting(demo, 2)
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        client = Client(demo.local_url, verbose=False)
        running = client.submit("r0", api_name="/read")
        assert entered.wait(DEADLINE), "the first read never started"
        waiting = [client.submit(f"r{i}", api_name="/read") for i in (1, 2)]
        wait_until(
            lambda: all(j.status().code == Status.IN_QUEUE for j in waiting), "two reads waiting"
        )
        with pytest.raises(Exception, match="Queue is full"):
            client.predict("r3", api_name="/read")  # the reads' line is full
        assert client.predict("v", api_name="/vote") == "v"  # the votes' line is not
        gate_open.set()
        assert [j.result(timeout=DEADLINE) for j in (running, *waiting)] == ["r0", "r1", "r2"]
    finally:
        gate_open.set()
        demo.close()


def test_cap_waiting_names_a_missing_internal():
    with pytest.raises(GradioInternalsChanged, match=r"gradio\.Blocks\._queue"):
        gradio_internals.cap_waiting(object(), 2)
