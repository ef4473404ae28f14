"""The two statistics a deck report needs: a mean's 95% t-interval and Kendall's tau-b."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class MeanCI:
    """A mean with its 95% t-interval; the bounds are None below two values."""

    n: int
    mean: float | None
    low: float | None
    high: float | None

    def text(self, digits: int = 3) -> str:
        """ "0.712 [0.650, 0.774] (n=12)", or "—" with no values."""
        if self.mean is None:
            return "—"
        if self.low is None or self.high is None:
            return f"{self.mean:.{digits}f} (n={self.n})"
        d = digits
        return f"{self.mean:.{d}f} [{self.low:.{d}f}, {self.high:.{d}f}] (n={self.n})"


def mean_ci(values: Sequence[float], level: float = 0.95) -> MeanCI:
    """Mean and Student-t interval of ``values`` (NaN-free floats)."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return MeanCI(0, None, None, None)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(n, mean, None, None)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return MeanCI(n, mean, mean - half, mean + half)


@dataclass(frozen=True)
class Kendall:
    """Kendall's tau-b of paired values, its two-sided p-value and the number of pairs."""

    n: int
    tau: float | None
    p: float | None


def kendall(x: Sequence[float], y: Sequence[float]) -> Kendall:
    """tau-b (ties counted as neither concordant nor discordant, as scipy does)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"x has {a.size} values and y {b.size}: pair them one to one")
    n = int(a.size)
    if n < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return Kendall(n, None, None)  # undefined without variation on both sides
    res = stats.kendalltau(a, b)
    return Kendall(n, float(res.statistic), float(res.pvalue))
