"""Benchmark of the learned method: train time (10k rows), model load time, augmentation
latency and PQPP validation metrics of the bundled model.

    python3 bench/bench_learned.py [--pqpp DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.augment.base import AugmentContext
from pipelines.augment.learned.data import ScoredPrompts, read_scored
from pipelines.augment.learned.model import BUNDLED_MODEL, LearnedScorer, ScorerHolder, TrainConfig
from pipelines.augment.learned.search import LearnedMethod
from pipelines.augment.tokens import TokenBudget
from pipelines.core.settings import ASSETS_DIR, PROJECT_ROOT
from pipelines.styles.catalog import StyleCatalog, load_catalog

PROMPTS = (
    "a portrait of a person",
    "a woman smiling at the camera",
    "an old man with a beard and glasses",
    "a young boy wearing a red cap in a park",
    "a person",
)


def _style_ratings(catalog: StyleCatalog, n: int, seed: int = 0) -> ScoredPrompts:
    """Rating-like rows (final prompt, 1-5 score, style) built from the real catalog."""
    rng = random.Random(seed)
    texts, scores, styles = [], [], []
    for _ in range(n):
        style = catalog.get(rng.choice(catalog.ids()))
        bank = [m.text for m in catalog.modifiers_for(style)]
        texts.append(", ".join([style.apply(rng.choice(PROMPTS)), *rng.sample(bank, 3)]))
        scores.append(float(rng.randint(1, 5)))
        styles.append(style.id)
    return ScoredPrompts("ratings.csv", texts, scores, styles, "prompt", "score", "style")


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pqpp", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "pqpp")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    catalog = load_catalog(ASSETS_DIR)
    pqpp_train = read_scored(args.pqpp / "train.csv")
    pqpp_val = read_scored(args.pqpp / "validation.csv")

    rows = [pqpp_train, _style_ratings(catalog, 10_000 - len(pqpp_train))]
    t0 = time.perf_counter()
    trained = LearnedScorer.train(rows, TrainConfig())
    train_s = time.perf_counter() - t0

    bundled = ASSETS_DIR / "learned" / BUNDLED_MODEL
    loads = []
    for _ in range(5):
        t0 = time.perf_counter()
        scorer = LearnedScorer.load(bundled)
        loads.append(time.perf_counter() - t0)

    method = LearnedMethod(ScorerHolder(scorer))
    ctx = AugmentContext(catalog=catalog, budget=TokenBudget())
    cold, warm = [], []
    for sid in catalog.ids():
        style = catalog.get(sid)
        for i in range(args.repeats):
            prompt = PROMPTS[i % len(PROMPTS)]
            t0 = time.perf_counter()
            method.augment(prompt, style, ctx)
            (cold if i == 0 else warm).append(time.perf_counter() - t0)

    val = scorer.evaluate(pqpp_val)
    print("| measure | value |\n| --- | --- |")
    print(f"| train, {trained.metadata['rows']:,} rows (PQPP train + ratings) | {train_s:.2f} s |")
    print(
        f"| model load (median of 5), {bundled.stat().st_size / 1e3:.0f} kB file "
        f"| {np.median(loads) * 1000:.1f} ms |"
    )
    print(
        f"| augment p50 / p95, warm ({len(warm)} calls, {len(catalog.ids())} styles) "
        f"| {_pct(warm, 50):.1f} / {_pct(warm, 95):.1f} ms |"
    )
    print(f"| augment, first call per style (gain cache cold) | {_pct(cold, 50):.1f} ms (p50) |")
    print(
        f"| PQPP validation (n={val['n']}) pearson / kendall / spearman "
        f"| {val['pearson']:.3f} / {val['kendall']:.3f} / {val['spearman']:.3f} |"
    )
    cv = scorer.metadata.get("cv")
    if cv:
        print(
            f"| PQPP train {cv['folds']}-fold CV pearson / kendall / spearman "
            f"| {cv['pearson']:.3f} / {cv['kendall']:.3f} / {cv['spearman']:.3f} |"
        )


if __name__ == "__main__":
    main()
