"""An RBF kernel-ridge head on a prompt's mean word vector, blended with the linear scorer.

The linear model adds up n-gram effects; this head lets prompts that *mean* similar things score
alike, nonlinearly (on PQPP: 5-fold CV Pearson 0.568 -> 0.574, validation 0.542 -> 0.552 with
40% of the blend). It predicts from the training rows themselves, so it stores them: at
most ``max_rows`` word-vector means (64 float16 each: 128 bytes per row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KernelConfig:
    """Blend weight, RBF width, ridge penalty and support-row cap of the kernel head."""

    # weight, gamma and alpha by 5-fold CV on PQPP train (0.4-0.6 x 0.75-3 x 0.5-4: flat within
    # +-0.003 Pearson around these)
    weight: float = 0.4  # share of the kernel head in the blended score; 0 turns it off
    gamma: float = 3.0  # RBF width on L2-normalised vectors (squared distances are in [0, 4])
    alpha: float = 1.5  # ridge penalty of the dual solve
    max_rows: int = 8000  # support rows kept (a random subset beyond): the solve is O(rows^3)

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"kernel weight={self.weight} is not allowed: use 0 to 1")
        for name in ("gamma", "alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"kernel {name}={getattr(self, name)} is not allowed: use > 0")
        if self.max_rows < 2:
            raise ValueError(f"kernel max_rows={self.max_rows} is not allowed: use 2 or more")

    def to_dict(self) -> dict:
        """JSON-ready copy, stored in the model metadata."""
        return {k: getattr(self, k) for k in ("weight", "gamma", "alpha", "max_rows")}


def rbf(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    """(n, d), (m, d) -> (n, m) exp(-gamma * |a_i - b_j|^2), in one (n, m) buffer."""
    k = a @ b.T
    k *= 2.0
    k -= (a * a).sum(1)[:, None]
    k -= (b * b).sum(1)[None, :]  # now -|a_i - b_j|^2, up to rounding
    np.minimum(k, 0.0, out=k)
    k *= gamma
    return np.exp(k, out=k)


@dataclass(frozen=True)
class KernelHead:
    """A fitted RBF kernel-ridge head: predicts from its support rows' word-vector means."""

    support: np.ndarray  # (m, d) float32 word-vector means of the training rows kept
    dual: np.ndarray  # (m,) float32 dual coefficients
    offset: float  # mean target of the support rows
    gamma: float

    @classmethod
    def fit(cls, z: np.ndarray, y: np.ndarray, config: KernelConfig) -> KernelHead:
        """Kernel ridge on (n, d) vectors ``z`` and (n,) targets ``y``."""
        if len(z) > config.max_rows:  # deterministic subset, so a retrain is reproducible
            keep = np.sort(np.random.default_rng(0).permutation(len(z))[: config.max_rows])
            z, y = z[keep], y[keep]
        # fitted on the float16 values the model file stores, so a loaded model predicts the same
        z = np.asarray(z, np.float16).astype(np.float32)
        offset = float(y.mean())
        from sklearn.kernel_ridge import KernelRidge

        # float64 in: sklearn keeps float32 input in float32, too coarse for the kernel matrix
        krr = KernelRidge(alpha=config.alpha, kernel="rbf", gamma=config.gamma)
        krr.fit(z.astype(np.float64), y - offset)  # no intercept in KRR: centred targets
        return cls(z, krr.dual_coef_.astype(np.float32), offset, config.gamma)

    def predict(self, z: np.ndarray) -> np.ndarray:
        """(n, d) -> (n,)."""
        if len(z) == 0:
            return np.zeros(0)
        # rbf(), not sklearn's rbf_kernel (same values to 1e-8): that cost +2 ms p50 an augmentation
        return rbf(np.asarray(z, np.float64), self.support, self.gamma) @ self.dual + self.offset
