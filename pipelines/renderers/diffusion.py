"""SD-1.5 + IP-Adapter FaceID through :class:`~pipelines.generation.PortraitPipeline`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.lazy import Lazy
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
        self.render = gpu_decorator()(self._render)  # type: ignore[method-assign]

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

    def _render(self, job: RenderJob, progress: Progress) -> RenderOutput:
        from pipelines.renderers.base import RenderOutput

        request = job.request
        out = self.pipeline(
            prompt=list(job.prompt),
            negative_prompt=list(job.negative_prompt),
            face_embedding=job.face.embedding,
            ip_adapter_scale=request.ip_adapter_scale,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            height=request.height,
            width=request.width,
            seed=request.seed,
            batch_size=self.runtime.batch_size or None,
            callback=progress,
        )
        return RenderOutput(images=tuple(out.images), timings=dict(out.timings))
