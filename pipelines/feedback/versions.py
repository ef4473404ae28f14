"""Every learned model a retrain made, kept as a version staff can put (back) in use.

A version is two files under ``<data>/learned/versions/``: ``<id>.npz``, the model (its id in its
metadata, ``version_id``, with its record under ``version_record``), and ``<id>.json``, its
:class:`ModelVersion` record: when, on how many rows, its held-out check against the model in use
then (its parent). The bundled PQPP model is always the version ``"bundled"``; it is never copied
here. Which version is in use is the id in the live model's metadata
(:func:`pipelines.augment.learned.model.model_version`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.augment.learned.model import (
    BUNDLED_VERSION,
    MODEL_SUFFIX,
    VERSION_KEY,
    ModelFileError,
    read_metadata,
)
from pipelines.core.errors import InputError

if TYPE_CHECKING:
    from pipelines.augment.learned.model import LearnedScorer

VERSIONS_FOLDER = "versions"  # under the learned-model folder
RECORD_KEY = "version_record"  # in a kept model's metadata: its ModelVersion, as JSON
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")  # a file name on any disk, never a path


class UnknownVersion(InputError):
    """No kept model has that version id; the message names it."""


@dataclass(frozen=True)
class ModelVersion:
    """What staff read about one kept model."""

    id: str
    created: str  # UTC ISO 8601
    rows: int = 0  # training rows, ratings and extra files together
    rating_rows: int = 0  # rating rows in the store when it was trained
    sources: tuple[str, ...] = ()  # "<name> (<rows> rows)" per training source
    held_out_rows: int = 0  # rating rows kept out of training to check it
    pearson_parent: float | None = None  # the model in use then, on the held-out rows
    pearson: float | None = None  # this model, on them
    parent: str = ""  # the version in use when this one was trained ("" = none)
    passed: bool | None = None  # the held-out check; None = not checked (bundled, kept)
    verdict: str = ""  # the check in plain words, or how this version came to be kept

    def to_json(self) -> dict[str, Any]:
        """The record as JSON values."""
        return {**asdict(self), "sources": list(self.sources)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelVersion:
        """A record read back; keys this code does not know are skipped."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["sources"] = tuple(values.get("sources") or ())
        return cls(**values)

    @property
    def date(self) -> str:
        """``YYYY-MM-DD HH:MM`` (UTC): when it was trained."""
        return self.created[:16].replace("T", " ")


def record_from_metadata(metadata: dict[str, Any], version_id: str, verdict: str) -> ModelVersion:
    """The record a model file carries (``version_record``), else one built from its training
    metadata (a model trained before versions were kept), saying ``verdict``."""
    kept = metadata.get(RECORD_KEY)
    if isinstance(kept, dict) and kept.get("id") == version_id:
        return ModelVersion.from_json(kept)
    sources = tuple(
        f"{s.get('name', '?')} ({s.get('rows', '?')} rows)"
        for s in metadata.get("sources") or ()
        if isinstance(s, dict)
    )
    return ModelVersion(
        id=version_id,
        created=str(metadata.get("created") or ""),
        rows=int(metadata.get("rows") or 0),
        sources=sources,
        verdict=verdict,
    )


class ModelVersions:
    """The kept versions in ``folder``, and the bundled model at ``bundled`` (None: none)."""

    def __init__(self, folder: Path, bundled: Path | None = None) -> None:
        self.folder = Path(folder)
        self.bundled = bundled

    @staticmethod
    def new_id(now: datetime) -> str:
        """A fresh id: the UTC time it was trained and 4 random hex digits (two in one second
        differ), e.g. ``20260301-142530-a1b2``; ids sort by time."""
        return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"

    def path(self, version_id: str) -> Path:
        """The model file of ``version_id``; raises :class:`UnknownVersion` naming it."""
        if version_id == BUNDLED_VERSION:
            if self.bundled is None or not self.bundled.is_file():
                raise UnknownVersion(f"the bundled model file {self.bundled} is missing")
            return self.bundled
        path = self._file(version_id, MODEL_SUFFIX)
        if not path.is_file():
            known = ", ".join(v.id for v in self.all()) or "none"
            raise UnknownVersion(
                f"there is no kept model version {version_id!r}: choose one of {known}"
            )
        return path

    def has(self, version_id: str) -> bool:
        """Whether ``version_id`` is the bundled model or a kept version."""
        try:
            self.path(version_id)
        except UnknownVersion:
            return False
        return True

    def add(self, scorer: LearnedScorer, record: ModelVersion) -> Path:
        """Keep ``scorer`` as ``record.id`` (stamped into its metadata); returns its file."""
        path = self._file(record.id, MODEL_SUFFIX)
        scorer.metadata[VERSION_KEY] = record.id
        scorer.metadata[RECORD_KEY] = record.to_json()
        scorer.save(path)  # atomic; the record after it, so a listed version has its model
        _write_atomic(self._file(record.id, ".json"), json.dumps(record.to_json(), indent=1))
        return path

    def get(self, version_id: str) -> ModelVersion:
        """The record of ``version_id``; raises :class:`UnknownVersion`."""
        path = self.path(version_id)
        if version_id == BUNDLED_VERSION:
            return self._bundled_record(path)
        try:
            return ModelVersion.from_json(json.loads(path.with_suffix(".json").read_text("utf-8")))
        except (OSError, ValueError, TypeError):  # the record is lost: the model still says
            return record_from_metadata(read_metadata(path), version_id, "record unreadable")

    def all(self) -> list[ModelVersion]:
        """Every kept version, newest first, then the bundled model (when its file is here)."""
        kept = []
        for path in self.folder.glob(f"*{MODEL_SUFFIX}"):
            if _ID.match(path.stem):
                try:
                    kept.append(self.get(path.stem))
                except ModelFileError:  # a broken file is not offered for restore
                    continue
        kept.sort(key=lambda v: (v.created, v.id), reverse=True)
        if self.bundled is not None and self.bundled.is_file():
            kept.append(self._bundled_record(self.bundled))
        return kept

    def _file(self, version_id: str, suffix: str) -> Path:
        if not isinstance(version_id, str) or not _ID.match(version_id):
            raise UnknownVersion(
                f"{version_id!r} is not a model version id: choose one from the versions list"
            )
        return self.folder / f"{version_id}{suffix}"

    @staticmethod
    def _bundled_record(path: Path) -> ModelVersion:
        meta = read_metadata(path)
        figures = "; ".join(
            f"Pearson {m['pearson']:.3f} on held-out {name}"
            for name, m in (meta.get("validation") or {}).items()
            if isinstance(m, dict) and "pearson" in m
        )
        return record_from_metadata(
            meta, BUNDLED_VERSION, "shipped with the app" + (f": {figures}" if figures else "")
        )


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
