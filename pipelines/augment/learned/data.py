"""Reads scored prompts (CSV or JSONL) for the learned scorer, with column auto-detection, and
correlates predictions with their scores."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.errors import InputError

TEXT_COLUMNS = ("prompt", "best_caption", "text")
SCORE_COLUMNS = ("score", "avg_generative_score", "rating")
STYLE_COLUMNS = ("style",)
SUFFIXES = (".csv", ".jsonl", ".json")


class DataError(InputError):
    """A training or evaluation file cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class ScoredPrompts:
    """Rows of one source file."""

    source: str  # file name, recorded in model metadata
    texts: list[str]
    scores: list[float]
    styles: list[str | None]
    text_col: str
    score_col: str
    style_col: str | None

    def __len__(self) -> int:
        return len(self.texts)


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"data file {str(path)!r} has suffix {suffix!r}: use one of {SUFFIXES}")
    try:
        with path.open(encoding="utf-8", newline="") as f:
            if suffix == ".csv":
                reader = csv.DictReader(f)
                rows = list(reader)
                return list(reader.fieldnames or []), rows
            rows = []
            for i, line in enumerate(f, 1):
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise DataError(f"{path}:{i} is not a JSON object")
                    rows.append(obj)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        raise DataError(f"data file {str(path)!r} cannot be parsed: {e}") from None
    columns: list[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    return columns, rows


def _pick(columns: Sequence[str], wanted: str | None, defaults: Sequence[str], what: str, path):
    if wanted is not None:
        if wanted not in columns:
            raise DataError(
                f"{what} column {wanted!r} is not in {str(path)!r}: its columns are {list(columns)}"
            )
        return wanted
    for c in defaults:
        if c in columns:
            return c
    raise DataError(
        f"no {what} column in {str(path)!r} (looked for {list(defaults)}); its columns are "
        f"{list(columns)}: name one with --{what}-col"
    )


def read_scored(
    path: str | Path,
    text_col: str | None = None,
    score_col: str | None = None,
    style_col: str | None = None,
) -> ScoredPrompts:
    """Rows with a non-empty prompt and a finite score; ``None`` columns are auto-detected.

    Raises :class:`DataError` for a missing file, an unknown column or no usable row.
    """
    path = Path(path)
    columns, rows = _read_rows(path)
    tcol = _pick(columns, text_col, TEXT_COLUMNS, "text", path)
    scol = _pick(columns, score_col, SCORE_COLUMNS, "score", path)
    if style_col is not None:
        ycol: str | None = _pick(columns, style_col, STYLE_COLUMNS, "style", path)
    else:
        ycol = next((c for c in STYLE_COLUMNS if c in columns), None)
    texts, scores, styles = [], [], []
    for r in rows:
        text = r.get(tcol)
        try:
            score = float(r.get(scol))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if not isinstance(text, str) or not text.strip() or not math.isfinite(score):
            continue
        style = r.get(ycol) if ycol else None
        texts.append(text.strip())
        scores.append(score)
        styles.append(str(style) if style not in (None, "") else None)
    if not texts:
        raise DataError(
            f"{str(path)!r} has no usable row: need a non-empty {tcol!r} and a numeric {scol!r}"
        )
    return ScoredPrompts(path.name, texts, scores, styles, tcol, scol, ycol)


def correlations(pred: Sequence[float], target: Sequence[float]) -> dict[str, float]:
    """Pearson, Kendall (tau-b) and Spearman correlation, and the row count."""
    import numpy as np
    from scipy.stats import kendalltau, pearsonr, spearmanr

    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if len(p) != len(t) or len(p) < 3:
        raise ValueError(f"need at least 3 paired values to correlate, got {len(p)}/{len(t)}")
    if np.ptp(p) == 0 or np.ptp(t) == 0:
        raise ValueError("cannot correlate a constant series (all predictions or targets equal)")
    return {
        "pearson": round(float(pearsonr(p, t)[0]), 4),
        "kendall": round(float(kendalltau(p, t)[0]), 4),
        "spearman": round(float(spearmanr(p, t)[0]), 4),
        "n": len(p),
    }
