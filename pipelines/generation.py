"""PortraitPipeline: SD-1.5 + IP-Adapter FaceID, N prompts with one face and one seed.

Every output gets its own ``torch.Generator`` seeded with the same seed, so output ``i``
depends only on prompt ``i``: comparing methods side by side isolates the prompt, and the
pixels do not depend on how prompts were batched.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipelines.errors import InputError
from pipelines.request import Progress
from pipelines.runtime import default_batch_size, pick_device, pick_dtype
from pipelines.settings import LIMITS

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline
    from PIL import Image
    from transformers import CLIPTokenizer

log = logging.getLogger(__name__)

FACE_EMBED_DIM = 512  # ArcFace identity embedding (insightface ``normed_embedding``)


class PortraitInputError(InputError):
    """An argument of :class:`PortraitPipeline` that it cannot render."""


@dataclass(frozen=True)
class PortraitPipelineOutput:
    """The images of one call, in prompt order, with what rendered them and how long it took."""

    images: list[Image.Image]  # one per prompt, in prompt order
    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]  # one per image
    timings: dict[str, float] = field(default_factory=dict)  # encode/denoise/decode/total, s
    model_ids: dict[str, str] = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work so stage timings measure compute, not kernel launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _has_ip_adapter(pipe: StableDiffusionPipeline) -> bool:
    from diffusers.models import attention_processor as ap

    kinds = (
        ap.IPAdapterAttnProcessor2_0,
        ap.IPAdapterAttnProcessor,
        ap.IPAdapterXFormersAttnProcessor,
    )
    return any(isinstance(p, kinds) for p in pipe.unet.attn_processors.values())


class PortraitPipeline:
    """A ``StableDiffusionPipeline`` with IP-Adapter FaceID, shared read-only across requests."""

    def __init__(self, pipe: StableDiffusionPipeline, model_ids: dict[str, str]) -> None:
        if not _has_ip_adapter(pipe):
            raise PortraitInputError(
                "the pipeline has no IP-Adapter loaded: use PortraitPipeline.from_pretrained or "
                "from_components(sd_pipe, adapter, adapter_weight)"
            )
        self.pipe = pipe
        self.model_ids = dict(model_ids)
        self.default_batch_size = default_batch_size(pipe.device)
        # The scheduler (timesteps, step counter) and the attention processors' IP scale are
        # mutable state inside the shared pipeline: one render at a time.
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> CLIPTokenizer:
        """The text encoder's tokenizer (the token budget counts with it)."""
        return self.pipe.tokenizer

    @property
    def device(self) -> torch.device:
        """Where the pipeline runs."""
        return self.pipe.device

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's dtype."""
        return self.pipe.unet.dtype

    # ------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(
        cls,
        base_model: str | Path,
        adapter: str | Path,
        adapter_weight: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool | None = None,
    ) -> PortraitPipeline:
        """Load SD-1.5 (hub id or folder) and a FaceID adapter (hub id or folder + file name).

        ``local_files_only=None`` keeps the library default (``HF_HUB_OFFLINE``).
        """
        from diffusers import StableDiffusionPipeline

        dev = pick_device(device)
        dt = pick_dtype(dev, dtype)
        hub_kwargs = {} if local_files_only is None else {"local_files_only": local_files_only}
        pipe = StableDiffusionPipeline.from_pretrained(
            str(base_model),
            dtype=dt,
            safety_checker=None,
            requires_safety_checker=False,
            **hub_kwargs,
        )
        return cls.from_components(
            pipe,
            adapter,
            adapter_weight,
            model_ids={"base": str(base_model), "adapter": f"{adapter}/{adapter_weight}"},
            device=device,
            dtype=dtype,
            local_files_only=local_files_only,
        )

    @classmethod
    def from_components(
        cls,
        sd_pipe: StableDiffusionPipeline,
        adapter: str | Path | dict[str, dict[str, torch.Tensor]] | None = None,
        adapter_weight: str | None = None,
        *,
        model_ids: dict[str, str] | None = None,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool | None = None,
    ) -> PortraitPipeline:
        """Wrap an in-memory pipeline; load ``adapter`` (folder/hub id + file, or a state dict)."""
        dev = pick_device(device)
        dt = pick_dtype(dev, dtype)
        if adapter is not None:
            if not isinstance(adapter, dict) and not adapter_weight:
                raise PortraitInputError(
                    f"adapter={str(adapter)!r} needs adapter_weight, the weight file name "
                    "(e.g. 'ip-adapter-faceid_sd15.bin')"
                )
            hub_kwargs = {} if local_files_only is None else {"local_files_only": local_files_only}
            sd_pipe.load_ip_adapter(
                adapter if isinstance(adapter, dict) else str(adapter),
                subfolder="",
                weight_name=adapter_weight or "",
                image_encoder_folder=None,  # FaceID takes ArcFace embeddings, no CLIP image encoder
                **hub_kwargs,
            )
        # one face per prompt: diffusers would tile the embeddings once per prompt (right for one
        # image shared by a batch, but it shows every row every other row's face)
        sd_pipe.prepare_ip_adapter_image_embeds = types.MethodType(_embeds_as_given, sd_pipe)
        sd_pipe.to(device=dev)
        if any(m.dtype != dt for m in (sd_pipe.unet, sd_pipe.vae, sd_pipe.text_encoder)):
            sd_pipe.to(dtype=dt)  # only when needed: diffusers warns on every dtype cast
        sd_pipe.set_progress_bar_config(disable=True)  # progress goes through `callback`
        if model_ids is None:
            model_ids = {"base": type(sd_pipe).__name__ + " (in memory)", "adapter": "in memory"}
        return cls(sd_pipe, model_ids)

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
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, Sequence) or not all(isinstance(p, str) for p in prompts):
            raise PortraitInputError(f"prompt={prompt!r} must be a string or a list of strings")
        if not prompts:
            raise PortraitInputError("prompt=[] is empty: pass at least one prompt")
        prompts = list(prompts)
        if negative_prompt is None or isinstance(negative_prompt, str):
            negatives = [negative_prompt or ""] * len(prompts)
        elif isinstance(negative_prompt, Sequence) and all(
            isinstance(n, str) for n in negative_prompt
        ):
            negatives = list(negative_prompt)
            if len(negatives) != len(prompts):
                raise PortraitInputError(
                    f"negative_prompt has {len(negatives)} entries but prompt has {len(prompts)}: "
                    "pass one negative prompt per prompt, a single string, or None"
                )
        else:
            raise PortraitInputError(
                f"negative_prompt={negative_prompt!r} must be None, a string or a list of strings"
            )

        faces = self._check_faces(face_embedding, len(prompts))
        seeds = [seed] * len(prompts) if isinstance(seed, (int, np.integer)) else list(seed)
        if len(seeds) != len(prompts):
            raise PortraitInputError(
                f"seed has {len(seeds)} entries but prompt has {len(prompts)}: pass one seed, "
                "or one per prompt"
            )

        _check_number("ip_adapter_scale", ip_adapter_scale)
        _check_number("guidance_scale", guidance_scale)
        for name, value in (
            ("num_inference_steps", num_inference_steps),
            *(("seed", one) for one in seeds),
            ("height", height),
            ("width", width),
        ):
            _check_int(name, value)
        if batch_size is not None:
            _check_int("batch_size", batch_size)
        if callback is not None and not callable(callback):
            raise PortraitInputError(f"callback={callback!r} is not callable")
        return prompts, negatives, faces, [int(x) for x in seeds]

    @staticmethod
    def _check_faces(face_embedding: np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
        if isinstance(face_embedding, np.ndarray):
            # a copy: cached face embeddings are read-only and shared between requests
            face = torch.from_numpy(np.array(face_embedding, dtype=np.float32))
        elif isinstance(face_embedding, torch.Tensor):
            face = face_embedding.detach().float().cpu()
        else:
            raise PortraitInputError(
                f"face_embedding of type {type(face_embedding).__name__} is not allowed: "
                "pass a numpy array or torch tensor of shape (512,)"
            )
        allowed = {(FACE_EMBED_DIM,), (1, FACE_EMBED_DIM), (n, FACE_EMBED_DIM)}
        if face.shape not in allowed:
            raise PortraitInputError(
                f"face_embedding has shape {tuple(face.shape)}: expected ({FACE_EMBED_DIM},) "
                f"for one face, or ({n}, {FACE_EMBED_DIM}) for one face per prompt"
            )
        faces = face.reshape(-1, FACE_EMBED_DIM).expand(n, FACE_EMBED_DIM)  # (N, 512)
        if not torch.isfinite(faces).all():
            raise PortraitInputError("face_embedding contains NaN or inf values")
        norms = faces.norm(dim=1)
        worst = float(norms[(norms - 1.0).abs().argmax()])
        if abs(worst - 1.0) > 0.05:
            # the adapter was trained on L2-normalised embeddings; raw ones (norm ~20) saturate it
            raise PortraitInputError(
                f"face_embedding has L2 norm {worst:.3f}: pass the L2-normalised embedding "
                "(insightface's normed_embedding, norm 1)"
            )
        return faces

    # ------------------------------------------------------------------------- generation

    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        *,
        face_embedding: np.ndarray | torch.Tensor,  # (512,) or (N, 512) L2-normalised ArcFace
        ip_adapter_scale: float = 0.8,
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
            ip_adapter_scale (`float`, defaults to 0.8): how strongly the identity is imposed.
            num_inference_steps (`int`, defaults to 30): denoising steps.
            guidance_scale (`float`, defaults to 6.0): classifier-free guidance; <= 1 turns it off.
            height, width (`int`, default 512): output size in pixels, multiples of 8.
            seed (`int` or `list[int]`): every output gets its own CPU generator seeded with it
                (or with its own seed), so output `i` depends only on prompt, face and seed `i`,
                never on the batch it was rendered in.
            batch_size (`int`, *optional*): prompts per UNet call; default by device.
            callback (`Progress`, *optional*): `callback(fraction, message)` after every step.

        Limits come from `pipelines.settings.LIMITS`; a bad value raises
        :class:`PortraitInputError` naming it.

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
        bs = min(batch_size or self.default_batch_size, n)
        n_batches = math.ceil(n / bs)
        do_cfg = guidance_scale > 1.0 and self.pipe.unet.config.time_cond_proj_dim is None
        device, dtype = self.device, self.dtype
        timings = {"encode": 0.0, "denoise": 0.0, "decode": 0.0}
        images: list[Image.Image] = []
        done, total_steps = 0, 0

        def on_step_end(pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            nonlocal done
            done += 1
            if callback is not None:
                callback(done / total_steps, f"Rendering step {done}/{total_steps}")
            return {}  # nothing replaced: diffusers keeps its own latents

        t_start = time.perf_counter()
        with self._lock, torch.inference_mode():
            # 1. text: all prompts at once, so embeddings do not depend on batch_size
            t0 = time.perf_counter()
            prompt_embeds, negative_embeds = self.pipe.encode_prompt(
                prompts, device, 1, do_cfg, negatives
            )  # (N, 77, D) each; negative_embeds is None without CFG
            face_embeds = faces.to(device=device, dtype=dtype).reshape(n, 1, FACE_EMBED_DIM)
            self.pipe.set_ip_adapter_scale(ip_adapter_scale)
            # schedulers may run more UNet steps than asked (PNDM: +1, Heun: 2n-1)
            self.pipe.scheduler.set_timesteps(num_inference_steps)
            total_steps = n_batches * len(self.pipe.scheduler.timesteps)
            _sync(device)
            timings["encode"] = time.perf_counter() - t0

            for start in range(0, n, bs):
                rows = slice(start, min(start + bs, n))
                # 2. identity: diffusers' FaceID layout, [negative; positive] along the batch;
                # the zero vector is the unconditional identity (as in the FaceID reference code)
                ip_embeds = face_embeds[rows]  # (b, 1, 512)
                if do_cfg:
                    ip_embeds = torch.cat([torch.zeros_like(ip_embeds), ip_embeds])  # (2b, 1, 512)
                # 3. denoise; one CPU generator per output seeded with its own seed, so an
                # output's noise does not depend on its batch, its neighbours or the device
                generators = [torch.Generator("cpu").manual_seed(x) for x in seeds[rows]]
                t0 = time.perf_counter()
                latents = self.pipe(
                    prompt_embeds=prompt_embeds[rows],
                    negative_prompt_embeds=negative_embeds[rows] if do_cfg else None,
                    ip_adapter_image_embeds=[ip_embeds],
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale,
                    height=height,
                    width=width,
                    generator=generators,
                    output_type="latent",
                    return_dict=False,
                    callback_on_step_end=on_step_end,
                )[0]  # (b, 4, H/8, W/8)
                _sync(device)
                timings["denoise"] += time.perf_counter() - t0
                # 4. decode
                t0 = time.perf_counter()
                images.extend(self._decode(latents))
                _sync(device)
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

    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        vae = self.pipe.vae
        pixels = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]  # (b,3,H,W)
        return self.pipe.image_processor.postprocess(
            pixels, output_type="pil", do_denormalize=[True] * len(pixels)
        )


def _embeds_as_given(
    pipe: StableDiffusionPipeline,
    ip_adapter_image: Any,
    ip_adapter_image_embeds: list[torch.Tensor],
    device: torch.device,
    num_images_per_prompt: int,
    do_classifier_free_guidance: bool,
) -> list[torch.Tensor]:
    """FaceID embeddings already laid out per row ([negative; positive] under guidance)."""
    return [e.to(device=device) for e in ip_adapter_image_embeds]


def _check_number(name: str, value: float) -> None:
    limit = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PortraitInputError(f"{name}={value!r} must be a finite number: use {limit.allowed}")
    problem = limit.problem(name, value)
    if problem:
        raise PortraitInputError(problem)


def _check_int(name: str, value: int) -> None:
    limit = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PortraitInputError(f"{name}={value!r} must be an integer: use {limit.allowed}")
    problem = limit.problem(name, int(value))
    if problem:
        raise PortraitInputError(problem)
