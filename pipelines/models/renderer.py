"""The diffusion renderer: a family's pipeline, loaded on first use (at start on a ZeroGPU
Space), then the safety checker.

One class serves every family: the pipeline class comes from :mod:`pipelines.models.registry`,
and the pipeline itself says which jobs share a call (``group_jobs``) and how a job's request
maps onto its call (``render_jobs``): a face embedding for the FaceID families, the framed
selfie for the family that edits it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.errors import UnavailableError, UserError
from pipelines.core.families import DEFAULT_FAMILY, FAMILIES, get_family
from pipelines.core.lazy import Lazy
from pipelines.core.request import no_progress, sub_progress
from pipelines.models.registry import pipeline_class
from pipelines.models.runtime import (
    RuntimeOptions,
    compile_mode,
    gpu_decorator,
    gpu_seconds,
    on_zero_gpu,
    pickle_read_only_mappings,
)

if TYPE_CHECKING:
    from pipelines.core.request import Progress
    from pipelines.models.jobs import RenderJob, RenderOutput
    from pipelines.models.safety import SafetyChecker

__all__ = ["DiffusionRenderer", "DiffusionWeights", "RuntimeOptions", "WeightsUnavailable"]

# Seconds of H200 time per output image and denoising step, a generous upper bound for the
# ZeroGPU reservation (:func:`gpu_seconds`) until bench/gpu_check.py measures them: an SD-1.5
# 512 px step was 35 ms at batch 1 on an H100 (docs/BENCHMARKS.md); SDXL 1024 px is ~4x the
# UNet FLOPs per image, klein 4B at 1024 px more again. Not measured on ZeroGPU.
GPU_SECONDS_PER_IMAGE_STEP = {"sd15-faceid": 0.05, "sdxl-faceid": 0.2, "flux2-klein-edit": 0.5}


class WeightsUnavailable(UnavailableError):
    """A family's base weights cannot be found; names the settings that point to them."""


@dataclass(frozen=True)
class DiffusionWeights:
    """Where the weights come from: hub ids or local folders (real or tiny, same code)."""

    base_model: str | Path
    faceid_adapter: str | Path | None  # None for families without a face adapter
    faceid_weight: str | None
    local_files_only: bool | None  # None = follow HF_HUB_OFFLINE
    family: str = DEFAULT_FAMILY
    # load weights that are not pinned or differ from their pins (BECOME_UNVERIFIED_WEIGHTS;
    # the tiny engine's own files)
    allow_unverified: bool = False

    def checked(self) -> tuple[str, str | None, str | None, bool | None]:
        """(base model, adapter, weight variant, local_files_only) to load, each pinned one a
        folder whose files matched their pins (:mod:`pipelines.weights`); raises
        :class:`WeightsUnavailable` saying which file was refused and why."""
        from pipelines.weights import WeightsMismatch, WeightsRefused, locate

        family = get_family(self.family)
        try:
            base = locate(
                str(self.base_model),
                default=family.base_model,
                allow_unverified=self.allow_unverified,
                offline=self.local_files_only,
                what=f"{family.id} base model (BECOME_BASE_MODEL)",
            )
            adapter = None
            if self.faceid_adapter is not None:
                adapter = locate(
                    str(self.faceid_adapter),
                    default=family.faceid_adapter,
                    allow_unverified=self.allow_unverified,
                    offline=self.local_files_only,
                    what="FaceID adapter (BECOME_FACEID_ADAPTER)",
                    only=(self.faceid_weight,) if self.faceid_weight else None,
                )
        except WeightsMismatch as exc:
            raise WeightsUnavailable(str(exc)) from None
        except WeightsRefused as exc:
            raise WeightsUnavailable(
                f"{exc}. Set BECOME_BASE_MODEL to a local folder in diffusers layout or a hub id "
                f"(BECOME_MODEL_FAMILY={family.id}; families: {', '.join(FAMILIES)})"
            ) from None
        pinned = [w for w in (base, adapter) if w is not None and w.verified]
        local = True if pinned else self.local_files_only
        variant = base.pin.variant if base.pin is not None else None
        return base.source, None if adapter is None else adapter.source, variant, local

    def planned_ids(self) -> dict[str, str]:
        """The model ids results will name, before anything has loaded."""
        ids = {"base": str(self.base_model)}
        if self.faceid_weight:
            ids["adapter"] = f"{self.faceid_adapter}/{self.faceid_weight}"
        return ids


