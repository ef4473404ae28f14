"""SD-1.5 + IP-Adapter FaceID through :class:`~pipelines.generation.PortraitPipeline`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.lazy import Lazy
from pipelines.request import sub_progress
from pipelines.runtime import gpu_decorator

if TYPE_CHECKING:
    from pipelines.generation import PortraitPipeline
    from pipelines.renderers.base import RenderJob, RenderOutput
    from pipelines.request import Progress


@dataclass(frozen=True)
class DiffusionWeights:
    """Where the weights come from: hub ids or local folders (real or tiny, same code)."""

    base_model: str | Path
    faceid_adapter: str | Path
    faceid_weight: str
    local_files_only: bool | None  # None = follow HF_HUB_OFFLINE


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how to run: ``auto`` or an explicit device / dtype, UNet batch size (0 = auto)."""

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 0


class DiffusionRenderer:
    """The real pipeline, loaded on first use and shared read-only by all requests."""

    def __init__(
        self,
        load: Callable[[], PortraitPipeline],
        runtime: RuntimeOptions,
        planned_ids: dict[str, str] | None = None,
    ) -> None:
        self.runtime = runtime
        self._pipeline: Lazy[PortraitPipeline] = Lazy(load, "diffusion pipeline")
        self._planned_ids = dict(planned_ids or {})  # what will load, until it has
        # On a ZeroGPU Space the GPU is attached only inside spaces.GPU-decorated calls.
        self.render_many = gpu_decorator()(self._render_many)  # type: ignore[method-assign]

    @classmethod
    def from_weights(cls, weights: DiffusionWeights, runtime: RuntimeOptions) -> DiffusionRenderer:
        """A renderer that loads ``weights`` (hub ids or folders) on first use."""

        def load() -> PortraitPipeline:
            from pipelines.generation import PortraitPipeline

            return PortraitPipeline.from_pretrained(
                weights.base_model,
                weights.faceid_adapter,
                weights.faceid_weight,
                device=runtime.device,
                dtype=runtime.dtype,
                local_files_only=weights.local_files_only,
            )

        planned = {
            "base": str(weights.base_model),
            "adapter": f"{weights.faceid_adapter}/{weights.faceid_weight}",
        }
        return cls(load, runtime, planned)

    @property
    def pipeline(self) -> PortraitPipeline:
        """The loaded pipeline (loads it on the first call)."""
        return self._pipeline.get()

    @property
    def model_ids(self) -> dict[str, str]:
        """The pipeline's model ids once loaded, else where they will load from."""
        return dict(self.pipeline.model_ids) if self._pipeline.loaded else dict(self._planned_ids)

    def render(self, job: RenderJob, progress: Progress) -> RenderOutput:
        """Every prompt of ``job`` in one call."""
        return self.render_many([job], progress)[0]

    def _render_many(self, jobs: Sequence[RenderJob], progress: Progress) -> list[RenderOutput]:
        """Jobs with the same settings share one pipeline call: their prompts are concatenated,
        each with its own row's face embedding and seed."""
        from pipelines.renderers.base import RenderOutput, render_key

        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(render_key(job.request), []).append(i)
        outputs: list[RenderOutput | None] = [None] * len(jobs)
        for g, members in enumerate(groups.values()):
            part = sub_progress(progress, g / len(groups), (g + 1) / len(groups))
            request = jobs[members[0]].request
            faces = [jobs[i].face.embedding for i in members for _ in jobs[i].prompt]
            out = self.pipeline(
                prompt=[p for i in members for p in jobs[i].prompt],
                negative_prompt=[n for i in members for n in jobs[i].negative_prompt],
                face_embedding=np.stack(faces),  # (N, 512): each output its own row's face
                ip_adapter_scale=request.ip_adapter_scale,
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                height=request.height,
                width=request.width,
                seed=[jobs[i].request.seed for i in members for _ in jobs[i].prompt],
                batch_size=self.runtime.batch_size or None,
                callback=part,
            )
            images = iter(out.images)
            for i in members:
                outputs[i] = RenderOutput(
                    images=tuple(next(images) for _ in jobs[i].prompt), timings=dict(out.timings)
                )
        return [o for o in outputs if o is not None]
