"""Command line for the learned scorer and the augmentation methods.

    python -m pipelines.augment train --data FILE [--data FILE ...] --out MODEL [--fast-only]
    python -m pipelines.augment evaluate --model MODEL --data FILE
    python -m pipelines.augment augment --method learned --style ID --prompt TEXT [--model MODEL]
    python -m pipelines.augment wordvec --data FILE [--data FILE ...] --out TABLE

Every command prints JSON on stdout. Bad input exits with code 2 and a one-line error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.augment.base import MethodUnavailable, UnknownMethodError
from pipelines.augment.clip_backend import LazyClip
from pipelines.augment.learned.contextual import ContextConfig
from pipelines.augment.learned.data import DataError, read_scored
from pipelines.augment.learned.encoder import EncoderSpec
from pipelines.augment.learned.model import (
    LearnedScorer,
    ModelFileError,
    NoContextStage,
    ScorerHolder,
    TrainConfig,
    default_encodings_dir,
    default_model_path,
)
from pipelines.core.errors import UnavailableError
from pipelines.core.settings import Settings

AUGMENT_METHODS = ("learned", "inversion", "ensemble")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.augment", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="command", required=True)

    def columns(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--text-col", help="prompt column (default: prompt/best_caption/text)")
        sp.add_argument(
            "--score-col", help="score column (default: score/avg_generative_score/rating)"
        )

    t = sub.add_parser("train", help="train a scorer and print its metadata")
    t.add_argument("--data", action="append", required=True, type=Path, help="CSV or JSONL")
    columns(t)
    t.add_argument("--style-col", help="style column (default: style, if present)")
    t.add_argument("--out", required=True, type=Path, help="model file to write (.npz)")
    t.add_argument("--val", action="append", default=[], type=Path, help="held-out file(s)")
    t.add_argument("--alpha", type=float, default=TrainConfig.alpha, help="ridge penalty")
    t.add_argument("--cv", type=int, default=0, help="also report k-fold CV metrics (k >= 2)")
    t.add_argument(
        "--fast-only", action="store_true", help="no contextual stage (no encoder needed)"
    )
    default_names = " + ".join(e.model_id for e in ContextConfig().encoders)
    t.add_argument(
        "--encoder",
        action="append",
        default=[],
        help="contextual encoder, repeatable: Hub id or local folder of a text encoder or a CLIP "
        f"checkpoint (its text tower) (default {default_names})",
    )
    t.add_argument(
        "--encodings",
        type=Path,
        help="folder of encoding caches, one .npz per encoder (default: <data>/cache/learned)",
    )
    t.add_argument(
        "--top-k",
        type=int,
        default=ContextConfig.top_k,
        help="fast-stage candidates the contextual stage re-ranks per augmentation",
    )

    e = sub.add_parser("evaluate", help="print pearson/kendall/spearman of a model on a file")
    e.add_argument("--model", required=True, type=Path)
    e.add_argument("--data", required=True, type=Path)
    columns(e)

    a = sub.add_parser("augment", help="augment a prompt and print the candidates")
    a.add_argument("--method", required=True, choices=AUGMENT_METHODS)
    a.add_argument("--style", required=True)
    a.add_argument("--prompt", required=True)
    a.add_argument("--model", type=Path, help="learned model (default: the app's current one)")
    a.add_argument(
        "--reference",
        action="append",
        default=[],
        type=Path,
        help="style reference image for inversion/ensemble (repeatable)",
    )
    w = sub.add_parser(
        "wordvec", help="rebuild the MiniLM word-vector table (needs the pinned MiniLM)"
    )
    w.add_argument("--data", action="append", required=True, type=Path, help="CSV or JSONL")
    columns(w)
    w.add_argument("--dim", type=int, default=64, help="PCA dimensions kept")
    w.add_argument("--out", required=True, type=Path, help="table to write (.npz)")
    return p


def _wordvec(args: argparse.Namespace) -> dict:
    """Vocabulary: the data's prompts plus every style template and bank modifier."""
    from pipelines.augment.learned.features import words
    from pipelines.augment.learned.wordvec import build_word_vectors, minilm_dir
    from pipelines.styles.catalog import load_catalog

    texts = [t for p in args.data for t in read_scored(p, args.text_col, args.score_col).texts]
    catalog = load_catalog(Settings.from_env().assets_dir)
    for sid in catalog.ids():
        style = catalog.get(sid)
        texts += [style.name, style.template, *(m.text for m in catalog.modifiers_for(style))]
    try:
        model_dir = minilm_dir()
    except UnavailableError as e:
        raise DataError(f"wordvec needs all-MiniLM-L6-v2: {e}") from None
    table = build_word_vectors(model_dir, [w for t in texts for w in words(t)], args.dim)
    table.save(args.out)
    return {"out": str(args.out), "words": len(table.vocab), "dim": table.dim}


