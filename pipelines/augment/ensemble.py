"""The ensemble method: pool every method's candidates and rerank them on normalised signals.

Signals, each z-scored so that no scale dominates:

* ``learned``: the learned scorer's predicted rating, z-scored over the pool;
* ``clip``: mean CLIP similarity to the style's reference images, z-scored over the pool;
* ``own``: each method's own score, z-scored *within that method's candidates* (methods score
  on unrelated scales: a predicted rating, a cosine, ...), 0 for candidates without one.

The combined score is ``sum_s w_s * z_s / sum_s w_s`` over the signals present (default
weights: learned 1, clip 1, own 0.5; ``own`` only breaks ties between a method's own
candidates, the shared judges decide between methods). Missing values count as the pool
mean (z = 0). Besides the methods' own candidates the pool holds the style template and one
merged candidate that combines the parts (bank modifiers, PEZ tokens) all methods chose.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pipelines.augment.base import AugmentContext, MethodUnavailable
from pipelines.augment.clip_backend import LazyClip
from pipelines.augment.inversion.interrogate import join_prompt
from pipelines.augment.inversion.method import load_targets
from pipelines.core.errors import InputError
from pipelines.core.trace import Candidate, TraceStep

if TYPE_CHECKING:
    from pipelines.augment.base import AugmentMethod
    from pipelines.augment.learned.model import LearnedScorer
    from pipelines.styles.catalog import Style

log = logging.getLogger(__name__)

OWN = "own"  # the signal built from each candidate's own score, normalised per method
DEFAULT_WEIGHTS: Mapping[str, float] = {"learned": 1.0, "clip": 1.0, OWN: 0.5}


class FusionInputError(InputError):
    """Signals or weights that do not fit the candidates; names the bad one."""


# ----------------------------------------------------------------------------- fusion


def zscore(values: np.ndarray) -> np.ndarray:
    """(n,) -> (n,) standardised over the finite entries; NaN and constant input give 0."""
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(x)
    ok = np.isfinite(x)
    if ok.sum() >= 2:
        std = x[ok].std()
        if std > 1e-12:
            out[ok] = (x[ok] - x[ok].mean()) / std
    return out


def _own_scores(candidates: Sequence[Candidate]) -> np.ndarray:
    """Each candidate's own score z-scored among the candidates of the same method."""
    raw = np.array([np.nan if c.score is None else c.score for c in candidates], dtype=np.float64)
    out = np.zeros(len(candidates))
    for method in {c.method for c in candidates}:
        idx = np.array([i for i, c in enumerate(candidates) if c.method == method])
        out[idx] = zscore(raw[idx])
    return out


def _check(candidates: Sequence[Candidate], signals: Mapping[str, np.ndarray], weights) -> None:
    n = len(candidates)
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise FusionInputError(f"weight {name}={w!r} is not allowed: use a finite number >= 0")
    for name, values in signals.items():
        if name == OWN:
            raise FusionInputError(f"signal {OWN!r} is computed from the candidates' own scores")
        if name not in weights:
            raise FusionInputError(
                f"signal {name!r} has no weight: give weights for {', '.join(sorted(signals))}"
            )
        shape = np.shape(values)
        if shape != (n,):
            raise FusionInputError(f"signal {name!r} has shape {shape}: expected ({n},)")


def fuse(
    candidates: Sequence[Candidate],
    signals: Mapping[str, np.ndarray],
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
) -> list[Candidate]:
    """Rank ``candidates`` by the weighted mean of their normalised signals, best first.

    ``signals`` maps a name to raw per-candidate values, (n,), NaN where missing; the
    ``own`` signal is added from the candidates' scores when ``weights`` gives it a weight.
    Returns new candidates (method "ensemble") whose score is the combined value, whose trace
    starts with where the prompt came from and each signal's normalised value, followed by
    the original trace with its sources prefixed by the contributing method. Ties keep the
    input order.
    """
    _check(candidates, signals, weights)
    if not candidates:
        return []
    z = {name: zscore(v) for name, v in signals.items()}
    raw = {name: np.asarray(v, dtype=np.float64) for name, v in signals.items()}
    if weights.get(OWN, 0) > 0 and any(c.score is not None for c in candidates):
        z[OWN] = _own_scores(candidates)
        raw[OWN] = np.array([np.nan if c.score is None else c.score for c in candidates])
    active = [s for s in z if weights.get(s, 0) > 0]
    total = sum(weights[s] for s in active)
    combined = np.zeros(len(candidates))
    for s in active:
        combined += weights[s] * z[s] / total
    order = np.argsort(-combined, kind="stable")
    ranked = []
    for rank, i in enumerate(order, 1):
        c = candidates[i]
        values = ", ".join(f"{s} z={z[s][i]:+.2f}" for s in active) or "no signal available"
        head = TraceStep(
            c.prompt,
            f"ensemble <- {c.method}",
            f"rank {rank}/{len(candidates)} by {values} (combined {combined[i]:+.2f})",
        )
        inherited = tuple(
            dataclasses.replace(t, source=f"{c.method}: {t.source}")
            if not t.source.startswith(f"{c.method}: ")
            else t
            for t in c.trace
        )
        meta = {
            **c.meta,
            "from_method": c.method,
            "rank": rank,
            "signals": {s: round(float(z[s][i]), 4) for s in active},
            "raw_signals": {
                s: None if not np.isfinite(raw[s][i]) else round(float(raw[s][i]), 6)
                for s in active
            },
            "weights": {s: weights[s] for s in active},
        }
        ranked.append(
            Candidate(
                prompt=c.prompt,
                method="ensemble",
                score=float(combined[i]),
                negative_prompt=c.negative_prompt,
                trace=(head, *inherited),
                meta=meta,
            )
        )
    return ranked


