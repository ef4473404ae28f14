"""How often a page is told a wait that turns out too short: a seeded simulation of renders.

A page waiting in line is told "yours starts in about N s": the running render's time left
(``demo.queue_progress.seconds_left``) plus each call ahead at ``RenderClock.estimate``. This
simulates a process's renders (a slow first render that loads the models, batches of 1-4 rows
that cost less than 1-4 single rows, noise, now and then a render twice as slow) with two
stages (finding faces and writing prompts: the first tenth of the bar in 30% of the time; then
denoising), reads the told wait at a random moment of a render for a page with 0-2 calls ahead,
and compares it with the wait that follows. Printed per estimator: how many waits were told,
how many were too short, and the median told/actual ratio. ``tests/test_waits.py`` runs it.

    python bench/bench_waits.py [--seeds 20] [--renders 300]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from demo.queue_progress import RenderClock, RenderRecord, seconds_left

Left = Callable[[float, float, float | None, float | None], float]


@dataclass(frozen=True)
class Told:
    """One wait told to a page (None: no number was told) and the wait that followed."""

    told: float | None
    actual: float


def render_seconds(rng: random.Random, rows: int, base: float, first: bool) -> float:
    """How long a render of ``rows`` rows takes: sublinear in rows, lognormal noise, a slow
    first render (models load), and one render in twenty twice as slow (a busy machine)."""
    seconds = base * rows**0.85 * rng.lognormvariate(0.0, 0.2)
    if first:
        seconds *= 8.0
    if rng.random() < 0.05:
        seconds *= 2.0
    return seconds


def fraction_at(t: float, total: float) -> float:
    """The bar at ``t`` s into a render of ``total`` s: 10% in its first 30%, then even."""
    if t < 0.3 * total:
        return 0.1 * t / (0.3 * total)
    return 0.1 + 0.9 * (t - 0.3 * total) / (0.7 * total)


def pace(t: float, total: float) -> float:
    """Fraction per second over the latest steps (the stage the render is in now)."""
    return 0.1 / (0.3 * total) if t < 0.3 * total else 0.9 / (0.7 * total)


def simulate(
    seed: int,
    renders: int = 300,
    estimate: Callable[[RenderClock, int], float | None] = RenderClock.estimate,
    left: Left = seconds_left,
) -> list[Told]:
    """Every told wait of one seeded run of ``renders`` renders."""
    rng = random.Random(seed)
    base = rng.uniform(1.0, 30.0)  # seconds a row takes on this machine, this family
    rows = [rng.randint(1, 4) for _ in range(renders)]
    took = [render_seconds(rng, k, base, i == 0) for i, k in enumerate(rows)]
    clock, out = RenderClock(), []
    for i in range(renders - 3):
        t = rng.uniform(0.0, took[i])  # when the waiting page reads its line
        prior = estimate(clock, rows[i])
        now_left = left(t, fraction_at(t, took[i]), prior, pace(t, took[i]))
        ahead = rng.randint(0, 2)
        before = [estimate(clock, rows[i + 1 + j]) for j in range(ahead)]
        told = None
        if not math.isnan(now_left) and all(b is not None for b in before):
            told = now_left + sum(b for b in before if b is not None)
        out.append(Told(told, took[i] - t + sum(took[i + 1 : i + 1 + ahead])))
        clock.add(RenderRecord(rows[i], took[i], 1.0, False))
    return out


def median_estimate(clock: RenderClock, rows: int) -> float | None:
    """The estimator before issue 28: the median seconds per row of the last ten renders."""
    done = [r for r in clock.records() if not r.cancelled][-10:]
    return rows * statistics.median(r.seconds / r.rows for r in done) if done else None


def blended_left(elapsed: float, fraction: float, prior: float | None, rate: float | None) -> float:
    """Time left before issue 28: the latest steps' pace, blended with the prior below 30%."""
    if rate is not None and rate > 0:
        from_steps = (1.0 - fraction) / rate
        if prior is None or fraction >= 0.3:
            return max(from_steps, 0.0)
        weight = fraction / 0.3
        return max(weight * from_steps + (1 - weight) * (prior - elapsed), 0.0)
    return math.nan if prior is None else max(prior - elapsed, 0.0)


def summary(waits: list[Told]) -> dict[str, float]:
    """Told waits, the share too short (by over a second), and the median told/actual."""
    told = [w for w in waits if w.told is not None]
    short = [w for w in told if w.told is not None and w.told < w.actual - 1.0]
    ratios = [w.told / w.actual for w in told if w.told is not None and w.actual > 0]
    return {
        "told": len(told),
        "too_short": len(short) / max(len(told), 1),
        "median_ratio": statistics.median(ratios) if ratios else math.nan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--renders", type=int, default=300)
    args = parser.parse_args()
    runs = {
        "before (median, blended)": (median_estimate, blended_left),
        "now (slowest recent x1.25, longest)": (RenderClock.estimate, seconds_left),
    }
    for name, (estimate, left) in runs.items():
        waits = [
            w for seed in range(args.seeds) for w in simulate(seed, args.renders, estimate, left)
        ]
        s = summary(waits)
        print(
            f"{name:38s} told {s['told']:5.0f} of {len(waits)} waits · too short "
            f"{100 * s['too_short']:5.1f}% · median told/actual {s['median_ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
