"""Every read of Gradio's private internals, in one place (gradio is pinned in requirements.txt).

Gradio shows ``gr.Progress`` only for an event it can name, and a batched call names none (its
``event_id`` is ``None``); nor can it stop a function that is already running. To report each
render step to every page of a batch and to stop a render once every such page has closed,
:func:`running_batch` reads, from the worker thread of the running call:

- ``gradio.context.LocalContext.blocks``, ``.event_id``, ``.request``: the call's context
- ``Blocks._queue.active_jobs``: the batches running now, each a list of queue ``Event``
- ``Event._id``, ``Event.request``, ``Event.alive``: an event, its HTTP request, whether its page
  still waits for it
- ``Queue.set_progress(event_id, [gradio.helpers.TrackedIterable])``: one event's progress line
- ``Event.fn`` (its ``concurrency_id``, ``batch``, ``max_batch_size``) and
  ``Queue.event_queue_per_concurrency_id[...].queue``: the events still waiting for the same
  concurrency group, in queue order
- ``Queue.send_message(event, gradio.server_messages.ProgressMessage)``: a line for a waiting event

Two more, for what clients send: ``gradio.mcp.DEFAULT_TEMP_DIR`` (where the MCP layer writes a
base64 image, read from the environment when gradio is imported; :func:`point_mcp_uploads`) and
``gradio.processing_utils.async_ssrf_protected_download`` (a URL it refuses or cannot fetch
raised a bare exception that callers saw as a generic failure; :func:`plain_download_errors`).

Gradio's ``max_size`` bounds every waiting request together, so a flood of one kind (reads,
guesses) refuses every other kind (votes). :func:`cap_waiting` bounds each concurrency group on
its own instead, by wrapping ``Queue.push(body, request, username)`` (its answer a tuple
``(ok, event id or message, "success" | "queue_full" | ...)``), finding the request's function
with ``gradio.route_utils.get_fn(blocks, None, body)`` and counting its group's waiting events.

A missing piece raises :class:`GradioInternalsChanged`, naming the Gradio version and what is
missing; ``tests/test_gradio_internals.py`` runs all of it in a live batched call, so a Gradio
upgrade that breaks this fails the tests. At run time the caller falls back to plain progress.
"""

from __future__ import annotations

import importlib
from abc import ABCMeta
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import gradio as gr

GRADIO_VERSION = gr.__version__


class GradioInternalsChanged(RuntimeError):
    """The installed Gradio lacks an internal this module reads; the message names it."""


def _internal(owner: Any, name: str, where: str) -> Any:
    """``owner.name``, or :class:`GradioInternalsChanged` naming ``where.name`` and the version."""
    try:
        return getattr(owner, name)
    except AttributeError:
        raise GradioInternalsChanged(
            f"Gradio {GRADIO_VERSION} has no {where}.{name}, which demo/gradio_internals.py "
            "reads to show render progress to every page of a batch and to stop abandoned "
            "renders: update that module for this Gradio version, or pin the version it was "
            "written for (requirements.txt)"
        ) from None


def _module_attr(module: str, name: str) -> Any:
    try:
        found = importlib.import_module(module)
    except ImportError:
        raise GradioInternalsChanged(
            f"Gradio {GRADIO_VERSION} has no module {module}, which demo/gradio_internals.py "
            "reads: update that module for this Gradio version"
        ) from None
    return _internal(found, name, module)


