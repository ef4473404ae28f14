"""Floods from outside against the app queued as app.py queues it (issue #41, items 8 and 9): a
flood of leaderboard reads never refuses a vote, and one address rates over the API only so
often.

Before: one queue of ``BECOME_MAX_QUEUE`` waiting requests served every event, so 200
concurrent ``/leaderboard`` calls filled it and votes got "Queue is full"."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from pipelines.app.access import AddressLimit

MAX_QUEUE = 6  # each line's bound here (BECOME_MAX_QUEUE)
DEADLINE = 120.0  # seconds any one wait may take on a loaded machine before the test fails


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)  # a poll interval, not a wait for something to happen


@dataclass
class HeldBoard:
    """The leaderboard query, held until released: reads pile up in their line as under a
    flood, deterministically."""

    table: Any
    release: threading.Event = field(default_factory=threading.Event)
    running: int = 0

    def __call__(self, flt: Any) -> Any:
        self.running += 1
        self.release.wait(DEADLINE)
        return self.table(flt)


@pytest.fixture(scope="module")
def flood(tiny_services):
    from conftest import served

    board = HeldBoard(tiny_services.leaderboard)
    services = replace(
        tiny_services,
        settings=replace(tiny_services.settings, max_queue=MAX_QUEUE),
        leaderboard=board,
        api_votes=AddressLimit(0),
    )
    with served(services) as demo:
        yield demo, board
    board.release.set()


@pytest.fixture(scope="module")
def row(tiny_services, make_request, group_path):
    res = tiny_services.comparison.compare(
        group_path, make_request("anime", "a person", ["raw", "template"], 21)
    )
    return res.comparison_id


def vote(url: str, cid: str, rater: str) -> dict[str, Any]:
    client = Client(url, verbose=False, httpx_kwargs={"timeout": DEADLINE})
    return client.predict(cid, {"raw": 4}, rater, api_name="/rate")


def test_a_flood_of_leaderboard_reads_never_refuses_a_vote(flood, row, tiny_services):
    demo, board = flood
    url = demo.local_url
    readers = Client(url, verbose=False, max_workers=40)
    jobs = [readers.submit(api_name="/leaderboard") for _ in range(30)]

    def refused() -> list[str]:
        return [str(j.exception()) for j in jobs if j.done() and j.exception() is not None]

    # two reads run (held), MAX_QUEUE wait in the reads' own line, the rest are refused there
    wait_until(lambda: len(refused()) == 30 - 2 - MAX_QUEUE, "the reads' line to fill")
    assert board.running == 2
    assert all("Queue is full" in msg for msg in refused()), refused()[:1]  # the client's words
    try:
        for i in range(3):  # a vote goes through its own line: never "Queue is full"
            assert vote(url, row, f"flooded-reader-{i}")["saved"] == 1
    finally:
        board.release.set()
    waited = [j for j in jobs if j.exception() is None]
    assert len(waited) == 2 + MAX_QUEUE and all(isinstance(j.result(), list) for j in waited)
    voters = {r.rater for r in tiny_services.store.records(comparison_id=row)}
    assert {f"flooded-reader-{i}" for i in range(3)} <= voters


def test_one_address_rates_over_the_api_only_so_often(tiny_services, row):
    """#41 item 9: nothing limited votes per client (200 MCP votes under 200 names in 19 s)."""
    from conftest import served

    with served(
        replace(tiny_services, api_votes=AddressLimit(3, 60.0, what="votes over the API"))
    ) as demo:
        for i in range(3):
            assert vote(demo.local_url, row, f"limited-{i}")["saved"] == 1
        with pytest.raises(AppError, match=r"Too many votes over the API from this address"):
            vote(demo.local_url, row, "limited-3")
    raters = {r.rater for r in tiny_services.store.records(comparison_id=row)}
    assert "limited-2" in raters and "limited-3" not in raters
