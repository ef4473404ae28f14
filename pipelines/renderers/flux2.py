"""FLUX.2 [klein] edits the selfie: :class:`~pipelines.models.flux2_klein.Flux2EditPipeline`.

The same renderer as the FaceID families (lazy load, one render at a time, safety checker on
every output); what differs is the call: identity comes from the selfie itself, cropped around
the detected face and passed as the reference image, instead of a face embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

from pipelines.renderers.diffusion import DiffusionRenderer

if TYPE_CHECKING:
    from pipelines.core.request import Progress
    from pipelines.models.base import PortraitPipelineOutput
    from pipelines.renderers.base import RenderJob

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


class Flux2Renderer(DiffusionRenderer):
    """Renders with ``flux2-klein-edit``: each prompt edits the framed selfie."""

    def _groups(self, jobs: Sequence[RenderJob]) -> list[list[int]]:
        """One call per job: the reference image (the selfie) is per call, not per prompt."""
        return [[i] for i in range(len(jobs))]

    def _call_pipeline(
        self, jobs: Sequence[RenderJob], progress: Progress
    ) -> PortraitPipelineOutput:
        (job,) = jobs
        request = job.request
        reference = portrait_reference(
            job.image, tuple(float(v) for v in job.face.bbox), request.width, request.height
        )
        return self.pipeline(
            prompt=list(job.prompt),
            negative_prompt=list(job.negative_prompt),
            image=reference,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            height=request.height,
            width=request.width,
            seed=request.seed,
            batch_size=self.runtime.batch_size or None,
            callback=progress,
        )
