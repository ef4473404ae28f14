"""The last comparisons this server rendered, so raters vote on what they saw.

In memory: the last ``capacity`` results with their output images (never the selfie's face
crop). On disk, when a folder is given: what rating a row needs, one JSON file per row (the
request, each output's method, prompts, image hash, measures and trace; no image, no face crop,
no embedding), so a row rendered before a restart can still be rated after it. A row is refused,
and its file deleted, ``keep_s`` after it was rendered (a day by default; the record's own
``rendered_at``, not the file's time, which a copy resets), checked at start and on each new row.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipelines.core.errors import InputError
from pipelines.core.measures import Measures
from pipelines.core.request import CompareRequest
from pipelines.core.results import ComparisonResult, MethodOutput
from pipelines.core.trace import Candidate, TraceStep

log = logging.getLogger(__name__)

KEEP_ON_DISK_S = 24 * 3600.0  # a session's rows survive a restart that day, then go
# a comparison id names a file: anything else (a client's "../x") is never looked up on disk
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class UnknownComparisonError(InputError):
    """A rating names a comparison this server no longer (or never) rendered."""


class RecentComparisons:
    """The last ``capacity`` comparisons in memory (without their face crop), and, with a
    ``folder``, every comparison of the last ``keep_s`` seconds on disk without any image.

    A row's age counts from when it was rendered (``rendered_at`` in its file), in memory and
    on disk: a file copied to another data folder, or touched, keeps its age."""

    def __init__(
        self,
        capacity: int = 96,  # ~96 rows x 5 images at 512 px: ~400 MB
        *,
        folder: Path | str | None = None,
        keep_s: float = KEEP_ON_DISK_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._items: OrderedDict[str, tuple[float, ComparisonResult]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()
        self.folder = None if folder is None else Path(folder)
        self.keep_s = float(keep_s)
        self._clock = clock
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.prune()

    def add(self, result: ComparisonResult) -> None:
        """Keep ``result`` (without its face crop), rendered now, evicting the oldest beyond
        capacity; with a folder, also write what rating it needs to disk and drop files past
        their time."""
        slim, now = result.without_face(), self._clock()
        with self._lock:
            self._items[result.comparison_id] = (now, slim)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        if self.folder is not None and _SAFE_ID.match(result.comparison_id):
            record = result_to_json(result) | {"rendered_at": now}
            data = json.dumps(record, sort_keys=True).encode("utf-8")
            _write_atomic(self.folder / f"{result.comparison_id}.json", data)
            self.prune()

    def get(self, comparison_id: str) -> ComparisonResult:
        """The comparison (from disk, without images, after a restart), or
        :class:`UnknownComparisonError` saying to generate it again (also once it is older
        than ``keep_s``)."""
        cutoff = self._clock() - self.keep_s
        with self._lock:
            kept = self._items.get(comparison_id)
        found = kept[1] if kept is not None and kept[0] >= cutoff else None
        if found is None and kept is None:
            found = self._from_disk(comparison_id, cutoff)
        if found is None:
            raise UnknownComparisonError(
                f"comparison {comparison_id!r} is not in memory any more, nor kept on disk (it was "
                "rendered over a day ago, or by another server): generate it again, then rate"
            )
        return found

    def prune(self) -> int:
        """Delete the files of rows rendered more than ``keep_s`` ago; returns how many."""
        if self.folder is None:
            return 0
        cutoff = self._clock() - self.keep_s
        removed = 0
        for path in self.folder.glob("*.json"):
            try:
                if rendered_at(path) < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # another process pruned it first
                continue
        for path in self.folder.glob("*.tmp"):  # a write a crash interrupted
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                continue
        return removed

    def _from_disk(self, comparison_id: str, cutoff: float) -> ComparisonResult | None:
        if self.folder is None or not _SAFE_ID.match(comparison_id or ""):
            return None
        path = self.folder / f"{comparison_id}.json"
        try:
            data = json.loads(path.read_text("utf-8"))
            if _age_mark(data, path) < cutoff:
                return None  # past its time: pruned on the next row
            return result_from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, InputError):
            log.exception("kept comparison %s could not be read", path)
            return None


def rendered_at(path: Path) -> float:
    """When the row kept in ``path`` was rendered (seconds since the epoch): its record's
    ``rendered_at``, never later than the file's time (a clock that ran ahead); the file's time
    for a file written before records carried it, or one that cannot be read."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return path.stat().st_mtime
    return _age_mark(data, path)


