"""SQLite ratings store: one transaction per submission, safe for many threads and processes.

Each thread gets its own connection (and a forked child a fresh one), so the store can be
shared by Gradio's worker threads and by several processes pointing at the same file. WAL mode
lets readers run while one writer commits; ``BEGIN IMMEDIATE`` takes the write lock before
reading, so replacing a rater's earlier votes and inserting the new ones is atomic;
``busy_timeout`` makes concurrent writers queue instead of failing.

Selfies are never stored. An output image is written to ``images/<sha256>.png`` only when the
caller passes it to :meth:`FeedbackStore.submit`, which it does only when the rater consented.

Blind votes cannot be peeked: a submission that shows the voter the row's methods records a
reveal (``reveal=True``), and any rating that voter gives or changes on that row afterwards is
stored with ``blind = 0``, whatever the client claims. Only ratings given before the reveal count
as blind.

What a rating is and how it is validated lives in :mod:`pipelines.feedback.records`; connection
settings and schema migrations in :mod:`pipelines.feedback.schema`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.feedback.errors import FilterError, RatingError
from pipelines.feedback.records import (
    BOOL_COLUMNS,
    SOURCES,
    RatingRecord,
    png_bytes,
    to_utc_iso,
    utc_now,
    validate,
    voter_id,
)
from pipelines.feedback.schema import connect, migrate

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)


# RecordFilter's fields that a record must equal when set
FILTERED = ("style", "session_tag", "rater", "comparison_id", "deck_id", "blind", "source")


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
    deck_id: str | None = None  # only ratings of this deck's rows
    # leave out this session's ratings (a running blind session, hidden from participants)
    hide_session: str | None = None
    # only votes from this source (records.SOURCES): "page" leaves API and MCP votes out
    source: str | None = None

    def __post_init__(self) -> None:
        if self.blind is not None and not isinstance(self.blind, bool):
            raise FilterError(f"blind={self.blind!r} is not allowed: use True, False or None")
        if self.source is not None and self.source not in SOURCES:
            raise FilterError(
                f"source={self.source!r} is not allowed: use one of {', '.join(SOURCES)} or None"
            )
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
        for column in ("style", "session_tag", "rater", "comparison_id", "deck_id", "source"):
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
        if self.hide_session is not None:
            terms.append("session_tag != ?")
            params.append(self.hide_session)
        return (" WHERE " + " AND ".join(terms) if terms else ""), params

    def match(self, r: RatingRecord) -> bool:
        """Whether ``r`` passes this filter, in memory, as :meth:`sql` would in SQLite."""
        for column in FILTERED:
            value = getattr(self, column)
            if value is not None and getattr(r, column) != value:
                return False
        if self.hide_session is not None and r.session_tag == self.hide_session:
            return False
        if self.since is None and self.until is None:
            return True
        created = to_utc_iso(r.created_at) if r.created_at else ""
        if self.since is not None and created < self.since:
            return False
        return not (self.until is not None and created >= self.until)


_COLUMNS = tuple(f.name for f in fields(RatingRecord))


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
            conn = connect(self.path)
            local.conn, local.pid = conn, os.getpid()
        yield local.conn

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    def schema_version(self) -> int:
        """The schema version of the database file (PRAGMA user_version)."""
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
        reveal: bool = False,
        screen: str = "",
    ) -> int:
        """Store one submission; returns how many earlier ratings it replaced (0 = first vote).

        Earlier votes of the same (comparison_id, voter) are replaced. ``reveal=True`` says this
        submission shows the voter the row's methods; after that, a rating the voter gives or
        changes (value or best pick) on that row is stored as not blind, and one left as it was
        keeps its earlier flag. ``screen`` is the client (browser) whose screen shows the
        reveal: whoever rates that row on it afterwards, under any name, has seen the methods, so
        their ratings are not blind either (a kiosk's next person). ``images`` maps an
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
        replaced, records = self._replace_votes(records, encoded, reveal, screen)
        for listener in self._listeners:
            try:
                listener(records)
            except Exception:  # the vote is committed; a sync failure must not lose or fail it
                log.exception("feedback listener %r failed", listener)
        return replaced

    def _image_path(self, image_hash: str) -> Path:
        return (self.images_dir / f"{image_hash}.png").resolve()

    def _replace_votes(
        self,
        records: Sequence[RatingRecord],
        pngs: Mapping[str, bytes],
        reveal: bool,
        screen: str = "",
    ) -> tuple[int, list[RatingRecord]]:
        """Replace each (row, rater)'s earlier votes and write/delete images, atomically.

        Returns how many votes were replaced and the records as stored (blind flags settled).
        Image files are written and deleted while holding the database write lock, so a
        concurrent submission of the same row can never see a file that is about to vanish.
        """
        keys = sorted({(r.comparison_id, r.voter_key) for r in records})
        placeholders = ", ".join("?" * len(_COLUMNS))
        insert = f"INSERT INTO ratings ({', '.join(_COLUMNS)}) VALUES ({placeholders})"
        created: list[Path] = []
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # read under the write lock: a reveal committed by a concurrent submit counts
                records = _settle_blind(conn, records, screen)
                old_paths: set[str] = set()
                replaced = 0
                for cid, voter in keys:
                    old_paths.update(
                        p
                        for (p,) in conn.execute(
                            "SELECT image_path FROM ratings WHERE comparison_id = ? AND voter = ? "
                            "AND image_path IS NOT NULL",
                            (cid, voter),
                        )
                    )
                    replaced += conn.execute(
                        "DELETE FROM ratings WHERE comparison_id = ? AND voter = ?", (cid, voter)
                    ).rowcount
                conn.executemany(insert, [_to_row(r) for r in records])
                if reveal:
                    stamp = utc_now()
                    conn.executemany(
                        "INSERT OR IGNORE INTO reveals (comparison_id, voter, revealed_at) "
                        "VALUES (?, ?, ?)",
                        [(cid, who, stamp) for cid, voter in keys for who in _seen(voter, screen)],
                    )
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
        return replaced, list(records)

    # reading

    def revealed(self, comparison_id: str, voter: str) -> bool:
        """Whether ``voter`` has been shown the methods of row ``comparison_id``."""
        with self._connect() as conn:
            return _revealed(conn, comparison_id, voter)

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
        deck_id: str | None = None,
    ) -> list[RatingRecord]:
        """Ratings matching every given filter, oldest first. ``until`` is exclusive."""
        flt = RecordFilter(style, session_tag, since, until, blind, rater, comparison_id, deck_id)
        return self.query(flt)

    def query(self, flt: RecordFilter) -> list[RatingRecord]:
        """Ratings matching ``flt``, oldest first."""
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
        """Every style that has ratings, sorted."""
        return self._distinct("style")

    def deck_ids(self) -> list[str]:
        """Every deck that has ratings, sorted."""
        return [d for d in self._distinct("deck_id") if d]

    def session_tags(self) -> list[str]:
        """Every non-empty session tag that has ratings, sorted."""
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


