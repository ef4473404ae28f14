"""What one comparison produced: a frozen :class:`ComparisonResult` of frozen outputs.

Results are complete when built (images, hashes, prompts, timings) and never change after; the
UI, the API, the recent-results cache and the ratings all read the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.core.measures import Measures
    from pipelines.core.request import CompareRequest
    from pipelines.core.trace import Candidate, TraceStep


# the key of ``ComparisonResult.model_ids`` naming the learned scorer's version that ranked the
# row's prompts ("bundled" or a retrained version's id); absent: no learned model was loaded
LEARNED_MODEL = "learned_model"

STAND_IN_NOTICE = (
    "Face detection is a stand-in here (no face models installed): "
    "the centre of the photo was used."
)


@dataclass(frozen=True)
class MethodOutput:
    """One column of the side-by-side row: a method's prompt and, once rendered, its image."""

    method: str
    prompt: str | None = None  # exactly what was rendered
    negative_prompt: str | None = None
    score: float | None = None  # the learned scorer's prediction: one scale for every method
    tokens: int | None = None
    trace: tuple[TraceStep, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    error: str | None = None  # why this method produced no image
    same_as: str | None = None  # an earlier method of the row with the very same prompts
    image: Image.Image | None = None
    image_hash: str | None = None  # sha256 of the image's PNG, computed when it is rendered
    # the safety checker flagged it: ``image`` is the placeholder that says so, and there is
    # no hash, so it is not rendered for ratings and never stored
    flagged: bool = False
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
            "same_as": self.same_as,
            "rendered": self.rendered,
            "flagged": self.flagged,
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
    model_ids: dict[str, str]  # what rendered, and the learned model (LEARNED_MODEL)
    timings: dict[str, float]
    face_stand_in: bool = False  # the face models are stand-ins: the box was placed, not detected
    model_family: str = ""  # pipelines.core.families id
    licence: str = ""  # the family's licence class: research-only | commercial
    safety_checker: bool = False  # whether every output passed the safety checker
    token_limit: int = 77  # tokens the family's text encoder reads

    @property
    def face_detector(self) -> str:
        """What placed the face box: "insightface" (a real detection) or "stand-in"."""
        return "stand-in" if self.face_stand_in else "insightface"

    @property
    def learned_model(self) -> str:
        """The learned scorer's version that ranked this row's prompts ("" = none loaded)."""
        return self.model_ids.get(LEARNED_MODEL, "")

    @property
    def flagged(self) -> int:
        """How many outputs the safety checker hid."""
        return sum(o.flagged for o in self.outputs)

    @property
    def face_notice(self) -> str:
        """One line about what the face detector returned, for the UI; no claim it did not make."""
        if self.face_stand_in:
            return STAND_IN_NOTICE
        score = f"detection score {self.det_score:.2f}"
        if self.num_faces > 1:
            return f"{self.num_faces} faces found; using the largest ({score})."
        return f"1 face found ({score})."

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
            "model_family": self.model_family,
            "licence": self.licence,
            "model_ids": self.model_ids,
            "learned_model": self.learned_model or None,
            "token_limit": self.token_limit,
            "safety": {"checker": "on" if self.safety_checker else "off", "flagged": self.flagged},
            "params": self.request.generation_params(),
            "face_detector": self.face_detector,
            # a stand-in's box count and score describe nothing: report none
            "faces_found": None if self.face_stand_in else self.num_faces,
            "face_score": None if self.face_stand_in else round(self.det_score, 4),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "outputs": [o.to_json() for o in self.outputs],
        }