# ----------------------------------------------------------------------------- pool


def _key(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def merge_parts(
    best: Mapping[str, Candidate], template_prompt: str, style: Style, context: AugmentContext
) -> Candidate | None:
    """The template plus the parts every method chose, taken in turn, while they fit.

    Parts are bank modifiers (``meta["modifiers"]``) and PEZ-recovered text
    (``meta["recovered"]`` with ``meta["mode"] == "pez"``); a modifier that conflicts with
    one already in is skipped. None when no part could be added.
    """
    from pipelines.styles.modifiers import conflicts

    bank = {m.text.lower(): m for m in context.catalog.modifiers_for(style)}
    taken = list(context.catalog.find_modifiers(template_prompt, style))
    prompt = template_prompt
    trace = [TraceStep(style.template, "template", f"the {style.name} style template")]
    used: list[str] = []
    contributors: list[str] = []
    # (method, kind, text) lists, interleaved round-robin so one method's long list of
    # modifiers cannot fill the budget before the others' best parts are in
    parts: list[list[tuple[str, str, str]]] = []
    for name, cand in best.items():
        mine = [(name, "modifier", str(t)) for t in cand.meta.get("modifiers") or ()]
        if cand.meta.get("mode") == "pez" and cand.meta.get("recovered"):
            mine.append((name, "pez", str(cand.meta["recovered"])))
        parts.append(mine)
    for name, kind, text in (p for row in itertools.zip_longest(*parts) for p in row if p):
        mod = bank.get(text.lower()) if kind == "modifier" else None
        if kind == "modifier" and (mod is None or any(conflicts(mod, t) for t in taken)):
            continue
        longer = join_prompt(prompt, text)
        if not context.budget.fits(longer):
            continue
        prompt = longer
        contributors.append(name)
        if mod is not None:
            taken.append(mod)
            used.append(mod.text)
            bank_name = "global bank" if mod.source == "global" else "style bank"
            trace.append(TraceStep(mod.text, f"{name}: {bank_name}", f"chosen by {name}"))
        else:
            trace.append(TraceStep(text, f"{name}: pez", f"tokens recovered by {name}"))
    if not contributors:
        return None
    merged_from = list(dict.fromkeys(contributors))
    return Candidate(
        prompt=prompt,
        method="merge",
        trace=tuple(trace),
        meta={"merged_from": merged_from, "modifiers": used},
    )


class EnsembleMethod:
    """Augmentation method "ensemble": the best of all methods' candidates, reranked."""

    name = "ensemble"
    summary = "the best prompt of all methods, reranked"
    uses_references = True  # CLIP similarity to the style's references reranks the pool
    description = (
        "Pools every method's prompts (and a merge of their parts), reranks them by the "
        "learned score and CLIP similarity to the style references, and keeps the best."
    )

    def __init__(
        self,
        methods: Sequence[AugmentMethod],
        scorer: Callable[[], LearnedScorer | None] | None,
        clip: LazyClip | None,
        weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    ) -> None:
        names = [m.name for m in methods]
        if self.name in names:
            raise FusionInputError("the ensemble cannot include itself: remove 'ensemble'")
        _check([], {}, weights)
        self.methods = list(methods)
        self.scorer = scorer
        self.weights = dict(weights)
        self._clip = clip  # shared with the other CLIP methods: loaded once
        self.pools = tuple(names)  # runs after these and reuses their candidates

    def unavailable_reason(self) -> str | None:
        """Always available: the style template is always in the pool."""
        return None  # the style template is always in the pool

    def augment(self, base_prompt: str, style: Style, context: AugmentContext) -> list[Candidate]:
        """Pool the members' candidates (reusing this row's), add merges, rerank, best first."""
        report = context.progress or (lambda f, m: None)
        template = context.budget.truncate(style.apply(base_prompt))
        pool = [
            Candidate(
                prompt=template,
                method="template",
                trace=(TraceStep(style.template, "template", f"the {style.name} style template"),),
            )
        ]
        skipped: dict[str, str] = {}
        best: dict[str, Candidate] = {}
        n = len(self.methods)
        for i, method in enumerate(self.methods):
            report(0.8 * i / max(n, 1), f"running {method.name}")
            sub = dataclasses.replace(
                context,
                progress=lambda f, m, i=i, name=method.name: report(
                    0.8 * (i + f) / n, f"{name}: {m}"
                ),
            )
            reason = method.unavailable_reason()
            try:
                if reason:
                    raise MethodUnavailable(reason)
                if method.name in context.failed:  # failed in this row: not paid for twice
                    raise MethodUnavailable(context.failed[method.name])
                if method.name in context.computed:  # this request's row already ran it
                    candidates = list(context.computed[method.name])
                else:
                    candidates = method.augment(base_prompt, style, sub)
            except MethodUnavailable as exc:
                skipped[method.name] = str(exc)
                continue
            if candidates:
                best[method.name] = candidates[0]
            pool.extend(candidates)
        merged = merge_parts(best, template, style, context)
        if merged is not None:
            pool.append(merged)
        pool = self._dedupe(pool)

        report(0.85, f"scoring {len(pool)} prompts")
        signals, missing = self._signals(pool, style, context)
        for name in [s for s in signals if self.weights.get(s, 0) <= 0]:
            del signals[name]  # weighted out: not a judge here
            missing[name] = "its weight is 0"
        ranked = fuse(pool, signals, self.weights)
        notes = tuple(
            TraceStep(m, "ensemble", f"skipped: {r}") for m, r in skipped.items()
        ) + tuple(TraceStep(s, "ensemble", f"signal not used: {r}") for s, r in missing.items())
        report(1.0, f"best of {len(pool)} prompts from {len(best)} method(s)")
        out = []
        for c in ranked:
            meta = {**c.meta, "skipped": skipped, "signals_missing": missing, "pool": len(pool)}
            out.append(dataclasses.replace(c, trace=(*c.trace, *notes), meta=meta))
        return out

    @staticmethod
    def _dedupe(pool: Sequence[Candidate]) -> list[Candidate]:
        """One candidate per prompt (first wins), remembering the other methods that gave it."""
        seen: dict[str, int] = {}
        out: list[Candidate] = []
        for c in pool:
            k = _key(c.prompt)
            if k in seen:
                first = out[seen[k]]
                also = [*first.meta.get("also_from", []), c.method]
                out[seen[k]] = dataclasses.replace(first, meta={**first.meta, "also_from": also})
            else:
                seen[k] = len(out)
                out.append(c)
        return out

    def _signals(
        self, pool: Sequence[Candidate], style: Style, context: AugmentContext
    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        prompts = [c.prompt for c in pool]
        signals: dict[str, np.ndarray] = {}
        missing: dict[str, str] = {}
        scorer = None
        if self.scorer is None:
            missing["learned"] = "no learned scorer was given"
        else:
            try:
                scorer = self.scorer()
            except (RuntimeError, OSError, ValueError) as exc:  # NoModelError, a bad file
                missing["learned"] = str(exc)
            if scorer is None and "learned" not in missing:
                missing["learned"] = "no learned model is loaded"
        if scorer is not None:
            # both stages where the contextual encoder loads, as the learned method ranks
            learned, _ = scorer.rerank(prompts, style.id)
            signals["learned"] = np.asarray(learned, dtype=np.float64)

        images = load_targets(style, context)
        if self._clip is None:
            missing["clip"] = "no CLIP model was given"
        elif not images and not style.description:
            missing["clip"] = f"no reference image or description for {style.name}"
        else:
            try:
                clip = self._clip.get()
            except MethodUnavailable as exc:
                missing["clip"] = str(exc)
            else:
                # without reference images the style's description is the target (text to text)
                targets = (
                    clip.image_features(images)
                    if images
                    else clip.text_features([style.description])
                )  # (m, d)
                feats = clip.text_features(prompts)  # (n, d)
                signals["clip"] = (targets @ feats.T).mean(dim=0).cpu().numpy()
        return signals, missing
