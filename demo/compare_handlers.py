"""What a Generate click does, as plain functions: Gradio calls them, tests call them directly.

A click runs two steps. :meth:`CompareHandlers.check` runs at once: it refuses what the page can
tell is wrong (the selfie is decoded with the app's own checks, as the API decodes it), builds the
click's :class:`CompareRequest` (the only time it is built, and so validated) and keeps it under a
ticket. On the page, :meth:`CompareHandlers.click` wraps it: the previous row goes at once, and a
refusal's message shows beside Generate (:meth:`CompareHandlers.refused`).
:meth:`CompareHandlers.run` is the batched render: each person's ticket gives back their
request. Gradio keeps per-page ``State`` apart only outside batches, so the ticket travels in a
hidden component.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from demo.errors import user_errors
from demo.formatting import plain_md
from demo.queue_progress import RenderCancelled, batch_progress
from demo.rows import ROW_VALUES, SLOT_VALUES, ShownRow, cleared_row, row_values, shown_row
from demo.transient import RecentPhotos, file_digest, forget_upload, inline_image
from pipelines.core.errors import UserError
from pipelines.core.request import CompareRequest, Progress
from pipelines.core.results import ComparisonResult
from pipelines.core.settings import MAX_SEED, Settings
from pipelines.faces.photo import ImageSource, PhotoError, load_image

CompareMany = Callable[
    [Sequence[tuple[ImageSource, CompareRequest]], Progress], list[ComparisonResult | UserError]
]


@dataclass(frozen=True)
class CompareCallbacks:
    """What the tab needs from the app; callables, so the tab never touches a model."""

    compare_many: CompareMany
    recent: Callable[[str], ComparisonResult]  # a rendered row by id (a refreshed page)
    styles: Sequence[tuple[str, str]]  # (display name, id)
    methods: Sequence[str]
    summaries: Mapping[str, str]  # method -> a few plain words
    examples: Sequence[str]
    default_prompt: str
    default_methods: Sequence[str]
    settings: Settings  # request defaults, and the model family whose controls show


EXPIRED = "This click is no longer waiting for a render: press Generate again."
GONE = (
    "Your photo is no longer on the server (the app keeps no photos once it has read them): "
    "add it again."
)
STARTING = "⏳ Your photo is checked: your render starts as soon as it is its turn…"
# the controls a reloaded page gets back (never the selfie or the style reference)
SAVED_INPUTS = (
    "style",
    "prompt",
    "methods",
    "seed",
    "blind",
    "num_inference_steps",
    "guidance_scale",
    "use_style_strength",
    "ip_adapter_scale",
    "size",
)


class ClickExpiredError(UserError):
    """A render found no request under its ticket (it waited too long, or was never checked)."""


class PhotoGoneError(gr.Error):
    """A click named an uploaded file the app has already read and deleted, and no longer holds
    (a page from before a restart): the person adds the photo again."""

    def __init__(self) -> None:
        super().__init__(GONE)


@dataclass(frozen=True)
class Click:
    """One Generate click, checked: its decoded photo, its request and when it was made (seconds
    since the epoch)."""

    photo: Image.Image
    request: CompareRequest
    clicked: float


class PendingClicks:
    """Checked clicks waiting for their render, by ticket; each is taken once.

    A page closed while its click waits in the queue never comes back for it: the oldest clicks
    beyond ``limit``, and clicks older than ``max_age`` seconds, are dropped (with the photo and
    any style reference image they hold).
    """

    def __init__(
        self,
        limit: int = 512,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit, self.max_age, self.clock = limit, max_age, clock
        self._clicks: OrderedDict[str, Click] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, click: Click) -> str:
        """Keep ``click``; the ticket to take it back with."""
        ticket = uuid.uuid4().hex
        with self._lock:
            self._clicks[ticket] = click
            oldest = self.clock() - self.max_age
            while self._clicks and (
                len(self._clicks) > self.limit or next(iter(self._clicks.values())).clicked < oldest
            ):
                self._clicks.popitem(last=False)
        return ticket

    def take(self, ticket: str) -> Click | None:
        """The click kept under ``ticket`` (then forgotten), or None."""
        with self._lock:
            return self._clicks.pop(ticket or "", None)

    def __len__(self) -> int:
        return len(self._clicks)


def read_photo(
    source: str | bytes,
    page: str,
    recent: RecentPhotos,
    keep: Collection[str] = (),
    what: str = "",
) -> tuple[Image.Image, bool]:
    """(the decoded photo, whether it came from an upload file, now deleted). The file's copies
    are deleted once it is decoded; a file already deleted is found among ``recent`` photos or
    refused with :class:`PhotoGoneError`. ``what`` prefixes decoding errors ("Style reference")."""
    if isinstance(source, str) and not Path(source).is_file():
        found = recent.recall(page, source)
        if found is None:
            raise PhotoGoneError()
        return found, True
    try:
        photo = load_image(source)
    except PhotoError as exc:
        forget_upload(source, keep)  # an unreadable file is not kept either
        raise type(exc)(f"{what}: {exc}" if what else str(exc)) from None
    if forget_upload(source, keep) and isinstance(source, str):
        recent.remember(page, source, photo)
        return photo, True
    return photo, False


@dataclass(frozen=True)
class CheckedClick:
    """A checked click's ticket, and the photos the page should now show inline (None where
    the page's value stays as it was: sent inline already, or an example photo)."""

    ticket: str
    selfie: Image.Image | None = None
    reference: Image.Image | None = None

    def shown(self) -> tuple[Image.Image | None, Image.Image | None]:
        """(selfie, reference) for the page."""
        return self.selfie, self.reference


