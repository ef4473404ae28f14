"""Fast inversion mode: a CLIP-Interrogator-style prompt from the modifier banks.

Rank the style and global modifier banks by CLIP similarity to the references, then greedily
append the modifier that raises the whole prompt's similarity most, until nothing helps, the
budget is full or ``max_modifiers`` are in. Also the prompt joining and CLIP scoring helpers
the inversion method shares.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipelines.augment.inversion.args import Progress, _check_int, _check_targets

if TYPE_CHECKING:
    from pipelines.augment.clip_backend import ClipBackend
    from pipelines.augment.tokens import TokenBudget
    from pipelines.styles.modifiers import Modifier


@dataclass(frozen=True)
class ModifierChoice:
    """One modifier :func:`interrogate` appended, with the similarity it brought."""

    text: str
    source: str  # "global" or the style id, as Modifier.source
    similarity: float  # the whole prompt's similarity once this modifier is in
    gain: float  # how much adding it raised that similarity


@dataclass(frozen=True)
class InterrogateResult:
    """The prompt :func:`interrogate` built and what choosing it cost in CLIP encodings."""

    text: str  # chosen modifiers joined by ", "
    prompt: str  # base prompt + ", " + text
    chosen: tuple[ModifierChoice, ...]
    similarity: float  # of ``prompt``
    base_similarity: float | None  # of the base prompt alone; None when it is empty
    evaluated: int  # prompts encoded by CLIP


def join_prompt(base: str, addition: str) -> str:
    """``base`` + ", " + ``addition``, either alone when the other is empty."""
    base, addition = base.strip().rstrip(","), addition.strip()
    return f"{base}, {addition}" if base and addition else base or addition


def _mean_similarity(clip: ClipBackend, targets: torch.Tensor, texts: Sequence[str]) -> np.ndarray:
    feats = clip.text_features(texts)  # (m, d)
    return (targets @ feats.T).mean(dim=0).cpu().numpy()  # (m,)


def _occurs(text: str, prompt: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(text)}(?!\w)", prompt, re.IGNORECASE) is not None


def interrogate(
    clip: ClipBackend,
    target_features: torch.Tensor,
    modifiers: Sequence[Modifier],
    budget: TokenBudget,
    max_modifiers: int = 8,
    *,
    base_prompt: str = "",
    pool: int = 48,
    progress: Progress | None = None,
) -> InterrogateResult:
    """Greedy CLIP-Interrogator-style prompt from a modifier bank.

    The ``pool`` modifiers most similar to the targets on their own are the candidates; each
    round appends the one that raises the full prompt's mean similarity most, skipping any
    that conflicts with one already chosen or present in the base prompt, or that would not
    fit ``budget``. Stops when no candidate raises the similarity.
    """
    from pipelines.styles.modifiers import conflicts

    targets = _check_targets(clip, target_features)
    _check_int("max_modifiers", max_modifiers, 0, 64)
    _check_int("pool", pool, 1, 10_000)
    bank = [m for m in dict.fromkeys(modifiers) if not _occurs(m.text, base_prompt)]
    present = [m for m in modifiers if _occurs(m.text, base_prompt)]
    if not budget.fits(base_prompt):
        base_prompt = budget.truncate(base_prompt)

    evaluated = 0
    if bank:
        alone = _mean_similarity(clip, targets, [m.text for m in bank])
        evaluated += len(bank)
        order = np.argsort(-alone, kind="stable")[:pool]
        bank = [bank[i] for i in order]
    base_sim = None
    if base_prompt.strip():
        base_sim = float(_mean_similarity(clip, targets, [base_prompt])[0])
        evaluated += 1
    current, current_sim = base_prompt, -math.inf if base_sim is None else base_sim
    chosen: list[tuple[Modifier, float, float]] = []
    for round_ in range(max_modifiers):
        taken = [m for m, _, _ in chosen] + present
        options = [
            (m, join_prompt(current, m.text))
            for m in bank
            if m not in taken and not any(conflicts(m, t) for t in taken)
        ]
        options = [(m, text) for m, text in options if budget.fits(text)]
        if not options:
            break
        sims = _mean_similarity(clip, targets, [text for _, text in options])
        evaluated += len(options)
        k = int(np.argmax(sims))
        if sims[k] <= current_sim:
            break  # nothing raises the similarity: more words would only dilute
        gain = float(sims[k] - current_sim) if math.isfinite(current_sim) else float(sims[k])
        current, current_sim = options[k][1], float(sims[k])
        chosen.append((options[k][0], current_sim, gain))
        if progress is not None:
            progress((round_ + 1) / max_modifiers, f"added {options[k][0].text!r}")
    if progress is not None:
        progress(1.0, f"{len(chosen)} modifier(s) chosen, CLIP similarity {current_sim:.3f}")
    if not math.isfinite(current_sim):  # empty base and nothing fitted
        current_sim = float(_mean_similarity(clip, targets, [current])[0]) if current else 0.0
    return InterrogateResult(
        text=", ".join(m.text for m, _, _ in chosen),
        prompt=current,
        chosen=tuple(ModifierChoice(m.text, m.source, s, g) for m, s, g in chosen),
        similarity=current_sim,
        base_similarity=base_sim,
        evaluated=evaluated,
    )
