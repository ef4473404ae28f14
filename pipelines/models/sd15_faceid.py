"""PortraitPipeline: SD-1.5 + IP-Adapter FaceID, N prompts with one face and one seed.

Every output gets its own ``torch.Generator`` seeded with the same seed, so output ``i``
depends only on prompt ``i``: comparing methods side by side isolates the prompt, and the
pixels do not depend on how prompts were batched. :class:`SDXLPortraitPipeline`
(``generation_sdxl.py``) reuses all of it with SDXL's text encoders and VAE.
"""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from pipelines.core.request import DEFAULT_IP_ADAPTER_SCALE, Progress
from pipelines.models.base import (
    FACE_EMBED_DIM,
    BatchedPipeline,
    PortraitInputError,
    PortraitPipelineOutput,
    StepProgress,
    check_faces,
    check_number,
    check_prompts,
    check_seeds,
    hub_kwargs,
    seeded_generators,
    sync,
)
from pipelines.models.runtime import RuntimeOptions, pick_device, pick_dtype

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from PIL import Image

    from pipelines.models.jobs import RenderJob

__all__ = ["PortraitInputError", "PortraitPipeline", "PortraitPipelineOutput"]

log = logging.getLogger(__name__)


class AdapterMismatchError(PortraitInputError):
    """A FaceID weight file whose shapes do not fit the family's UNet."""


def _has_ip_adapter(pipe: DiffusionPipeline) -> bool:
    from diffusers.models import attention_processor as ap

    kinds = (
        ap.IPAdapterAttnProcessor2_0,
        ap.IPAdapterAttnProcessor,
        ap.IPAdapterXFormersAttnProcessor,
    )
    return any(isinstance(p, kinds) for p in pipe.unet.attn_processors.values())


