"""Leaderboard speed: N ratings -> leaderboard with bootstrap, in memory and from the SQLite store.

    python bench/bench_leaderboard.py [--ratings 10000] [--boot 200] [--repeat 5]

Synthetic data: 5 methods rated per row, 6 styles, blind and labelled rows, 30 raters.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.feedback.leaderboard import leaderboard
from pipelines.feedback.records import RatingRecord
from pipelines.feedback.store import FeedbackStore

METHODS = {"raw": 2.5, "template": 3.1, "learned": 3.5, "inversion": 3.0, "ensemble": 3.8}
STYLES = ("watercolor", "3d-cartoon", "anime", "oil", "pixel", "sketch")


def synthetic(n_ratings: int, seed: int = 0) -> list[list[RatingRecord]]:
    """Submissions (one rater, one row) totalling ``n_ratings`` ratings."""
    rng = np.random.default_rng(seed)
    out: list[list[RatingRecord]] = []
    total, i = 0, 0
    while total < n_ratings:
        noisy = {m: q + rng.normal(0, 0.9) for m, q in METHODS.items()}
        best = max(noisy, key=noisy.get) if rng.random() < 0.8 else None
        out.append(
            [
                RatingRecord(
                    rater=f"rater{i % 30}",
                    comparison_id=f"cmp{i}",
                    style=STYLES[i % len(STYLES)],
                    method=m,
                    final_prompt=f"a portrait, {m} words",
                    seed=i,
                    rating=int(np.clip(np.rint(v), 1, 5)),
                    is_best=m == best,
                    blind=bool((i // len(STYLES)) % 2),
                    created_at=f"2025-01-01T00:00:{i % 60:02d}+00:00",
                )
                for m, v in noisy.items()
            ]
        )
        total += len(METHODS)
        i += 1
    return out


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ratings", type=int, default=10_000)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    submissions = synthetic(args.ratings)
    records = [r for s in submissions for r in s]
    lines = []
    med, best, rows = timed(lambda: leaderboard(records, n_boot=args.boot), args.repeat)
    lines.append((f"leaderboard, n_boot={args.boot}, in memory", med, best))
    med0, best0, _ = timed(lambda: leaderboard(records, n_boot=0), args.repeat)
    lines.append(("leaderboard, no bootstrap", med0, best0))

    with tempfile.TemporaryDirectory() as tmp:
        store = FeedbackStore(Path(tmp) / "ratings.sqlite3")
        t0 = time.perf_counter()
        for s in submissions:
            store.submit(s)
        per_submit = (time.perf_counter() - t0) / len(submissions)
        lines.append((f"submit one row of {len(METHODS)} ratings", per_submit, per_submit))
        med_q, best_q, _ = timed(store.records, args.repeat)
        lines.append(("store.records(), all rows", med_q, best_q))
        med_s, best_s, _ = timed(
            lambda: leaderboard(store.records(), n_boot=args.boot), args.repeat
        )
        lines.append((f"store -> leaderboard, n_boot={args.boot}", med_s, best_s))

    groups = len({(r.blind, r.style) for r in rows})  # type: ignore[union-attr]
    print(f"{len(records)} ratings, {len(submissions)} rows, {groups} (blind, style) groups")
    print(f"{'step':45} {'median s':>9} {'min s':>9}")
    for name, m, b in lines:
        print(f"{name:45} {m:9.4f} {b:9.4f}")


if __name__ == "__main__":
    main()