def _seen(voter: str, screen: str) -> tuple[str, ...]:
    """The reveals keys of a voter on a screen: the voter, and the screen itself as the voter
    with no name (``"<client>/"``, which no named voter can be)."""
    return (voter, voter_id(screen, "")) if screen else (voter,)


def _revealed(conn: sqlite3.Connection, comparison_id: str, voter: str, screen: str = "") -> bool:
    keys = _seen(voter, screen)
    sql = (
        f"SELECT 1 FROM reveals WHERE comparison_id = ? AND voter IN ({', '.join('?' * len(keys))})"
    )
    return conn.execute(sql, (comparison_id, *keys)).fetchone() is not None


def _settle_blind(
    conn: sqlite3.Connection, records: Sequence[RatingRecord], screen: str = ""
) -> list[RatingRecord]:
    """``records`` with ``blind`` cleared on each rating given or changed after its reveal, to
    this voter or on this screen.

    A rating left as it was (same value, same best pick) keeps its earlier flag, so
    re-submitting an unchanged row after the reveal neither gains nor loses blind votes.
    """
    out: list[RatingRecord] = []
    earlier: dict[tuple[str, str], dict[str, tuple[int, bool, bool]] | None] = {}
    for r in records:
        key = (r.comparison_id, r.voter_key)
        if key not in earlier:
            earlier[key] = (
                {
                    m: (rating, bool(best), bool(blind))
                    for m, rating, best, blind in conn.execute(
                        "SELECT method, rating, is_best, blind FROM ratings "
                        "WHERE comparison_id = ? AND voter = ?",
                        key,
                    )
                }
                if _revealed(conn, *key, screen)
                else None
            )
        before = earlier[key]
        if r.blind and before is not None:
            same = before.get(r.method)
            kept = same is not None and same[:2] == (r.rating, r.is_best) and same[2]
            r = replace(r, blind=kept)
        out.append(r)
    return out


def _to_row(r: RatingRecord) -> tuple[Any, ...]:
    d = asdict(r)
    for name in BOOL_COLUMNS:
        d[name] = int(d[name])
    return tuple(d[c] for c in _COLUMNS)


def _from_row(row: Sequence[Any]) -> RatingRecord:
    d = dict(zip(_COLUMNS, row, strict=True))
    for name in BOOL_COLUMNS:
        d[name] = bool(d[name])
    return RatingRecord(**d)


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
