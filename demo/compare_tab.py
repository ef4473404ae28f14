"""The Compare tab: selfie + style + methods in, one captioned column per method out."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from demo.errors import user_errors
from demo.formatting import caption_md, trace_md
from pipelines.face import ImageSource
from pipelines.request import CompareRequest, Progress
from pipelines.results import ComparisonResult
from pipelines.settings import LIMITS, MAX_SEED, Settings

SIZES = [256, 384, 512, 640, 768]

Compare = Callable[[ImageSource, CompareRequest, Progress], ComparisonResult]


@dataclass(frozen=True)
class CompareCallbacks:
    """What the tab needs from the app; callables, so the tab never touches a model."""

    compare: Compare
    styles: Sequence[tuple[str, str]]  # (display name, id)
    methods: Sequence[str]
    availability: Callable[[], dict[str, str | None]]  # method -> None or why it cannot run
    examples: Sequence[str]
    default_prompt: str
    default_methods: Sequence[str]
    settings: Settings  # request defaults


@dataclass(frozen=True, eq=False)  # hashed by identity: Gradio hashes state to see changes
class ShownRow:
    """The row a page shows (its state): the result without images, in the order shown."""

    result: ComparisonResult
    order: tuple[str, ...]  # methods, left to right
    blind: bool

    def labels(self) -> list[str]:
        """What the page calls each output: letters in blind mode, else the method."""
        return [slot_label(i) for i in range(len(self.order))] if self.blind else list(self.order)


@dataclass
class Slot:
    """One output column. In blind mode a slot shows a shuffled, unlabelled method."""

    column: gr.Column
    image: gr.Image
    caption: gr.Markdown
    prompt: gr.Textbox
    trace: gr.Markdown


@dataclass
class CompareTab:
    """Handles the feedback panel wires into."""

    slots: list[Slot]
    result: gr.State  # ShownRow | None
    blind: gr.Checkbox
    style: gr.Dropdown
    methods: gr.CheckboxGroup
    generate: gr.Button
    controls: gr.Column  # selfie and generation controls, hidden while a deck is rated
    status: gr.Markdown
    face: gr.Image
    face_info: gr.Markdown

    def row_outputs(self) -> list[Any]:
        """The components :func:`render_result` fills, in its order."""
        outputs: list[Any] = [self.status, self.face, self.face_info, self.result]
        for s in self.slots:
            outputs += [s.column, s.image, s.caption, s.prompt, s.trace]
        return outputs


def slot_label(i: int) -> str:
    """The blind name of the ``i``-th output: "Output A", "Output B", ..."""
    return f"Output {chr(ord('A') + i)}"


def create_compare_tab(cb: CompareCallbacks) -> CompareTab:
    """The selfie, style, methods and generation controls, and one column per method."""
    n = len(cb.methods)
    s = cb.settings
    limits = {name: (LIMITS[name].low, LIMITS[name].high) for name in LIMITS}
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320) as controls:
            selfie = gr.Image(
                label="Selfie",
                type="pil",
                sources=["upload", "webcam", "clipboard"],
                height=300,
                elem_id="selfie",
            )
            if cb.examples:
                gr.Examples(
                    examples=[[p] for p in cb.examples], inputs=[selfie], label="Try a photo"
                )
            style = gr.Dropdown(
                choices=list(cb.styles), value=cb.styles[0][1], label="Style", elem_id="style"
            )
            prompt = gr.Textbox(
                value=cb.default_prompt, label="Base prompt", lines=2, elem_id="base-prompt"
            )
            methods = gr.CheckboxGroup(
                choices=list(cb.methods),
                value=list(cb.default_methods),
                label="Methods to compare",
                info="Checking which methods can run here…",  # set on page load: may load CLIP
                elem_id="methods",
            )
            with gr.Row():
                seed = gr.Number(value=42, precision=0, label="Seed", minimum=0, maximum=MAX_SEED)
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
                low, high = limits["height"]
                size = gr.Dropdown(
                    choices=sorted({*(x for x in SIZES if low <= x <= high), s.size}),
                    value=s.size,
                    label="Size (px)",
                )
                reference = gr.Image(
                    label="Style reference for inversion (optional)", type="pil", height=160
                )
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
            status = gr.Markdown(elem_id="run-status")
            slots: list[Slot] = []
            with gr.Row(equal_height=True):
                for i in range(n):
                    with gr.Column(visible=False, min_width=200) as col:
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
                        with gr.Accordion("Why this prompt", open=False):
                            trace = gr.Markdown(elem_id=f"out-trace-{i}")
                    slots.append(Slot(col, image, caption, final, trace))
    result = gr.State(None)

    randomize.click(lambda: random.randint(0, MAX_SEED), outputs=seed, api_name=False)

    def run(
        selfie: Image.Image | None,
        style: str,
        prompt: str,
        methods: list[str],
        seed: float | None,
        blind: bool,
        num_inference_steps: int,
        guidance_scale: float,
        use_style_strength: bool,
        ip_adapter_scale: float,
        size: int,
        reference: Image.Image | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's injection idiom
    ) -> list[Any]:
        if selfie is None:
            raise gr.Error("Upload a selfie (or pick an example photo) first.")
        if not methods:
            raise gr.Error("Tick at least one method to compare.")
        with user_errors("The comparison"):
            request = CompareRequest.from_settings(
                cb.settings,
                style=style,
                prompt=prompt,
                methods=[m for m in cb.methods if m in methods],  # UI order, not click order
                seed=None if seed is None else int(seed),
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                ip_adapter_scale=None if use_style_strength else ip_adapter_scale,
                height=size,
                width=size,
                reference_images=(reference,) if reference is not None else (),
            )
            res = cb.compare(selfie, request, lambda f, msg: progress(f, desc=msg))
        return render_result(res, blind, n)

    outputs: list[Any] = [status, face, face_info, result]
    for s in slots:
        outputs += [s.column, s.image, s.caption, s.prompt, s.trace]
    generate.click(
        run,
        inputs=[
            selfie,
            style,
            prompt,
            methods,
            seed,
            blind,
            num_inference_steps,
            guidance_scale,
            use_style_strength,
            ip_adapter_scale,
            size,
            reference,
        ],
        outputs=outputs,
        api_name=False,
        concurrency_id="render",
        concurrency_limit=1,
    )
    return CompareTab(
        slots=slots,
        result=result,
        blind=blind,
        style=style,
        methods=methods,
        generate=generate,
        controls=controls,
        status=status,
        face=face,
        face_info=face_info,
    )


def render_result(
    res: ComparisonResult, blind: bool, n_slots: int, shuffle_key: str | None = None
) -> list[Any]:
    """Values for [status, face, face_info, result] + 5 per slot.

    Blind rows are shuffled by ``shuffle_key`` (default: the comparison id, so one row reads
    the same on every page; a deck shuffles per rater so no position favours a method).
    """
    order = list(res.outputs)
    skipped = [o.method for o in res.outputs if not o.rendered]
    if blind:  # unrendered methods would give themselves away: leave them out of the row
        order = [o for o in order if o.rendered]
        random.Random(shuffle_key or res.comparison_id).shuffle(order)
    row = ShownRow(res.without_images(), tuple(o.method for o in order), blind)
    timings = res.timings
    status = (
        f"**{res.engine}** engine · seed `{res.request.seed}` · "
        f"{timings.get('total', 0.0):.1f} s (face {timings.get('face', 0.0):.2f} s, "
        f"prompts {timings.get('augment', 0.0):.2f} s, render {timings.get('render', 0.0):.1f} s)"
    )
    if blind:
        status += " · **blind mode**: methods are revealed after you submit ratings"
        if skipped:
            status += f" · not available here: {', '.join(skipped)}"
    values: list[Any] = [status, res.face_crop, res.face_notice, row]
    for slot in range(n_slots):
        if slot >= len(order):
            values += [gr.update(visible=False), None, "", "", ""]
            continue
        out = order[slot]
        label = slot_label(slot) if blind else out.method
        values += [
            gr.update(visible=True),
            gr.update(value=out.image, label=label),
            caption_md(out, None if blind else out.method),
            "" if blind else (out.prompt or ""),
            "" if blind else trace_md(out),
        ]
    return values


def availability_info(av: dict[str, str | None]) -> str:
    """One line: every method available, or which are not and why."""
    missing = [f"{m}: {why}" for m, why in av.items() if why]
    return "Unavailable here — " + " · ".join(missing) if missing else "All methods available."
