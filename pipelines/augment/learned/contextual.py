"""The learned scorer's second stage: RBF kernel ridge on contextual sentence encodings
(encoder.py), one head per encoder, their mean blended with the fast stage's score.

The fast stage scores hundreds of prompts per augmentation (every modifier's gain, every beam);
this stage re-scores only the few best of them, so its encoders run on a handful of prompts per
call. Each head's support rows are the training prompts' encodings (float16), so the model file
grows by ``dim x 2`` bytes per row and encoder (768-d MPNet: 1.5 kB; 384-d MiniLM: 0.75 kB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipelines.augment.learned.encoder import MINILM, MPNET, EncoderSpec
from pipelines.augment.learned.kernel import KernelConfig, KernelHead


def _default_head() -> KernelConfig:
    # gamma and alpha by 5-fold CV on PQPP train (gamma 0.5-3 x alpha 0.5-4, encodings
    # centred): 1 and 1.5 best for both encoders; weight = the contextual share of the blend
    return KernelConfig(weight=0.9, gamma=1.0, alpha=1.5, max_rows=8000)


def _default_encoders() -> tuple[EncoderSpec, ...]:
    return (EncoderSpec.named(MPNET), EncoderSpec.named(MINILM))


@dataclass(frozen=True)
class ContextConfig:
    """The contextual stage: its encoders, each head's share, the kernel head, and how many
    candidates it sees."""

    encoders: tuple[EncoderSpec, ...] = field(default_factory=_default_encoders)
    # each encoder's share of the contextual score, by 5-fold CV on PQPP train (MPNet share
    # 0.5 / 0.6 / 0.7: 0.6011 / 0.6016 / 0.6016; MPNet alone 0.5989, MiniLM alone 0.5919)
    shares: tuple[float, ...] = (0.65, 0.35)
    head: KernelConfig = field(default_factory=_default_head)  # head.weight: share in the blend
    # best fast-stage candidates re-ranked per augmentation (plus the bare prompt): 3, the
    # candidates the search returns; re-ranking the best 10 picked from the top 3 in 120 of 120
    # searches, and 4 cost 109 vs 89 ms p50 a warm augmentation (bench_learned)
    top_k: int = 3

    def __post_init__(self) -> None:
        if not self.encoders:
            raise ValueError("a contextual stage needs at least one encoder")
        if len(self.shares) != len(self.encoders):
            raise ValueError(
                f"shares={self.shares} gives {len(self.shares)} shares for "
                f"{len(self.encoders)} encoders"
            )
        if min(self.shares) <= 0:
            raise ValueError(f"shares={self.shares} is not allowed: use positive numbers")
        if len(set(self.encoders)) != len(self.encoders):
            raise ValueError("each contextual encoder may be named once")
        if self.top_k < 1:
            raise ValueError(f"top_k={self.top_k} is not allowed: use 1 or more")

    @classmethod
    def with_encoders(cls, specs: Sequence[EncoderSpec], **kw) -> ContextConfig:
        """The defaults' shares for the default encoders, else equal shares."""
        specs = tuple(specs)
        if specs == _default_encoders():
            return cls(specs, **kw)
        return cls(specs, tuple(1.0 for _ in specs), **kw)

    def to_dict(self) -> dict:
        """JSON-ready copy, stored in the model metadata."""
        return {
            "encoders": [e.to_dict() for e in self.encoders],
            "shares": list(self.shares),
            **self.head.to_dict(),
            "top_k": self.top_k,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ContextConfig:
        """Inverse of :meth:`to_dict`; also reads format 4's single ``"encoder"``."""
        head = KernelConfig(
            weight=float(d["weight"]),
            gamma=float(d["gamma"]),
            alpha=float(d["alpha"]),
            max_rows=int(d["max_rows"]),
        )
        if "encoder" in d:
            encoders, shares = (EncoderSpec.from_dict(d["encoder"]),), (1.0,)
        else:
            encoders = tuple(EncoderSpec.from_dict(e) for e in d["encoders"])
            shares = tuple(float(s) for s in d["shares"])
        return cls(encoders, shares, head, int(d.get("top_k", 4)))


def normalise(raw: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(n, d) raw encodings -> centred, L2-normalised rows (the head's input). Centring removes
    the direction every sentence shares, which otherwise dominates RBF distances."""
    z = np.asarray(raw, np.float64) - centre
    n = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(n > 1e-12, n, 1.0)


def gauss_rank(y: np.ndarray) -> np.ndarray:
    """(n,) targets -> their ranks mapped onto a standard normal (ties share a rank). The heads
    learn this, not the z-scores: the ratings' long tails then pull the kernel ridge less
    (5-fold CV on PQPP train 0.6029 vs 0.6017)."""
    from scipy.stats import norm, rankdata

    y = np.asarray(y, np.float64)
    return norm.ppf((rankdata(y) - 0.5) / len(y)) if len(y) else y


@dataclass(frozen=True)
class ContextHead:
    """One encoder's fitted head: the centre of its training encodings and the kernel ridge."""

    centre: np.ndarray  # (d,) mean raw encoding of the training prompts
    kernel: KernelHead

    def __post_init__(self) -> None:
        # Squared norms of the support rows, once: predict() then costs one small float32
        # matmul (k prompts x m rows), not a float64 copy of the whole support per call.
        support = np.ascontiguousarray(self.kernel.support, np.float32)
        object.__setattr__(self, "_support", support)
        object.__setattr__(self, "_support_sq", (support * support).sum(1))

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray, config: KernelConfig) -> ContextHead:
        """Fits on (n, d) raw encodings and (n,) targets."""
        centre = np.asarray(raw, np.float64).mean(0)
        return cls(centre, KernelHead.fit(normalise(raw, centre), y, config))

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """(n, d) raw encodings -> (n,) predictions (RBF kernel ridge)."""
        if len(raw) == 0:
            return np.zeros(0)
        z = normalise(raw, self.centre).astype(np.float32)  # (n, d)
        k = z @ self._support.T  # type: ignore[attr-defined]  # (n, m)
        k *= 2.0
        k -= (z * z).sum(1)[:, None]
        k -= self._support_sq[None, :]  # type: ignore[attr-defined]  # now -|z_i - s_j|^2
        np.minimum(k, 0.0, out=k)
        k *= self.kernel.gamma
        np.exp(k, out=k)
        return k.astype(np.float64) @ self.kernel.dual + self.kernel.offset


@dataclass(frozen=True)
class ContextStage:
    """A fitted contextual stage: one head per encoder of its config, in the same order."""

    config: ContextConfig
    heads: tuple[ContextHead, ...]

    def __post_init__(self) -> None:
        if len(self.heads) != len(self.config.encoders):
            raise ValueError(f"{len(self.heads)} heads for {len(self.config.encoders)} encoders")

    @classmethod
    def fit(cls, raws: Sequence[np.ndarray], y: np.ndarray, config: ContextConfig) -> ContextStage:
        """Fits one head per encoder on its (n, d_i) raw encodings and the (n,) targets."""
        if len(raws) != len(config.encoders):
            raise ValueError(f"{len(raws)} encodings for {len(config.encoders)} encoders")
        target = gauss_rank(y)
        return cls(config, tuple(ContextHead.fit(r, target, config.head) for r in raws))

    @property
    def weight(self) -> float:
        """Share of this stage in the blended score."""
        return self.config.head.weight

    def predict(self, raws: Sequence[np.ndarray | None]) -> np.ndarray:
        """Per encoder (n, d_i) raw encodings, or None where that encoder is unavailable ->
        (n,) contextual predictions: the heads' share-weighted mean over those that ran."""
        ran = [(s, h, r) for s, h, r in zip(self.config.shares, self.heads, raws, strict=True)]
        ran = [(s, h, r) for s, h, r in ran if r is not None]
        if not ran:
            raise ValueError("no encodings: at least one contextual encoder must have run")
        total = sum(s for s, _, _ in ran)
        return sum(s / total * h.predict(r) for s, h, r in ran)  # type: ignore[return-value]

    def blend(self, fast: np.ndarray, raws: Sequence[np.ndarray | None]) -> np.ndarray:
        """(n,) fast scores and per-encoder encodings -> (n,) two-stage scores."""
        return (1 - self.weight) * np.asarray(fast, np.float64) + self.weight * self.predict(raws)
