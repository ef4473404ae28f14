"""SQLite ratings store: one transaction per submission, safe for many threads and processes.

Each thread gets its own connection (and a forked child a fresh one), so the store can be
shared by Gradio's worker threads and by several processes pointing at the same file. WAL mode
lets readers run while one writer commits; ``BEGIN IMMEDIATE`` takes the write lock before
reading, so replacing a rater's earlier votes and inserting the new ones is atomic;
``busy_timeout`` makes concurrent writers queue instead of failing.

Selfies are never stored. An output image is written to ``images/<sha256>.png`` only when the
caller passes it to :meth:`FeedbackStore.submit`, which it does only when the rater consented.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MAX_TEXT = 4000  # prompts, comments: generous, but a bound keeps a pasted novel out of the db
MAX_NAME = 100  # rater, session tag, style, method, ids
BUSY_TIMEOUT_MS = 30_000  # 30 raters submitting at once queue for milliseconds, not seconds
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class FeedbackError(InputError):
    """Bad input to the feedback store or its statistics; the message says what is allowed."""


class RatingError(FeedbackError):
    """A submitted rating is invalid."""


class FilterError(FeedbackError):
    """A query filter (date, blind flag, ...) is invalid."""


class SchemaError(FeedbackError):
    """The database was written by a newer version of the app."""


@dataclass(frozen=True)
class RatingRecord:
    """One rater's rating of one output in one comparison row."""

    rater: str
    comparison_id: str  # one row of outputs: same face, style, seed
    style: str
    method: str
    final_prompt: str  # exactly what was rendered
    seed: int
    rating: int  # 1..5
    is_best: bool = False  # the rater's "best of this row" pick
    base_prompt: str = ""
    negative_prompt: str = ""
    engine: str = ""
    model_id: str = ""
    image_hash: str = ""  # sha256 of the output image, see image_sha256(); "" if unknown
    latency_s: float = 0.0
    comment: str = ""
    blind: bool = False  # rated with outputs shuffled and unlabelled
    session_tag: str = ""  # groups a facilitated meeting
    created_at: str = ""  # UTC ISO 8601; "" = stamped at submission
    image_path: str | None = None  # set by the store when the image was stored (consent)


def image_sha256(image: Image.Image) -> str:
    """sha256 of the image's PNG bytes, as stored: ``images/<hash>.png`` hashes to its own name."""
    return hashlib.sha256(png_bytes(image)).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def to_utc_iso(value: str | datetime | date, what: str = "created_at") -> str:
    """Normalise a time to ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` so that text order is time order.

    Naive times and plain dates are taken as UTC.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FilterError(
                f"{what}={value!r} is not a date: use ISO 8601, e.g. 2025-03-01 or "
                "2025-03-01T14:30:00+00:00"
            ) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise FilterError(f"{what}={value!r} is not a date: use a datetime or an ISO 8601 string")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class RecordFilter:
    """Which records a query, an export or a leaderboard uses. ``until`` is exclusive."""

    style: str | None = None
    session_tag: str | None = None
    since: str | datetime | date | None = None
    until: str | datetime | date | None = None
    blind: bool | None = None
    rater: str | None = None
    comparison_id: str | None = None

    def __post_init__(self) -> None:
        if self.blind is not None and not isinstance(self.blind, bool):
            raise FilterError(f"blind={self.blind!r} is not allowed: use True, False or None")
        # normalised once here so that SQL and in-memory filtering compare the same strings
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_utc_iso(value, name))
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise FilterError(f"since={self.since} is not before until={self.until}")

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE clause (or "") and its parameters."""
        terms: list[str] = []
        params: list[Any] = []
        for column in ("style", "session_tag", "rater", "comparison_id"):
            value = getattr(self, column)
            if value is not None:
                terms.append(f"{column} = ?")
                params.append(value)
        if self.since is not None:
            terms.append("created_at >= ?")
            params.append(self.since)
        if self.until is not None:
            terms.append("created_at < ?")
            params.append(self.until)
        if self.blind is not None:
            terms.append("blind = ?")
            params.append(int(self.blind))
        return (" WHERE " + " AND ".join(terms) if terms else ""), params

    def match(self, r: RatingRecord) -> bool:
        for column in ("style", "session_tag", "rater", "comparison_id", "blind"):
            value = getattr(self, column)
            if value is not None and getattr(r, column) != value:
                return False
        if self.since is None and self.until is None:
            return True
        created = to_utc_iso(r.created_at) if r.created_at else ""
        if self.since is not None and created < self.since:
            return False
        return not (self.until is not None and created >= self.until)


