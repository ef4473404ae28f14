"""Render a deck on a Ray cluster: the same spec, the same folder, the same rows as
``python -m pipelines.decks render``, with ``ray.data`` spreading the rows over the workers.

A deck's rows are independent (each has its own seeded generator and writes its own files), so
they map over a Ray Dataset: each actor builds the app's comparison service once (as each
accelerate process does) and renders its batches of rows into the deck folder, which every
worker must see (a shared filesystem). The driver prepares the folder first and merges the
manifest last, as accelerate's main process does. Rows already on disk are skipped, so a run
that stopped resumes. Ray is not a dependency of the app: ``pip install "ray[data]"`` first.

    # on a laptop (a local Ray with 2 CPU workers), or on a cluster's head node:
    python docs/ray_deck.py decks/example.yaml --out decks/example-out --workers 2
    python docs/ray_deck.py deck.yaml --out /shared/decks/staff --workers 8 --gpus-per-worker 1

Then ``python -m pipelines.decks report <out>`` as usual.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo


class BatchRows:
    """accelerate's ``PartialState`` as :func:`render_deck` reads it, for one Ray batch: this
    worker renders exactly the batch's rows; the driver prepares and merges the folder."""

    is_main_process = False
    process_index = 0
    num_processes = 1

    def __init__(self, row_ids: Sequence[str]) -> None:
        self.row_ids = set(row_ids)

    def wait_for_everyone(self) -> None:
        """Nothing to wait for: Ray's driver orders prepare -> rows -> merge."""

    @contextmanager
    def split_between_processes(self, todo: Sequence[Any]) -> Iterator[list[Any]]:
        yield [row for row in todo if row.row_id in self.row_ids]


class RenderRows:
    """A Ray actor: builds the deck's comparison service once, then renders batches of rows."""

    def __init__(self, spec_path: str, out: str) -> None:
        from pipelines.app.bootstrap import build_deck_service
        from pipelines.core.settings import Settings
        from pipelines.decks.spec import load_spec

        settings = Settings.from_env()
        self.spec = load_spec(spec_path, settings)
        self.settings = self.spec.settings(settings)
        self.out = Path(out)
        self.compare = build_deck_service(self.settings).compare

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        from pipelines.decks.render import render_deck

        row_ids = [str(r) for r in batch["row_id"]]
        summary = render_deck(
            self.spec,
            self.out,
            self.settings,
            self.compare,
            state=BatchRows(row_ids),
            progress=False,
        )
        # one result line per row of the batch; the counts are the batch's
        return {
            "row_id": row_ids,
            "rendered": [summary.rendered] * len(row_ids),
            "skipped": [summary.skipped] * len(row_ids),
        }


def render_on_ray(
    spec_path: Path, out: Path, workers: int, gpus_per_worker: float = 0, batch_size: int = 4
) -> tuple[int, int]:
    """Render every missing row of the spec with ``workers`` Ray actors; returns the merged
    manifest's (lines, skipped rows). Connects to the running cluster (``RAY_ADDRESS``), or
    starts a local one."""
    import ray

    from pipelines.core.settings import Settings
    from pipelines.decks.manifest import done_rows, merge
    from pipelines.decks.render import prepare_folder
    from pipelines.decks.spec import load_spec

    spec = load_spec(spec_path, Settings.from_env())
    prepare_folder(spec, out)
    todo = [{"row_id": r.row_id} for r in spec.rows() if r.row_id not in done_rows(out)]
    if todo:
        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True)
        rows = ray.data.from_items(todo)
        done = rows.map_batches(
            RenderRows,
            fn_constructor_kwargs={"spec_path": str(spec_path), "out": str(out)},
            batch_size=batch_size,
            concurrency=workers,
            num_gpus=gpus_per_worker,
        ).take_all()
        assert len(done) == len(todo), f"{len(done)} of {len(todo)} rows came back"
    return merge(out, (r.row_id for r in spec.rows()))


def main(argv: Sequence[str] | None = None) -> int:
    """``python docs/ray_deck.py SPEC --out DIR [--workers N] [--gpus-per-worker G]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2, help="Ray actors, each one service")
    parser.add_argument("--gpus-per-worker", type=float, default=0)
    parser.add_argument("--batch-size", type=int, default=4, help="rows per map_batches call")
    args = parser.parse_args(argv)
    lines, skipped = render_on_ray(
        args.spec, args.out, args.workers, args.gpus_per_worker, args.batch_size
    )
    print(f"{args.out}: {lines} outputs in manifest.jsonl, {skipped} rows skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
