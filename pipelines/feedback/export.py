"""Ratings as training data for the learned method: CSV, JSONL or in-process rows.

Columns: ``prompt`` (the rendered prompt) and ``score`` (the 1..5 rating) first, as the learned
method reads them, then the context a training script may filter or weight on, then the deck row
and the output's automatic measures (``measure_<name>``, empty when it could not run, and
``measures_missing`` says why: ``"<name>: <reason>"`` joined by `` | ``).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from pipelines.core.measures import MEASURES, Measures
from pipelines.feedback.errors import FeedbackError
from pipelines.feedback.records import RatingRecord
from pipelines.feedback.store import FeedbackStore, RecordFilter

TRAINING_COLUMNS = (
    "prompt",
    "score",
    "style",
    "method",
    "base_prompt",
    "seed",
    "engine",
    "learned_model",  # the learned model's version that ranked the row ("bundled", an id)
    "session_tag",
    "rater",
    "blind",
    "is_best",
    "comment",
    "negative_prompt",
    "comparison_id",
    "created_at",
    "deck_id",
    "row_id",
    *(f"measure_{name}" for name in MEASURES),
    "output_faces",  # faces found in the output; 0 = none, empty = not looked for
    "identity_judge",  # the recognition model that judged identity
    "measures_missing",  # "<measure>: <why it has no value>" | ...; empty = all measured
)


def training_row(r: RatingRecord) -> dict[str, Any]:
    """One rating as a training row, with native types."""
    measures = Measures.from_json(json.loads(r.measures)) if r.measures else None
    values = measures.values() if measures else dict.fromkeys(MEASURES)
    return {
        "prompt": r.final_prompt,
        "score": r.rating,
        "style": r.style,
        "method": r.method,
        "base_prompt": r.base_prompt,
        "seed": r.seed,
        "engine": r.engine,
        "learned_model": r.learned_model,
        "session_tag": r.session_tag,
        "rater": r.rater,
        "blind": r.blind,
        "is_best": r.is_best,
        "comment": r.comment,
        "negative_prompt": r.negative_prompt,
        "comparison_id": r.comparison_id,
        "created_at": r.created_at,
        "deck_id": r.deck_id,
        "row_id": r.row_id,
        **{f"measure_{name}": value for name, value in values.items()},
        "output_faces": measures.faces if measures else None,
        "identity_judge": measures.identity.judge if measures else "",
        "measures_missing": _missing(measures),
    }


def _missing(measures: Measures | None) -> str:
    """Why each measure without a value has none (a blank cell is never left unexplained)."""
    if measures is None:
        return "no measures were stored with this rating"
    return " | ".join(
        f"{name}: {m.reason or 'no value'}"
        for name in MEASURES
        if (m := measures.get(name)).value is None
    )


def training_rows(store: FeedbackStore, **filters: Any) -> list[dict[str, Any]]:
    """Training rows for in-process retraining; ``filters`` as in :meth:`FeedbackStore.records`."""
    return [training_row(r) for r in store.query(RecordFilter(**filters))]


def export_csv(store: FeedbackStore, path: Path | str, **filters: Any) -> int:
    """Write the training rows as CSV (booleans as ``true``/``false``); returns the row count."""

    def write(f: IO[str], rows: Iterable[dict[str, Any]]) -> None:
        writer = csv.DictWriter(f, fieldnames=TRAINING_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})

    return _export(store, Path(path), filters, write)


def export_jsonl(store: FeedbackStore, path: Path | str, **filters: Any) -> int:
    """Write the training rows as JSON Lines; returns the row count."""

    def write(f: IO[str], rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    return _export(store, Path(path), filters, write)


# A cell a spreadsheet reads as a formula (OWASP, CSV injection): =, +, -, @, tab, CR
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(v: Any) -> Any:
    """Booleans as ``true``/``false``; text that a spreadsheet would run as a formula (a rater's
    name or comment, a typed prompt starting with ``=``, ``+``, ``-``, ``@``, tab or CR) gets a
    leading ``'``, as OWASP's CSV-injection guidance says; numbers stay numbers. JSONL keeps
    every value as it was typed."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        return "'" + v
    return v


def _export(
    store: FeedbackStore,
    path: Path,
    filters: dict[str, Any],
    write: Callable[[IO[str], Iterable[dict[str, Any]]], None],
) -> int:
    rows = training_rows(store, **filters)
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename, so a training job never reads a half-written export
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f, rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(rows)


EXPORTERS = {"csv": export_csv, "jsonl": export_jsonl}


def export_to_temp(store: FeedbackStore, fmt: str) -> Path:
    """Every rating exported as ``fmt`` (csv or jsonl) to a new temporary file, for download."""
    if fmt not in EXPORTERS:
        raise FeedbackError(f"format={fmt!r} is not allowed: use one of {', '.join(EXPORTERS)}")
    if store.count() == 0:
        raise FeedbackError("There are no ratings to export yet: rate some comparisons first.")
    out = Path(tempfile.mkdtemp(prefix="become-export-")) / f"ratings.{fmt}"
    EXPORTERS[fmt](store, out)
    return out
