"""Flux2EditPipeline: FLUX.2 [klein] edits the selfie, N prompts with one selfie and one seed.

Identity comes from the selfie itself, passed to diffusers' ``Flux2KleinPipeline`` as the
reference ``image``: there is no face adapter. Each prompt is an edit instruction (the family's
template around a method's prompt, see ``pipelines.core.families``). The guarantees are the other
families': every output has its own CPU generator seeded with the seed, every prompt is encoded
on its own (padded to the encoder's 512 tokens), so output ``i`` depends only on prompt ``i``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from PIL import Image

from pipelines.models.base import (
    BatchedPipeline,
    PortraitInputError,
    PortraitPipelineOutput,
    StepProgress,
    check_prompts,
    hub_kwargs,
    seeded_generators,
    sync,
)
from pipelines.models.runtime import RuntimeOptions, pick_device, pick_dtype

if TYPE_CHECKING:
    from diffusers import Flux2KleinPipeline

    from pipelines.core.request import Progress
    from pipelines.models.jobs import RenderJob

MIN_REFERENCE_SIDE = 16  # the VAE's /8 latents are packed 2x2
HEAD_AND_SHOULDERS = 2.4  # crop height in face heights: the hair, the neck and some shoulders


def portrait_reference(
    image: Image.Image, bbox: tuple[float, float, float, float], width: int, height: int
) -> Image.Image:
    """A head-and-shoulders crop of ``image`` around the face ``bbox`` at the output's size.

    The crop has the output's aspect, holds the face a little above its centre (as a portrait
    does), stays inside the photo, and is resized to ``width`` x ``height``, so the model edits
    a portrait framed like the output it renders.
    """
    x1, y1, x2, y2 = bbox
    face = max(x2 - x1, y2 - y1, 1.0)
    crop_h = min(face * HEAD_AND_SHOULDERS, image.height)
    crop_w = crop_h * width / height
    if crop_w > image.width:
        crop_w = float(image.width)
        crop_h = crop_w * height / width
    left = min(max((x1 + x2) / 2 - crop_w / 2, 0.0), image.width - crop_w)
    top = min(max((y1 + y2) / 2 - crop_h * 0.45, 0.0), image.height - crop_h)
    box = (round(left), round(top), round(left + crop_w), round(top + crop_h))
    return image.crop(box).resize((width, height), Image.Resampling.LANCZOS)


class Flux2EditPipeline(BatchedPipeline):
    """A ``Flux2KleinPipeline`` that edits one reference selfie per call, shared read-only."""

    family_id: ClassVar[str] = "flux2-klein-edit"
    denoiser: ClassVar[str] = "transformer"

    def __init__(
        self,
        pipe: Flux2KleinPipeline,
        model_ids: dict[str, str],
        options: RuntimeOptions | None = None,
    ) -> None:
        super().__init__(pipe, model_ids, options or RuntimeOptions())

    # ------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(
        cls,
        base_model: str | Path,
        adapter: str | Path | None = None,
        adapter_weight: str | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool | None = None,
        options: RuntimeOptions | None = None,
        variant: str | None = None,
    ) -> Flux2EditPipeline:
        """Load FLUX.2 [klein] (hub id or folder in diffusers layout); it takes no adapter."""
        from diffusers import Flux2KleinPipeline

        if adapter or adapter_weight:
            raise PortraitInputError(
                f"adapter={adapter!r}, adapter_weight={adapter_weight!r}: {cls.family_id} edits "
                "the selfie and loads no face adapter; unset BECOME_FACEID_ADAPTER and "
                "BECOME_FACEID_WEIGHT"
            )
        dt = pick_dtype(pick_device(device), dtype)
        pipe = Flux2KleinPipeline.from_pretrained(
            str(base_model), dtype=dt, **hub_kwargs(local_files_only, variant)
        )
        return cls.from_components(
            pipe, model_ids={"base": str(base_model)}, device=device, dtype=dtype, options=options
        )

    @classmethod
    def from_components(
        cls,
        pipe: Flux2KleinPipeline,
        *,
        model_ids: dict[str, str] | None = None,
        device: str = "auto",
        dtype: str = "auto",
        options: RuntimeOptions | None = None,
    ) -> Flux2EditPipeline:
        """Wrap an in-memory ``Flux2KleinPipeline`` on ``device`` in ``dtype``."""
        dev = pick_device(device)
        dt = pick_dtype(dev, dtype)
        pipe.to(device=dev)
        if any(m.dtype != dt for m in (pipe.transformer, pipe.vae, pipe.text_encoder)):
            pipe.to(dtype=dt)
        pipe.set_progress_bar_config(disable=True)  # progress goes through `callback`
        return cls(pipe, model_ids or {"base": "Flux2KleinPipeline (in memory)"}, options)

    # ------------------------------------------------------------------------- inputs

    def check_inputs(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None,
        image: Image.Image,
        num_inference_steps: int,
        guidance_scale: float,
        height: int,
        width: int,
        seed: int,
        batch_size: int | None,
        callback: Progress | None,
    ) -> tuple[list[str], list[str], Image.Image]:
        """Validate everything; return (prompts, negative prompts, the reference as RGB)."""
        prompts, negatives = check_prompts(prompt, negative_prompt)
        if not isinstance(image, Image.Image):
            raise PortraitInputError(
                f"image of type {type(image).__name__} is not allowed: pass the selfie as a "
                "PIL image (the reference the model edits)"
            )
        if min(image.size) < MIN_REFERENCE_SIDE:
            raise PortraitInputError(
                f"image is {image.size[0]}x{image.size[1]} px: the reference needs at least "
                f"{MIN_REFERENCE_SIDE} px per side"
            )
        self.check_common(
            num_inference_steps, guidance_scale, height, width, [seed], batch_size, callback
        )
        return prompts, negatives, image.convert("RGB")

    # ------------------------------------------------------------------------- generation

    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        *,
        image: Image.Image,
        num_inference_steps: int = 4,
        guidance_scale: float = 1.0,
        height: int = 1024,
        width: int = 1024,
        seed: int = 0,
        batch_size: int | None = None,
        callback: Progress | None = None,
    ) -> PortraitPipelineOutput:
        r"""Edit the reference selfie once per prompt, with the same seed.

        Args:
            prompt (`str` or `list[str]`): edit instructions, one image each.
            negative_prompt (`str` or `list[str]`, *optional*): read only with classifier-free
                guidance, which the step-distilled model does not use.
            image (`PIL.Image.Image`): the selfie (or a crop of it) the model edits; it carries
                the identity.
            num_inference_steps (`int`, defaults to 4): the distilled model's steps.
            guidance_scale (`float`, defaults to 1.0): ignored by distilled models.
            height, width (`int`, default 1024): output size, multiples of 16.
            seed (`int`): every output gets its own CPU generator seeded with it.
            batch_size (`int`, *optional*): prompts per transformer call; default by device.
            callback (`Progress`, *optional*): `callback(fraction, message)` after every step.

        Returns:
            :class:`PortraitPipelineOutput`; `negative_prompts` are "" when unused.
        """
        # 0. validate before taking the lock, so bad requests never wait for a render
        prompts, negatives, reference = self.check_inputs(
            prompt,
            negative_prompt,
            image,
            num_inference_steps,
            guidance_scale,
            height,
            width,
            seed,
            batch_size,
            callback,
        )
        n = len(prompts)
        batches = self.batches(n, batch_size)
        do_cfg = guidance_scale > 1.0 and not self.pipe.config.is_distilled
        if not do_cfg:
            negatives = [""] * n  # what was rendered: no negative prompt
        timings = {"encode": 0.0, "denoise": 0.0, "decode": 0.0}
        images: list[Image.Image] = []
        steps = StepProgress(callback)
        steps.total = len(batches) * num_inference_steps  # flow-matching Euler: one per step

        t_start = time.perf_counter()
        with self._lock, torch.inference_mode():
            # 1. text: each prompt in its chat template, padded to the encoder's limit, so the
            # embeddings do not depend on the batch; the limit is the family's token budget
            t0 = time.perf_counter()
            text = self._encode(prompts, negatives if do_cfg else None)
            sync(self.device)
            timings["encode"] = time.perf_counter() - t0

            for rows in batches:
                # 2. denoise from the same noise per output, conditioned on the reference's
                # latents (encoded deterministically, the same for every row)
                t0 = time.perf_counter()
                latents = self.pipe(
                    image=[reference],
                    **{name: value[rows] for name, value in text.items()},
                    height=height,
                    width=width,
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale if do_cfg else 1.0,
                    generator=seeded_generators([seed] * (rows.stop - rows.start)),
                    output_type="latent",
                    return_dict=False,
                    callback_on_step_end=steps,
                    max_sequence_length=self.family.token_limit,
                )[0]  # (b, C, H/8, W/8), unpacked and de-normalised
                sync(self.device)
                timings["denoise"] += time.perf_counter() - t0
                # 3. decode
                t0 = time.perf_counter()
                images.extend(self._decode(latents))
                sync(self.device)
                timings["decode"] += time.perf_counter() - t0

        timings["total"] = time.perf_counter() - t_start
        return PortraitPipelineOutput(
            images=images,
            prompts=prompts,
            negative_prompts=negatives,
            seeds=[seed] * len(prompts),
            timings=timings,
            model_ids=dict(self.model_ids),
        )

    def group_jobs(self, jobs: Sequence[RenderJob]) -> list[list[int]]:
        """One call per job: the reference image (the selfie) is per call, not per prompt."""
        return [[i] for i in range(len(jobs))]

    def render_jobs(
        self, jobs: Sequence[RenderJob], progress: Progress, batch_size: int | None = None
    ) -> PortraitPipelineOutput:
        """Each prompt edits the job's selfie, framed head-and-shoulders at the output's size."""
        (job,) = jobs
        request = job.request
        reference = portrait_reference(
            job.image, tuple(float(v) for v in job.face.bbox), request.width, request.height
        )
        return self(
            prompt=list(job.prompt),
            negative_prompt=list(job.negative_prompt),
            image=reference,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            height=request.height,
            width=request.width,
            seed=request.seed,
            batch_size=batch_size,
            callback=progress,
        )

    def _encode(self, prompts: list[str], negatives: list[str] | None) -> dict[str, Any]:
        """Prompt (and, with guidance, negative) embeddings as diffusers keyword arguments."""
        limit = self.family.token_limit
        embeds, _ = self.pipe.encode_prompt(
            prompt=prompts, device=self.device, max_sequence_length=limit
        )  # (N, limit, 3 * hidden)
        text = {"prompt_embeds": embeds}
        if negatives is not None:
            text["negative_prompt_embeds"], _ = self.pipe.encode_prompt(
                prompt=negatives, device=self.device, max_sequence_length=limit
            )
        return text

    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        vae = self.pipe.vae
        pixels = vae.decode(latents.to(vae.dtype), return_dict=False)[0]  # (b, 3, H, W)
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")

    def warm_up(self, height: int, width: int, max_prompts: int = 5) -> None:
        """One render per row size up to ``max_prompts`` (compiles each batch shape now)."""
        grey = Image.new("RGB", (width, height), (128, 128, 128))
        for n in range(1, max_prompts + 1):
            self(["warm-up"] * n, image=grey, num_inference_steps=2, height=height, width=width)
