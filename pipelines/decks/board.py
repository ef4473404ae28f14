"""The deck a facilitator loaded for the session: rows handed to raters, and found for ratings.

While a deck is loaded, raters get its pre-rendered rows (no GPU at session time): each asks
:meth:`DeckBoard.next_row` with their browser's id and their name, and gets the least-covered
row that this voter (browser and name together, as ratings store it) has not rated (see
:mod:`pipelines.decks.assign`): two raters who type one name on two browsers are two voters.
Ratings go through the usual ``RatingService``, which finds the row here by its comparison id
("<deck>/<row>") and stores the deck and row ids with them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.decks.assign import Assignment, Coverage, RowAssigner
from pipelines.decks.manifest import DeckFolderError, DeckRow, group_rows, read_manifest
from pipelines.decks.manifest import read_spec_json as _read_spec
from pipelines.feedback.ratings import DeckRowRef
from pipelines.feedback.records import voter_id

if TYPE_CHECKING:
    from pipelines.core.results import ComparisonResult
    from pipelines.feedback.records import RatingRecord
    from pipelines.feedback.store import FeedbackStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedDeck:
    """A deck folder read into memory (manifest lines; images stay on disk)."""

    deck_id: str
    folder: Path
    rows: dict[str, DeckRow]
    assigner: RowAssigner


@dataclass(frozen=True)
class DeckTurn:
    """What a rater is handed: a row to rate (with its result), or why there is none."""

    deck_id: str
    state: str  # "row" | "wait" | "done"
    rated: int
    total: int
    row_id: str | None = None
    result: ComparisonResult | None = None

    @property
    def comparison_id(self) -> str | None:
        """The id to rate this row by (None when no row was handed)."""
        return None if self.row_id is None else f"{self.deck_id}/{self.row_id}"


def rater_key(name: str) -> str:
    """A rater's name as ratings store it (whitespace collapsed), the key for "rated before"."""
    return " ".join((name or "").split())


class DeckBoard:
    """At most one loaded deck, shared by every page; thread-safe."""

    def __init__(
        self, store: FeedbackStore, decks_dir: Path, *, lease_s: float = 300.0, cache: int = 16
    ) -> None:
        self.store = store
        self.decks_dir = Path(decks_dir)  # where decks pulled from the Hub are kept
        self._lease_s = lease_s
        self._deck: LoadedDeck | None = None
        self._lock = threading.Lock()
        self._results: OrderedDict[tuple[str, str], ComparisonResult] = OrderedDict()
        self._cache = cache
        store.add_listener(self._on_ratings)

    def load(self, source: str, *, token: str | None = None) -> LoadedDeck:
        """Load the deck in ``source`` (a folder, or a dataset repo id pulled into decks_dir)."""
        from pipelines.decks.hub import is_repo_id, pull_deck

        source = (source or "").strip()
        if not source:
            raise DeckFolderError("no deck given: type a deck folder or a dataset repo id")
        folder = Path(source).expanduser()
        if not folder.exists():
            if not is_repo_id(source):
                raise DeckFolderError(
                    f"deck folder {folder} does not exist: give a rendered deck's folder or a "
                    "dataset repo id (owner/name)"
                )
            folder = pull_deck(source, self.decks_dir / deck_dir_name(source), token=token)
        return self.load_folder(folder)

    def load_folder(self, folder: Path) -> LoadedDeck:
        """Read a deck folder, seed the coverage from the store, make it the loaded deck."""
        folder = Path(folder).expanduser().resolve()
        deck_id = _read_spec(folder)["deck"]
        rows = group_rows(read_manifest(folder))
        rows = {rid: row for rid, row in rows.items() if any(ln["image"] for ln in row.lines)}
        if not rows:
            raise DeckFolderError(f"{folder / 'manifest.jsonl'} has no rendered output to rate")
        for row in rows.values():
            for line in row.lines:
                if line["image"] and not (folder / line["image"]).is_file():
                    raise DeckFolderError(
                        f"{folder / line['image']} is missing (manifest row {row.row_id!r}, "
                        "field 'image'): pull or render the deck again"
                    )
        assigner = RowAssigner(list(rows), lease_s=self._lease_s)
        assigner.seed(
            (r.voter_key, r.row_id) for r in self.store.records(deck_id=deck_id) if r.row_id in rows
        )
        loaded = LoadedDeck(deck_id, folder, rows, assigner)
        with self._lock:
            self._deck = loaded
            self._results.clear()
        log.info("deck %s loaded from %s: %d rows", deck_id, folder, len(rows))
        return loaded

    def unload(self) -> None:
        """Back to live comparisons."""
        with self._lock:
            self._deck = None
            self._results.clear()

    def current(self) -> LoadedDeck | None:
        """The loaded deck, or None (live comparisons)."""
        with self._lock:
            return self._deck

    def next_row(self, rater: str, client: str = "") -> DeckTurn:
        """The row the voter (``client``, e.g. the browser's id, and the typed name ``rater``)
        rates next, with its images; raises when no deck is loaded."""
        deck = self.current()
        if deck is None:
            raise DeckFolderError("no deck is loaded any more: reload the page for live mode")
        name = rater_key(rater)
        if not name:
            raise DeckFolderError("type your name first: it keeps you from getting a row twice")
        turn: Assignment = deck.assigner.next_row(voter_id(client, name))
        result = None if turn.row_id is None else self._result(deck, turn.row_id, True)
        return DeckTurn(deck.deck_id, turn.state, turn.rated, turn.total, turn.row_id, result)

    def find(self, comparison_id: str) -> DeckRowRef | None:
        """The loaded deck's row rated as ``comparison_id`` ("<deck>/<row>"), or None."""
        deck = self.current()
        if deck is None or not comparison_id.startswith(f"{deck.deck_id}/"):
            return None
        row_id = comparison_id[len(deck.deck_id) + 1 :]
        if row_id not in deck.rows:
            return None
        return DeckRowRef(self._result(deck, row_id, False), deck.deck_id, row_id)

    def coverage(self) -> Coverage | None:
        """How far the loaded deck's rating has come (None without a deck)."""
        deck = self.current()
        return None if deck is None else deck.assigner.coverage()

    def _result(self, deck: LoadedDeck, row_id: str, images: bool) -> ComparisonResult:
        key = (deck.deck_id, row_id)
        with self._lock:
            hit = self._results.get(key)
            if hit is not None:
                self._results.move_to_end(key)
                return hit
        result = deck.rows[row_id].to_result(deck.folder, images=images)
        if images:  # only complete results are shared; the ratings path needs no pixels
            with self._lock:
                self._results[key] = result
                while len(self._results) > self._cache:
                    self._results.popitem(last=False)
        return result

    def _on_ratings(self, records: Sequence[RatingRecord]) -> None:
        deck = self.current()
        if deck is None:
            return
        for r in records:
            if r.deck_id == deck.deck_id:
                deck.assigner.record(r.voter_key, r.row_id)


def deck_dir_name(repo_id: str) -> str:
    """The folder a pulled repo is kept in: "owner__name"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "__", repo_id)