def _age_mark(data: Any, path: Path) -> float:
    mtime = path.stat().st_mtime
    at = data.get("rendered_at") if isinstance(data, dict) else None
    return min(float(at), mtime) if isinstance(at, int | float) else mtime


def result_to_json(result: ComparisonResult) -> dict[str, Any]:
    """What rating ``result`` needs, as JSON: no image, no face crop (:func:`result_from_json`)."""
    req = result.request
    return {
        "comparison_id": result.comparison_id,
        "request": {
            "style": req.style,
            "prompt": req.prompt,
            "methods": list(req.methods),
            "seed": req.seed,
            "num_inference_steps": req.num_inference_steps,
            "guidance_scale": req.guidance_scale,
            "height": req.height,
            "width": req.width,
            "ip_adapter_scale": req.ip_adapter_scale,
            "model_family": req.model_family,
        },
        "outputs": [_output_to_json(o) for o in result.outputs],
        "num_faces": result.num_faces,
        "det_score": result.det_score,
        "engine": result.engine,
        "engine_reason": result.engine_reason,
        "model_ids": dict(result.model_ids),
        "timings": dict(result.timings),
        "face_stand_in": result.face_stand_in,
        "model_family": result.model_family,
        "licence": result.licence,
        "safety_checker": result.safety_checker,
        "token_limit": result.token_limit,
    }


def result_from_json(data: Mapping[str, Any]) -> ComparisonResult:
    """The result :func:`result_to_json` described, without images or face crop."""
    req = dict(data["request"])
    req["methods"] = tuple(req["methods"])
    return ComparisonResult(
        comparison_id=str(data["comparison_id"]),
        request=CompareRequest(**req),
        outputs=tuple(_output_from_json(o) for o in data["outputs"]),
        face_crop=None,
        num_faces=int(data["num_faces"]),
        det_score=float(data["det_score"]),
        engine=str(data["engine"]),
        engine_reason=str(data["engine_reason"]),
        model_ids=dict(data["model_ids"]),
        timings={k: float(v) for k, v in data["timings"].items()},
        face_stand_in=bool(data["face_stand_in"]),
        model_family=str(data["model_family"]),
        licence=str(data["licence"]),
        safety_checker=bool(data["safety_checker"]),
        token_limit=int(data["token_limit"]),
    )


def _steps_to_json(trace: tuple[TraceStep, ...]) -> list[dict[str, str]]:
    return [{"part": t.part, "source": t.source, "reason": t.reason} for t in trace]


def _steps_from_json(items: Any) -> tuple[TraceStep, ...]:
    return tuple(TraceStep(str(t["part"]), str(t["source"]), str(t["reason"])) for t in items)


def _output_to_json(o: MethodOutput) -> dict[str, Any]:
    return {
        "method": o.method,
        "prompt": o.prompt,
        "negative_prompt": o.negative_prompt,
        "score": o.score,
        "tokens": o.tokens,
        "trace": _steps_to_json(o.trace),
        # a candidate's meta is the method's own (not always JSON): not kept
        "candidates": [
            {
                "prompt": c.prompt,
                "method": c.method,
                "score": c.score,
                "negative_prompt": c.negative_prompt,
                "trace": _steps_to_json(c.trace),
            }
            for c in o.candidates
        ],
        "error": o.error,
        "same_as": o.same_as,
        "image_hash": o.image_hash,
        "flagged": o.flagged,
        "measures": None if o.measures is None else o.measures.to_json(),
    }


def _output_from_json(d: Mapping[str, Any]) -> MethodOutput:
    return MethodOutput(
        method=str(d["method"]),
        prompt=d["prompt"],
        negative_prompt=d["negative_prompt"],
        score=d["score"],
        tokens=d["tokens"],
        trace=_steps_from_json(d["trace"]),
        candidates=tuple(
            Candidate(
                prompt=c["prompt"],
                method=c["method"],
                score=c["score"],
                negative_prompt=c["negative_prompt"],
                trace=_steps_from_json(c["trace"]),
            )
            for c in d["candidates"]
        ),
        error=d["error"],
        same_as=d["same_as"],
        image=None,  # never on disk here: kept (elsewhere) only when a rater consents
        image_hash=d["image_hash"],
        flagged=bool(d["flagged"]),
        measures=None if d["measures"] is None else Measures.from_json(d["measures"]),
    )


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # readers never see half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
