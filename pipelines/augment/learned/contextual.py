"""The learned scorer's second stage: RBF kernel ridge on a contextual sentence encoding
(encoder.py), blended with the fast stage's score.

The fast stage scores hundreds of prompts per augmentation (every modifier's gain, every beam);
this stage re-scores only the few best of them, so its encoder runs on a handful of prompts per
call. Its support rows are the training prompts' encodings (float16), so the model file grows by
``dim x 2`` bytes per row (384-d MiniLM: 0.75 kB; 8,000 rows: 6 MB).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipelines.augment.learned.encoder import EncoderSpec
from pipelines.augment.learned.kernel import KernelConfig, KernelHead


def _default_head() -> KernelConfig:
    # gamma and alpha by 5-fold CV on PQPP train (gamma 1 / 3 x alpha 0.5 / 1.5 / 4, with the
    # encodings centred): 1 and 1.5 best; weight = the contextual share of the blend (0.7-1.0)
    return KernelConfig(weight=0.9, gamma=1.0, alpha=1.5, max_rows=8000)


@dataclass(frozen=True)
class ContextConfig:
    """The contextual stage: which encoder, its kernel head, and how many candidates it sees."""

    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    head: KernelConfig = field(default_factory=_default_head)  # head.weight: share in the blend
    top_k: int = 4  # best fast-stage candidates re-ranked per augmentation

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k={self.top_k} is not allowed: use 1 or more")

    def to_dict(self) -> dict:
        """JSON-ready copy, stored in the model metadata."""
        return {"encoder": self.encoder.to_dict(), **self.head.to_dict(), "top_k": self.top_k}

    @classmethod
    def from_dict(cls, d: dict) -> ContextConfig:
        """Inverse of :meth:`to_dict`."""
        head = KernelConfig(
            weight=float(d["weight"]),
            gamma=float(d["gamma"]),
            alpha=float(d["alpha"]),
            max_rows=int(d["max_rows"]),
        )
        return cls(EncoderSpec.from_dict(d["encoder"]), head, int(d.get("top_k", 4)))


def normalise(raw: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(n, d) raw encodings -> centred, L2-normalised rows (the head's input). Centring removes
    the direction every sentence shares, which otherwise dominates RBF distances."""
    z = np.asarray(raw, np.float64) - centre
    n = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(n > 1e-12, n, 1.0)


@dataclass(frozen=True)
class ContextStage:
    """A fitted contextual stage: the centre of the training encodings and the kernel head."""

    config: ContextConfig
    centre: np.ndarray  # (d,) mean raw encoding of the training prompts
    head: KernelHead

    def __post_init__(self) -> None:
        # Squared norms of the support rows, once: predict() then costs one small float32
        # matmul (k prompts x m rows), not a float64 copy of the whole support per call.
        support = np.ascontiguousarray(self.head.support, np.float32)
        object.__setattr__(self, "_support", support)
        object.__setattr__(self, "_support_sq", (support * support).sum(1))

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray, config: ContextConfig) -> ContextStage:
        """Fits on (n, d) raw encodings and (n,) targets."""
        centre = np.asarray(raw, np.float64).mean(0)
        return cls(config, centre, KernelHead.fit(normalise(raw, centre), y, config.head))

    @property
    def weight(self) -> float:
        """Share of this stage in the blended score."""
        return self.config.head.weight

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """(n, d) raw encodings -> (n,) contextual predictions (the head's RBF kernel ridge)."""
        if len(raw) == 0:
            return np.zeros(0)
        z = normalise(raw, self.centre).astype(np.float32)  # (n, d)
        k = z @ self._support.T  # type: ignore[attr-defined]  # (n, m)
        k *= 2.0
        k -= (z * z).sum(1)[:, None]
        k -= self._support_sq[None, :]  # type: ignore[attr-defined]  # now -|z_i - s_j|^2
        np.minimum(k, 0.0, out=k)
        k *= self.head.gamma
        np.exp(k, out=k)
        return k.astype(np.float64) @ self.head.dual + self.head.offset

    def blend(self, fast: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """(n,) fast scores and (n, d) encodings -> (n,) two-stage scores."""
        return (1 - self.weight) * np.asarray(fast, np.float64) + self.weight * self.predict(raw)
