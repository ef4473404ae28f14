"""What every renderer takes and returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.core.request import CompareRequest, Progress
    from pipelines.faces.analysis import FaceResult
    from pipelines.styles.catalog import Style


@dataclass(frozen=True)
class RenderJob:
    """One batched render: every prompt shares the request's face, seed and settings."""

    request: CompareRequest  # ip_adapter_scale resolved
    prompt: tuple[str, ...]  # one per output, as diffusers' ``prompt`` list
    negative_prompt: tuple[str, ...]  # one per prompt
    face: FaceResult
    image: Image.Image  # the selfie as loaded (the preview engine stylises it)
    style: Style


@dataclass(frozen=True)
class RenderOutput:
    """One image per prompt, in prompt order, with stage timings in seconds.

    ``flagged[i]``: the safety checker flagged output ``i``, and ``images[i]`` is the
    placeholder that replaced it (the flagged pixels never leave the renderer).
    """

    images: tuple[Image.Image, ...]
    timings: dict[str, float] = field(default_factory=dict)
    flagged: tuple[bool, ...] = ()  # empty = nothing checked


class Renderer(Protocol):
    """Renders jobs; within a job all prompts share the face and seed, so outputs differ only by
    prompt. Several jobs (rows of several people) may be rendered together in one batch: each
    output keeps its own face and seeded generator, so its pixels do not depend on the batch."""

    @property
    def model_ids(self) -> dict[str, str]:
        """What renders: model ids (hub ids or folders), for results and ratings."""

    def render(self, job: RenderJob, progress: Progress) -> RenderOutput:
        """Every prompt of ``job`` rendered, reporting progress per denoising step."""

    def render_many(self, jobs: Sequence[RenderJob], progress: Progress) -> list[RenderOutput]:
        """Every job rendered, batched where their settings allow; one output per job."""


def render_key(request: CompareRequest) -> tuple[int, float, float | None, int, int]:
    """Jobs with the same key can share one batched call (the scale is set per call)."""
    return (
        request.num_inference_steps,
        request.guidance_scale,
        request.ip_adapter_scale,
        request.height,
        request.width,
    )
