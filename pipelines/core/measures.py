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
}
NO_FACE = "no face found in the output"
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
        """The compact line under an output: "face 0.71 · style 0.28 · prompt 0.24"."""
        parts = []
        for name in ("identity", "style_text", "style_ref", "prompt"):
            m, label = self.get(name), MEASURES[name]
            if m.value is not None:
                parts.append(f"{label} {m.value:.2f}")
            elif name == "identity" and self.faces == 0:
                parts.append(f"{label}: none found")
            elif name != "style_ref":  # most styles have no references: do not shout it
                parts.append(f"{label} n/a")
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
