"""The Compare tab: selfie + style + methods in, one captioned card per method out.

Layout here (the controls, the output cards), handlers in :mod:`demo.compare_handlers`, and the
wiring between them in :func:`_wire`. Rows asked for within a render are batched (Gradio's
``batch=True``): each person's outputs keep their own face and seed, so they look exactly as if
rendered alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from demo.compare_handlers import CompareCallbacks, CompareHandlers, new_seed
from demo.raw_inputs import (
    face_slider,
    inline_image_output,
    offered_choices,
    raw_image,
    raw_number,
)
from demo.rows import slot_label
from demo.temp_cache import kept_minutes
from pipelines.core.request import DEFAULT_IP_ADAPTER_SCALE
from pipelines.core.settings import MAX_SEED

__all__ = [
    "CompareCallbacks",
    "CompareTab",
    "Slot",
    "availability_info",
    "create_compare_tab",
    "method_choices",
]

SIZES = [256, 384, 512, 640, 768, 1024, 1536]  # offered where the model family allows them
MAX_BATCH_ROWS = 8  # rows of different people rendered in one call


@dataclass
class Slot:
    """One output card. In blind mode a slot shows a shuffled, unlabelled method."""

    column: gr.Column
    image: gr.Image
    caption: gr.Markdown
    prompt: gr.Textbox
    why: gr.Accordion
    trace: gr.Markdown
    beside: gr.Accordion  # "Compare with your face": hidden where the row has no face crop
    slider: gr.ImageSlider  # the face crop and the output, a slider between them

    def components(self) -> list[Any]:
        """The slot's outputs, in the order :func:`row_values` fills them."""
        return [
            self.column,
            self.image,
            self.caption,
            self.prompt,
            self.why,
            self.trace,
            self.beside,
            self.slider,
        ]


@dataclass
class Controls:
    """The left column: the selfie and everything a click sends."""

    column: gr.Column
    selfie: gr.Image
    style: gr.Dropdown
    prompt: gr.Textbox
    methods: gr.CheckboxGroup
    seed: gr.Number
    randomize: gr.Button
    blind: gr.Checkbox
    num_inference_steps: gr.Slider
    guidance_scale: gr.Slider
    use_style_strength: gr.Checkbox
    ip_adapter_scale: gr.Slider
    size: gr.Dropdown
    reference: gr.Image
    generate: gr.Button
    status: gr.Markdown  # under Generate: queue place, progress, time left, or why it failed
    face: gr.Image
    face_info: gr.Markdown

    def fields(self) -> list[Any]:
        """The request's inputs, in the order :meth:`CompareHandlers.request` takes them."""
        return [
            self.style,
            self.prompt,
            self.methods,
            self.seed,
            self.num_inference_steps,
            self.guidance_scale,
            self.use_style_strength,
            self.ip_adapter_scale,
            self.size,
            self.reference,
        ]


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
    inputs: list[Any]  # the controls a reload gives back, in SAVED_INPUTS order
    saved_inputs: gr.BrowserState  # their values at the last click (JSON), kept across reloads
    results: gr.Column | None = None  # the cards' column: the rating panel goes right under them


# ----------------------------------------------------------------------------- layout


def create_compare_tab(cb: CompareCallbacks) -> CompareTab:
    """The selfie, style, methods and generation controls, and one card per method."""
    with gr.Row(equal_height=False):
        controls = _controls(cb)
        with gr.Column(scale=3, elem_id="results-col") as results:
            # a phone shows two cards: this line says there are more (CSS shows it from three)
            gr.Markdown("← Swipe sideways to see every picture →", elem_id="swipe-hint")
            slots = _slots(len(cb.methods))
    status = controls.status
    # rows are batched across people, and Gradio keeps per-page State apart only outside batches:
    # the batched call fills a plain component; a per-page step turns it into state
    batch_key = gr.Textbox(visible=False)
    ticket = gr.Textbox(visible=False)  # the checked click's request, for the batched render
    row_outputs: list[Any] = [status, controls.face, controls.face_info, batch_key]
    for slot in slots:
        row_outputs += slot.components()
    tab = CompareTab(
        slots=slots,
        result=gr.State(None),
        # a fixed secret, so a restarted server still reads it (and the row kept on disk)
        row_key=gr.BrowserState(
            "", storage_key="become-lab-last-row", secret=cb.settings.browser_secret or None
        ),
        row_outputs=row_outputs,
        blind=controls.blind,
        style=controls.style,
        methods=controls.methods,
        generate=controls.generate,
        controls=controls.column,
        status=status,
        inputs=[
            controls.style,
            controls.prompt,
            controls.methods,
            controls.seed,
            controls.blind,
            controls.num_inference_steps,
            controls.guidance_scale,
            controls.use_style_strength,
            controls.ip_adapter_scale,
            controls.size,
        ],
        saved_inputs=gr.BrowserState(  # the fixed secret: a restart still reads them
            "", storage_key="become-lab-inputs", secret=cb.settings.browser_secret or None
        ),
        results=results,
    )
    _wire(controls, tab, CompareHandlers(cb), batch_key, ticket)
    return tab


