"""What every renderer takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.face import FaceResult
    from pipelines.request import CompareRequest, Progress
    from pipelines.styles import Style


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
    """Renders N prompts with one face and one seed; outputs differ only by prompt."""

    @property
    def model_ids(self) -> dict[str, str]:
        """What renders: model ids (hub ids or folders), for results and ratings."""

    def render(self, job: RenderJob, progress: Progress) -> RenderOutput:
        """Every prompt of ``job`` rendered, reporting progress per denoising step."""
