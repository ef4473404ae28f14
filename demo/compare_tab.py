"""The Compare tab: selfie + style + methods in, one captioned card per method out.

Rows asked for within a render are batched (Gradio's ``batch=True``): each person's outputs keep
their own face and seed, so they look exactly as if rendered alone.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from demo.errors import user_errors
from demo.queue_progress import RenderCancelled, batch_progress
from demo.raw_inputs import raw_image, raw_number
from demo.rows import ShownRow, row_values, shown_row, slot_label
from pipelines.core.errors import UserError
from pipelines.core.request import CompareRequest, Progress
from pipelines.core.results import ComparisonResult
from pipelines.core.settings import MAX_SEED, Settings
from pipelines.faces.analysis import ImageSource, PhotoError, load_image

SIZES = [256, 384, 512, 640, 768, 1024, 1536]  # offered where the model family allows them
MAX_BATCH_ROWS = 8  # rows of different people rendered in one call

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
    settings: Settings  # request defaults


@dataclass
class Slot:
    """One output card. In blind mode a slot shows a shuffled, unlabelled method."""

    column: gr.Column
    image: gr.Image
    caption: gr.Markdown
    prompt: gr.Textbox
    why: gr.Accordion
    trace: gr.Markdown

    def components(self) -> list[Any]:
        """The slot's outputs, in the order :func:`row_values` fills them."""
        return [self.column, self.image, self.caption, self.prompt, self.why, self.trace]


@dataclass
class CompareTab:
    """Handles the feedback panel wires into."""

    slots: list[Slot]
    result: gr.State  # ShownRow | None
    row_key: gr.BrowserState  # ShownRow.key() of the last row, kept across refreshes
    row_outputs: list[Any]  # what row_values fills: status, face, face info, key, slots
    blind: gr.Checkbox
    style: gr.Dropdown
    methods: gr.CheckboxGroup
    generate: gr.Button
    controls: gr.Column  # selfie and generation controls, hidden while a deck is rated
    status: gr.Markdown


