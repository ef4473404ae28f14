"""The staff password gate and the per-address limits (issue #41, item 11 and item 9): lock-out
by address, a global back-off, never a sleep; a caller's address behind trusted proxies only.
Time is injected."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from pipelines.app.access import (
    AddressLimit,
    RateLimitedError,
    StaffGate,
    StaffLockedError,
    client_address,
)


class FakeTime:
    """A clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch):
    """Nothing here may sleep: a guess that sleeps holds a worker a vote needs."""

    def refuse(seconds: float) -> None:
        pytest.fail(f"slept {seconds} s")

    monkeypatch.setattr(time, "sleep", refuse)


def gate(fake: FakeTime, **kwargs) -> StaffGate:
    return StaffGate("s3cret", clock=fake.clock, **kwargs)


def test_no_password_set_is_open(fake):
    open_gate = StaffGate("", clock=fake.clock)
    assert not open_gate.required
    assert all(open_gate.check("anything", "1.2.3.4") for _ in range(50))


def test_right_and_wrong_passwords_are_answered_at_once(fake):
    g = gate(fake)
    assert g.required and g.check("s3cret", "1.2.3.4")
    assert not g.check("guess", "1.2.3.4")  # was: a one-second sleep inside a queue worker


def test_five_wrong_in_a_minute_lock_the_address_for_60_s(fake):
    g = gate(fake)
    for _ in range(4):
        assert not g.check("guess", "6.6.6.6")
    with pytest.raises(StaffLockedError, match=r"from this address.*try again in 60 s"):
        g.check("guess", "6.6.6.6")
    fake.now += 30
    # locked: even the right password is refused, without revealing that it was right
    with pytest.raises(StaffLockedError, match="try again in 30 s"):
        g.check("s3cret", "6.6.6.6")
    assert g.check("s3cret", "10.0.0.2")  # another address is not locked out by this one
    fake.now += 31
    assert g.check("s3cret", "6.6.6.6")


def test_a_locked_address_is_refused_without_a_comparison(fake):
    g = gate(fake)
    for _ in range(4):
        g.check("guess", "6.6.6.6")
    with pytest.raises(StaffLockedError):
        g.check("guess", "6.6.6.6")
    for _ in range(200):  # a flood: each refused at once, none counted towards the back-off
        with pytest.raises(StaffLockedError, match="from this address"):
            g.check("another guess", "6.6.6.6")
    assert g.check("s3cret", "10.0.0.2")


def test_wrong_passwords_from_many_addresses_back_everyone_off_longer_each_time(fake):
    g = gate(fake, global_failures=20, backoff_s=30, max_backoff_s=900)
    for i in range(19):  # 4 guesses from each of five addresses would lock none of them
        assert not g.check("guess", f"203.0.113.{i}")
    with pytest.raises(StaffLockedError, match=r"several addresses.*try again in 30 s"):
        g.check("guess", "203.0.113.99")
    with pytest.raises(StaffLockedError, match="try again in 30 s"):
        g.check("s3cret", "192.0.2.1")  # everyone, the right password too: no oracle
    fake.now += 31
    assert g.check("s3cret", "192.0.2.1")
    for i in range(20):
        with pytest.raises(StaffLockedError) if i == 19 else _no_error():
            assert not g.check("guess", f"198.51.100.{i}")
    with pytest.raises(StaffLockedError, match="try again in 60 s"):  # back again: doubled
        g.check("s3cret", "192.0.2.1")
    fake.now += 60 + 901  # quiet for longer than the longest back-off: it starts over
    for i in range(20):
        with pytest.raises(StaffLockedError) if i == 19 else _no_error():
            g.check("guess", f"198.18.0.{i}")
    with pytest.raises(StaffLockedError, match="try again in 30 s"):
        g.check("s3cret", "192.0.2.1")


class _no_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_failures_older_than_the_window_are_forgotten(fake):
    g = gate(fake)
    for _ in range(4):
        assert not g.check("guess", "c")
    fake.now += 61  # the window moved on: these four no longer count
    for _ in range(4):
        assert not g.check("guess", "c")
    assert g.check("s3cret", "c")


def test_success_resets_the_count(fake):
    g = gate(fake)
    for _ in range(4):
        g.check("guess", "c")
    assert g.check("s3cret", "c")
    for _ in range(4):
        assert not g.check("guess", "c")  # four more wrong: not locked, the count restarted


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="max_failures=0"):
        StaffGate("x", max_failures=0)
    with pytest.raises(ValueError, match="global_failures=0"):
        StaffGate("x", global_failures=0)


