"""The "learned" augmentation method: beam search over the style's and the global modifier banks
for the final prompt with the highest learned score.

Search runs on an additive surrogate: each modifier's gain is measured once per (model, style)
against the style's template around a neutral subject and cached, so expanding a beam is a sum.
The best beams of every depth are then scored exactly by the fast stage; the best few of those
(the model's ``top_k``, and the bare prompt for the gain) are re-scored by the contextual stage
and ranked on that two-stage score. Without the contextual encoder they are ranked on the fast
score, and every candidate says which ranking it got.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.augment.base import AugmentContext, MethodUnavailable
from pipelines.augment.learned.model import LearnedScorer, NoModelError, ScorerHolder
from pipelines.core.trace import Candidate, TraceStep
from pipelines.styles.modifiers import conflicts

if TYPE_CHECKING:
    from pipelines.augment.tokens import TokenBudget
    from pipelines.styles.catalog import Style, StyleCatalog
    from pipelines.styles.modifiers import Modifier

REFERENCE_SUBJECT = "a portrait of a person"  # neutral subject the modifier gains are measured on


@dataclass(frozen=True)
class SearchConfig:
    """Beam-search limits: width, depth, candidates returned and exact re-scores per depth."""

    beam_width: int = 4
    max_modifiers: int = 6
    n_candidates: int = 3  # candidates returned, best first
    exact_per_depth: int = 2  # beams per depth re-scored exactly
    min_gain: float = 1e-4  # a modifier must raise the surrogate score by more than this

    def __post_init__(self) -> None:
        for name in ("beam_width", "max_modifiers", "n_candidates", "exact_per_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} is not allowed: use 1 or more")


@dataclass(frozen=True)
class _Beam:
    mods: tuple[int, ...]  # indices into the bank, in prompt order
    value: float  # surrogate score gain over the base


def compose(base: str, modifiers: list[str]) -> str:
    """Base prompt, then the modifiers in order of gain (CLIP weighs early tokens more)."""
    return ", ".join([base, *modifiers])


class LearnedMethod:
    """Adds the bank modifiers that the learned scorer predicts raise the prompt's score."""

    name = "learned"
    summary = "additions a model learned from ratings"
    uses_references = False
    pools: tuple[str, ...] = ()
    description = "Style and global modifiers chosen by a model trained on prompt ratings."

    def __init__(self, holder: ScorerHolder, config: SearchConfig | None = None) -> None:
        self.holder = holder
        self.config = config or SearchConfig()
        self._cost_cache: dict[tuple, list[int]] = {}
        self._cache_lock = threading.Lock()

    def unavailable_reason(self) -> str | None:
        """None when a scorer is loaded, else why not."""
        return self.holder.reason

    def augment(self, base_prompt: str, style: Style, context: AugmentContext) -> list[Candidate]:
        """Up to ``n_candidates`` prompts, best predicted score first, each with its trace."""
        try:
            scorer = self.holder.get()
        except NoModelError as e:
            raise MethodUnavailable(str(e)) from None
        cfg, budget = self.config, context.budget
        base = budget.truncate(style.apply(base_prompt))
        bank = context.catalog.modifiers_for(style)
        texts = [m.text for m in bank]
        # Gains and costs are over the whole bank so their caches hit for every prompt.
        gains = scorer.gains(style.apply(REFERENCE_SUBJECT), texts, style.id)  # (len(bank),)
        # CLIP's BPE never merges across ", " so token counts add up; the final prompt is
        # still checked exactly below.
        base_tokens = budget.count(base)
        cost = self._costs(budget, texts)
        # Modifiers already in the prompt (template included) exclude themselves and their group.
        present = context.catalog.find_modifiers(base, style)
        # Best first, ties by text: both the search order and the output are deterministic.
        order = sorted(
            (
                i
                for i in range(len(bank))
                if gains[i] > cfg.min_gain and not any(conflicts(bank[i], p) for p in present)
            ),
            key=lambda i: (-gains[i], texts[i]),
        )

        beams = [_Beam((), 0.0)]
        shortlist: dict[tuple[int, ...], _Beam] = {(): beams[0]}
        for _ in range(cfg.max_modifiers):
            expanded: dict[frozenset[int], _Beam] = {}
            for beam in beams:
                used = base_tokens + sum(cost[i] for i in beam.mods)
                taken = 0
                for i in order:  # sorted by gain, so the first valid ones are the best
                    if i in beam.mods or used + cost[i] > budget.max_tokens:
                        continue
                    if any(conflicts(bank[i], bank[j]) for j in beam.mods):
                        continue
                    key = frozenset((*beam.mods, i))
                    if key not in expanded:
                        mods = tuple(sorted(key, key=lambda j: (-gains[j], texts[j])))
                        expanded[key] = _Beam(mods, beam.value + float(gains[i]))
                    taken += 1
                    if taken == cfg.beam_width:
                        break
            if not expanded:
                break
            beams = sorted(expanded.values(), key=lambda b: (-b.value, [texts[i] for i in b.mods]))
            beams = beams[: cfg.beam_width]
            for b in beams[: cfg.exact_per_depth]:
                shortlist[b.mods] = b

        states = [s for s in shortlist if budget.fits(compose(base, [texts[i] for i in s]))]
        prompts = [compose(base, [texts[i] for i in s]) for s in states]
        fast = scorer.score(prompts, style.id)  # (len(states),)
        by_fast = sorted(range(len(states)), key=lambda k: (-fast[k], prompts[k]))
        # Second stage: the fast stage's best few, and the bare prompt the gain is measured from.
        top_k = max(cfg.n_candidates, scorer.context.config.top_k if scorer.context else 0)
        seen = list(by_fast[:top_k])
        bare = states.index(())
        if bare not in seen:
            seen.append(bare)
        final, _ = scorer.rerank([prompts[k] for k in seen], style.id, fast[seen])
        exact = dict(zip(seen, map(float, final), strict=True))
        ranked = sorted(exact, key=lambda k: (-exact[k], prompts[k]))
        label = scorer.stage_label()
        return [
            self._candidate(
                prompts[k],
                exact[k],
                exact[bare],
                float(fast[k]),
                label,
                scorer,
                style,
                [(bank[i], float(gains[i])) for i in states[k]],
            )
            for k in ranked[: cfg.n_candidates]
        ]

    def warm_up(self, catalog: StyleCatalog) -> None:
        """Precomputes every style's modifier gains (~0.1-0.3 s each) so first calls are fast;
        call it at start and after a swap, off the request path."""
        scorer = self.holder.get()
        if scorer.context is not None:  # loads the encoder now, not on the first request
            scorer.rerank([REFERENCE_SUBJECT])
        for sid in catalog.ids():
            style = catalog.get(sid)
            texts = [m.text for m in catalog.modifiers_for(style)]
            scorer.gains(style.apply(REFERENCE_SUBJECT), texts, style.id)

    def _costs(self, budget: TokenBudget, texts: list[str]) -> list[int]:
        """Tokens each ", modifier" adds; cached per tokenizer, instruction and bank."""
        key = (id(budget.tokenizer), budget.instruction, budget.chat_template, tuple(texts))
        with self._cache_lock:  # shared by concurrent requests and the warm-up thread
            costs = self._cost_cache.get(key)
            if costs is None:
                if len(self._cost_cache) > 64:
                    self._cost_cache.clear()
                # minus what the empty prompt takes (special tokens, instruction, chat template)
                base = budget.overhead
                costs = self._cost_cache[key] = [budget.count(", " + t) - base for t in texts]
        return costs

    def _candidate(
        self,
        prompt: str,
        score: float,
        base_score: float,
        fast_score: float,
        label: str,
        scorer: LearnedScorer,
        style: Style,
        mods: list[tuple[Modifier, float]],
    ) -> Candidate:
        trace = [TraceStep(style.template, "template", f"the {style.name} style template")]
        for m, gain in mods:
            source = "global bank" if m.source == "global" else "style bank"
            trace.append(TraceStep(m.text, source, f"raises predicted score by {gain:+.3f}"))
        # Which scorer ranked the candidates: the two-stage one, or the fast stage alone and why.
        trace.append(TraceStep("ranking", "learned scorer", label))
        return Candidate(
            prompt=prompt,
            method=self.name,
            score=score,
            trace=tuple(trace),
            meta={
                "base_score": round(base_score, 4),
                "gain": round(score - base_score, 4),
                "modifiers": [m.text for m, _ in mods],
                "fast_score": round(fast_score, 4),
                "stage": label,
                "model_created": scorer.metadata.get("created"),
            },
        )
