"""The wait a page is told ("yours starts in about N s") is a number only once it can be
trusted, and errs long: proved on a seeded simulation of renders (bench/bench_waits.py)."""

from __future__ import annotations

import math

import pytest

from bench.bench_waits import blended_left, median_estimate, simulate, summary
from demo.queue_progress import RenderClock, RenderRecord, seconds_left, wait_words

SEEDS = range(6)


def test_a_told_wait_is_rarely_too_short_and_was_often_too_short_before():
    now = summary([w for s in SEEDS for w in simulate(s, 200)])
    before = summary([w for s in SEEDS for w in simulate(s, 200, median_estimate, blended_left)])
    assert now["too_short"] <= 0.05, now
    assert before["too_short"] >= 0.15, before  # the simulation tells the two apart
    assert now["told"] >= 0.9 * before["told"]  # and a number is still told nearly always


def test_no_number_is_told_for_a_call_ahead_before_three_renders_have_been_timed():
    clock = RenderClock()
    for _ in range(2):
        clock.add(RenderRecord(1, 2.0, 1.0, False))
        assert clock.estimate(1) is None
    clock.add(RenderRecord(1, 2.0, 1.0, False))
    assert clock.estimate(2) == pytest.approx(5.0)


def test_a_slow_first_render_makes_waits_long_then_is_left_out():
    clock = RenderClock()
    clock.add(RenderRecord(rows=1, seconds=30.0, fraction=1.0, cancelled=False))  # models load
    for _ in range(2):
        clock.add(RenderRecord(rows=2, seconds=4.0, fraction=1.0, cancelled=False))
    assert clock.estimate(1) == pytest.approx(30.0 * 1.25)  # long, never short
    for _ in range(2):
        clock.add(RenderRecord(rows=2, seconds=4.0, fraction=1.0, cancelled=False))
    clock.add(RenderRecord(rows=1, seconds=0.1, fraction=0.1, cancelled=True))  # not timed
    assert clock.estimate(3) == pytest.approx(3 * 2.0 * 1.25)


def test_time_left_is_no_number_until_measured_then_the_longest_reading():
    assert math.isnan(seconds_left(1.0, 0.05, None, 0.5))  # too early to read its own pace
    assert seconds_left(1.0, 0.05, 10.0, 0.5) == pytest.approx(9.0)
    # half done in 10 s at a pace that would finish in 2 s: the overall pace says 12.5 s
    assert seconds_left(10.0, 0.5, None, 0.25) == pytest.approx(12.5)
    assert seconds_left(10.0, 0.5, 40.0, 0.25) == pytest.approx(30.0)  # the prior is longer


def test_waits_read_in_plain_words_rounded_up():
    assert wait_words(0.2) == "about 1 s"
    assert wait_words(41.1) == "about 42 s"
    assert wait_words(125) == "about 3 min"