def _train(args: argparse.Namespace) -> dict:
    def read(path: Path):
        return read_scored(path, args.text_col, args.score_col, args.style_col)

    if args.out.suffix != ".npz":
        raise DataError(f"--out {str(args.out)!r} must end in .npz")
    sources = [read(p) for p in args.data]
    validation = [read(p) for p in args.val]
    context = None
    encodings = None
    if not args.fast_only:
        if args.encoder:
            specs = [EncoderSpec.named(m) for m in args.encoder]
            context = ContextConfig.with_encoders(specs, top_k=args.top_k)
        else:
            context = ContextConfig(top_k=args.top_k)
        encodings = args.encodings or default_encodings_dir(Settings.from_env())
    config = TrainConfig(
        alpha=args.alpha, cv_folds=args.cv, context=context, encodings_dir=encodings
    )
    scorer = LearnedScorer.train(sources, config, validation)
    scorer.save(args.out)
    return scorer.metadata


def _evaluate(args: argparse.Namespace) -> dict:
    scorer = LearnedScorer.load(args.model)
    data = read_scored(args.data, args.text_col, args.score_col)
    return {**scorer.evaluate(data), "data": str(args.data), "model": str(args.model)}


def _clip(settings: Settings) -> LazyClip:
    """CLIP as the app would load it: the tiny one on the tiny engine, else the setting's."""
    from pipelines.app.bootstrap import shared_clip
    from pipelines.app.engines import clip_source

    return shared_clip(clip_source(settings))


def _augment(args: argparse.Namespace) -> dict:
    from pipelines.augment.base import AugmentContext
    from pipelines.augment.tokens import TokenBudget
    from pipelines.styles.catalog import load_catalog

    settings = Settings.from_env()
    catalog = load_catalog(settings.assets_dir)
    style = catalog.get(args.style)
    model_path = args.model or default_model_path(settings)
    holder = ScorerHolder(LearnedScorer.load(model_path))
    from pipelines.augment.registry import build_registry
    from pipelines.faces.photo import load_image

    method = build_registry(settings, holder, _clip(settings)).get(args.method)
    reason = method.unavailable_reason()
    if reason is not None:
        raise MethodUnavailable(f"method {args.method!r} is unavailable: {reason}")
    references = [load_image(p) for p in args.reference]
    # BECOME_MODEL_FAMILY's budget; without the engine's tokenizer it is estimated, which
    # over-counts: safe to render
    budget = TokenBudget.for_family(settings.family)
    context = AugmentContext(catalog, budget, reference_images=references)
    candidates = method.augment(args.prompt, style, context)
    best = candidates[0]
    return {
        "method": args.method,
        "style": style.id,
        "base_prompt": args.prompt,
        "prompt": best.prompt,
        "negative_prompt": style.negative_prompt
        if best.negative_prompt is None
        else best.negative_prompt,
        "model": str(model_path),
        "candidates": [
            {
                "prompt": c.prompt,
                "score": c.score,
                "trace": [
                    {"part": s.part, "source": s.source, "reason": s.reason} for s in c.trace
                ],
                "meta": c.meta,
            }
            for c in candidates
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; exits with a message (not a traceback) on bad input."""
    args = _parser().parse_args(argv)
    run = {"train": _train, "evaluate": _evaluate, "augment": _augment, "wordvec": _wordvec}[
        args.command
    ]
    try:
        out = run(args)
    except (
        DataError,
        ModelFileError,
        NoContextStage,
        UnknownMethodError,
        MethodUnavailable,
        ValueError,
    ) as e:
        # StyleFileError / UnknownStyleError are ValueErrors too.
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
