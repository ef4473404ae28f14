"""What every portrait pipeline shares: input checks, seeded generators, step progress, the
one-render-at-a-time lock, speed options and the output dataclass.

Each family's pipeline (``generation.py`` SD-1.5, ``generation_sdxl.py``, ``generation_flux2.py``)
renders N prompts in one call; every output gets its own CPU generator seeded with its seed, so
output ``i`` depends only on prompt ``i`` (and its face and seed) and not on batching.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from pipelines.core.errors import InputError
from pipelines.core.families import FAMILIES, ModelFamily
from pipelines.models.runtime import (
    RuntimeOptions,
    aot_compile,
    apply_speed_options,
    default_batch_size,
)

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.core.limits import Limit
    from pipelines.core.request import Progress
    from pipelines.models.jobs import RenderJob

log = logging.getLogger(__name__)

FACE_EMBED_DIM = 512  # ArcFace identity embedding (insightface ``normed_embedding``)


class PortraitInputError(InputError):
    """An argument of a portrait pipeline that it cannot render."""


@dataclass(frozen=True)
class PortraitPipelineOutput:
    """The images of one call, in prompt order, with what rendered them and how long it took."""

    images: list[Image.Image]  # one per prompt, in prompt order
    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]  # one per image
    timings: dict[str, float] = field(default_factory=dict)  # encode/denoise/decode/total, s
    model_ids: dict[str, str] = field(default_factory=dict)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so stage timings measure compute, not kernel launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hub_kwargs(local_files_only: bool | None, variant: str | None = None) -> dict[str, Any]:
    """``local_files_only`` and ``variant`` for ``from_pretrained``; None keeps the library
    default."""
    kwargs: dict[str, Any] = (
        {} if local_files_only is None else {"local_files_only": local_files_only}
    )
    if variant:
        kwargs["variant"] = variant
    return kwargs


def seeded_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per output, seeded with its own seed: the same noise for an output
    whatever its batch, its neighbours or the device."""
    return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]


def check_seeds(seed: int | Sequence[int], n: int) -> list[int]:
    """One seed per prompt: a single seed for all, or one each."""
    seeds = [seed] * n if isinstance(seed, (int, np.integer)) else list(seed)
    if len(seeds) != n:
        raise PortraitInputError(
            f"seed has {len(seeds)} entries but prompt has {n}: pass one seed, or one per prompt"
        )
    return seeds


