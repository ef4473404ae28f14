"""Benchmark of the learned method: encode and train time (10k rows, both stages), retraining
from 10k rows of ratings, model load time, augmentation latency (two-stage and fast-only) and
the PQPP validation and CV metrics of the bundled model (or of ``--model``, e.g. one trained by
``python -m pipelines.augment train --encoder ...`` with other encoders), with a bootstrap range.

    python3 bench/bench_learned.py [--model FILE] [--pqpp DIR] [--repeats N] [--skip-train]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.augment.base import AugmentContext
from pipelines.augment.learned.data import ScoredPrompts, read_scored
from pipelines.augment.learned.encoder import EncodingStore, shared_encoder
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


def _style_ratings(
    catalog: StyleCatalog, n: int, seed: int = 0, signal: bool = False
) -> ScoredPrompts:
    """Rating-like rows (final prompt, 1-5 score, style) built from the real catalog; with
    ``signal``, raters like a style's first ten bank modifiers (held-out figures mean something)."""
    rng = random.Random(seed)
    texts, scores, styles = [], [], []
    for _ in range(n):
        style = catalog.get(rng.choice(catalog.ids()))
        bank = [m.text for m in catalog.modifiers_for(style)]
        mods = rng.sample(bank, 3)
        texts.append(", ".join([style.apply(rng.choice(PROMPTS)), *mods]))
        liked = signal and any(m in bank[:10] for m in mods)  # ~15% of rows
        scores.append(float(rng.randint(4, 5) if liked else rng.randint(1, 4 if signal else 5)))
        styles.append(style.id)
    return ScoredPrompts("ratings.csv", texts, scores, styles, "prompt", "score", "style")


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


def _latency(scorer: LearnedScorer, catalog: StyleCatalog, repeats: int) -> tuple[list, list]:
    """(first call per style, later calls) seconds of augmenting the PROMPTS in every style."""
    method = LearnedMethod(ScorerHolder(scorer))
    ctx = AugmentContext(catalog=catalog, budget=TokenBudget())
    cold, warm = [], []
    for sid in catalog.ids():
        style = catalog.get(sid)
        for i in range(repeats):
            prompt = PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" #{i}")
            t0 = time.perf_counter()
            method.augment(prompt, style, ctx)
            (cold if i == 0 else warm).append(time.perf_counter() - t0)
    return cold, warm


def _pearson_range(pred: np.ndarray, y: np.ndarray, n: int = 10_000) -> tuple[float, float, float]:
    """95% bootstrap interval of Pearson(pred, y) over rows, and the share of resamples >= 0.60
    (the issue's target): how far one validation split's figure can be read."""
    rng = np.random.default_rng(0)
    rs = np.empty(n)
    for i in range(n):
        idx = rng.integers(0, len(y), len(y))
        rs[i] = np.corrcoef(pred[idx], y[idx])[0, 1]
    lo, hi = np.percentile(rs, [2.5, 97.5])
    return float(lo), float(hi), float((rs >= 0.60).mean())


def _corr(name: str, m: dict) -> str:
    # 4 places, as correlations() rounds them: at 3, 0.59746 -> 0.5975 -> "0.598"
    return f"{name} {m['pearson']:.4f} / {m['kendall']:.4f} / {m['spearman']:.4f}"


