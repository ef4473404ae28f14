"""The statistics a deck report needs: a mean's 95% t-interval, Kendall's tau-b, and pairwise
agreement (the share of rated pairs a measure orders like the raters) with a bootstrap interval
over rows, and which measure agrees best."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


# ----------------------------------------------------------------------------- pairwise agreement

# a row's pairs for one measure: (agreements, pairs), where a pair is two outputs of one row
# that one rater rated differently and an agreement is the measure ordering them the same way
# (a tie of the measure counts one half, as the preference benchmarks count it)
RowPairs = tuple[float, int]


def row_pairs(measure: Sequence[float], rating: Sequence[float]) -> RowPairs:
    """(agreements, pairs) of one rater's ratings of one row's outputs against a measure."""
    m, r = np.asarray(measure, dtype=np.float64), np.asarray(rating, dtype=np.float64)
    if m.shape != r.shape or m.ndim != 1:
        raise ValueError(f"measure has {m.size} values and rating {r.size}: pair them one to one")
    i, j = np.triu_indices(m.size, k=1)
    rated = r[i] != r[j]  # the rater ordered them: a pair
    dm, dr = np.sign(m[i] - m[j])[rated], np.sign(r[i] - r[j])[rated]
    agree = float(np.sum(dm == dr) + 0.5 * np.sum(dm == 0))
    return agree, int(rated.sum())


@dataclass(frozen=True)
class Agreement:
    """The share of rated pairs a measure orders like the raters, with a 95% bootstrap interval
    over rows (rows are resampled whole: a row's pairs share its images); None without pairs."""

    pairs: int
    share: float | None
    low: float | None
    high: float | None

    def text(self) -> str:
        """ "0.64 [0.55, 0.72] (n=120 pairs)", or "—" without pairs."""
        if self.share is None:
            return "—"
        if self.low is None or self.high is None:
            return f"{self.share:.2f} (n={self.pairs} pairs)"
        return f"{self.share:.2f} [{self.low:.2f}, {self.high:.2f}] (n={self.pairs} pairs)"


def _resampled_rows(rows: Sequence[str], n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, len(rows)) indices of rows drawn with replacement, the same for every measure
    (paired: measures are compared on the same resampled rows)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, len(rows), size=(n_boot, len(rows)))


def _table(per_row: Mapping[str, RowPairs], rows: Sequence[str]) -> np.ndarray:
    """(len(rows), 2) agreements and pairs of one measure; a row it did not measure has none."""
    return np.array([per_row.get(r, (0.0, 0)) for r in rows], dtype=np.float64).reshape(-1, 2)


def pairwise_agreement(
    per_row: Mapping[str, RowPairs], n_boot: int = 200, seed: int = 0
) -> Agreement:
    """The pooled share of agreeing pairs over rows, and its percentile bootstrap interval."""
    rows = sorted(r for r, (_, n) in per_row.items() if n > 0)
    if not rows:
        return Agreement(0, None, None, None)
    table = _table(per_row, rows)
    pairs = int(table[:, 1].sum())
    share = float(table[:, 0].sum() / pairs)
    if len(rows) < 2 or n_boot < 1:
        return Agreement(pairs, share, None, None)
    sums = table[_resampled_rows(rows, n_boot, seed)].sum(axis=1)  # (n_boot, 2)
    shares = sums[:, 0] / np.maximum(sums[:, 1], 1)
    low, high = np.percentile(shares, [2.5, 97.5])
    return Agreement(pairs, share, float(low), float(high))


@dataclass(frozen=True)
class BestMeasure:
    """The measure that agrees best with the raters in one scope, its agreement and interval,
    the share of bootstrap resamples in which it is still the best (``wins``) and the runner-up:
    a low ``wins`` means the room cannot tell them apart yet."""

    measure: str
    agreement: Agreement
    wins: float | None
    runner_up: str | None


def best_measure(
    per_measure: Mapping[str, Mapping[str, RowPairs]], n_boot: int = 200, seed: int = 0
) -> BestMeasure | None:
    """The measure with the highest pairwise agreement; None when no measure has a pair.

    Resampling is paired: every measure is scored on the same resampled rows, so ``wins`` is
    the share of resamples in which the best keeps the highest agreement."""
    scored = {
        name: pairwise_agreement(per_row, n_boot, seed) for name, per_row in per_measure.items()
    }
    scored = {name: a for name, a in scored.items() if a.share is not None}
    if not scored:
        return None
    ranked = sorted(scored, key=lambda name: (-(scored[name].share or 0.0), name))
    best = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else None
    rows = sorted({r for name in scored for r, (_, n) in per_measure[name].items() if n > 0})
    wins: float | None = None
    if len(rows) >= 2 and n_boot >= 1 and runner_up is not None:
        draws = _resampled_rows(rows, n_boot, seed)
        shares = []
        for name in ranked:  # (measures, n_boot)
            sums = _table(per_measure[name], rows)[draws].sum(axis=1)
            shares.append(np.where(sums[:, 1] > 0, sums[:, 0] / np.maximum(sums[:, 1], 1), -1.0))
        stacked = np.stack(shares)
        wins = float(np.mean(stacked[0] >= stacked[1:].max(axis=0)))
    elif runner_up is None:
        wins = 1.0
    return BestMeasure(best, scored[best], wins, runner_up)
