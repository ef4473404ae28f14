"""Automatic measures of every rendered output: identity, style, prompt alignment, learned score.

* ``identity``: cosine between the selfie's ArcFace embedding and the largest face in the output
  (the conditioning face models, or a second recogniser so that the judge is not the model that
  steers the generator). No face in the output is a result (``faces == 0``), not an error.
* ``identity_face_pack``: with a second recogniser, the face pack's own cosine beside it (two
  judges side by side); without one, a reason.
* ``style_ref``: mean CLIP image cosine of the output to the style's reference images.
* ``style_text``: CLIP cosine of the output to the style's description.
* ``prompt``: CLIP cosine of the output to the base prompt (CLIPScore without its 2.5 x 100).
* ``learned``: the learned scorer's predicted rating of the final prompt, for every method alike.
* ``pickscore``, ``hpsv2``: human-preference scores (PickScore, HPSv2) of the output for one text
  per row, the base prompt and the style's name, so that no method is judged against its own
  final prompt; which run is a deployment's choice (``BECOME_PREFERENCE_MEASURES``).

A measure that cannot run keeps ``value=None`` and says why; nothing is made up. The service
computes them once, after rendering (:class:`OutputMeasurer`), and every reader (page, API,
ratings, decks) reads the same frozen :class:`Measures`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from pipelines.augment.clip_backend import LazyClip
    from pipelines.augment.learned.model import LearnedScorer
    from pipelines.core.lazy import Lazy
    from pipelines.core.results import MethodOutput
    from pipelines.faces.analysis import FaceAnalyzer, FaceResult
    from pipelines.preference.scorer import LazyPreference
    from pipelines.styles.catalog import Style

from pipelines.core.measures import (
    NO_FACE,
    NO_SECOND_JUDGE,
    PREFERENCE_MODELS,
    Measure,
    Measures,
)

log = logging.getLogger(__name__)


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
        references: a style's reference image files (the app's ``ReferenceStore.targets``:
            bundled and staff-uploaded alike); by default only the bundled ones.
        preference: the preference scorers by measure name (``pickscore``, ``hpsv2``), loaded
            on first use; a measure with none here says so instead of a value.
    """

    def __init__(
        self,
        face: Lazy[FaceAnalyzer],
        clip: LazyClip,
        scorer: Callable[[], LearnedScorer] | None = None,
        judge: Lazy[FaceAnalyzer] | None = None,
        references: Callable[[Style], list[Path]] | None = None,
        preference: Mapping[str, LazyPreference] | None = None,
    ) -> None:
        self.face = face
        self.preference = dict(preference or {})
        self.references = references or _bundled_references
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
        identity, own, faces = self._identity(images, selfie, selfie_face)  # type: ignore[arg-type]
        clip = self._clip(images, base_prompt, style)  # type: ignore[arg-type]
        learned = self._learned([outputs[i].prompt or "" for i in shown], style)
        text = preference_text(base_prompt, style)
        preference = self._preference(images, text)  # type: ignore[arg-type]
        out: list[Measures | None] = [None] * len(outputs)
        for k, i in enumerate(shown):
            out[i] = Measures(
                identity=identity[k],
                identity_face_pack=own[k],
                style_text=clip["style_text"][k],
                style_ref=clip["style_ref"][k],
                prompt=clip["prompt"][k],
                learned=learned[k],
                **{name: values[k] for name, values in preference.items()},
                faces=faces[k],
            )
        return out

    # identity --------------------------------------------------------------------------------

    def _identity(
        self, images: Sequence[Image.Image], selfie: Image.Image, selfie_face: FaceResult
    ) -> tuple[list[Measure], list[Measure], list[int | None]]:
        """``identity`` (the second judge when set, else the face pack), the face pack's own
        cosine when a second judge is set (side by side in reports), and faces found."""
        n = len(images)
        if self.judge is None:
            own, faces = self._identity_by(self.face, images, lambda _: selfie_face.embedding)
            return own, [Measure(reason=NO_SECOND_JUDGE)] * n, faces

        def judge_reference(analyzer: FaceAnalyzer) -> np.ndarray:
            return analyzer.analyze_loaded(selfie).embedding  # the judge embeds the selfie too

        judged, faces = self._identity_by(self.judge, images, judge_reference)
        own, _ = self._identity_by(self.face, images, lambda _: selfie_face.embedding)
        return judged, own, faces

    @staticmethod
    def _identity_by(
        models: Lazy[FaceAnalyzer],
        images: Sequence[Image.Image],
        reference: Callable[[FaceAnalyzer], np.ndarray],
    ) -> tuple[list[Measure], list[int | None]]:
        """Cosine of ``reference`` (the selfie's embedding by ``models``) to each output's
        largest face, as ``models`` embed it; ``faces``: how many each output shows."""
        n = len(images)
        try:
            analyzer = models.get()
            judge = analyzer.recognizer_id
            from pipelines.faces.analysis import FaceError

            try:
                selfie_embedding = reference(analyzer)
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
                cosine = float(np.dot(selfie_embedding, found.embedding))
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
        paths = self.references(style)
        if not paths:  # shown to participants: no server path here
            return None, f"style {style.id!r} has no reference images yet"
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

    # preference ------------------------------------------------------------------------------

    def _preference(self, images: Sequence[Image.Image], text: str) -> dict[str, list[Measure]]:
        """Each preference measure of the row's images, one batch per model."""
        n, out = len(images), {}
        for name in PREFERENCE_MODELS:
            lazy = self.preference.get(name)
            if lazy is None:
                out[name] = [Measure(reason=f"{name} is not set up in this app")] * n
                continue
            try:
                scorer = lazy.get()
            except Exception as exc:  # PreferenceUnavailable says why (off, no weights)
                out[name] = [Measure(judge=lazy.source.model_id, reason=str(exc))] * n
                continue
            try:
                scores = scorer.score(images, text)
            except Exception as exc:  # a measure must never cost the row its images
                log.warning("%s failed: %s", name, exc, exc_info=True)
                out[name] = [Measure(judge=scorer.judge, reason=f"{name} failed: {exc}")] * n
                continue
            out[name] = [
                Measure(value=s, judge=scorer.judge)
                if math.isfinite(s)
                else Measure(judge=scorer.judge, reason="score not finite")
                for s in scores
            ]
        return out

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
            fresh, _ = scorer.rerank(todo, style_id)  # both stages where the encoder loads
            with self._refs_lock:
                for p, v in zip(todo, fresh, strict=True):
                    known[(style_id, p)] = self._scores[(style_id, p)] = float(v)
        return [known[(style_id, p)] for p in prompts]


def preference_text(base_prompt: str, style: Style) -> str:
    """The text a row's outputs are judged against by the preference measures: what the person
    asked for (the base prompt, in the style), the same for every method of the row."""
    base = " ".join(base_prompt.split()) or "a portrait of a person"
    return f"{base}, {style.name}"


def _bundled_references(style: Style) -> list[Path]:
    """The reference files shipped with the style (no uploads)."""
    return style.reference_images()


def _det_size(img: Image.Image, largest: int) -> int:
    """The detector input for an output: its longer side rounded up to 32, at most ``largest``."""
    side = max(img.size)
    return max(64, min(int(largest), 32 * math.ceil(side / 32)))
