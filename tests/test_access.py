"""The staff password gate: delay per wrong password, lock-out per client, time injected."""

from __future__ import annotations

import pytest

from pipelines.app.access import StaffGate, StaffLockedError


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