def create_compare_tab(cb: CompareCallbacks) -> CompareTab:
    """The selfie, style, methods and generation controls, and one card per method."""
    n = len(cb.methods)
    s = cb.settings
    family_limits = s.family.limits  # sizes differ per model family
    limits = {name: (limit.low, limit.high) for name, limit in family_limits.items()}
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320) as controls:
            selfie = raw_image(  # the app decodes the file itself, with its own checks
                label="Selfie",
                sources=["upload", "webcam", "clipboard"],
                height=300,
                elem_id="selfie",
            )
            if cb.examples:
                gr.Examples(
                    examples=[[p] for p in cb.examples],
                    inputs=[selfie],
                    label="Try a photo",
                    api_visibility="private",  # no endpoint beyond /compare, /rate, /leaderboard
                )
            style = gr.Dropdown(
                choices=list(cb.styles), value=cb.styles[0][1], label="Style", elem_id="style"
            )
            prompt = gr.Textbox(
                value=cb.default_prompt, label="Base prompt", lines=2, elem_id="base-prompt"
            )
            methods = gr.CheckboxGroup(
                choices=method_choices(cb.methods, cb.summaries),
                value=list(cb.default_methods),
                label="Methods to compare",
                info="Checking which methods can run here…",  # set on page load: may load CLIP
                elem_id="methods",
            )
            with gr.Row():
                seed = raw_number(value=42, precision=0, label="Seed", minimum=0, maximum=MAX_SEED)
                randomize = gr.Button("🎲 New seed", size="sm")
            blind = gr.Checkbox(
                value=False,
                label="Blind mode: shuffle and hide method names until ratings are submitted",
                elem_id="blind",
            )
            with gr.Accordion("Advanced", open=False):
                # each control is named as the request field (and diffusers argument) it sets
                num_inference_steps = gr.Slider(
                    *limits["num_inference_steps"],
                    value=s.num_inference_steps,
                    step=1,
                    label="Steps",
                )
                guidance_scale = gr.Slider(
                    *limits["guidance_scale"], value=s.guidance_scale, step=0.5, label="Guidance"
                )
                use_style_strength = gr.Checkbox(value=True, label="Style's identity strength")
                ip_adapter_scale = gr.Slider(
                    *limits["ip_adapter_scale"], value=0.8, step=0.05, label="Identity strength"
                )
                size_limit = family_limits["height"]
                size = gr.Dropdown(
                    choices=sorted(
                        {*(x for x in SIZES if not size_limit.problem("height", x)), s.size}
                    ),
                    value=s.size,
                    label="Size (px)",
                )
                reference = raw_image(label="Style reference for inversion (optional)", height=160)
                gr.Markdown(
                    "Inversion and ensemble also use the style's reference images and its "
                    "top-rated outputs that raters agreed to keep. Neither the selfie nor this "
                    "reference is stored."
                )
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Row():
                face = gr.Image(label="Detected face", height=140, interactive=False)
                face_info = gr.Markdown(elem_id="face-info")
        with gr.Column(scale=3):
            # the queue position, progress and time left show here, above the results
            status = gr.Markdown(elem_id="run-status", min_height=48)
            slots: list[Slot] = []
            with gr.Row(elem_id="results-row"):
                for i in range(n):
                    with gr.Column(visible=False, min_width=200, elem_classes=["slot-card"]) as col:
                        image = gr.Image(
                            label=slot_label(i),
                            interactive=False,
                            height=300,
                            elem_id=f"out-image-{i}",
                        )
                        caption = gr.Markdown(elem_id=f"out-caption-{i}")
                        final = gr.Textbox(
                            label="Final prompt (exactly what was rendered)",
                            lines=4,
                            interactive=False,
                            buttons=["copy"],
                            elem_id=f"out-prompt-{i}",
                        )
                        with gr.Accordion("Why this prompt", open=False) as why:
                            trace = gr.Markdown(elem_id=f"out-trace-{i}")
                    slots.append(Slot(col, image, caption, final, why, trace))
    result = gr.State(None)
    row_key = gr.BrowserState("", storage_key="become-lab-last-row")
    # rows are batched across people, and Gradio keeps per-page State apart only outside batches:
    # the batched call fills a plain component; a per-page step turns it into state
    batch_key = gr.Textbox(visible=False)
    clicked_at = gr.Number(visible=False)

    randomize.click(lambda: random.randint(0, MAX_SEED), outputs=seed, api_name=False)

    def request_from(
        style: str,
        prompt: str,
        methods: list[str],
        seed: Any,  # as sent: the request accepts whole numbers and refuses the rest
        num_inference_steps: int,
        guidance_scale: float,
        use_style_strength: bool,
        ip_adapter_scale: float,
        size: int,
        reference: str | bytes | None,
    ) -> CompareRequest:
        return CompareRequest.from_settings(
            cb.settings,
            style=style,
            prompt=prompt,
            methods=[m for m in cb.methods if m in (methods or [])],  # UI order, not click order
            seed=None if seed in (None, "") else seed,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            ip_adapter_scale=None if use_style_strength else ip_adapter_scale,
            height=size,
            width=size,
            reference_images=style_reference(reference),
        )

    def check(selfie: Any, *fields: Any) -> float:
        """Before queueing: plain messages for what the page can tell at once."""
        if selfie is None:
            raise gr.Error("Upload a selfie (or pick an example photo) first.")
        if not fields[2]:
            raise gr.Error("Tick at least one method to compare.")
        with user_errors("The comparison"):
            request_from(*fields)
        return time.time()  # the status line counts the wait in the queue from here

    def run(*columns: list[Any], progress: gr.Progress = gr.Progress()) -> list[list[Any]]:  # noqa: B008
        """Batched: each argument is a list with one value per person in the batch."""
        selfies, blinds, clicked = columns[0], columns[1], columns[-1]
        outcomes: list[ComparisonResult | UserError | None] = [None] * len(selfies)
        asked: list[tuple[int, ImageSource, CompareRequest]] = []
        for i, fields in enumerate(zip(*columns[2:-1], strict=True)):
            try:
                asked.append((i, selfies[i], request_from(*fields)))
            except UserError as exc:
                outcomes[i] = exc
        started = min((c for c in clicked if c), default=time.time())
        try:
            with user_errors("The comparison", passthrough=(RenderCancelled,)):
                done = cb.compare_many(
                    [(img, req) for _, img, req in asked],
                    batch_progress(progress, time.monotonic() - (time.time() - started)),
                )
        except RenderCancelled:  # no one is waiting for it any more
            return [[gr.update()] * len(selfies) for _ in range(4 + 6 * n)]
        for (i, _, _), outcome in zip(asked, done, strict=True):
            outcomes[i] = outcome
        rows = [
            row_values(o, bool(b), n, time.time() - (c or time.time()))
            for o, b, c in zip(outcomes, blinds, clicked, strict=True)
        ]
        return [list(col) for col in zip(*rows, strict=True)]  # one list per output component

    def show(key: str, current: ShownRow | None) -> tuple[Any, Any]:
        """The batched call's row becomes this page's state, and is remembered by the browser."""
        row = shown_row(cb.recent, key)
        if row is None or (current is not None and current.key() == key):
            return gr.update(), gr.update()  # this page's row failed: keep what it shows
        return row, key

    row_outputs: list[Any] = [status, face, face_info, batch_key]
    for slot in slots:
        row_outputs += slot.components()
    fields = [
        style,
        prompt,
        methods,
        seed,
        num_inference_steps,
        guidance_scale,
        use_style_strength,
        ip_adapter_scale,
        size,
        reference,
    ]
    generate.click(
        check,
        [selfie, *fields],
        clicked_at,
        api_name=False,
        concurrency_limit=None,  # checks run at once, never behind a render
        show_progress="hidden",
    ).success(
        run,
        inputs=[selfie, blind, *fields, clicked_at],
        outputs=row_outputs,
        api_name=False,
        batch=True,
        max_batch_size=MAX_BATCH_ROWS,
        concurrency_id="render",
        concurrency_limit=1,
        show_progress_on=[status],
        scroll_to_output=True,
    ).then(show, [batch_key, result], [result, row_key], api_name=False)
    return CompareTab(
        slots=slots,
        result=result,
        row_key=row_key,
        row_outputs=row_outputs,
        blind=blind,
        style=style,
        methods=methods,
        generate=generate,
        controls=controls,
        status=status,
    )


def style_reference(source: str | bytes | None) -> tuple[Image.Image, ...]:
    """The uploaded style reference, decoded like the selfie; its errors say which photo failed."""
    if source is None:
        return ()
    try:
        return (load_image(source),)
    except PhotoError as exc:
        raise type(exc)(f"Style reference: {exc}") from None


def method_choices(methods: Sequence[str], summaries: Mapping[str, str]) -> list[tuple[str, str]]:
    """Checkbox labels that say in plain words what each method does."""
    return [(f"{m} — {summaries[m]}" if summaries.get(m) else m, m) for m in methods]


def availability_info(av: dict[str, str | None]) -> str:
    """One line for participants: every method available, or which are not (details: Staff)."""
    missing = [m for m, why in av.items() if why]
    if not missing:
        return "All methods can run here."
    return (
        f"Not available on this server right now: {', '.join(missing)} "
        "(the organisers can see why in the Staff tab)."
    )
