"""A deck folder on disk: row files written atomically, the merged manifest, and reading it back.

Layout::

    DIR/deck.json                       the spec as rendered (id, engine, methods, generation, ...)
    DIR/rows/<row_id>.json              one rendered (or skipped) row, written once, atomically
    DIR/images/<row_id>/<method>.png    its outputs; each PNG hashes to its manifest image_hash
    DIR/manifest.jsonl                  one line per output, rows in spec order (merged)
    DIR/skipped.jsonl                   rows that could not render (no face in the selfie, ...)

A row file appears only after its images are in place, by a hard link that fails when the
file exists: a killed run leaves whole rows or nothing, and no row is ever written twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core.errors import InputError

if TYPE_CHECKING:
    from pipelines.core.results import ComparisonResult

SPEC_FILE = "deck.json"
ROWS = "rows"
IMAGES = "images"
MANIFEST = "manifest.jsonl"
SKIPPED = "skipped.jsonl"
TMP_SUFFIX = ".tmp"

# every manifest line has these, with these types (None allowed where the tuple says so)
LINE_FIELDS: Mapping[str, tuple[type, ...]] = {
    "deck": (str,),
    "row_id": (str,),
    "selfie": (str,),
    "style": (str,),
    "base_prompt": (str,),
    "seed": (int,),
    "method": (str,),
    "final_prompt": (str, type(None)),
    "negative_prompt": (str, type(None)),
    "error": (str, type(None)),
    "image": (str, type(None)),
    "image_hash": (str, type(None)),
    "measures": (dict, type(None)),
    "params": (dict,),
    "timings": (dict,),
    "engine": (str,),
    "model_ids": (dict,),
}


class DeckFolderError(InputError):
    """A deck folder that cannot be read; the message names the file, line and field."""


# ----------------------------------------------------------------------------- writing


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_once(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; False (and nothing written) when it does.

    The temporary file is hard-linked into place, which fails atomically when the name is
    taken: two processes, or a rerun, can never both write one row.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the row is durable before it is visible
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def remove_stale_temps(folder: Path) -> int:
    """Delete temporary files a killed run left behind; returns how many."""
    n = 0
    for sub in (ROWS, IMAGES):
        for p in (folder / sub).rglob(f".*{TMP_SUFFIX}"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def row_path(folder: Path, row_id: str) -> Path:
    """Where the row file of ``row_id`` lives."""
    return folder / ROWS / f"{row_id}.json"


def done_rows(folder: Path) -> set[str]:
    """Ids of every row already written (rendered or skipped)."""
    rows = folder / ROWS
    if not rows.is_dir():
        return set()
    return {p.stem for p in rows.glob("*.json")}


def row_record(deck: str, row_id: str, selfie: str, result: ComparisonResult) -> dict[str, Any]:
    """The row file of a rendered comparison: row fields, then one entry per output."""
    outputs = []
    for o in result.outputs:
        outputs.append(
            {
                "method": o.method,
                "final_prompt": o.prompt,
                "negative_prompt": o.negative_prompt,
                "score": o.score,
                "tokens": o.tokens,
                "error": o.error,
                "image": f"{IMAGES}/{row_id}/{o.method}.png" if o.rendered else None,
                "image_hash": o.image_hash,
                "measures": o.measures.to_json() if o.measures else None,
            }
        )
    return {
        "deck": deck,
        "row_id": row_id,
        "status": "rendered",
        "selfie": selfie,
        "style": result.request.style,
        "base_prompt": result.request.prompt,
        "seed": result.request.seed,
        "params": result.request.generation_params(),
        "faces_in_selfie": result.num_faces,
        "engine": result.engine,
        "model_ids": dict(result.model_ids),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "outputs": outputs,
    }


def skipped_record(deck: str, row_id: str, selfie: str, style: str, reason: str) -> dict[str, Any]:
    """The row file of a row that cannot render (kept, so a rerun does not retry it)."""
    return {
        "deck": deck,
        "row_id": row_id,
        "status": "skipped",
        "selfie": selfie,
        "style": style,
        "reason": reason,
    }


def manifest_lines(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A rendered row file as manifest lines, one per output."""
    shared = {k: v for k, v in row.items() if k not in ("outputs", "status")}
    return [{**shared, **out} for out in row["outputs"]]


def merge(folder: Path, row_ids: Iterable[str]) -> tuple[int, int]:
    """Write ``manifest.jsonl`` and ``skipped.jsonl`` from the row files, in ``row_ids`` order.

    Returns (manifest lines, skipped rows). Rows not yet rendered are left out.
    """
    lines, skipped = [], []
    for rid in row_ids:
        path = row_path(folder, rid)
        if not path.is_file():
            continue
        row = _read_row(path)
        if row.get("status") == "skipped":
            skipped.append(row)
        else:
            lines.extend(manifest_lines(row))
    write_atomic(folder / MANIFEST, _jsonl(lines))
    write_atomic(folder / SKIPPED, _jsonl(skipped))
    return len(lines), len(skipped)


def _jsonl(items: Iterable[Mapping[str, Any]]) -> bytes:
    text = "".join(json.dumps(i, ensure_ascii=False, sort_keys=True) + "\n" for i in items)
    return text.encode("utf-8")