@dataclass(frozen=True)
class RunningBatch:
    """The queue events of the call running in this thread: one per page that asked for it."""

    queue: Any  # gradio.queueing.Queue
    events: tuple[Any, ...]  # gradio.queueing.Event, in batch order

    def anyone_waiting(self) -> bool:
        """Whether any page of the batch is still open and waiting for the result."""
        return any(_internal(e, "alive", "gradio.queueing.Event") for e in self.events)

    def send_progress(self, fraction: float, message: str) -> None:
        """Show ``message`` at ``fraction`` (0..1) on every page of the batch."""
        tracked = _module_attr("gradio.helpers", "TrackedIterable")
        set_progress = _internal(self.queue, "set_progress", "gradio.queueing.Queue")
        for event in self.events:
            unit = tracked(None, None, None, desc=message, unit="steps", progress=fraction)
            set_progress(_internal(event, "_id", "gradio.queueing.Event"), [unit])

    def max_batch_size(self) -> int:
        """How many requests one call of this function takes at most."""
        fn = _internal(self.events[0], "fn", "gradio.queueing.Event")
        return int(_internal(fn, "max_batch_size", "gradio.block_function.BlockFunction") or 1)

    def waiting(self) -> list[tuple[Any, Any, int]]:
        """The events waiting for a turn in this call's concurrency group (its own function's
        and any other function sharing its ``concurrency_id``, such as the API's), in queue
        order, each with its function and how many requests one call of it takes."""
        fn = _internal(self.events[0], "fn", "gradio.queueing.Event")
        cid = _internal(fn, "concurrency_id", "gradio.block_function.BlockFunction")
        queues = _internal(self.queue, "event_queue_per_concurrency_id", "gradio.queueing.Queue")
        line = queues.get(cid)
        if line is None:
            return []
        out = []
        for event in list(_internal(line, "queue", "gradio.queueing.EventQueue")):
            its_fn = _internal(event, "fn", "gradio.queueing.Event")
            batch = _internal(its_fn, "batch", "gradio.block_function.BlockFunction")
            size = _internal(its_fn, "max_batch_size", "gradio.block_function.BlockFunction")
            out.append((event, its_fn, int(size or 1) if batch else 1))
        return out

    def tell_waiting(self, event: Any, message: str) -> None:
        """Show ``message`` (no bar, no "0.0%") on a page whose request still waits in the
        queue."""
        progress_message = _module_attr("gradio.server_messages", "ProgressMessage")
        unit = _module_attr("gradio.server_messages", "ProgressUnit")
        send = _internal(self.queue, "send_message", "gradio.queueing.Queue")
        send(event, progress_message(progress_data=[unit(desc=message, progress=None)]))


def running_batch() -> RunningBatch | None:
    """The batch of the queued call running in this thread; None outside a queued call.

    A batched call has no event id in its context, only the first event's request: its batch is
    the running job whose first event carries that very request object.
    """
    context = _module_attr("gradio.context", "LocalContext")
    where = "gradio.context.LocalContext"
    blocks = _internal(context, "blocks", where).get(None)
    event_id = _internal(context, "event_id", where).get(None)
    request = _internal(context, "request", where).get(None)
    if isinstance(request, Sequence):  # some versions pass a batch's requests as a list
        request = request[0] if request else None
    http_request = getattr(request, "request", None)  # gr.Request wraps the HTTP request
    if blocks is None or (event_id is None and http_request is None):
        return None
    queue = _internal(blocks, "_queue", "gradio.Blocks")
    for job in _internal(queue, "active_jobs", "gradio.queueing.Queue"):
        if not job:
            continue
        ids = [_internal(e, "_id", "gradio.queueing.Event") for e in job]
        first_request = _internal(job[0], "request", "gradio.queueing.Event")
        if event_id in ids or (http_request is not None and first_request is http_request):
            return RunningBatch(queue, tuple(job))
    return None


QUEUE_FULL = (
    "Too many requests of this kind are waiting on this server right now: try again in a moment."
)


def cap_waiting(blocks: Any, cap: int) -> None:
    """At most ``cap`` requests wait in each concurrency group of ``blocks``' queue: one past
    that is refused with :data:`QUEUE_FULL` (as Gradio refuses one past ``max_size``), and
    other groups are not affected. Call it after ``blocks.queue(...)``."""
    if cap < 1:
        raise ValueError(f"cap={cap} is not allowed: use 1 or more")
    queue = _internal(blocks, "_queue", "gradio.Blocks")
    push = _internal(queue, "push", "gradio.queueing.Queue")
    lines = _internal(queue, "event_queue_per_concurrency_id", "gradio.queueing.Queue")
    get_fn = _module_attr("gradio.route_utils", "get_fn")

    async def push_within_cap(body: Any, request: Any, username: Any) -> Any:
        try:
            fn = get_fn(blocks, None, body)
        except Exception:  # no such function: Gradio's own push answers that
            return await push(body, request, username)
        group = _internal(fn, "concurrency_id", "gradio.block_function.BlockFunction")
        line = lines.get(group)
        waiting = _internal(line, "queue", "gradio.queueing.EventQueue") if line else ()
        if len(waiting) >= cap:
            return False, QUEUE_FULL, "queue_full"
        return await push(body, request, username)

    queue.push = push_within_cap


