"""The measures' value types: what every output carries and every reader (page, API, ratings,
decks, exports) reads. Computed by :class:`pipelines.measurer.OutputMeasurer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# every measure, in the order they are shown, with the short label of the compact line
MEASURES: Mapping[str, str] = {
    "identity": "face",
    # the face pack's own cosine, kept beside ``identity`` when a second judge
    # (BECOME_IDENTITY_PACK) measures it, so a report shows both judges side by side
    "identity_face_pack": "face (pack)",
    "style_text": "style",
    "style_ref": "refs",
    "prompt": "prompt",
    "learned": "learned",
    "pickscore": "pick",
    "hpsv2": "hps",
}
NO_FACE = "no face found in the output"


@dataclass(frozen=True)
class PreferenceModel:
    """A published human-preference scorer: a CLIP image/text model fine-tuned on people's
    choices between images of one prompt. Its score of an image given a prompt is
    ``scale * cos(image, text)``, where ``scale`` is the model's own ``logit_scale.exp()``
    when ``logit_scaled`` (PickScore's published score) and 1 otherwise (HPSv2's)."""

    model_id: str  # transformers CLIPModel weights (hub id)
    processor_id: str  # tokenizer and image processor (hub id)
    logit_scaled: bool
    licence: str
    paper: str


# the human-preference measures (each a field of Measures below), with their default weights;
# which run is a deployment's choice (BECOME_PREFERENCE_MEASURES)
PREFERENCE_MODELS: Mapping[str, PreferenceModel] = {
    "pickscore": PreferenceModel(
        model_id="yuvalkirstain/PickScore_v1",
        processor_id="laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        logit_scaled=True,
        # neither the weights' card nor the code repository states a licence
        licence="none stated: research use; ask the authors before commercial use",
        paper="Kirstain et al. 2023, Pick-a-Pic",
    ),
    "hpsv2": PreferenceModel(
        # HPSv2 (xswu/HPSv2, Apache-2.0) in transformers' CLIPModel layout: the official
        # checkpoint is an open_clip file, and open_clip needs a torchvision build that matches
        # the pinned torch, which a CPU install does not have
        model_id="adams-story/HPSv2-hf",
        processor_id="laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        logit_scaled=False,
        licence="Apache-2.0 (HPSv2 weights, xswu/HPSv2)",
        paper="Wu et al. 2023, Human Preference Score v2",
    ),
}
NO_SECOND_JUDGE = "no second identity judge (BECOME_IDENTITY_PACK): identity is the face pack's"


@dataclass(frozen=True)
class Measure:
    """One measure of one output: its value, or why there is none, and which model judged."""

    value: float | None = None
    judge: str = ""  # the model that measured, e.g. "buffalo_l/w600k_r50.onnx"
    reason: str | None = None  # why ``value`` is None

    def to_json(self) -> dict[str, Any]:
        """``{"value", "judge", "reason"}``, the value rounded to 4 decimals."""
        value = None if self.value is None else round(float(self.value), 4)
        return {"value": value, "judge": self.judge, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Measure:
        """The inverse of :meth:`to_json`; a missing entry is an unmeasured measure."""
        if not data:
            return cls(reason="not measured")
        value = data.get("value")
        return cls(
            value=None if value is None else float(value),
            judge=str(data.get("judge") or ""),
            reason=data.get("reason"),
        )


def _unmeasured() -> Measure:
    return Measure(reason="not measured")


@dataclass(frozen=True)
class Measures:
    """Every measure of one output. ``faces``: faces found in it (None = not looked for)."""

    identity: Measure = field(default_factory=_unmeasured)
    identity_face_pack: Measure = field(default_factory=_unmeasured)
    style_text: Measure = field(default_factory=_unmeasured)
    style_ref: Measure = field(default_factory=_unmeasured)
    prompt: Measure = field(default_factory=_unmeasured)
    learned: Measure = field(default_factory=_unmeasured)
    pickscore: Measure = field(default_factory=_unmeasured)
    hpsv2: Measure = field(default_factory=_unmeasured)
    faces: int | None = None

    def get(self, name: str) -> Measure:
        """The measure called ``name`` (one of :data:`MEASURES`)."""
        if name not in MEASURES:
            raise KeyError(f"unknown measure {name!r}: use one of {', '.join(MEASURES)}")
        return getattr(self, name)

    def values(self) -> dict[str, float | None]:
        """``{measure: value or None}`` in :data:`MEASURES` order."""
        return {name: self.get(name).value for name in MEASURES}

    def summary(self) -> str:
        """The compact line under an output: "face 0.71 · style 0.28 · prompt 0.24 · pick 21.30".

        A measure is shown when it has a value (and "face: none found" when no face was); why
        one has none is in :meth:`details`: a server without CLIP would otherwise say "n/a"
        under every picture."""
        parts = []
        for name in ("identity", "style_text", "style_ref", "prompt", *PREFERENCE_MODELS):
            m, label = self.get(name), MEASURES[name]
            if m.value is not None:
                parts.append(f"{label} {m.value:.2f}")
            elif name == "identity" and self.faces == 0:
                parts.append(f"{label}: none found")
        return " · ".join(parts)

    def details(self) -> list[tuple[str, str, str]]:
        """(measure, value or why not, judge) for every measure, for the detail table."""
        rows = []
        for name in MEASURES:
            m = self.get(name)
            shown = f"{m.value:.3f}" if m.value is not None else f"— ({m.reason})"
            rows.append((name, shown, m.judge))
        return rows

    def to_json(self) -> dict[str, Any]:
        """``{measure: {"value", "judge", "reason"}, ..., "faces": n}`` for the API and files."""
        out: dict[str, Any] = {name: self.get(name).to_json() for name in MEASURES}
        out["faces"] = self.faces
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Measures:
        """The inverse of :meth:`to_json` (a manifest line, a stored rating)."""
        data = data or {}
        faces = data.get("faces")
        measures = {name: Measure.from_json(data.get(name)) for name in MEASURES}
        return cls(**measures, faces=None if faces is None else int(faces))
