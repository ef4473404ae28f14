"""The Compare tab: selfie + style + methods in, one captioned column per method out."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from demo.formatting import caption_md, trace_md
from pipelines.settings import GUIDANCE_RANGE, MAX_SEED, SIZE_RANGE, STEPS_RANGE

log = logging.getLogger(__name__)

SIZES = [256, 384, 512, 640, 768]


@dataclass(frozen=True)
class CompareCallbacks:
    """What the tab needs from the app; callables, so the tab never touches a model."""

    compare: Callable[..., Any]  # ComparisonService.compare
    styles: Sequence[tuple[str, str]]  # (display name, id)
    methods: Sequence[str]
    availability: Callable[[], dict[str, str | None]]
    examples: Sequence[str]
    default_prompt: str
    default_methods: Sequence[str]
    steps: int
    guidance: float
    size: int
    user_errors: tuple[type[BaseException], ...]  # shown as gr.Error with their message
    method_descriptions: dict[str, str] = field(default_factory=dict)


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
    result: gr.State  # {"comparison": ComparisonResult.to_json(), "order": [...], "blind": bool}
    blind: gr.Checkbox
    style: gr.Dropdown
    methods: gr.CheckboxGroup
    generate: gr.Button


def slot_label(i: int) -> str:
    return f"Output {chr(ord('A') + i)}"


def create_compare_tab(cb: CompareCallbacks) -> CompareTab:
    n = len(cb.methods)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
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
                steps = gr.Slider(*STEPS_RANGE, value=cb.steps, step=1, label="Steps")
                guidance = gr.Slider(*GUIDANCE_RANGE, value=cb.guidance, step=0.5, label="Guidance")
                use_style_strength = gr.Checkbox(value=True, label="Style's identity strength")
                strength = gr.Slider(0.0, 1.5, value=0.8, step=0.05, label="Identity strength")
                size = gr.Dropdown(
                    choices=sorted(
                        {*(x for x in SIZES if SIZE_RANGE[0] <= x <= SIZE_RANGE[1]), cb.size}
                    ),
                    value=cb.size,
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
        selfie_img: Any,
        style_id: str,
        base_prompt: str,
        chosen: list[str],
        seed_value: float | None,
        blind_mode: bool,
        n_steps: int,
        cfg: float,
        style_strength: bool,
        strength_value: float,
        size_value: int,
        reference_img: Any,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's injection idiom
    ) -> list[Any]:
        if selfie_img is None:
            raise gr.Error("Upload a selfie (or pick an example photo) first.")
        if not chosen:
            raise gr.Error("Tick at least one method to compare.")
        try:
            res = cb.compare(
                selfie_img,
                style_id,
                base_prompt,
                [m for m in cb.methods if m in chosen],  # UI order, not click order
                None if seed_value is None else int(seed_value),
                steps=int(n_steps),
                guidance=float(cfg),
                identity_strength=None if style_strength else float(strength_value),
                size=int(size_value),
                reference_images=[reference_img] if reference_img is not None else [],
                progress=lambda f, msg: progress(f, desc=msg),
            )
        except cb.user_errors as exc:
            raise gr.Error(str(exc)) from None
        except Exception as exc:
            log.exception("comparison failed")
            raise gr.Error(f"The comparison failed: {exc}") from None
        return render_result(res, blind_mode, n)

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
            steps,
            guidance,
            use_style_strength,
            strength,
            size,
            reference,
        ],
        outputs=outputs,
        api_name=False,
        concurrency_id="render",
        concurrency_limit=1,
    )
    return CompareTab(
        slots=slots, result=result, blind=blind, style=style, methods=methods, generate=generate
    )


def render_result(res: Any, blind: bool, n_slots: int) -> list[Any]:
    """Values for [status, face, face_info, result] + 5 per slot."""
    order = list(range(len(res.outputs)))
    skipped = [o.method for o in res.outputs if o.image is None]
    if blind:  # unrendered methods would give themselves away: leave them out of the row
        order = [i for i in order if res.outputs[i].image is not None]
        random.Random(res.comparison_id).shuffle(order)
    data = res.to_json()
    state = {"comparison": data, "order": [res.outputs[i].method for i in order], "blind": blind}
    timings = res.timings
    status = (
        f"**{res.engine}** engine · seed `{res.seed}` · "
        f"{timings.get('total', 0.0):.1f} s (face {timings.get('face', 0.0):.2f} s, "
        f"prompts {timings.get('augment', 0.0):.2f} s, render {timings.get('render', 0.0):.1f} s)"
    )
    if blind:
        status += " · **blind mode**: methods are revealed after you submit ratings"
        if skipped:
            status += f" · not available here: {', '.join(skipped)}"
    values: list[Any] = [status, res.face_crop, res.face_notice, state]
    for slot in range(n_slots):
        if slot >= len(order):
            values += [gr.update(visible=False), None, "", "", ""]
            continue
        out = data["outputs"][order[slot]]
        label = slot_label(slot) if blind else out["method"]
        values += [
            gr.update(visible=True),
            gr.update(value=res.outputs[order[slot]].image, label=label),
            caption_md(out, None if blind else out["method"]),
            "" if blind else (out["prompt"] or ""),
            "" if blind else trace_md(out),
        ]
    return values


def availability_info(av: dict[str, str | None]) -> str:
    missing = [f"{m}: {why}" for m, why in av.items() if why]
    return "Unavailable here — " + " · ".join(missing) if missing else "All methods available."
