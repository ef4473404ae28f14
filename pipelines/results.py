"""What one comparison produced: a frozen :class:`ComparisonResult` of frozen outputs.

Results are complete when built (images, hashes, prompts, timings) and never change after; the
UI, the API, the recent-results cache and the ratings all read the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.augment.base import Candidate, TraceStep
    from pipelines.measures import Measures
    from pipelines.request import CompareRequest


@dataclass(frozen=True)
class MethodOutput:
    """One column of the side-by-side row: a method's prompt and, once rendered, its image."""

    method: str
    prompt: str | None = None  # exactly what was rendered
    negative_prompt: str | None = None
    score: float | None = None
    tokens: int | None = None
    trace: tuple[TraceStep, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    error: str | None = None  # why this method produced no image
    image: Image.Image | None = None
    image_hash: str | None = None  # sha256 of the image's PNG, computed when it is rendered
    measures: Measures | None = None  # automatic measures, computed once after rendering

    @property
    def rendered(self) -> bool:
        """Whether the server rendered an image for this method (kept when images are dropped)."""
        return self.image_hash is not None

    def to_json(self) -> dict[str, Any]:
        """This output without its image, as the API returns it."""
        return {
            "method": self.method,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "score": self.score,
            "tokens": self.tokens,
            "error": self.error,
            "rendered": self.rendered,
            "image_hash": self.image_hash,
            "measures": None if self.measures is None else self.measures.to_json(),
            "trace": [{"part": t.part, "source": t.source, "reason": t.reason} for t in self.trace],
        }


@dataclass(frozen=True)
class ComparisonResult:
    """Every output of one request, with the selfie's face crop, engine, model ids and timings."""

    comparison_id: str
    request: CompareRequest  # as rendered: ip_adapter_scale resolved to the style's if unset
    outputs: tuple[MethodOutput, ...]
    face_crop: Image.Image | None
    num_faces: int
    det_score: float
    engine: str
    engine_reason: str
    model_ids: dict[str, str]
    timings: dict[str, float]

    @property
    def face_notice(self) -> str:
        """One line about the faces found, for the UI."""
        if self.num_faces > 1:
            return f"{self.num_faces} faces found; using the largest."
        return "1 face found."

    def output(self, method: str) -> MethodOutput:
        """The output of ``method`` (KeyError when the row has none)."""
        for out in self.outputs:
            if out.method == method:
                return out
        raise KeyError(method)

    def without_images(self) -> ComparisonResult:
        """A light copy for a page's state: no face crop and no output images (hashes stay)."""
        outputs = tuple(replace(o, image=None) for o in self.outputs)
        return replace(self, face_crop=None, outputs=outputs)

    def without_face(self) -> ComparisonResult:
        """The same result without the selfie's face crop (what the recent cache keeps)."""
        return replace(self, face_crop=None)

    def to_json(self) -> dict[str, Any]:
        """Everything but the images, for the API and the feedback store."""
        return {
            "comparison_id": self.comparison_id,
            "style": self.request.style,
            "base_prompt": self.request.prompt,
            "seed": self.request.seed,
            "engine": self.engine,
            "engine_reason": self.engine_reason,
            "model_ids": self.model_ids,
            "params": self.request.generation_params(),
            "faces_found": self.num_faces,
            "face_score": round(self.det_score, 4),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "outputs": [o.to_json() for o in self.outputs],
        }
