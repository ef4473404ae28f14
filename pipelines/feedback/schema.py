"""The ratings database file: connection settings, schema history and migrations.

The schema version is SQLite's ``PRAGMA user_version``; :func:`migrate` applies the steps of
:data:`MIGRATIONS` that a file has not seen yet, and refuses a file from a newer app.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pipelines.feedback.errors import SchemaError

BUSY_TIMEOUT_MS = 30_000  # 30 raters submitting at once queue for milliseconds, not seconds


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
    # v4: automatic measures of the rated output (JSON), and the deck row a rating came from
    (
        "ALTER TABLE ratings ADD COLUMN measures TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ratings ADD COLUMN deck_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE ratings ADD COLUMN row_id TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX ratings_deck ON ratings (deck_id, row_id)",
    ),
    # v5: a voter is a browser (or an API client), not a typed name: two people named alike
    # keep their own votes; older rows keep their name as their voter
    (
        "ALTER TABLE ratings ADD COLUMN voter TEXT NOT NULL DEFAULT ''",
        "UPDATE ratings SET voter = rater",
        "DROP INDEX ratings_vote",
        "CREATE UNIQUE INDEX ratings_vote ON ratings (comparison_id, voter, method)",
    ),
    # v6: when a voter saw a blind row's methods; a rating given or changed after it is not blind
    (
        """CREATE TABLE reveals (
            comparison_id TEXT NOT NULL,
            voter TEXT NOT NULL,
            revealed_at TEXT NOT NULL,
            PRIMARY KEY (comparison_id, voter)
        )""",
    ),
    # v7: where a vote came from (page, api, mcp), so a board can leave scripted votes out;
    # older API votes are known by their voter ("api:<session>/..."), the rest came from the page
    (
        "ALTER TABLE ratings ADD COLUMN source TEXT NOT NULL DEFAULT 'page'",
        "UPDATE ratings SET source = 'api' WHERE substr(voter, 1, 4) = 'api:'",
        "CREATE INDEX ratings_source ON ratings (source)",
    ),
)


SCHEMA_VERSION = len(MIGRATIONS)


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


def connect(path: Path) -> sqlite3.Connection:
    """A new autocommit connection to ``path`` that waits for the write lock instead of failing."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes in WAL mode
    return conn