def _retrain(rows: ScoredPrompts, extra: Path, live: LearnedScorer, out: Path) -> dict:
    """Retrainer.retrain on a store of ``rows`` plus the ``extra`` file (put in use only if
    it passes its held-out check); returns its report."""
    from pipelines.feedback.records import RatingRecord
    from pipelines.feedback.retrain import Retrainer
    from pipelines.feedback.store import FeedbackStore

    store = FeedbackStore(out / "ratings.sqlite3")
    store.submit(
        [
            RatingRecord(
                rater=f"r{i % 9}",
                comparison_id=f"c{i}",
                style=style or "",
                method="learned",
                final_prompt=text,
                seed=i,
                rating=int(score),
            )
            for i, (text, score, style) in enumerate(
                zip(rows.texts, rows.scores, rows.styles, strict=True)
            )
        ]
    )
    holder = ScorerHolder(live)
    report = Retrainer(store, holder, out / "learned").retrain([extra])
    return {"report": report, "scorer": holder.get()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pqpp", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "pqpp")
    p.add_argument("--model", type=Path, default=ASSETS_DIR / "learned" / BUNDLED_MODEL)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--skip-train", action="store_true", help="latency and PQPP figures only")
    args = p.parse_args()
    catalog = load_catalog(ASSETS_DIR)
    pqpp_val = read_scored(args.pqpp / "validation.csv")
    bundled = args.model
    print("| measure | value |\n| --- | --- |")

    loads = []
    for _ in range(5):
        t0 = time.perf_counter()
        scorer = LearnedScorer.load(bundled)
        loads.append(time.perf_counter() - t0)
    print(
        f"| model load (median of 5), {bundled.stat().st_size / 1e6:.1f} MB file "
        f"| {np.median(loads) * 1000:.1f} ms |"
    )
    if scorer.context is not None:
        t0 = time.perf_counter()
        scorer.context_reason()  # loads the encoders, as the app's warm-up does
        print(f"| contextual encoders load (once per process) | {time.perf_counter() - t0:.2f} s |")
        print(f"| stage | {scorer.stage_label()} |")
    fast_only = LearnedScorer(
        scorer.featurizer, scorer.weights, scorer.bias, {}, scorer.kernel, scorer.kernel_weight
    )
    for label, s in (("two-stage", scorer), ("fast stage alone", fast_only)):
        cold, warm = _latency(s, catalog, args.repeats)
        print(
            f"| augment p50 / p95, {label}, warm ({len(warm)} calls, {len(catalog.ids())} "
            f"styles) | {_pct(warm, 50):.1f} / {_pct(warm, 95):.1f} ms |"
        )
        print(f"| augment, {label}, first call per style | {_pct(cold, 50):.1f} ms (p50) |")

    val = scorer.evaluate(pqpp_val)
    line = _corr(val["stage"], val) + (f"; {_corr('fast', val['fast'])}" if "fast" in val else "")
    print(f"| PQPP validation (n={val['n']}) pearson / kendall / spearman | {line} |")
    final, _ = scorer.rerank(pqpp_val.texts, pqpp_val.styles)  # encodings cached by evaluate
    lo, hi, share = _pearson_range(np.asarray(final), np.asarray(pqpp_val.scores, np.float64))
    print(
        f"| PQPP validation pearson, 95% bootstrap range (10,000 resamples of the rows) "
        f"| {lo:.3f} – {hi:.3f}; {share:.0%} of resamples ≥ 0.60 |"
    )
    cv = scorer.metadata.get("cv")
    if cv:
        line = _corr(cv.get("stage", "fast"), cv) + (
            f"; {_corr('fast', cv['fast'])}" if "fast" in cv else ""
        )
        print(f"| PQPP train {cv['folds']}-fold CV pearson / kendall / spearman | {line} |")
    if args.skip_train:
        return

    pqpp_train = read_scored(args.pqpp / "train.csv")
    ratings = _style_ratings(catalog, 10_000 - len(pqpp_train))
    rows = [pqpp_train, ratings]
    t0 = time.perf_counter()
    fast = LearnedScorer.train(rows, TrainConfig())
    print(f"| train fast stage alone, 10,000 rows | {time.perf_counter() - t0:.1f} s |")
    if scorer.context is None or scorer.context_reason():
        return
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(context=scorer.context.config, encodings_dir=Path(tmp))
        texts = list(dict.fromkeys(t for r in rows for t in r.texts))
        for spec in scorer.context.config.encoders:
            encoder = shared_encoder(spec)
            fresh = [t for t in texts if t not in encoder._cache]
            t0 = time.perf_counter()
            store = EncodingStore(Path(tmp) / spec.cache_file)
            encoder.encode(fresh, store)
            store.save()
            print(
                f"| encode {len(fresh):,} new prompts with {spec.name} (cold; app-length "
                f"ratings and PQPP captions) | {time.perf_counter() - t0:.1f} s |"
            )
        t0 = time.perf_counter()
        both = LearnedScorer.train(rows, config)
        print(
            f"| train both stages, {both.metadata['rows']:,} rows, encodings cached "
            f"| {time.perf_counter() - t0:.1f} s |"
        )
        del fast, both
        session = _style_ratings(catalog, 10_000 - len(pqpp_train), seed=1, signal=True)
        for spec in scorer.context.config.encoders:  # what the app encoded when it proposed them
            shared_encoder(spec).encode(session.texts)
        t0 = time.perf_counter()
        out = _retrain(session, args.pqpp / "train.csv", scorer, Path(tmp))
        report = out["report"]
        print(
            f"| retrain from ratings ({report.rows:,} rows: "
            f"{len(session) - report.held_out_rows:,} ratings + PQPP train; "
            f"{report.held_out_rows:,} held out), encodings cached "
            f"| {time.perf_counter() - t0:.1f} s |"
        )
        print(f"| retrain report, held-out Pearson before → after | {report.stages_line()} |")


if __name__ == "__main__":
    main()
