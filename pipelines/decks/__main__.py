"""Command line for decks.

    python -m pipelines.decks render deck.yaml --out decks/staff-2026-11
    accelerate launch --num_processes 4 -m pipelines.decks render deck.yaml --out DIR
    python -m pipelines.decks report DIR [--db data/ratings.sqlite3]
    python -m pipelines.decks push DIR owner/deck-repo [--token hf_...]
    python -m pipelines.decks pull owner/deck-repo DIR

Bad input prints a message naming the file and field, and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.core.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m pipelines.decks`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.decks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="render every missing row of a deck spec")
    render.add_argument("spec", type=Path, help="deck spec (.yaml or .json)")
    render.add_argument("--out", type=Path, required=True, help="deck folder to write")
    render.add_argument("--no-progress", action="store_true", help="no progress bar")
    report = sub.add_parser("report", help="measures (and ratings) per style x method")
    report.add_argument("deck", type=Path, help="deck folder")
    report.add_argument("--db", type=Path, help="ratings database (default: the app's)")
    report.add_argument("--boot", type=int, default=200, help="bootstrap resamples for BT")
    push = sub.add_parser("push", help="upload a deck folder to a HF dataset repo")
    push.add_argument("deck", type=Path)
    push.add_argument("repo", help="dataset repo id, owner/name")
    push.add_argument("--token", help="HF token (default: HF_TOKEN / the cached login)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    pull = sub.add_parser("pull", help="download a deck from a HF dataset repo")
    pull.add_argument("repo", help="dataset repo id, owner/name")
    pull.add_argument("out", type=Path, help="folder to download into")
    pull.add_argument("--token", help="HF token for a private repo")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; exits with a message (not a traceback) on bad input."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from pipelines.core.settings import Settings

    settings = Settings.from_env()
    if args.command == "render":
        # an entry point may import the app: the deck renders with the live app's wiring
        from pipelines.app.bootstrap import build_deck_service
        from pipelines.decks.render import process_state, render_deck
        from pipelines.decks.spec import load_spec

        spec = load_spec(args.spec, settings)
        run = spec.settings(settings)
        # the process state first: with GPUs it picks this process's device before any model
        # of this process's own service loads (models load on first use)
        state = process_state(run)
        compare = build_deck_service(run).compare
        show = not args.no_progress
        summary = render_deck(spec, args.out, run, compare, state=state, progress=show)
        print(
            f"rendered {summary.rendered} rows ({summary.images} images) and skipped "
            f"{summary.skipped} in {summary.seconds:.1f} s; {summary.already} were already done",
            file=sys.stderr,
        )
        if summary.manifest_lines or summary.skipped_total:
            print(
                f"{args.out}: {summary.manifest_lines} outputs in manifest.jsonl, "
                f"{summary.skipped_total} rows skipped (see skipped.jsonl)",
                file=sys.stderr,
            )
        return 0
    if args.command == "report":
        from pipelines.decks.report import write_report
        from pipelines.feedback.store import FeedbackStore

        db = args.db or settings.ratings_db
        store = FeedbackStore(db) if db.is_file() else None
        report = write_report(args.deck, store, n_boot=args.boot)
        print(report.markdown)
        print(f"wrote {report.markdown_path} and {report.chart_path}", file=sys.stderr)
        return 0
    from pipelines.decks.hub import pull_deck, push_deck

    if args.command == "push":
        url = push_deck(args.deck, args.repo, token=args.token, private=args.private)
        print(f"pushed {args.deck} to {url}", file=sys.stderr)
    else:
        folder = pull_deck(args.repo, args.out, token=args.token)
        print(f"pulled {args.repo} into {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