def component_subclass(base: type, name: str, attrs: dict[str, Any], module: str) -> type:
    """A subclass of the Gradio component ``base`` named ``name`` (the page draws it with the
    frontend of the component so named), made without ``ComponentMeta.__new__``: that step writes
    a ``.pyi`` file beside the defining module, and the subclass adds no events to describe.

    Gradio rebuilds a component from its class whenever an event updates its properties (an
    example photo clicked, ``gr.update(...)``): only a class, not an instance attribute, keeps
    behaviour through that.
    """
    meta = type(base)
    if not isinstance(meta, type) or not issubclass(meta, ABCMeta):
        raise GradioInternalsChanged(
            f"Gradio {GRADIO_VERSION}: {base.__name__}'s metaclass is {meta!r}, not an ABCMeta "
            "(gradio.component_meta.ComponentMeta), which demo/gradio_internals.py expects"
        )
    return ABCMeta.__new__(meta, name, (base,), {"__module__": module, **attrs})


def point_mcp_uploads(folder: str) -> None:
    """Make Gradio's MCP server write the base64 files it receives into ``folder``.

    ``gradio.mcp.DEFAULT_TEMP_DIR`` is read from ``GRADIO_TEMP_DIR`` when gradio is imported,
    before the app claims its own cleaned folder, so MCP selfies landed in ``/tmp/gradio``."""
    module = importlib.import_module("gradio.mcp")
    _internal(module, "DEFAULT_TEMP_DIR", "gradio.mcp")
    module.DEFAULT_TEMP_DIR = folder


def upload_folder() -> str:
    """The folder Gradio writes uploads (and its cached outputs) into."""
    return str(_module_attr("gradio.utils", "get_upload_folder")())


def mcp_uploads() -> str:
    """The folder Gradio's MCP server writes the base64 files it receives into."""
    return str(_module_attr("gradio.mcp", "DEFAULT_TEMP_DIR"))


def plain_download_errors() -> None:
    """Make Gradio's URL downloads (a selfie passed as a URL over the API or MCP) fail with a
    message the caller sees: Gradio shows only ``gr.Error`` texts, and its SSRF guard raised a
    ``ValueError`` that reached an MCP caller as "The upstream Gradio app has raised an
    exception". Wraps ``gradio.processing_utils.async_ssrf_protected_download`` once."""
    module = importlib.import_module("gradio.processing_utils")
    original = _internal(module, "async_ssrf_protected_download", "gradio.processing_utils")
    if getattr(original, "plain_errors", False):
        return

    async def download(url: str, cache_dir: str) -> str:
        try:
            return await original(url, cache_dir)
        except gr.Error:
            raise
        except Exception as exc:
            raise gr.Error(download_refusal(url, exc)) from None

    download.plain_errors = True  # type: ignore[attr-defined]
    module.async_ssrf_protected_download = download


def download_refusal(url: str, exc: Exception) -> str:
    """Why a photo could not be fetched from ``url``, in words a caller can act on."""
    host = urlparse(url).hostname or "that address"
    text = str(exc)
    if "failed validation" in text:
        why = f"{host} is not a public address (a local or private network is never fetched)"
    elif "Status code" in text:
        why = f"{host} answered with HTTP status {text.rsplit(' ', 1)[-1]}"
    else:
        why = f"the download from {host} failed"
    return (
        f"The photo could not be fetched: {why}. Pass a public http(s) URL, or the photo "
        "itself (a base64 data URL, or a file uploaded with handle_file)."
    )