class PortraitPipeline(BatchedPipeline):
    """A ``StableDiffusionPipeline`` with IP-Adapter FaceID, shared read-only across requests."""

    family_id: ClassVar[str] = "sd15-faceid"
    denoiser: ClassVar[str] = "unet"

    def __init__(
        self,
        pipe: DiffusionPipeline,
        model_ids: dict[str, str],
        options: RuntimeOptions | None = None,
    ) -> None:
        if not _has_ip_adapter(pipe):
            raise PortraitInputError(
                "the pipeline has no IP-Adapter loaded: use PortraitPipeline.from_pretrained or "
                "from_components(sd_pipe, adapter, adapter_weight)"
            )
        super().__init__(pipe, model_ids, options or RuntimeOptions())

    # ------------------------------------------------------------------------- loading

    @classmethod
    def _load_base(cls, base_model: str, dtype: torch.dtype, **hub: Any) -> DiffusionPipeline:
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline.from_pretrained(
            base_model, dtype=dtype, safety_checker=None, requires_safety_checker=False, **hub
        )

    @classmethod
    def from_pretrained(
        cls,
        base_model: str | Path,
        adapter: str | Path | None,
        adapter_weight: str | None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool | None = None,
        options: RuntimeOptions | None = None,
        variant: str | None = None,
    ) -> PortraitPipeline:
        """Load the base model (hub id or folder) and a FaceID adapter (hub id or folder + file).

        ``local_files_only=None`` keeps the library default (``HF_HUB_OFFLINE``); ``variant``:
        diffusers' weight variant to read (``"fp16"``: the pinned files).
        """
        dt = pick_dtype(pick_device(device), dtype)
        pipe = cls._load_base(str(base_model), dt, **hub_kwargs(local_files_only, variant))
        return cls.from_components(
            pipe,
            adapter,
            adapter_weight,
            model_ids={"base": str(base_model), "adapter": f"{adapter}/{adapter_weight}"},
            device=device,
            dtype=dtype,
            local_files_only=local_files_only,
            options=options,
        )

    @classmethod
    def from_components(
        cls,
        sd_pipe: DiffusionPipeline,
        adapter: str | Path | dict[str, dict[str, torch.Tensor]] | None = None,
        adapter_weight: str | None = None,
        *,
        model_ids: dict[str, str] | None = None,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool | None = None,
        options: RuntimeOptions | None = None,
    ) -> PortraitPipeline:
        """Wrap an in-memory pipeline; load ``adapter`` (folder/hub id + file, or a state dict)."""
        dev = pick_device(device)
        dt = pick_dtype(dev, dtype)
        if adapter is not None:
            if not isinstance(adapter, dict) and not adapter_weight:
                raise PortraitInputError(
                    f"adapter={str(adapter)!r} needs adapter_weight, the weight file name "
                    f"(e.g. {cls.family_default_weight()!r})"
                )
            cls._load_adapter(sd_pipe, adapter, adapter_weight, local_files_only)
        # one face per prompt: diffusers would tile the embeddings once per prompt (right for one
        # image shared by a batch, but it shows every row every other row's face)
        sd_pipe.prepare_ip_adapter_image_embeds = types.MethodType(_embeds_as_given, sd_pipe)
        sd_pipe.to(device=dev)
        names = ("unet", "vae", "text_encoder", "text_encoder_2")
        modules = [getattr(sd_pipe, n, None) for n in names]
        if any(m is not None and m.dtype != dt for m in modules):
            sd_pipe.to(dtype=dt)  # only when needed: diffusers warns on every dtype cast
        sd_pipe.set_progress_bar_config(disable=True)  # progress goes through `callback`
        if model_ids is None:
            model_ids = {"base": type(sd_pipe).__name__ + " (in memory)", "adapter": "in memory"}
        return cls(sd_pipe, model_ids, options)

    @classmethod
    def family_default_weight(cls) -> str:
        """The FaceID weight file made for this family (named in error messages)."""
        from pipelines.core.families import FAMILIES

        return FAMILIES[cls.family_id].faceid_weight or ""

    @classmethod
    def _load_adapter(
        cls,
        pipe: DiffusionPipeline,
        adapter: str | Path | dict[str, dict[str, torch.Tensor]],
        weight: str | None,
        local_files_only: bool | None,
    ) -> None:
        name = "the in-memory adapter" if isinstance(adapter, dict) else f"{adapter}/{weight}"
        try:
            pipe.load_ip_adapter(
                adapter if isinstance(adapter, dict) else str(adapter),
                subfolder="",
                weight_name=weight or "",
                image_encoder_folder=None,  # FaceID takes ArcFace embeddings, no image encoder
                **hub_kwargs(local_files_only),
            )
        except (ValueError, KeyError, RuntimeError) as exc:
            # diffusers reports a shape mismatch deep in the UNet; say which setting fixes it
            raise AdapterMismatchError(
                f"BECOME_FACEID_WEIGHT: {name} does not fit the {cls.family_id} UNet "
                f"({type(exc).__name__}: {str(exc)[:200]}). Use {cls.family_default_weight()!r}, "
                "the FaceID weight made for this family"
            ) from exc

    # ------------------------------------------------------------------------- inputs

    def check_inputs(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None,
        face_embedding: np.ndarray | torch.Tensor,
        ip_adapter_scale: float,
        num_inference_steps: int,
        guidance_scale: float,
        height: int,
        width: int,
        seed: int | Sequence[int],
        batch_size: int | None,
        callback: Progress | None,
    ) -> tuple[list[str], list[str], torch.Tensor, list[int]]:
        """Validate everything; return (prompts, negative prompts, faces (N, 512) fp32, seeds)."""
        prompts, negatives = check_prompts(prompt, negative_prompt)
        faces = check_faces(face_embedding, len(prompts))
        seeds = check_seeds(seed, len(prompts))
        check_number(self.family.limits, "ip_adapter_scale", ip_adapter_scale)
        self.check_common(
            num_inference_steps, guidance_scale, height, width, seeds, batch_size, callback
        )
        return prompts, negatives, faces, [int(x) for x in seeds]

    # ------------------------------------------------------------------------- generation

    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        *,
        face_embedding: np.ndarray | torch.Tensor,  # (512,) or (N, 512) L2-normalised ArcFace
        ip_adapter_scale: float = DEFAULT_IP_ADAPTER_SCALE,
        num_inference_steps: int = 30,
        guidance_scale: float = 6.0,
        height: int = 512,
        width: int = 512,
        seed: int | Sequence[int] = 0,
        batch_size: int | None = None,
        callback: Progress | None = None,
    ) -> PortraitPipelineOutput:
        r"""Render every prompt with the same face and seed.

        Args:
            prompt (`str` or `list[str]`): the prompt or prompts to render, one image each.
            negative_prompt (`str` or `list[str]`, *optional*): one per prompt, or one for all.
            face_embedding (`np.ndarray` or `torch.Tensor` of shape `(512,)` or `(N, 512)`): the
                L2-normalised ArcFace embedding (insightface's `normed_embedding`) that carries
                the identity: one for every prompt, or one per prompt.
            ip_adapter_scale (`float`, defaults to `DEFAULT_IP_ADAPTER_SCALE`): how strongly the
                identity is imposed.
            num_inference_steps (`int`, defaults to 30): denoising steps.
            guidance_scale (`float`, defaults to 6.0): classifier-free guidance; <= 1 turns it off.
            height, width (`int`, default 512): output size in pixels, within the family's size
                limit (`ModelFamily.size_limit`).
            seed (`int` or `list[int]`): every output gets its own CPU generator seeded with it
                (or with its own seed), so output `i` depends only on prompt, face and seed `i`,
                never on the batch it was rendered in.
            batch_size (`int`, *optional*): prompts per UNet call; default by device.
            callback (`Progress`, *optional*): `callback(fraction, message)` after every step.

        Limits come from the family's `limits`; a bad value raises :class:`PortraitInputError`
        naming it.

        Returns:
            :class:`PortraitPipelineOutput` with one image per prompt and stage timings.
        """
        # 0. validate before taking the lock, so bad requests never wait for a render
        prompts, negatives, faces, seeds = self.check_inputs(
            prompt,
            negative_prompt,
            face_embedding,
            ip_adapter_scale,
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
        do_cfg = guidance_scale > 1.0 and self.pipe.unet.config.time_cond_proj_dim is None
        device, dtype = self.device, self.dtype
        timings = {"encode": 0.0, "denoise": 0.0, "decode": 0.0}
        images: list[Image.Image] = []
        steps = StepProgress(callback)

        t_start = time.perf_counter()
        with self._lock, torch.inference_mode():
            # 1. text: all prompts at once, so embeddings do not depend on batch_size
            t0 = time.perf_counter()
            text = self._encode(prompts, negatives, do_cfg)  # diffusers kwargs -> (N, ...) each
            face_embeds = faces.to(device=device, dtype=dtype).reshape(n, 1, FACE_EMBED_DIM)
            self.pipe.set_ip_adapter_scale(ip_adapter_scale)
            # schedulers may run more UNet steps than asked (PNDM: +1, Heun: 2n-1)
            self.pipe.scheduler.set_timesteps(num_inference_steps)
            steps.total = len(batches) * len(self.pipe.scheduler.timesteps)
            sync(device)
            timings["encode"] = time.perf_counter() - t0

            for rows in batches:
                # 2. identity: diffusers' FaceID layout, [negative; positive] along the batch;
                # the zero vector is the unconditional identity (as in the FaceID reference code)
                ip_embeds = face_embeds[rows]  # (b, 1, 512)
                if do_cfg:
                    ip_embeds = torch.cat([torch.zeros_like(ip_embeds), ip_embeds])  # (2b, 1, 512)
                # 3. denoise; one CPU generator per output seeded with its own seed, so an
                # output's noise does not depend on its batch, its neighbours or the device
                t0 = time.perf_counter()
                latents = self.pipe(
                    **{name: value[rows] for name, value in text.items()},
                    ip_adapter_image_embeds=[ip_embeds],
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale,
                    height=height,
                    width=width,
                    generator=seeded_generators(seeds[rows]),
                    output_type="latent",
                    return_dict=False,
                    callback_on_step_end=steps,
                )[0]  # (b, 4, H/8, W/8)
                sync(device)
                timings["denoise"] += time.perf_counter() - t0
                # 4. decode
                t0 = time.perf_counter()
                images.extend(self._decode(latents))
                sync(device)
                timings["decode"] += time.perf_counter() - t0

        timings["total"] = time.perf_counter() - t_start
        return PortraitPipelineOutput(
            images=images,
            prompts=prompts,
            negative_prompts=negatives,
            seeds=seeds,
            timings=timings,
            model_ids=dict(self.model_ids),
        )

    def render_jobs(
        self, jobs: Sequence[RenderJob], progress: Progress, batch_size: int | None = None
    ) -> PortraitPipelineOutput:
        """The FaceID families' call: each prompt with its own row's face embedding and seed."""
        request = jobs[0].request  # the group shares every call setting (:meth:`group_jobs`)
        return self(
            prompt=[p for job in jobs for p in job.prompt],
            negative_prompt=[n for job in jobs for n in job.negative_prompt],
            face_embedding=np.stack([job.face.embedding for job in jobs for _ in job.prompt]),
            ip_adapter_scale=request.ip_adapter_scale,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            height=request.height,
            width=request.width,
            seed=[job.request.seed for job in jobs for _ in job.prompt],
            batch_size=batch_size,
            callback=progress,
        )

    def _encode(
        self, prompts: list[str], negatives: list[str], do_cfg: bool
    ) -> dict[str, torch.Tensor]:
        """Text embeddings as ``__call__`` keyword arguments of the diffusers pipeline."""
        prompt_embeds, negative_embeds = self.pipe.encode_prompt(
            prompts, self.device, 1, do_cfg, negatives
        )  # (N, 77, D) each; negative_embeds is None without CFG
        text = {"prompt_embeds": prompt_embeds}
        if do_cfg:
            text["negative_prompt_embeds"] = negative_embeds
        return text

    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        vae = self.pipe.vae
        pixels = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]  # (b,3,H,W)
        return self.pipe.image_processor.postprocess(
            pixels, output_type="pil", do_denormalize=[True] * len(pixels)
        )

    def warm_up(self, height: int, width: int, max_prompts: int = 5) -> None:
        """One render per row size up to ``max_prompts`` (compiles each batch shape now)."""
        face = np.zeros(FACE_EMBED_DIM, np.float32)
        face[0] = 1.0
        for n in range(1, max_prompts + 1):
            self(
                ["warm-up"] * n,
                face_embedding=face,
                num_inference_steps=2,
                guidance_scale=self.family.guidance_scale,
                height=height,
                width=width,
            )


def _embeds_as_given(
    pipe: DiffusionPipeline,
    ip_adapter_image: Any,
    ip_adapter_image_embeds: list[torch.Tensor],
    device: torch.device,
    num_images_per_prompt: int,
    do_classifier_free_guidance: bool,
) -> list[torch.Tensor]:
    """FaceID embeddings already laid out per row ([negative; positive] under guidance)."""
    return [e.to(device=device) for e in ip_adapter_image_embeds]
