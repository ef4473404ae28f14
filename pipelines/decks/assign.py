"""Which deck row a rater gets next: the least-covered row they have not rated (balanced coverage).

A rater is a voter key (:func:`pipelines.feedback.records.voter_id`: the browser and the typed name
together), so two people who type one name on two browsers are handed rows independently.

A row's load is its raters so far plus the raters it is handed to right now (a lease), so raters
who ask at the same moment get different rows. A rater is handed the least-loaded row they have
not rated, as long as that keeps every row's load within one of every other's. When all their
unrated rows are ahead, and another active rater can still take a least-loaded row, they are asked
to wait a moment (the page says so) instead of pushing one row two ahead; when nobody active can
take those rows (the room left), they get their least-loaded row anyway. A lease expires after
``lease_s`` (the rater walked away) and its row goes back to the pool. Everything is in memory,
guarded by one lock; counts are seeded from the ratings store when a deck is loaded, so a
restart keeps the coverage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    """The answer to "what do I rate now?"."""

    row_id: str | None  # the row to rate; None when waiting or done
    state: str  # "row" | "wait" (the others catch up first) | "done" (every row rated)
    rated: int  # rows this rater has rated
    total: int  # rows in the deck


@dataclass(frozen=True)
class Coverage:
    """How far a deck's rating has come."""

    rows: int
    ratings: int  # (rater, row) pairs rated
    min_per_row: int
    max_per_row: int


class RowAssigner:
    """Hands each rater the deck row with the fewest ratings that they have not rated."""

    def __init__(
        self,
        row_ids: Sequence[str],
        *,
        lease_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if len(set(row_ids)) != len(row_ids):
            raise ValueError("row_ids holds a row twice")
        self._rows = list(row_ids)  # the tie-break order
        self._index = {r: i for i, r in enumerate(self._rows)}
        self._raters: dict[str, set[str]] = {}  # row -> raters who rated it
        self._rated: dict[str, set[str]] = {}  # rater -> rows they rated
        self._leases: dict[str, tuple[str, float]] = {}  # rater -> (row, expiry)
        self._seen: dict[str, float] = {}  # rater -> last time they asked or rated
        self._lease_s = float(lease_s)
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def rows(self) -> list[str]:
        """Every row id, in deck order."""
        return list(self._rows)

    def record(self, rater: str, row_id: str) -> None:
        """``rater`` rated ``row_id`` (again is harmless); frees their lease on it."""
        if row_id not in self._index:
            return  # a rating of a row the deck no longer has: nothing to balance
        with self._lock:
            self._raters.setdefault(row_id, set()).add(rater)
            self._rated.setdefault(rater, set()).add(row_id)
            lease = self._leases.get(rater)
            if lease is not None and lease[0] == row_id:
                del self._leases[rater]
            self._seen[rater] = self._clock()

    def seed(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record earlier (rater, row) ratings, e.g. from the store when a deck is loaded."""
        for rater, row_id in pairs:
            self.record(rater, row_id)

    def next_row(self, rater: str) -> Assignment:
        """What ``rater`` should rate now: a row, "wait" (others first) or "done" (all rated).

        A rater who asks again before rating gets the same row back (a reload is not a skip).
        """
        now = self._clock()
        with self._lock:
            self._expire(now)
            self._seen[rater] = now
            done = self._rated.get(rater, set())
            total = len(self._rows)
            held = self._leases.get(rater)
            if held is not None and held[0] not in done:
                self._leases[rater] = (held[0], now + self._lease_s)
                return Assignment(held[0], "row", len(done), total)
            options = [r for r in self._rows if r not in done]
            if not options:
                self._leases.pop(rater, None)
                return Assignment(None, "done", len(done), total)
            load = self._load()
            floor = min(load.values())
            chosen = min(options, key=lambda r: (load[r], self._index[r]))
            if load[chosen] > floor and self._someone_else_can_take(rater, load, floor, now):
                return Assignment(None, "wait", len(done), total)
            self._leases[rater] = (chosen, now + self._lease_s)
            return Assignment(chosen, "row", len(done), total)

    def progress(self, rater: str) -> tuple[int, int]:
        """(rows ``rater`` has rated, rows in the deck)."""
        with self._lock:
            return len(self._rated.get(rater, ())), len(self._rows)

    def counts(self) -> dict[str, int]:
        """Ratings (distinct raters) per row, in deck order."""
        with self._lock:
            return {r: len(self._raters.get(r, ())) for r in self._rows}

    def coverage(self) -> Coverage:
        """Rows, rated pairs, and the least and most ratings any row has."""
        counts = list(self.counts().values())
        return Coverage(len(counts), sum(counts), min(counts, default=0), max(counts, default=0))

    # -- inside the lock -----------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        for rater, (_, expiry) in list(self._leases.items()):
            if expiry <= now:
                del self._leases[rater]

    def _load(self) -> dict[str, int]:
        load = {r: len(self._raters.get(r, ())) for r in self._rows}
        for row, _ in self._leases.values():
            load[row] += 1
        return load

    def _someone_else_can_take(
        self, rater: str, load: dict[str, int], floor: int, now: float
    ) -> bool:
        """Whether another active rater (asked or rated within ``lease_s``, not holding a row)
        has not rated some least-loaded row: then that row will be covered without this rater."""
        behind = [r for r in self._rows if load[r] == floor]
        for other, last in self._seen.items():
            if other == rater or now - last > self._lease_s:
                continue
            done = self._rated.get(other, set())
            if any(r not in done for r in behind):
                return True
        return False