def new_seed() -> int:
    """A random seed for the seed box."""
    return random.randint(0, MAX_SEED)


class CompareHandlers:
    """The Compare tab's event handlers, bound to the app's callbacks."""

    def __init__(self, cb: CompareCallbacks, pending: PendingClicks | None = None) -> None:
        self.cb = cb
        self.pending = pending if pending is not None else PendingClicks()
        self.n_slots = len(cb.methods)
        self.recent = RecentPhotos()
        self.keep = frozenset(file_digest(p) for p in cb.examples)  # Gradio serves these to all
        self._refusals: OrderedDict[str, tuple[str, bool]] = OrderedDict()  # page -> refusal
        self._lock = threading.Lock()

    def request(
        self,
        style: str,
        prompt: str,
        methods: list[str] | None,
        seed: Any,  # as sent: the request accepts whole numbers and refuses the rest
        num_inference_steps: float,
        guidance_scale: float,
        use_style_strength: bool,
        ip_adapter_scale: float | None,
        size: int,
        reference: Image.Image | None,
    ) -> CompareRequest:
        """The controls' values as a request; the request validates them (its errors name them).

        The identity strength is the style's unless the page unticks "Style's identity strength";
        a family without FaceID reads none, and the request leaves it out whatever was sent.
        """
        return CompareRequest.from_settings(
            self.cb.settings,
            style=style,
            prompt=prompt,
            methods=[m for m in self.cb.methods if m in (methods or [])],  # UI order
            seed=None if seed in (None, "") else seed,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            ip_adapter_scale=None if use_style_strength else ip_adapter_scale,
            height=size,
            width=size,
            reference_images=() if reference is None else (reference,),
        )

    def check(
        self,
        selfie: str | bytes | None,
        style: str,
        prompt: str,
        methods: list[str] | None,
        seed: Any,
        num_inference_steps: float,
        guidance_scale: float,
        use_style_strength: bool,
        ip_adapter_scale: float | None,
        size: int,
        reference: str | bytes | None,
        page: str = "",
    ) -> CheckedClick:
        """Before queueing: plain messages for what the page can tell at once. Decodes the photos
        (their upload files are deleted), builds the click's request and keeps both under the
        ticket its render takes them by."""
        if selfie is None:
            raise gr.Error("Upload a selfie (or pick an example photo) first.")
        if not methods:
            raise gr.Error("Tick at least one method to compare.")
        with user_errors("The comparison"):
            photo, photo_read = read_photo(selfie, page, self.recent, self.keep)
            ref, ref_read = (
                read_photo(reference, page, self.recent, self.keep, "Style reference")
                if reference is not None
                else (None, False)
            )
            request = self.request(
                style,
                prompt,
                methods,
                seed,
                num_inference_steps,
                guidance_scale,
                use_style_strength,
                ip_adapter_scale,
                size,
                ref,
            )
        # the status line counts the wait in the queue from now
        ticket = self.pending.put(Click(photo, request, time.time()))
        return CheckedClick(ticket, photo if photo_read else None, ref if ref_read else None)

    def upload(
        self, selfie: str | bytes | None, status: str = "", request: gr.Request | None = None
    ) -> list[Any]:
        """A selfie as it arrives: [selfie, row, *row values]. It is decoded with the app's checks
        and its file deleted; the page then shows (and sends back) the decoded photo. A file the
        app cannot read is taken off the page (no broken image), with the previous row, and the
        status says why; a readable one clears an old refusal and leaves the row as it was."""
        n_values = 2 + len(cleared_row("", self.n_slots))
        unchanged = [gr.update() for _ in range(n_values)]
        if selfie is None:
            return unchanged
        try:
            photo, read = read_photo(selfie, _page(request), self.recent, self.keep)
        except (PhotoError, PhotoGoneError) as exc:
            message = f"⚠️ Selfie: {plain_md(str(getattr(exc, 'message', exc)))}"
            return [None, None, *cleared_row(message, self.n_slots)]
        values = unchanged
        values[0] = inline_image(photo) if read else gr.update()
        if (status or "").lstrip().startswith("⚠"):  # a refusal about an earlier photo
            values[2] = ""
        return values

    def upload_reference(
        self, reference: str | bytes | None, request: gr.Request | None = None
    ) -> tuple[Any, Any]:
        """A style reference as it arrives: (reference, status), decoded and its file deleted as
        the selfie is; an unreadable one is taken off the page and the status says why."""
        if reference is None:
            return gr.update(), gr.update()
        try:
            ref, read = read_photo(
                reference, _page(request), self.recent, self.keep, "Style reference"
            )
        except (PhotoError, PhotoGoneError) as exc:
            return None, f"⚠️ {plain_md(str(getattr(exc, 'message', exc)))}"
        return (inline_image(ref) if read else gr.update()), gr.update()

    def click(
        self,
        selfie: str | bytes | None,
        blind: bool,
        style: str,
        prompt: str,
        methods: list[str] | None,
        seed: Any,
        num_inference_steps: float,
        guidance_scale: float,
        use_style_strength: bool,
        ip_adapter_scale: float | None,
        size: int,
        reference: str | bytes | None,
        request: gr.Request | None = None,
    ) -> list[Any]:
        """Generate, on the page: :meth:`check`, then [ticket, the inputs the browser keeps, the
        selfie and the reference (inline when their files were read now), no row, *the row
        cleared with a "starting" status]. A refusal is kept for :meth:`refused` (Gradio shows
        the error, and runs that page's failure step) and raised."""
        fields = [style, prompt, methods, seed, num_inference_steps, guidance_scale]
        fields += [use_style_strength, ip_adapter_scale, size]
        page = _page(request)
        try:
            checked = self.check(selfie, *fields, reference, page=page)
        except gr.Error as exc:
            self._remember_refusal(page, str(exc.message), isinstance(exc, PhotoGoneError))
            raise
        names = [n for n in SAVED_INPUTS if n != "blind"]  # the fields' order
        saved = dict(zip(names, fields, strict=True)) | {"blind": bool(blind)}
        photos = [gr.update() if p is None else inline_image(p) for p in checked.shown()]
        row = cleared_row(STARTING, self.n_slots)
        return [checked.ticket, json.dumps(saved), *photos, None, *row]

    def _remember_refusal(self, key: str, message: str, photo_gone: bool = False) -> None:
        with self._lock:
            self._refusals[key] = (message, photo_gone)
            while len(self._refusals) > 512:  # pages that never came back for theirs
                self._refusals.popitem(last=False)

    def refused(self, request: gr.Request | None = None) -> list[Any]:
        """After a refused click: [the selfie, no row, *the row cleared, the refusal in the
        status]. The selfie is taken off the page only when the app no longer holds it."""
        with self._lock:
            message, gone = self._refusals.pop(
                _page(request), ("This click was refused: press Generate again.", False)
            )
        return [None if gone else gr.update(), None, *cleared_row(f"⚠️ {message}", self.n_slots)]

    def run(
        self,
        blinds: list[bool],
        tickets: list[str],
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio finds the bar by this default)
    ) -> list[list[Any]]:
        """Batched: one value per person in each list; one list per output component back
        (the values :func:`row_values` lays out: status, face, face info, row key, slots)."""
        clicks = [self.pending.take(t) for t in tickets]
        outcomes: list[ComparisonResult | UserError | None] = [
            None if c else ClickExpiredError(EXPIRED) for c in clicks
        ]
        asked = [(i, c.photo, c.request) for i, c in enumerate(clicks) if c]
        report = batch_progress(progress, len(asked))
        try:
            with user_errors("The comparison", passthrough=(RenderCancelled,)):
                done = (
                    self.cb.compare_many([(img, req) for _, img, req in asked], report)
                    if asked
                    else []
                )
        except RenderCancelled:  # no one is waiting for it any more
            report.done(cancelled=True)
            n_values = ROW_VALUES + SLOT_VALUES * self.n_slots
            return [[gr.update()] * len(tickets) for _ in range(n_values)]
        if asked:
            report.done()
        for (i, _, _), outcome in zip(asked, done, strict=True):
            outcomes[i] = outcome
        now = time.time()
        rows = [
            row_values(o, bool(b), self.n_slots, now - c.clicked if c else 0.0)
            for o, b, c in zip(outcomes, blinds, clicks, strict=True)
        ]
        return [list(col) for col in zip(*rows, strict=True)]  # one list per output component

    def show(self, key: str, current: ShownRow | None) -> tuple[Any, Any]:
        """The batched call's row becomes this page's state, and is remembered by the browser."""
        if not key:  # this page's row failed: its status says why, and no row is left to rate
            return None, ""
        row = shown_row(self.cb.recent, key)
        if row is None or (current is not None and current.key() == key):
            return gr.update(), gr.update()
        return row, key


def _page(request: gr.Request | None) -> str:
    """The page a request came from (Gradio's session hash), or "" outside a page."""
    return getattr(request, "session_hash", None) or ""


def saved_inputs(saved: str | None) -> dict[str, Any]:
    """The controls a page's last click sent (what :meth:`CompareHandlers.click` kept in the
    browser), by name; {} when nothing readable was kept."""
    try:
        data = json.loads(saved or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in SAVED_INPUTS and v is not None}
