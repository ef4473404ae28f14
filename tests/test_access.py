"""The staff password gate (delay per wrong password, lock-out per client) and the per-address
limit (issue #41, item 9); time injected."""

from __future__ import annotations

import pytest

from pipelines.app.access import (
    AddressLimit,
    RateLimitedError,
    StaffGate,
    StaffLockedError,
    client_address,
)


class FakeTime:
    """A clock that only moves when told; sleeping is recorded and advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def gate(fake: FakeTime, **kwargs) -> StaffGate:
    return StaffGate("s3cret", clock=fake.clock, sleep=fake.sleep, **kwargs)


def test_no_password_set_is_open(fake):
    open_gate = StaffGate("", clock=fake.clock, sleep=fake.sleep)
    assert not open_gate.required
    assert all(open_gate.check("anything", "c") for _ in range(20))
    assert fake.slept == []


def test_right_password_passes_without_delay(fake):
    g = gate(fake)
    assert g.required and g.check("s3cret", "c")
    assert fake.slept == []


def test_each_wrong_password_is_delayed(fake):
    g = gate(fake, delay_s=1.5)
    assert not g.check("guess", "c")
    assert not g.check("", "c")
    assert fake.slept == [1.5, 1.5]


def test_five_wrong_in_a_minute_lock_the_client_for_60_s(fake):
    g = gate(fake, delay_s=0.0)
    for _ in range(4):
        assert not g.check("guess", "mallory")
    with pytest.raises(StaffLockedError, match=r"5 times within 60 s.*try again in 60 s"):
        g.check("guess", "mallory")
    fake.now += 30
    # locked: even the right password is refused, without revealing that it was right
    with pytest.raises(StaffLockedError, match="try again in 30 s"):
        g.check("s3cret", "mallory")
    # another client (another browser) is not locked out by mallory
    assert g.check("s3cret", "facilitator")
    fake.now += 31
    assert g.check("s3cret", "mallory")


def test_a_locked_client_is_refused_at_once(fake):
    g = gate(fake, delay_s=1.0)
    for _ in range(4):
        g.check("guess", "m")
    with pytest.raises(StaffLockedError):
        g.check("guess", "m")
    slept = len(fake.slept)
    for _ in range(50):  # 50 more guesses: each refused immediately, none checked
        with pytest.raises(StaffLockedError):
            g.check("s3cret", "m")
    assert len(fake.slept) == slept


def test_failures_older_than_the_window_are_forgotten(fake):
    g = gate(fake, delay_s=0.0)
    for _ in range(4):
        assert not g.check("guess", "c")
    fake.now += 61  # the window moved on: these four no longer count
    for _ in range(4):
        assert not g.check("guess", "c")
    assert g.check("s3cret", "c")


def test_success_resets_the_count(fake):
    g = gate(fake, delay_s=0.0)
    for _ in range(4):
        g.check("guess", "c")
    assert g.check("s3cret", "c")
    for _ in range(4):
        assert not g.check("guess", "c")  # four more wrong: not locked, the count restarted


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="max_failures=0"):
        StaffGate("x", max_failures=0)


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