def _controls(cb: CompareCallbacks) -> Controls:
    """The selfie, style, prompt, methods, seed and blind mode; the rest under "Advanced"."""
    with gr.Column(scale=1, min_width=320) as column:
        selfie = raw_image(  # the app decodes the file itself, with its own checks
            label="Selfie", sources=["upload", "webcam", "clipboard"], height=300, elem_id="selfie"
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
        methods = offered_choices(  # a tick the page no longer offers is dropped, not refused
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
            advanced = _advanced(cb)
        generate = gr.Button("Generate", variant="primary", elem_id="generate")
        # where the person just clicked: the queue place, each step and the time left, or why not
        status = gr.Markdown(elem_id="run-status", min_height=56)
        with gr.Row():
            face = inline_image_output(
                label="Detected face", height=140, interactive=False, elem_id="face-crop"
            )
            face_info = gr.Markdown(elem_id="face-info")
    return Controls(
        column=column,
        selfie=selfie,
        style=style,
        prompt=prompt,
        methods=methods,
        seed=seed,
        randomize=randomize,
        blind=blind,
        generate=generate,
        status=status,
        face=face,
        face_info=face_info,
        **advanced,
    )


def _advanced(cb: CompareCallbacks) -> dict[str, Any]:
    """Steps, guidance, identity strength, size and a style reference, within the family's limits.

    Each control is named as the request field (and diffusers argument) it sets; a control the
    family does not read is hidden (identity strength without a FaceID adapter, guidance for a
    step-distilled family).
    """
    s = cb.settings
    limits = s.family.limits  # sizes differ per model family
    faceid = s.family.uses_faceid
    steps_limit, guidance_limit = limits["num_inference_steps"], limits["guidance_scale"]
    num_inference_steps = gr.Slider(
        steps_limit.low, steps_limit.high, value=s.num_inference_steps, step=1, label="Steps"
    )
    guidance_scale = gr.Slider(
        guidance_limit.low,
        guidance_limit.high,
        value=s.guidance_scale,
        step=0.5,
        label="Guidance",
        visible=s.family.reads_guidance,
        elem_id="guidance-scale",
    )
    use_style_strength = gr.Checkbox(
        value=True, label="Style's identity strength", visible=faceid, elem_id="use-style-strength"
    )
    identity = limits["ip_adapter_scale"]
    ip_adapter_scale = gr.Slider(
        identity.low,
        identity.high,
        value=DEFAULT_IP_ADAPTER_SCALE,
        step=0.05,
        label="Identity strength",
        visible=faceid,
        elem_id="ip-adapter-scale",
    )
    size_limit = limits["height"]
    size = gr.Dropdown(
        choices=sorted({*(x for x in SIZES if not size_limit.problem("height", x)), s.size}),
        value=s.size,
        label="Size (px)",
    )
    reference = raw_image(label="Style reference for inversion (optional)", height=160)
    gr.Markdown(
        "Inversion and ensemble also use the style's reference images and its "
        "top-rated outputs that raters agreed to keep. "
        + PHOTO_PROMISE.format(minutes=kept_minutes())
    )
    return {
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "use_style_strength": use_style_strength,
        "ip_adapter_scale": ip_adapter_scale,
        "size": size,
        "reference": reference,
    }


def _slots(n: int) -> list[Slot]:
    """``n`` hidden output cards in an equal grid (the page's CSS), filled by each row."""
    slots: list[Slot] = []
    with gr.Row(elem_id="results-row"):
        for i in range(n):
            with gr.Column(visible=False, min_width=200, elem_classes=["slot-card"]) as col:
                image = gr.Image(
                    label=slot_label(i), interactive=False, height=300, elem_id=f"out-image-{i}"
                )
                caption = gr.Markdown(elem_id=f"out-caption-{i}")
                final = gr.Textbox(
                    # a short label: a long one wrapped over the copy button and hid it
                    label="Final prompt",
                    info="exactly what was rendered",
                    lines=4,
                    interactive=False,
                    buttons=["copy"],
                    elem_id=f"out-prompt-{i}",
                )
                with gr.Accordion("Why this prompt", open=False) as why:
                    trace = gr.Markdown(elem_id=f"out-trace-{i}")
                # closed, so a swipe across the row of cards never drags a slider by mistake
                with gr.Accordion("Compare with your face", open=False) as beside:
                    slider = face_slider(
                        label="Your face ↔ this picture",
                        show_label=False,  # the fold's title says it; a label covers the face
                        interactive=False,
                        slider_position=50,
                        max_height=300,
                        buttons=["fullscreen"],
                        elem_id=f"out-slider-{i}",
                    )
            slots.append(Slot(col, image, caption, final, why, trace, beside, slider))
    return slots


# ----------------------------------------------------------------------------- wiring


def _wire(
    c: Controls, tab: CompareTab, h: CompareHandlers, batch_key: gr.Textbox, ticket: gr.Textbox
) -> None:
    """Generate: check at once, render in batches, then make the row this page's state."""
    c.randomize.click(new_seed, outputs=c.seed, api_name=False)
    c.selfie.upload(  # read once, its file deleted; a file the app cannot read is refused now
        h.upload,
        [c.selfie, c.status],
        [c.selfie, tab.result, *tab.row_outputs],
        api_name=False,
        concurrency_limit=None,
        show_progress="hidden",
    ).then(None, js=SHOW_STATUS)
    c.reference.upload(
        h.upload_reference,
        c.reference,
        [c.reference, c.status],
        api_name=False,
        concurrency_limit=None,
        show_progress="hidden",
    )
    # the status under Generate in view from the click on (on a phone, Generate sits at the
    # screen's bottom edge and its status below it)
    c.generate.click(None, js=SHOW_STATUS, api_name=False, queue=False)
    clicked = c.generate.click(
        h.click,
        [c.selfie, c.blind, *c.fields()],
        [ticket, tab.saved_inputs, c.selfie, c.reference, tab.result, *tab.row_outputs],
        api_name=False,
        concurrency_limit=None,  # checks run at once, never behind a render
        show_progress="hidden",
    )
    clicked.failure(  # refused: its message beside Generate, no old row left to rate
        h.refused,
        None,
        [c.selfie, tab.result, *tab.row_outputs],
        api_name=False,
        show_progress="hidden",
    ).then(None, js=SHOW_STATUS)
    clicked.success(None, js=SHOW_STATUS)  # "checked, starting…" has landed: bring it in view
    clicked.success(
        h.run,
        inputs=[c.blind, ticket],  # the photo travels with the checked click
        outputs=tab.row_outputs,
        api_name=False,
        batch=True,
        max_batch_size=MAX_BATCH_ROWS,
        concurrency_id="render",
        concurrency_limit=1,
        show_progress_on=[tab.status],
    ).then(h.show, [batch_key, tab.result], [tab.result, tab.row_key], api_name=False).then(
        None, js=SHOW_ROW
    )


# the finished row, scrolled into view (or, when it failed, the status that says why)
SHOW_ROW = """() => {
  const row = document.querySelector('#results-row');
  if (row) row.scrollLeft = 0;  // a new row opens on its first card (Output A), not scrolled
  const status = document.querySelector('#run-status');
  const failed = status && status.innerText.trim().startsWith('⚠');
  const target = failed ? status : document.querySelector('#results-row');
  if (target) target.scrollIntoView({behavior: 'smooth', block: failed ? 'nearest' : 'start'});
}"""
# the status that says why a click or an upload was refused; after the page has drawn the new
# message (the outputs of the step before are applied asynchronously), wherever the person scrolled
SHOW_STATUS = """() => {
  const show = () => {
    const status = document.querySelector('#run-status');
    if (status && status.innerText.trim()) status.scrollIntoView({block: 'center'});
  };
  requestAnimationFrame(show);
  setTimeout(show, 300);
}"""


# ----------------------------------------------------------------------------- words

PHOTO_PROMISE = (
    "The app never saves your selfie or this reference: it reads each once, in memory, and "
    "deletes the uploaded file at once; this page holds the photo for as long as it is open. "
    "The pictures made from it are deleted from the web server's cache within {minutes} "
    "minutes (and whenever the app starts or stops). Only the face's embedding stays, in "
    "memory, so a second comparison skips detection."
)


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
