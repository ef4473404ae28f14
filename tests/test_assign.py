"""Balanced row assignment: least-covered first, never twice, wait instead of running ahead."""

from __future__ import annotations

import random

import pytest

from pipelines.decks.assign import RowAssigner


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("seed", range(40))
def test_random_sessions_stay_balanced_and_finish(seed):
    """Raters ask and rate in a random interleaving: every row's load (ratings + rows handed
    out) stays within one of every other's, nobody gets a row twice, everyone finishes."""
    rng = random.Random(seed)
    n_rows, n_raters = rng.choice([3, 8, 12]), rng.choice([2, 5, 30])
    a = RowAssigner([f"r{i}" for i in range(n_rows)])
    raters = [f"u{i}" for i in range(n_raters)]
    holding: dict[str, str] = {}
    got: dict[str, list[str]] = {u: [] for u in raters}
    active = set(raters)
    for _ in range(100_000):
        if not active:
            break
        u = rng.choice(sorted(active))
        if u in holding and rng.random() < 0.7:
            a.record(u, holding.pop(u))
        elif u not in holding:
            turn = a.next_row(u)
            if turn.state == "done":
                active.discard(u)
                continue
            if turn.state == "wait":
                continue
            holding[u] = turn.row_id
            got[u].append(turn.row_id)
        load = a._load()
        assert max(load.values()) - min(load.values()) <= 1
    assert not active, "the session stalled"
    assert all(sorted(rows) == sorted(set(rows)) and len(rows) == n_rows for rows in got.values())
    assert set(a.counts().values()) == {n_raters}


def test_reload_returns_the_same_row_and_done_says_so():
    a = RowAssigner(["a", "b"])
    first = a.next_row("ana")
    assert first.state == "row" and a.next_row("ana").row_id == first.row_id  # a reload
    a.record("ana", first.row_id)
    second = a.next_row("ana")
    assert second.row_id != first.row_id and (second.rated, second.total) == (1, 2)
    a.record("ana", second.row_id)
    done = a.next_row("ana")
    assert (done.state, done.row_id, done.rated) == ("done", None, 2)


def test_waits_while_others_can_cover_the_least_rated_row_then_not_after_they_leave():
    clock = Clock()
    a = RowAssigner(["a", "b"], lease_s=60, clock=clock)
    a.seed([("ana", "a"), ("bo", "b"), ("cy", "b")])  # a=1, b=2
    wait = a.next_row("ana")  # her only row, b, would be two ahead of a; bo can still take a
    assert (wait.state, wait.row_id) == ("wait", None)
    assert a.next_row("bo").row_id == "a"  # a=2
    assert a.next_row("ana").row_id == "b"  # now b=3 is only one ahead
    a.record("ana", "b")
    a.record("bo", "a")
    a.seed([("dee", "b"), ("eve", "b")])  # a=2, b=5: ivy, who rated a, would wait while
    a.record("ivy", "a")  # ... someone active can still take a
    assert a.next_row("ivy").state == "wait"
    clock.now = 1000  # the room left: nobody active can cover a any more
    assert a.next_row("ivy").row_id == "b"  # so ivy is not held back


def test_expired_leases_go_back_to_the_pool():
    clock = Clock()
    a = RowAssigner(["a", "b"], lease_s=10, clock=clock)
    assert a.next_row("ana").row_id == "a"
    assert a.next_row("bo").row_id == "b"
    clock.now = 11  # ana walked away
    assert a.next_row("cy").row_id == "a"
