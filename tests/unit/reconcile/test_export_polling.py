"""The export poll schedule, as pure arithmetic: sparse until shortly before the export is
expected to finish, dense around then, growing again after; never many polls."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import pytest

from syncd.reconcile.export import (
    DENSE_FROM,
    DENSE_POLL_INTERVAL,
    DENSE_SLACK,
    DENSE_UNTIL,
    MAX_DENSE_POLLS,
    poll_delays,
    poll_schedule,
)

FIRST, MAXIMUM = 2.0, 30.0  # SelzyConfig's defaults
DEADLINE = 3600.0  # SelzyConfig.export_deadline's default
EPSILON = 1e-9


def _times(delays: Iterator[float], until: float) -> list[float]:
    """When the polls happen (seconds after the export request), up to `until`."""
    times, now = [], 0.0
    for delay in delays:
        now += delay
        if now > until + EPSILON:
            return times
        times.append(now)
    raise AssertionError("unreachable: the schedules are infinite")  # pragma: no cover


def _window(expected: float) -> tuple[float, float]:
    return DENSE_FROM * expected, DENSE_UNTIL * expected + DENSE_SLACK


@pytest.mark.parametrize("expected", [None, math.nan, math.inf, -1.0])
def test_without_a_usable_expected_time_the_delays_grow_as_before(expected: float | None) -> None:
    got = list(itertools.islice(poll_schedule(FIRST, MAXIMUM, expected), 12))
    assert got == list(itertools.islice(poll_delays(FIRST, MAXIMUM), 12))


@pytest.mark.parametrize("expected", [0.0, 0.4, 3.0, 10.0, 25.0, 38.0])
def test_a_finish_anywhere_in_the_window_is_seen_within_the_dense_interval(expected: float) -> None:
    start, end = _window(expected)
    times = _times(poll_schedule(FIRST, MAXIMUM, expected), DEADLINE)
    assert any(abs(t - start) < EPSILON for t in times) or start == 0.0
    assert any(abs(t - end) < EPSILON for t in times)
    for step in range(int((end - start) * 100)):
        finish = start + step / 100
        first_poll_after = min(t for t in times if t >= finish - EPSILON)
        assert first_poll_after - finish <= DENSE_POLL_INTERVAL + EPSILON, finish


@pytest.mark.parametrize("expected", [3.0, 10.0, 25.0, 120.0, 1000.0])
def test_polls_before_the_window_are_sparse_and_stop_short_of_it(expected: float) -> None:
    start, _ = _window(expected)
    before = [t for t in _times(poll_schedule(FIRST, MAXIMUM, expected), DEADLINE) if t < start]
    plain = [t for t in _times(poll_delays(FIRST, MAXIMUM), DEADLINE) if t < start]
    assert len(before) <= len(plain)
    assert all(t <= start - DENSE_POLL_INTERVAL + EPSILON for t in before)


def test_after_the_window_the_delays_grow_again_from_poll_interval() -> None:
    expected = 25.0
    _, end = _window(expected)
    schedule = poll_schedule(FIRST, MAXIMUM, expected)
    elapsed = 0.0
    while elapsed < end - EPSILON:
        elapsed += next(schedule)
    assert list(itertools.islice(schedule, 8)) == list(itertools.islice(poll_delays(2.0, 30.0), 8))


def test_a_long_window_gets_at_most_max_dense_polls_spread_evenly() -> None:
    expected = 300.0
    start, end = _window(expected)
    times = _times(poll_schedule(FIRST, MAXIMUM, expected), DEADLINE)
    dense = [t for t in times if start < t <= end + EPSILON]
    assert len(dense) == MAX_DENSE_POLLS
    gaps = {round(b - a, 9) for a, b in itertools.pairwise([start, *dense])}
    assert gaps == {round((end - start) / MAX_DENSE_POLLS, 9)}


@pytest.mark.parametrize("expected", [0.0, 0.05, 1.0, 10.0, 25.0, 60.0, 300.0, 3000.0])
def test_the_number_of_polls_stays_small_and_bounded(expected: float) -> None:
    """Compared with the plain growing delays: at most the dense polls, plus one more ramp from
    poll_interval up to poll_interval_max after the window, plus rounding."""
    with_expected = _times(poll_schedule(FIRST, MAXIMUM, expected), DEADLINE)
    plain = _times(poll_delays(FIRST, MAXIMUM), DEADLINE)
    ramp = len(list(itertools.takewhile(lambda d: d < MAXIMUM, poll_delays(FIRST, MAXIMUM))))
    assert len(with_expected) <= len(plain) + MAX_DENSE_POLLS + ramp + 3
    _, end = _window(expected)
    up_to_end = [t for t in with_expected if t <= end + EPSILON]
    assert len(up_to_end) <= len([t for t in plain if t <= end]) + MAX_DENSE_POLLS + 1


def test_a_million_contact_export_is_seen_within_a_second_for_a_bounded_cost() -> None:
    """Expected 25 s, finished at 27 s: seen by 27.5 s (the growing delays 2, 3, 4.5 ... s poll
    at 26.4 s and next at 41.6 s), with at most 20 polls."""
    times = _times(poll_schedule(FIRST, MAXIMUM, 25.0), DEADLINE)
    seen = min(t for t in times if t >= 27.0)
    assert seen - 27.0 <= DENSE_POLL_INTERVAL
    assert len([t for t in times if t <= seen]) <= 20