class DiffusionRenderer:
    """The real pipeline, loaded on first use and shared read-only by all requests; every
    output passes the safety checker (when there is one) before it is returned."""

    def __init__(
        self,
        load: Callable[[], Any],
        runtime: RuntimeOptions,
        planned_ids: dict[str, str] | None = None,
        safety: Lazy[SafetyChecker] | None = None,  # named by its model id
        family: str = DEFAULT_FAMILY,  # sizes the ZeroGPU reservation
    ) -> None:
        self.runtime = runtime
        self._pipeline: Lazy[Any] = Lazy(load, "diffusion pipeline")
        self._planned_ids = dict(planned_ids or {})  # what will load, until it has
        self.safety = safety
        self.family = family
        # On a ZeroGPU Space the GPU is attached only inside spaces.GPU-decorated calls, in a
        # worker whose state dies with the call: the pipeline and the safety checker are built
        # outside it (at start, or in render_many before the call) and only run inside it.
        self.gpu_render = gpu_decorator(self.gpu_duration)(self._render_many)

    def gpu_duration(self, jobs: Sequence[RenderJob], progress: Progress | None = None) -> int:
        """Seconds of GPU to reserve for ``jobs`` (ZeroGPU's dynamic duration): from the
        number of outputs and the most steps any of them takes."""
        images = sum(len(job.prompt) for job in jobs)
        steps = max((job.request.num_inference_steps for job in jobs), default=1)
        per_step = GPU_SECONDS_PER_IMAGE_STEP.get(
            self.family, max(GPU_SECONDS_PER_IMAGE_STEP.values())
        )
        return gpu_seconds(images, steps, per_step)

    @classmethod
    def from_weights(
        cls,
        weights: DiffusionWeights,
        runtime: RuntimeOptions,
        safety: Lazy[SafetyChecker] | None = None,
        warmup_size: int | None = None,
    ) -> DiffusionRenderer:
        """A renderer that loads ``weights`` with the family's pipeline class on first use.

        With ``runtime.compile`` the denoiser is compiled at load and warmed up at
        ``warmup_size`` (default: the family's size), so no request pays for compilation.
        """
        family = get_family(weights.family)

        def load() -> Any:
            base, adapter, variant, local_only = weights.checked()
            try:
                pipeline = pipeline_class(family.id).from_pretrained(
                    base,
                    adapter,
                    weights.faceid_weight,
                    device=runtime.device,
                    dtype=runtime.dtype,
                    local_files_only=local_only,
                    options=runtime,
                    variant=variant,
                )
            except UserError:
                raise  # already says what to change (e.g. a FaceID weight for another family)
            except (OSError, ValueError) as exc:  # not found locally / on the Hub; bad repo id
                raise WeightsUnavailable(
                    f"the {family.id} weights {weights.base_model} cannot be loaded "
                    f"({type(exc).__name__}): set BECOME_BASE_MODEL to a local folder in "
                    f"diffusers layout or a hub id (BECOME_MODEL_FAMILY={family.id}; families: "
                    f"{', '.join(FAMILIES)})"
                ) from exc
            size = warmup_size or family.size
            largest = pipeline.largest_batch(runtime.batch_size or None)
            mode = compile_mode(runtime)
            if mode == "aot":  # ZeroGPU: torch.compile is unsupported there
                pipeline.compile_ahead_of_time(size, size, largest)
            elif mode == "torch.compile":  # static shapes: one graph per batch shape, now
                pipeline.warm_up(size, size, max_prompts=largest)
            return pipeline

        planned = weights.planned_ids()
        if safety is not None:
            planned["safety_checker"] = safety.name
        return cls(load, runtime, planned, safety, family.id)

    @property
    def pipeline(self) -> Any:
        """The loaded pipeline (loads it on the first call)."""
        return self._pipeline.get()

    def load(self) -> None:
        """Load the pipeline and the safety checker now (the app's warm-up)."""
        _ = self.pipeline
        if self.safety is not None:
            self.safety.get()

    @property
    def model_ids(self) -> dict[str, str]:
        """The pipeline's model ids once loaded, else where they will load from."""
        # the settings' ids (Hub ids, not the checked cache folders they loaded from)
        if not self._pipeline.loaded or self._planned_ids:
            return dict(self._planned_ids)
        ids = dict(self.pipeline.model_ids)
        if self.safety is not None:
            ids["safety_checker"] = self.safety.name
        return ids

    def render(self, job: RenderJob, progress: Progress) -> RenderOutput:
        """Every prompt of ``job`` in one call."""
        return self.render_many([job], progress)[0]

    def render_many(self, jobs: Sequence[RenderJob], progress: Progress) -> list[RenderOutput]:
        """Jobs that can share a pipeline call share one (several people's rows); then every
        output passes the safety checker. On ZeroGPU in one GPU call that only runs models."""
        if on_zero_gpu():
            # Built here, never inside the GPU worker (a no-op once built at start); the step
            # progress closure cannot be pickled into the worker, so it reports no steps.
            self.load()
            pickle_read_only_mappings()  # the jobs are pickled into the worker
            return self.gpu_render(list(jobs), no_progress)
        return self.gpu_render(jobs, progress)

    def _render_many(self, jobs: Sequence[RenderJob], progress: Progress) -> list[RenderOutput]:
        """The GPU part of :meth:`render_many`: inference with the models already built."""
        from pipelines.models.jobs import RenderOutput
        from pipelines.models.safety import screen

        pipeline = self.pipeline
        groups = pipeline.group_jobs(jobs)
        outputs: list[RenderOutput | None] = [None] * len(jobs)
        checker = self.safety.get() if self.safety is not None else None
        for g, members in enumerate(groups):
            part = sub_progress(progress, g / len(groups), (g + 1) / len(groups))
            out = pipeline.render_jobs(
                [jobs[i] for i in members], part, self.runtime.batch_size or None
            )
            t0 = time.perf_counter()
            images, flagged = screen(checker, out.images)
            timings = dict(out.timings)
            if checker is not None:
                timings["safety"] = time.perf_counter() - t0
            start = 0
            for i in members:
                stop = start + len(jobs[i].prompt)
                outputs[i] = RenderOutput(
                    images=images[start:stop], timings=timings, flagged=flagged[start:stop]
                )
                start = stop
        return [o for o in outputs if o is not None]
