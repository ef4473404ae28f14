"""Weight-free stylisation of the selfie (OpenCV/Pillow), for machines without weights."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pipelines.core.request import sub_progress

if TYPE_CHECKING:
    from pipelines.core.request import Progress
    from pipelines.models.jobs import RenderJob, RenderOutput
    from pipelines.styles.catalog import Style, StyleCatalog


def mentions_style(prompt: str, style: Style) -> bool:
    """Whether ``prompt`` asks for ``style``: its name, or the template's words before the subject.

    A diffusion model given a plain prompt renders a photo-like image, so the preview engine
    applies the style's recipe only to prompts that ask for the style.
    """
    text = " ".join(prompt.lower().split())
    lead = style.template.split("{prompt}")[0].lower().replace(" portrait of", "").strip(" ,")
    keys = {style.name.lower(), style.id.replace("_", " ").lower(), lead}
    return any(k and k in text for k in keys)


class PreviewRenderer:
    """Stylises the selfie from the style's recipe; each prompt's modifiers change the result."""

    def __init__(self, catalog: StyleCatalog) -> None:
        self._catalog = catalog

    @property
    def model_ids(self) -> dict[str, str]:
        """No weights: the engine itself."""
        return {"engine": "preview (OpenCV/Pillow, no weights)"}

    def render_many(self, jobs: Sequence[RenderJob], progress: Progress) -> list[RenderOutput]:
        """One job after another: previews are per image anyway."""
        return [
            self.render(job, sub_progress(progress, i / len(jobs), (i + 1) / len(jobs)))
            for i, job in enumerate(jobs)
        ]

    def render(self, job: RenderJob, progress: Progress) -> RenderOutput:
        """One preview per prompt; the style's recipe only where the prompt asks for the style."""
        from pipelines.models.jobs import RenderOutput
        from pipelines.preview.render import render_preview

        t0 = time.perf_counter()
        images = []
        plain = replace(job.style, preview={**job.style.preview, "recipe": []})
        n = len(job.prompt)
        for i, prompt in enumerate(job.prompt):
            result = render_preview(
                job.image,
                job.style if mentions_style(prompt, job.style) else plain,
                prompt,
                self._catalog,
                face_bbox=tuple(float(v) for v in job.face.bbox),
                seed=job.request.seed,
                size=job.request.height,
            )
            images.append(result.image)
            progress((i + 1) / n, f"preview {i + 1}/{n}")
        return RenderOutput(images=tuple(images), timings={"render": time.perf_counter() - t0})
