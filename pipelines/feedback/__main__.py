"""Command line: export ratings for training, print the leaderboard.

    python -m pipelines.feedback export --db data/ratings.sqlite3 --format csv --out ratings.csv
    python -m pipelines.feedback leaderboard --db data/ratings.sqlite3 --style watercolor --json
    python -m pipelines.feedback leaderboard --db data/ratings.sqlite3 --source page

Bad arguments print a message and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.feedback.errors import FeedbackError
from pipelines.feedback.records import SOURCES
from pipelines.feedback.store import FeedbackStore, RecordFilter

BLIND = {"yes": True, "no": False, "all": None}


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m pipelines.feedback`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.feedback", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", type=Path, required=True, help="ratings database (ratings.sqlite3)")
        p.add_argument("--style", help="only this style id")
        p.add_argument("--session", help="only this session tag")
        p.add_argument("--since", help="from this UTC date or time, ISO 8601 (inclusive)")
        p.add_argument("--until", help="before this UTC date or time, ISO 8601 (exclusive)")

    export = sub.add_parser("export", help="write ratings as training data")
    common(export)
    export.add_argument("--format", choices=("csv", "jsonl"), required=True)
    export.add_argument("--out", type=Path, required=True, help="file to write")
    export.add_argument("--blind", choices=tuple(BLIND), default="all", help="which votes")

    board = sub.add_parser("leaderboard", help="print the leaderboard")
    common(board)
    board.add_argument(
        "--blind", choices=tuple(BLIND), default="all", help="all = blind and labelled, apart"
    )
    board.add_argument(
        "--source",
        choices=("all", *SOURCES),
        default="all",
        help="where votes came from: page leaves API and MCP votes out",
    )
    board.add_argument("--boot", type=int, default=200, help="bootstrap resamples (0 = none)")
    board.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    board.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; exits with a message (not a traceback) on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.db.is_file():
        parser.error(f"--db {args.db}: no such ratings database")  # exits 2
    filters = {
        "style": args.style,
        "session_tag": args.session,
        "since": args.since,
        "until": args.until,
        "blind": BLIND[args.blind],
    }
    try:
        store = FeedbackStore(args.db)
        if args.command == "export":
            from pipelines.feedback.export import export_csv, export_jsonl

            write = export_csv if args.format == "csv" else export_jsonl
            n = write(store, args.out, **filters)
            print(f"wrote {n} ratings to {args.out}", file=sys.stderr)
        else:
            from pipelines.feedback.leaderboard import format_table, leaderboard

            filters["source"] = None if args.source == "all" else args.source
            rows = leaderboard(
                store.query(RecordFilter(**filters)), n_boot=args.boot, seed=args.seed, **filters
            )
            if args.json:
                print(json.dumps([r.to_dict() for r in rows], indent=2))
            else:
                print(format_table(rows) if rows else "no ratings match these filters")
    except FeedbackError as exc:
        parser.error(str(exc))  # exits 2
    except sqlite3.DatabaseError as exc:
        parser.error(f"--db {args.db}: not a ratings database ({exc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