class StepProgress:
    """diffusers' ``callback_on_step_end`` that reports steps across all batches of a call."""

    def __init__(self, callback: Progress | None) -> None:
        self.callback = callback
        self.total = 1
        self.done = 0

    def __call__(self, pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Count one denoiser step and report it; diffusers keeps its latents."""
        self.done += 1
        if self.callback is not None:
            self.callback(self.done / self.total, f"Rendering step {self.done}/{self.total}")
        return {}  # nothing replaced: diffusers keeps its own latents


# ----------------------------------------------------------------------------- input checks


def check_prompts(
    prompt: str | list[str], negative_prompt: str | list[str] | None
) -> tuple[list[str], list[str]]:
    """(prompts, one negative prompt per prompt); names the bad value otherwise."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, Sequence) or not all(isinstance(p, str) for p in prompts):
        raise PortraitInputError(f"prompt={prompt!r} must be a string or a list of strings")
    if not prompts:
        raise PortraitInputError("prompt=[] is empty: pass at least one prompt")
    prompts = list(prompts)
    if negative_prompt is None or isinstance(negative_prompt, str):
        return prompts, [negative_prompt or ""] * len(prompts)
    if isinstance(negative_prompt, Sequence) and all(isinstance(n, str) for n in negative_prompt):
        negatives = list(negative_prompt)
        if len(negatives) != len(prompts):
            raise PortraitInputError(
                f"negative_prompt has {len(negatives)} entries but prompt has {len(prompts)}: "
                "pass one negative prompt per prompt, a single string, or None"
            )
        return prompts, negatives
    raise PortraitInputError(
        f"negative_prompt={negative_prompt!r} must be None, a string or a list of strings"
    )


def check_faces(face_embedding: np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
    """L2-normalised ArcFace embeddings as an (n, 512) float32 CPU tensor: one for every prompt
    ((512,) or (1, 512)), or one per prompt ((n, 512): several people's rows in one call)."""
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
    if face.shape not in {(FACE_EMBED_DIM,), (1, FACE_EMBED_DIM), (n, FACE_EMBED_DIM)}:
        raise PortraitInputError(
            f"face_embedding has shape {tuple(face.shape)}: expected ({FACE_EMBED_DIM},) for "
            f"one face, or ({n}, {FACE_EMBED_DIM}) for one face per prompt"
        )
    faces = face.reshape(-1, FACE_EMBED_DIM).expand(n, FACE_EMBED_DIM)
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


def check_number(limits: Mapping[str, Limit], name: str, value: float) -> None:
    """A finite number within ``limits[name]``."""
    limit = limits[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PortraitInputError(f"{name}={value!r} must be a finite number: use {limit.allowed}")
    problem = limit.problem(name, value)
    if problem:
        raise PortraitInputError(problem)


def check_int(limits: Mapping[str, Limit], name: str, value: int) -> None:
    """An integer within ``limits[name]``."""
    limit = limits[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PortraitInputError(f"{name}={value!r} must be an integer: use {limit.allowed}")
    problem = limit.problem(name, int(value))
    if problem:
        raise PortraitInputError(problem)


# ----------------------------------------------------------------------------- base class


class BatchedPipeline:
    """A diffusers pipeline shared read-only across requests, rendering N prompts per call.

    Subclasses name their ``family`` and ``denoiser`` (``"unet"`` or ``"transformer"``).
    """

    family_id: ClassVar[str]
    denoiser: ClassVar[str]

    def __init__(self, pipe: Any, model_ids: dict[str, str], options: RuntimeOptions) -> None:
        self.pipe = pipe
        self.model_ids = dict(model_ids)
        self.default_batch_size = default_batch_size(pipe.device)
        modules = {
            name: module
            for name, module in pipe.components.items()
            if isinstance(module, torch.nn.Module) and name in {self.denoiser, "vae"}
        }
        self.speed = apply_speed_options(modules, self.denoiser, options, pipe.device)
        # The scheduler (timesteps, step counter) and attention state (the IP-Adapter scale)
        # are mutable inside the shared pipeline: one render at a time.
        self._lock = threading.Lock()

    @property
    def family(self) -> ModelFamily:
        """The model family this pipeline renders."""
        return FAMILIES[self.family_id]

    @property
    def tokenizer(self) -> Any:
        """The (first) text encoder's tokenizer."""
        return self.pipe.tokenizer

    @property
    def tokenizers(self) -> tuple[Any, ...]:
        """Every tokenizer whose encoder reads the prompt (SDXL has two)."""
        return tuple(getattr(self.pipe, name) for name in self.family.tokenizer_folders)

    @property
    def device(self) -> torch.device:
        """Where the pipeline runs."""
        return self.pipe.device

    @property
    def dtype(self) -> torch.dtype:
        """The denoiser's dtype."""
        return getattr(self.pipe, self.denoiser).dtype

    def check_common(
        self,
        num_inference_steps: int,
        guidance_scale: float,
        height: int,
        width: int,
        seeds: Sequence[int],
        batch_size: int | None,
        callback: Progress | None,
    ) -> None:
        """The checks every family shares, against the family's limits."""
        limits = self.family.limits
        check_number(limits, "guidance_scale", guidance_scale)
        for name, value in (
            ("num_inference_steps", num_inference_steps),
            *(("seed", one) for one in seeds),
            ("height", height),
            ("width", width),
        ):
            check_int(limits, name, value)
        if batch_size is not None:
            check_int(limits, "batch_size", batch_size)
        if callback is not None and not callable(callback):
            raise PortraitInputError(f"callback={callback!r} is not callable")

    def batches(self, n: int, batch_size: int | None) -> list[slice]:
        """Rows of each denoiser call: ``batch_size`` (default by device) prompts at a time."""
        bs = min(batch_size or self.default_batch_size, n)
        return [slice(start, min(start + bs, n)) for start in range(0, n, bs)]

    def group_jobs(self, jobs: Sequence[RenderJob]) -> list[list[int]]:
        """Indices of the jobs rendered in one call: those with the same call settings (steps,
        guidance, size, adapter scale); faces and seeds may differ per prompt."""
        from pipelines.models.jobs import render_key

        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(render_key(job.request), []).append(i)
        return list(groups.values())

    def render_jobs(
        self, jobs: Sequence[RenderJob], progress: Progress, batch_size: int | None = None
    ) -> PortraitPipelineOutput:
        """Every prompt of ``jobs`` (one group of :meth:`group_jobs`) in one call, mapping each
        job's request onto this family's call arguments."""
        raise NotImplementedError

    def warm_up(self, height: int, width: int, max_prompts: int = 5) -> None:
        """Render once per batch shape a row can take, so a compiled denoiser is compiled now
        (at load) rather than during the first requests. Subclasses render dummy inputs."""
        raise NotImplementedError

    def largest_batch(self, batch_size: int | None = None) -> int:
        """The most prompts one denoiser call takes (``batch_size``, else by device): every
        batch shape a render can produce, batched or not, is 1..this many prompts."""
        return batch_size or self.default_batch_size

    def warm_up_call(self, n: int, height: int, width: int) -> None:
        """One render of ``n`` dummy prompts (2 steps) with a neutral identity: a face
        embedding for the FaceID families, a grey selfie for the family that edits one."""
        identity: dict[str, Any]
        if self.family.uses_faceid:
            face = np.zeros(FACE_EMBED_DIM, np.float32)
            face[0] = 1.0
            identity = {"face_embedding": face}
        else:
            from PIL import Image

            identity = {"image": Image.new("RGB", (width, height), (128, 128, 128))}
        self(
            ["warm-up"] * n,
            num_inference_steps=2,
            guidance_scale=self.family.guidance_scale,
            height=height,
            width=width,
            **identity,
        )

    def compile_ahead_of_time(self, height: int, width: int, max_prompts: int) -> dict[int, Any]:
        """ZeroGPU's replacement for ``torch.compile``: the denoiser compiled ahead of time for
        every batch shape of 1..``max_prompts`` prompts at ``height`` x ``width`` (see
        :func:`pipelines.models.runtime.aot_compile`); returns {batch rows: program}."""
        denoiser = getattr(self.pipe, self.denoiser)
        captures = {
            n: (lambda n=n: self.warm_up_call(n, height, width)) for n in range(1, max_prompts + 1)
        }
        programs = aot_compile(denoiser, captures)
        self.speed["aot"] = True
        return programs