def _read_row(path: Path) -> dict[str, Any]:
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeckFolderError(
            f"{path}: not a readable row file ({exc}); delete it and rerun render to redo the row"
        ) from None
    if not isinstance(row, dict) or row.get("status") not in ("rendered", "skipped"):
        raise DeckFolderError(f"{path}: field 'status' must be 'rendered' or 'skipped'")
    if row["status"] == "rendered" and not isinstance(row.get("outputs"), list):
        raise DeckFolderError(f"{path}: field 'outputs' must be a list")
    return row


# ----------------------------------------------------------------------------- reading


def read_manifest(folder: Path) -> list[dict[str, Any]]:
    """Every line of ``folder/manifest.jsonl``, checked; a bad line names its number and field."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise DeckFolderError(f"deck folder {folder} does not exist")
    if not path.is_file():
        raise DeckFolderError(
            f"{path} is missing: render the deck first (python -m pipelines.decks render)"
        )
    lines = []
    with path.open(encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            lines.append(check_line(text, path, number))
    return lines


def check_line(text: str, path: Path, number: int) -> dict[str, Any]:
    """One manifest line parsed and checked against :data:`LINE_FIELDS`."""
    where = f"{path}, line {number}"
    try:
        line = json.loads(text)
    except ValueError as exc:
        raise DeckFolderError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(line, dict):
        raise DeckFolderError(f"{where}: a line must be a JSON object")
    for name, types in LINE_FIELDS.items():
        if name not in line:
            raise DeckFolderError(f"{where}: field {name!r} is missing")
        value = line[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            allowed = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise DeckFolderError(f"{where}: field {name!r} is {value!r}: use {allowed}")
    if line["image"] is not None and (
        Path(line["image"]).is_absolute() or ".." in Path(line["image"]).parts
    ):
        raise DeckFolderError(f"{where}: field 'image' must be a path inside the deck folder")
    return line


def read_skipped(folder: Path) -> list[dict[str, Any]]:
    """The skipped rows of a deck (empty when none were)."""
    path = folder / SKIPPED
    if not path.is_file():
        return []
    out = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.strip():
            try:
                out.append(json.loads(text))
            except ValueError as exc:
                raise DeckFolderError(f"{path}, line {number}: not valid JSON ({exc})") from None
    return out


def read_spec_json(folder: Path) -> dict[str, Any]:
    """``deck.json`` of a deck folder."""
    path = folder / SPEC_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeckFolderError(f"{path} is missing: {folder} is not a deck folder") from None
    except (OSError, ValueError) as exc:
        raise DeckFolderError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("deck"), str):
        raise DeckFolderError(f"{path}: field 'deck' is missing")
    return data


@dataclass(frozen=True)
class DeckRow:
    """One rendered row of a loaded deck: its manifest lines, one per method."""

    deck: str
    row_id: str
    lines: tuple[dict[str, Any], ...]

    @property
    def comparison_id(self) -> str:
        """The id ratings of this row carry as their comparison id."""
        return f"{self.deck}/{self.row_id}"

    def to_result(self, folder: Path, images: bool = True) -> ComparisonResult:
        """This row as a frozen result, images read from the deck folder (or left out)."""
        from PIL import Image

        from pipelines.core.measures import Measures
        from pipelines.core.request import CompareRequest
        from pipelines.core.results import ComparisonResult, MethodOutput

        first = self.lines[0]
        outputs = []
        for line in self.lines:
            image = None
            if line["image"] and images:
                with Image.open(folder / line["image"]) as im:
                    image = im.convert("RGB")
            measures = line.get("measures")
            outputs.append(
                MethodOutput(
                    method=line["method"],
                    prompt=line["final_prompt"],
                    negative_prompt=line["negative_prompt"],
                    score=line.get("score"),
                    tokens=line.get("tokens"),
                    error=line["error"],
                    image=image,
                    image_hash=line["image_hash"] if line["image"] else None,
                    measures=Measures.from_json(measures) if measures else None,
                )
            )
        params = {k: v for k, v in first["params"].items() if v is not None}
        request = CompareRequest(
            style=first["style"],
            prompt=first["base_prompt"],
            methods=tuple(line["method"] for line in self.lines),
            seed=first["seed"],
            **params,
        )
        return ComparisonResult(
            comparison_id=self.comparison_id,
            request=request,
            outputs=tuple(outputs),
            face_crop=None,
            num_faces=int(first.get("faces_in_selfie") or 1),
            det_score=0.0,
            engine=first["engine"],
            engine_reason=f"pre-rendered deck {self.deck}",
            model_ids=dict(first["model_ids"]),
            timings=dict(first["timings"]),
        )


def group_rows(lines: Iterable[Mapping[str, Any]]) -> dict[str, DeckRow]:
    """Manifest lines grouped into rows, in manifest order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    decks: dict[str, str] = {}
    for line in lines:
        grouped.setdefault(line["row_id"], []).append(dict(line))
        decks[line["row_id"]] = line["deck"]
    return {rid: DeckRow(decks[rid], rid, tuple(ls)) for rid, ls in grouped.items()}
