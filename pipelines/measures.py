"""Automatic measures of every rendered output: identity, style, prompt alignment, learned score.

* ``identity``: cosine between the selfie's ArcFace embedding and the largest face in the output
  (the conditioning face models, or a second recogniser so that the judge is not the model that
  steers the generator). No face in the output is a result (``faces == 0``), not an error.
* ``style_ref``: mean CLIP image cosine of the output to the style's reference images.
* ``style_text``: CLIP cosine of the output to the style's description.
* ``prompt``: CLIP cosine of the output to the base prompt (CLIPScore without its 2.5 x 100).
* ``learned``: the learned scorer's predicted rating of the final prompt, for every method alike.

A measure that cannot run keeps ``value=None`` and says why; nothing is made up. The service
computes them once, after rendering (:class:`OutputMeasurer`), and every reader (page, API,
ratings, decks) reads the same frozen :class:`Measures`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from pipelines.augment.clip_backend import LazyClip
    from pipelines.augment.learned import LearnedScorer
    from pipelines.face import FaceAnalyzer, FaceResult
    from pipelines.lazy import Lazy
    from pipelines.results import MethodOutput
    from pipelines.styles import Style

log = logging.getLogger(__name__)

# every measure, in the order they are shown, with the short label of the compact line
MEASURES: Mapping[str, str] = {
    "identity": "face",
    "style_text": "style",
    "style_ref": "refs",
    "prompt": "prompt",
    "learned": "learned",
}
NO_FACE = "no face found in the output"


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


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) cosines of the rows of ``a`` (n, d) and ``b`` (m, d)."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return a @ b.T


class OutputMeasurer:
    """Measures a row of outputs with the models the app already loaded.

    Args:
        face: the conditioning face models (``engine.face``): they embedded the selfie.
        clip: the app's one CLIP (bootstrap's ``LazyClip``), shared with inversion and ensemble.
        scorer: returns the live learned scorer (``ScorerHolder.get``), or raises when none.
        judge: optional second recogniser; when given it embeds the selfie and the outputs, so
            the identity judge is not the model that conditioned the generator.
    """

    def __init__(
        self,
        face: Lazy[FaceAnalyzer],
        clip: LazyClip,
        scorer: Callable[[], LearnedScorer] | None = None,
        judge: Lazy[FaceAnalyzer] | None = None,
    ) -> None:
        self.face = face
        self.clip = clip
        self.scorer = scorer
        self.judge = judge
        self._refs: dict[tuple[str, tuple[tuple[str, int], ...]], np.ndarray] = {}
        self._refs_lock = threading.Lock()
        # learned scores by (style, final prompt) for the live scorer: a deck renders the same
        # prompts for every selfie and seed, and a retrained scorer starts a new cache
        self._scores: dict[tuple[str, str], float] = {}
        self._scores_of: object = None

    def measure(
        self,
        outputs: Sequence[MethodOutput],
        selfie: Image.Image,
        selfie_face: FaceResult,
        base_prompt: str,
        style: Style,
    ) -> list[Measures | None]:
        """One :class:`Measures` per output (None for an output that has no image)."""
        shown = [i for i, o in enumerate(outputs) if o.image is not None]
        images = [outputs[i].image for i in shown]
        if not images:
            return [None] * len(outputs)
        identity, faces = self._identity(images, selfie, selfie_face)  # type: ignore[arg-type]
        clip = self._clip(images, base_prompt, style)  # type: ignore[arg-type]
        learned = self._learned([outputs[i].prompt or "" for i in shown], style)
        out: list[Measures | None] = [None] * len(outputs)
        for k, i in enumerate(shown):
            out[i] = Measures(
                identity=identity[k],
                style_text=clip["style_text"][k],
                style_ref=clip["style_ref"][k],
                prompt=clip["prompt"][k],
                learned=learned[k],
                faces=faces[k],
            )
        return out

    # identity --------------------------------------------------------------------------------

    def _identity(
        self, images: Sequence[Image.Image], selfie: Image.Image, selfie_face: FaceResult
    ) -> tuple[list[Measure], list[int | None]]:
        n = len(images)
        try:
            analyzer = (self.judge or self.face).get()
            judge = analyzer.recognizer_id
            if self.judge is None:
                reference = selfie_face.embedding  # the very embedding that conditioned the row
            else:
                from pipelines.face import FaceError

                try:
                    reference = analyzer.analyze_loaded(selfie).embedding
                except FaceError as exc:
                    why = f"the judge found no usable face in the selfie ({exc})"
                    return [Measure(judge=judge, reason=why)] * n, [None] * n
            measures, faces = [], []
            sizes = [_det_size(img, analyzer.det_size) for img in images]
            for found in analyzer.embed_largest_many(images, sizes):
                if found is None:
                    measures.append(Measure(judge=judge, reason=NO_FACE))
                    faces.append(0)
                    continue
                cosine = float(np.dot(reference, found.embedding))
                measures.append(Measure(value=cosine, judge=judge))
                faces.append(found.num_faces)
            return measures, faces
        except Exception as exc:  # a measure must never cost the row its images
            log.warning("identity measure failed: %s", exc, exc_info=True)
            return [Measure(reason=f"identity could not be measured: {exc}")] * n, [None] * n

    # CLIP ------------------------------------------------------------------------------------

    def _clip(
        self, images: Sequence[Image.Image], base_prompt: str, style: Style
    ) -> dict[str, list[Measure]]:
        n = len(images)
        try:
            backend = self.clip.get()
        except Exception as exc:  # ClipUnavailable carries the reason (no weights, offline)
            why = f"CLIP is not available: {exc}"
            return {k: [Measure(reason=why)] * n for k in ("style_text", "style_ref", "prompt")}
        judge = backend.model_id
        try:
            feats = backend.image_features(list(images)).cpu().numpy()  # (n, d), one batch
            texts = backend.text_features([base_prompt, style.description]).cpu().numpy()  # (2, d)
            sims = feats @ texts.T  # (n, 2): features are normalised
            out = {
                "prompt": [Measure(value=float(s), judge=judge) for s in sims[:, 0]],
                "style_text": [Measure(value=float(s), judge=judge) for s in sims[:, 1]],
            }
        except Exception as exc:
            log.warning("CLIP measures failed: %s", exc, exc_info=True)
            why = f"CLIP measures failed: {exc}"
            return {k: [Measure(reason=why)] * n for k in ("style_text", "style_ref", "prompt")}
        refs, why_not = self._reference_features(backend, style)
        if refs is None:
            out["style_ref"] = [Measure(judge=judge, reason=why_not)] * n
        else:
            mean = _cosine_rows(feats, refs).mean(axis=1)  # (n,)
            out["style_ref"] = [Measure(value=float(s), judge=judge) for s in mean]
        return out

    def _reference_features(self, backend: Any, style: Style) -> tuple[np.ndarray | None, str]:
        """(m, d) CLIP features of the style's reference images, cached until a file changes."""
        paths = style.reference_images()
        if not paths:
            return None, f"style {style.id!r} has no reference images ({style.reference_dir})"
        key = (style.id, tuple((str(p), p.stat().st_mtime_ns) for p in paths))
        with self._refs_lock:
            hit = self._refs.get(key)
        if hit is not None:
            return hit, ""
        try:
            images = [Image.open(p).convert("RGB") for p in paths]
        except OSError as exc:
            return None, f"a reference image of {style.id!r} could not be read: {exc}"
        feats = backend.image_features(images).cpu().numpy()  # (m, d)
        with self._refs_lock:
            self._refs = {k: v for k, v in self._refs.items() if k[0] != style.id}
            self._refs[key] = feats
        return feats, ""

    # learned ---------------------------------------------------------------------------------

    def _learned(self, prompts: Sequence[str], style: Style) -> list[Measure]:
        n = len(prompts)
        if self.scorer is None:
            return [Measure(reason="no learned scorer here")] * n
        try:
            scorer = self.scorer()
            created = str(scorer.metadata.get("created", ""))[:10]
            judge = f"learned scorer {created}".strip()
            scores = self._cached_scores(scorer, prompts, style.id)
        except Exception as exc:  # NoModelError says why no model is loaded
            return [Measure(reason=f"learned score unavailable: {exc}")] * n
        return [
            Measure(value=float(s), judge=judge)
            if math.isfinite(s)
            else Measure(judge=judge, reason="score not finite")
            for s in scores
        ]

    def _cached_scores(
        self, scorer: LearnedScorer, prompts: Sequence[str], style_id: str
    ) -> list[float]:
        with self._refs_lock:
            if self._scores_of is not scorer or len(self._scores) > 4096:
                self._scores, self._scores_of = {}, scorer
            known = dict(self._scores)
        todo = list(dict.fromkeys(p for p in prompts if (style_id, p) not in known))
        if todo:
            fresh = scorer.score(todo, style_id)
            with self._refs_lock:
                for p, v in zip(todo, fresh, strict=True):
                    known[(style_id, p)] = self._scores[(style_id, p)] = float(v)
        return [known[(style_id, p)] for p in prompts]


def _det_size(img: Image.Image, largest: int) -> int:
    """The detector input for an output: its longer side rounded up to 32, at most ``largest``."""
    side = max(img.size)
    return max(64, min(int(largest), 32 * math.ceil(side / 32)))