# Schema history. Each step moves the database from version i to i + 1 and is never edited once
# shipped; a new column or index is a new step appended at the end.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: the first ratings table
    (
        """CREATE TABLE ratings (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            rater TEXT NOT NULL,
            comparison_id TEXT NOT NULL,
            style TEXT NOT NULL,
            method TEXT NOT NULL,
            prompt TEXT NOT NULL,
            seed INTEGER NOT NULL,
            rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
            is_best INTEGER NOT NULL DEFAULT 0,
            comment TEXT NOT NULL DEFAULT ''
        )""",
    ),
    # v2: provenance of each output, blind mode, session tags, consented images
    (
        "ALTER TABLE ratings RENAME COLUMN prompt TO final_prompt",
        "ALTER TABLE ratings ADD COLUMN session_tag TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ratings ADD COLUMN base_prompt TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ratings ADD COLUMN negative_prompt TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ratings ADD COLUMN engine TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ratings ADD COLUMN model_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ratings ADD COLUMN image_hash TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ratings ADD COLUMN latency_s REAL NOT NULL DEFAULT 0",
        "ALTER TABLE ratings ADD COLUMN blind INTEGER NOT NULL DEFAULT 0",  # v1 was never blind
        "ALTER TABLE ratings ADD COLUMN image_path TEXT",
    ),
    # v3: one vote per (row, rater, method); v1 appended re-submissions, keep the latest
    (
        """DELETE FROM ratings WHERE id NOT IN (
            SELECT MAX(id) FROM ratings GROUP BY comparison_id, rater, method)""",
        "CREATE UNIQUE INDEX ratings_vote ON ratings (comparison_id, rater, method)",
        "CREATE INDEX ratings_style_time ON ratings (style, created_at)",
        "CREATE INDEX ratings_session ON ratings (session_tag)",
        "CREATE INDEX ratings_image ON ratings (image_hash)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = tuple(f.name for f in fields(RatingRecord))
_BOOL_COLUMNS = ("is_best", "blind")


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to ``target`` (PRAGMA user_version); returns the version found.

    Runs in one ``BEGIN IMMEDIATE`` transaction, so two processes opening a fresh file at once
    do not both apply a step.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > len(MIGRATIONS):
            raise SchemaError(
                f"ratings database has schema version {found}, newer than this app's "
                f"{len(MIGRATIONS)}: upgrade the app or use another BECOME_DATA_DIR"
            )
        for steps in MIGRATIONS[found:target]:
            for sql in steps:
                conn.execute(sql)
        if target > found:
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


Listener = Callable[[Sequence[RatingRecord]], None]


class FeedbackStore:
    """Ratings in one SQLite file; output images (consented only) in ``images_dir``."""

    def __init__(self, path: Path | str, *, images_dir: Path | str | None = None) -> None:
        self.path = Path(path).expanduser()
        self.images_dir = Path(images_dir) if images_dir else self.path.parent / "images"
        self._listeners: list[Listener] = []
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: stored in the file
            migrate(conn)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread, never shared, and a fresh one after a fork. Connections stay
        # open: closing the last one checkpoints the WAL, which made each submission ~10x slower.
        local = self._local
        if getattr(local, "conn", None) is None or local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes in WAL mode
            local.conn, local.pid = conn, os.getpid()
        yield local.conn

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    def schema_version(self) -> int:
        with self._connect() as conn:
            return conn.execute("PRAGMA user_version").fetchone()[0]

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(records)`` after each committed submission (e.g. the HF sync)."""
        self._listeners.append(listener)

    # writing

    def submit(
        self,
        records: Sequence[RatingRecord],
        *,
        images: Mapping[str, Image.Image | bytes] | None = None,
    ) -> int:
        """Store one submission; returns how many earlier ratings it replaced (0 = first vote).

        Earlier votes of the same (comparison_id, rater) are replaced. ``images`` maps an
        ``image_hash`` to its output image (or its :func:`png_bytes`, to skip a second encoding)
        and is passed only for raters who consented to storing outputs; those images are written
        to ``images_dir/<hash>.png``.
        """
        records = validate(records)
        images = dict(images or {})
        unknown = sorted(set(images) - {r.image_hash for r in records})
        if unknown:
            raise RatingError(
                f"images given for hash(es) {', '.join(h[:12] for h in unknown)} that no rating "
                "refers to: key each image by the image_hash of its rating"
            )
        encoded = {  # CPU work outside the lock
            h: img if isinstance(img, bytes) else png_bytes(img) for h, img in images.items()
        }
        for h, data in encoded.items():
            actual = hashlib.sha256(data).hexdigest()
            if actual != h:
                raise RatingError(
                    f"image keyed {h[:12]}… has hash {actual[:12]}…: key images by "
                    "image_sha256(image)"
                )
        stamp = utc_now()
        records = [
            replace(
                r,
                created_at=r.created_at or stamp,
                image_path=str(self._image_path(r.image_hash)) if r.image_hash in encoded else None,
            )
            for r in records
        ]
        replaced = self._replace_votes(records, encoded)
        for listener in self._listeners:
            try:
                listener(records)
            except Exception:  # the vote is committed; a sync failure must not lose or fail it
                log.exception("feedback listener %r failed", listener)
        return replaced

    def _image_path(self, image_hash: str) -> Path:
        return (self.images_dir / f"{image_hash}.png").resolve()

    def _replace_votes(self, records: Sequence[RatingRecord], pngs: Mapping[str, bytes]) -> int:
        """Replace each (row, rater)'s earlier votes and write/delete images, atomically.

        Image files are written and deleted while holding the database write lock, so a
        concurrent submission of the same row can never see a file that is about to vanish.
        """
        keys = sorted({(r.comparison_id, r.rater) for r in records})
        placeholders = ", ".join("?" * len(_COLUMNS))
        insert = f"INSERT INTO ratings ({', '.join(_COLUMNS)}) VALUES ({placeholders})"
        created: list[Path] = []
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                old_paths: set[str] = set()
                replaced = 0
                for cid, rater in keys:
                    old_paths.update(
                        p
                        for (p,) in conn.execute(
                            "SELECT image_path FROM ratings WHERE comparison_id = ? AND rater = ? "
                            "AND image_path IS NOT NULL",
                            (cid, rater),
                        )
                    )
                    replaced += conn.execute(
                        "DELETE FROM ratings WHERE comparison_id = ? AND rater = ?", (cid, rater)
                    ).rowcount
                conn.executemany(insert, [_to_row(r) for r in records])
                for h, data in pngs.items():
                    path = self._image_path(h)
                    if not path.exists():  # content-addressed: same hash, same pixels
                        _write_atomic(path, data)
                        created.append(path)
                for p in sorted(old_paths):  # consent withdrawn on re-submission: the image goes
                    still_used = conn.execute(
                        "SELECT 1 FROM ratings WHERE image_path = ? LIMIT 1", (p,)
                    ).fetchone()
                    if still_used is None:
                        Path(p).unlink(missing_ok=True)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                for path in created:
                    path.unlink(missing_ok=True)
                raise
        return replaced

    # reading

    def records(
        self,
        style: str | None = None,
        session_tag: str | None = None,
        since: str | datetime | date | None = None,
        until: str | datetime | date | None = None,
        blind: bool | None = None,
        *,
        rater: str | None = None,
        comparison_id: str | None = None,
    ) -> list[RatingRecord]:
        """Ratings matching every given filter, oldest first. ``until`` is exclusive."""
        flt = RecordFilter(style, session_tag, since, until, blind, rater, comparison_id)
        return self.query(flt)

    def query(self, flt: RecordFilter) -> list[RatingRecord]:
        where, params = flt.sql()
        sql = f"SELECT {', '.join(_COLUMNS)} FROM ratings{where} ORDER BY created_at, id"
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_from_row(row) for row in rows]

    def count(self, **filters: Any) -> int:
        """Number of ratings matching the filters of :meth:`records`."""
        where, params = RecordFilter(**filters).sql()
        with self._connect() as conn:
            return conn.execute(f"SELECT COUNT(*) FROM ratings{where}", params).fetchone()[0]

    def styles(self) -> list[str]:
        return self._distinct("style")

    def session_tags(self) -> list[str]:
        return [t for t in self._distinct("session_tag") if t]

    def _distinct(self, column: str) -> list[str]:
        with self._connect() as conn:
            return [v for (v,) in conn.execute(f"SELECT DISTINCT {column} FROM ratings ORDER BY 1")]

    def top_rated_images(self, style: str, k: int, *, min_mean: float = 4.0) -> list[Path]:
        """Up to ``k`` stored (consented) outputs of ``style`` with the best mean rating.

        Only images whose mean rating over all raters is at least ``min_mean`` count, so the
        inversion method is never steered towards outputs people disliked.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise FilterError(f"k={k!r} is not allowed: use an integer >= 0")
        if not 1.0 <= min_mean <= 5.0:
            raise FilterError(f"min_mean={min_mean} is out of range: use 1 to 5")
        sql = """SELECT MAX(image_path), AVG(rating) AS mean, COUNT(*) AS n FROM ratings
                 WHERE style = ? AND image_hash != '' GROUP BY image_hash
                 HAVING MAX(image_path) IS NOT NULL AND mean >= ?
                 ORDER BY mean DESC, n DESC, image_hash"""
        with self._connect() as conn:
            rows = conn.execute(sql, (style, min_mean)).fetchall()
        paths = [Path(p) for p, _, _ in rows if Path(p).is_file()]
        return paths[:k]


def validate(records: Sequence[RatingRecord]) -> list[RatingRecord]:
    """Check a submission and return it with text fields stripped; raises :class:`RatingError`."""
    if isinstance(records, RatingRecord) or not isinstance(records, Sequence):
        raise RatingError(f"records={records!r} is not allowed: pass a list of RatingRecord")
    if not records:
        raise RatingError("empty submission: rate at least one output")
    out = [_check_record(r) for r in records]
    rows: dict[tuple[str, str], list[RatingRecord]] = {}
    for r in out:
        rows.setdefault((r.comparison_id, r.rater), []).append(r)
    for (cid, rater), group in rows.items():
        where = f"comparison {cid!r} rated by {rater!r}"
        methods = [r.method for r in group]
        dupes = sorted({m for m in methods if methods.count(m) > 1})
        if dupes:
            raise RatingError(f"{where} rates method(s) {', '.join(dupes)} twice: one rating each")
        best = [r.method for r in group if r.is_best]
        if len(best) > 1:
            raise RatingError(
                f"{where} picks {len(best)} bests ({', '.join(best)}): pick at most one per row"
            )
        for column in ("style", "blind"):
            values = sorted({str(getattr(r, column)) for r in group})
            if len(values) > 1:
                raise RatingError(f"{where} mixes {column} values {values}: one row has one")
    return out


def _check_record(r: RatingRecord) -> RatingRecord:
    if not isinstance(r, RatingRecord):
        raise RatingError(f"{r!r} is not a RatingRecord")
    texts = {f.name: getattr(r, f.name) for f in fields(r) if f.type in ("str", str)}
    for name, value in texts.items():
        if not isinstance(value, str):
            raise RatingError(f"{name}={value!r} is not allowed: use a string")
    r = replace(r, **{k: v.strip() for k, v in texts.items()})
    for name in ("rater", "comparison_id", "style", "method"):
        value = getattr(r, name)
        if not value:
            hint = " (your name or the session tag)" if name == "rater" else ""
            raise RatingError(f"{name} is empty: give a non-empty {name}{hint}")
        if len(value) > MAX_NAME:
            raise RatingError(f"{name}={value[:20]!r}… is {len(value)} characters: max {MAX_NAME}")
    if len(r.session_tag) > MAX_NAME:
        raise RatingError(f"session_tag is {len(r.session_tag)} characters: max {MAX_NAME}")
    for name in ("final_prompt", "base_prompt", "negative_prompt", "comment", "model_id"):
        if len(getattr(r, name)) > MAX_TEXT:
            raise RatingError(f"{name} is {len(getattr(r, name))} characters: max {MAX_TEXT}")
    if isinstance(r.rating, bool) or not isinstance(r.rating, int) or not 1 <= r.rating <= 5:
        raise RatingError(
            f"rating={r.rating!r} for method {r.method!r} is not allowed: use an integer 1 to 5"
        )
    for name in _BOOL_COLUMNS:
        if not isinstance(getattr(r, name), bool):
            raise RatingError(f"{name}={getattr(r, name)!r} is not allowed: use True or False")
    if isinstance(r.seed, bool) or not isinstance(r.seed, int) or r.seed < 0:
        raise RatingError(f"seed={r.seed!r} is not allowed: use an integer >= 0")
    lat = r.latency_s
    if isinstance(lat, bool) or not isinstance(lat, (int, float)) or not math.isfinite(lat):
        raise RatingError(f"latency_s={lat!r} is not allowed: use a finite number of seconds >= 0")
    if lat < 0:
        raise RatingError(f"latency_s={lat!r} is not allowed: use a finite number of seconds >= 0")
    if r.image_hash and not _HEX64.match(r.image_hash):
        raise RatingError(
            f"image_hash={r.image_hash[:20]!r} is not allowed: use 64 lowercase hex digits "
            "(image_sha256) or an empty string"
        )
    if r.image_path is not None:
        raise RatingError(
            f"image_path={r.image_path!r} is set by the store: pass the image in submit(images=...)"
        )
    try:
        created = to_utc_iso(r.created_at) if r.created_at else ""
    except FilterError as e:
        raise RatingError(str(e)) from None
    return replace(r, created_at=created, latency_s=float(lat))


def _to_row(r: RatingRecord) -> tuple[Any, ...]:
    d = asdict(r)
    for name in _BOOL_COLUMNS:
        d[name] = int(d[name])
    return tuple(d[c] for c in _COLUMNS)


def _from_row(row: Sequence[Any]) -> RatingRecord:
    d = dict(zip(_COLUMNS, row, strict=True))
    for name in _BOOL_COLUMNS:
        d[name] = bool(d[name])
    return RatingRecord(**d)


def png_bytes(image: Image.Image) -> bytes:
    """The PNG encoding that :func:`image_sha256` hashes and the store writes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: readers never see half an image
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
