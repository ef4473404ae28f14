"""The diffusion renderer: a family's pipeline, loaded on first use, then the safety checker.

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
from pipelines.core.request import sub_progress
from pipelines.models.registry import pipeline_class
from pipelines.models.runtime import RuntimeOptions, gpu_decorator

if TYPE_CHECKING:
    from pipelines.core.request import Progress
    from pipelines.models.jobs import RenderJob, RenderOutput
    from pipelines.models.safety import SafetyChecker

__all__ = ["DiffusionRenderer", "DiffusionWeights", "RuntimeOptions", "WeightsUnavailable"]


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
    ) -> None:
        self.runtime = runtime
        self._pipeline: Lazy[Any] = Lazy(load, "diffusion pipeline")
        self._planned_ids = dict(planned_ids or {})  # what will load, until it has
        self.safety = safety
        # On a ZeroGPU Space the GPU is attached only inside spaces.GPU-decorated calls: the
        # pipeline and the safety checker both run inside it.
        self.render_many = gpu_decorator()(self._render_many)  # type: ignore[method-assign]

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
            try:
                pipeline = pipeline_class(family.id).from_pretrained(
                    weights.base_model,
                    weights.faceid_adapter,
                    weights.faceid_weight,
                    device=runtime.device,
                    dtype=runtime.dtype,
                    local_files_only=weights.local_files_only,
                    options=runtime,
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
            if runtime.compile:
                size = warmup_size or family.size
                pipeline.warm_up(size, size)
            return pipeline

        planned = weights.planned_ids()
        if safety is not None:
            planned["safety_checker"] = safety.name
        return cls(load, runtime, planned, safety)

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
        if not self._pipeline.loaded:
            return dict(self._planned_ids)
        ids = dict(self.pipeline.model_ids)
        if self.safety is not None:
            ids["safety_checker"] = self.safety.name
        return ids

    def render(self, job: RenderJob, progress: Progress) -> RenderOutput:
        """Every prompt of ``job`` in one call."""
        return self.render_many([job], progress)[0]

    def _render_many(self, jobs: Sequence[RenderJob], progress: Progress) -> list[RenderOutput]:
        """Jobs that can share a pipeline call share one (several people's rows); then every
        output passes the safety checker."""
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