# ----------------------------------------------------------------------------- the staff tab


def request(host: str, session: str, forwarded: str | None = None) -> SimpleNamespace:
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    return SimpleNamespace(client=SimpleNamespace(host=host), session_hash=session, headers=headers)


def test_a_new_page_session_per_guess_is_the_same_caller(fake):
    """Item 11: the lock-out was keyed by address *and* page session, so a reload, or a client
    that opened a new session per guess, was never locked out."""
    from demo.staff_tab import client_key

    g = gate(fake)
    for i in range(4):
        assert not g.check("guess", client_key(request("6.6.6.6", f"session-{i}")))
    with pytest.raises(StaffLockedError):
        g.check("guess", client_key(request("6.6.6.6", "session-4")))
    with pytest.raises(StaffLockedError):  # reloaded: a new session, the same address
        g.check("s3cret", client_key(request("6.6.6.6", "after-a-reload")))


def test_the_staff_handlers_check_by_address(fake):
    import gradio as gr

    from demo.staff_tab import StaffCallbacks, StaffHandlers
    from pipelines.feedback.sessions import SessionConfig

    g = gate(fake)
    cb = StaffCallbacks(
        check_password=g.check,
        password_required=True,
        session=SessionConfig,
        start_session=lambda *a: SessionConfig(),
        end_session=SessionConfig,
        export=lambda fmt: None,  # type: ignore[arg-type,return-value]
        retrain=lambda files: None,  # type: ignore[arg-type,return-value]
        model_summary=str,
        availability=dict,
        server_details=list,
        add_references=lambda *a: 0,
        clear_references=lambda style: 0,
        reference_counts=dict,
        styles=[],
        methods=[],
        load_deck=lambda *a: None,  # type: ignore[arg-type,return-value]
        unload_deck=lambda: None,
        deck_coverage=lambda: None,
        use_model=lambda *a: None,  # type: ignore[arg-type,return-value]
        model_versions=list,
        model_in_use=lambda: "bundled",
    )
    h = StaffHandlers(cb)
    for i in range(4):
        with pytest.raises(gr.Error, match="Wrong staff password"):
            h.check("guess", request("6.6.6.6", f"s{i}"))  # type: ignore[arg-type]
    with pytest.raises(gr.Error, match="from this address"):
        h.check("guess", request("6.6.6.6", "s5"))  # type: ignore[arg-type]
    h.check("s3cret", request("10.0.0.2", "s6"))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- addresses


def test_the_address_is_the_connections_unless_proxies_are_trusted():
    # nobody's own X-Forwarded-For is believed by default: it would pick any address it likes
    assert client_address("6.6.6.6", ["1.1.1.1"]) == "6.6.6.6"
    # behind one trusted proxy: the entry that proxy wrote (the last), never one to its left
    assert client_address("10.0.0.1", ["1.1.1.1, 6.6.6.6"], trusted_proxies=1) == "6.6.6.6"
    assert client_address("10.0.0.1", ["1.1.1.1", "6.6.6.6"], trusted_proxies=1) == "6.6.6.6"
    assert client_address("10.0.0.1", ["7.7.7.7, 6.6.6.6, 10.0.0.9"], 2) == "6.6.6.6"
    assert client_address("10.0.0.1", [], trusted_proxies=1) == "10.0.0.1"
    assert client_address("10.0.0.1", ["6.6.6.6"], trusted_proxies=3) == "6.6.6.6"


def test_an_ipv6_caller_is_its_64_block():
    a = client_address("2001:db8:1:2:aaaa::1")
    assert a == client_address("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert client_address("2001:db8:1:3::1") != a
    assert client_address("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_address("testclient") == "testclient"  # not an IP: a key all the same


def test_the_vote_limit_counts_per_address_and_says_when_to_come_back(fake):
    limit = AddressLimit(3, 60.0, what="votes over the API", clock=fake.clock)
    for _ in range(3):
        limit.check("6.6.6.6")
    with pytest.raises(RateLimitedError, match=r"at most 3 per 60 s.*in 60 s"):
        limit.check("6.6.6.6")
    limit.check("10.0.0.2")  # another address has its own count
    fake.now += 30
    with pytest.raises(RateLimitedError, match="in 30 s"):  # a refusal is not counted
        limit.check("6.6.6.6")
    fake.now += 31
    limit.check("6.6.6.6")
    unlimited = AddressLimit(0, clock=fake.clock)
    for _ in range(1000):
        unlimited.check("6.6.6.6")
