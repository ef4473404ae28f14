"""Render a deck: every missing row through ``ComparisonService.compare``, on 1 or N processes.

The service comes in as a parameter: decks sit below the app, so the caller (the CLI, a test,
a benchmark) builds it with the app's wiring (``pipelines.app.bootstrap.build_deck_service``:
the live app's engine, methods, learned scorer and measures) and passes its ``compare`` in.
Under ``accelerate launch`` each process takes its share of the missing rows with accelerate's
``PartialState.split_between_processes``; a plain ``python -m pipelines.decks render`` is one
process. Each row is rendered in one batched call with its own seeded generator, so which
process renders it does not change its pixels. The main process prepares the folder and merges
the manifest; the others only write their rows (a shared folder across machines).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.request import CompareRequest, no_progress
from pipelines.decks.manifest import (
    IMAGES,
    SPEC_FILE,
    done_rows,
    merge,
    read_spec_json,
    remove_stale_temps,
    row_path,
    row_record,
    skipped_record,
    write_atomic,
    write_once,
)
from pipelines.decks.spec import DeckSpec, DeckSpecError, RowSpec
from pipelines.faces.analysis import FaceError
from pipelines.feedback.records import png_bytes

if TYPE_CHECKING:
    from pipelines.core.request import Progress
    from pipelines.core.results import ComparisonResult
    from pipelines.core.settings import Settings

log = logging.getLogger(__name__)

# a built ``ComparisonService.compare``: (selfie, request, progress) -> the row's result
Compare = Callable[[Any, CompareRequest, "Progress"], "ComparisonResult"]


@dataclass(frozen=True)
class RenderSummary:
    """What one process did, and (on the main process) the merged deck."""

    rendered: int  # rows this process rendered now
    skipped: int  # rows this process could not render (e.g. no face in the selfie)
    already: int  # rows found done before this run
    seconds: float
    images: int  # output images this process wrote
    manifest_lines: int = 0  # main process: lines in the merged manifest
    skipped_total: int = 0  # main process: skipped rows in the deck


def process_state(settings: Settings) -> Any:
    """accelerate's ``PartialState``: this process's rank, the process count and its device.

    On a machine without a GPU (or with ``BECOME_DEVICE=cpu``) it is asked for CPU processes,
    which join with gloo under ``torchrun`` (``accelerate launch --cpu`` starts one process);
    with GPUs, ``accelerate launch`` gives each process its own, and ``cuda`` means that one.
    """
    import torch
    from accelerate import PartialState

    cpu = settings.device == "cpu" or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def request_for(spec: DeckSpec, settings: Settings, row: RowSpec) -> CompareRequest:
    """The row's request, built as the UI and the API build theirs."""
    return CompareRequest.from_settings(
        spec.settings(settings),
        style=row.style,
        prompt=row.prompt,
        methods=spec.methods,
        seed=row.seed,
        **spec.generation,
    )


def prepare_folder(spec: DeckSpec, out: Path) -> None:
    """Create ``out`` or check it holds the same deck; record the spec; clear stale temps."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / SPEC_FILE).is_file():
        old = read_spec_json(out)
        for name, value in spec.fingerprint().items():
            if old.get(name) != value:
                raise DeckSpecError(
                    f"{spec.source}: field {name!r} is {value!r} but {out / SPEC_FILE} was "
                    f"rendered with {old.get(name)!r}: render into another --out folder"
                )
    write_atomic(out / SPEC_FILE, json.dumps(spec.to_json(), indent=1).encode("utf-8"))
    removed = remove_stale_temps(out)
    if removed:
        log.info("removed %d temporary files of an interrupted run", removed)


def render_deck(
    spec: DeckSpec,
    out: Path,
    settings: Settings,
    compare: Compare,
    *,
    state: Any = None,
    progress: bool = True,
) -> RenderSummary:
    """Render every row of ``spec`` that ``out`` does not hold yet; merge the manifest.

    ``compare`` is a built service's ``compare`` (each process builds its own); ``state``
    defaults to accelerate's ``PartialState`` for ``settings``.
    """
    if state is None:
        state = process_state(settings)
    out = Path(out)
    t0 = time.perf_counter()
    if state.is_main_process:
        prepare_folder(spec, out)
    state.wait_for_everyone()  # nobody lists the folder before it is ready
    rows = spec.rows()
    done = done_rows(out)
    todo = [r for r in rows if r.row_id not in done]
    rendered = skipped = images = 0
    with state.split_between_processes(todo) as mine:
        bar = _progress_bar(spec, len(mine), state, progress)
        for row in mine:
            n_images, ok = _render_row(spec, row, out, settings, compare)
            rendered += ok
            skipped += not ok
            images += n_images
            bar.update(1)
            bar.set_postfix(images=images, skipped=skipped)
        bar.close()
    state.wait_for_everyone()  # every row is on disk before the manifest is merged
    lines = skipped_total = 0
    if state.is_main_process:
        lines, skipped_total = merge(out, (r.row_id for r in rows))
    return RenderSummary(
        rendered=rendered,
        skipped=skipped,
        already=len(rows) - len(todo),
        seconds=time.perf_counter() - t0,
        images=images,
        manifest_lines=lines,
        skipped_total=skipped_total,
    )


def _render_row(
    spec: DeckSpec, row: RowSpec, out: Path, settings: Settings, compare: Compare
) -> tuple[int, bool]:
    """Render one row and write it; returns (images written, rendered?)."""
    request = request_for(spec, settings, row)
    try:
        result = compare(row.selfie.path, request, no_progress)
    except FaceError as exc:  # no face, too small, unreadable: listed in the report as skipped
        reason = f"{row.selfie.path.name}: {exc}"
        record = skipped_record(spec.deck, row.row_id, row.selfie.id, row.style, reason)
        write_once(row_path(out, row.row_id), _json(record))
        log.warning("skipped row %s: %s", row.row_id, reason)
        return 0, False
    n = 0
    for o in result.outputs:
        if o.image is None:
            continue
        write_atomic(out / IMAGES / row.row_id / f"{o.method}.png", png_bytes(o.image))
        n += 1
    record = row_record(spec.deck, row.row_id, row.selfie.id, result)
    if not write_once(row_path(out, row.row_id), _json(record)):
        log.warning("row %s was already written by another process: kept the first", row.row_id)
    return n, True


def _json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")


def _progress_bar(spec: DeckSpec, total: int, state: Any, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    who = f" [process {state.process_index + 1}/{state.num_processes}]"
    return tqdm(
        total=total,
        desc=f"deck {spec.deck}" + (who if state.num_processes > 1 else ""),
        unit="row",
        disable=not enabled or not state.is_main_process,
        dynamic_ncols=True,
    )
