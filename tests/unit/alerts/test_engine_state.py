"""The engine's own state and the pure retry decision, without I/O: a stale job is alerted on
once when it becomes stale and once when it is fresh again; back-off doubles, is capped and
gives up on a failure not worth retrying."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from syncd.alerts import AlertEngine
from syncd.alerts.delivery import retry_delay
from syncd.api import RetryPolicy
from syncd.config import AlertsConfig

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PERIOD = 900.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def test_a_stale_job_is_alerted_on_once_and_once_when_fresh_again() -> None:
    clock = Clock()
    engine = AlertEngine(AlertsConfig(command="true"), channels=[], clock=clock)
    last = T0 - timedelta(minutes=20)
    kinds = []
    for minutes in (0, 20, 30, 40, 60):  # from 30 on: more than 45 min since the last success
        clock.now = T0 + timedelta(minutes=minutes)
        alert = await engine.check_stale("newsletter", last, PERIOD)
        kinds.append(alert.kind if alert else None)
    clock.now += timedelta(minutes=1)
    fresh = await engine.check_stale("newsletter", clock.now - timedelta(minutes=1), PERIOD)
    again = await engine.check_stale("newsletter", clock.now - timedelta(minutes=1), PERIOD)
    assert kinds == [None, None, "stale", None, None]
    assert fresh is not None
    assert fresh.kind == "stale_resolved"
    assert again is None
    await engine.aclose()


async def test_staleness_is_kept_per_job_and_a_never_succeeded_job_counts_from_the_start() -> None:
    clock = Clock()
    engine = AlertEngine(AlertsConfig(command="true"), channels=[], clock=clock)
    clock.now = T0 + timedelta(minutes=46)
    never = await engine.check_stale("never", None, PERIOD)
    fine = await engine.check_stale("fine", clock.now - timedelta(minutes=1), PERIOD)
    unscheduled = await engine.check_stale("manual", None, None)
    assert never is not None
    assert never.kind == "stale"
    assert "no successful run yet" in never.text
    assert fine is None
    assert unscheduled is None
    await engine.aclose()


class FixedRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b  # the longest delay each time


@pytest.mark.parametrize(
    ("attempt", "retryable", "expected"),
    [
        (1, True, 1.0),
        (2, True, 2.0),
        (3, True, 4.0),
        (6, True, 30.0),  # capped
        (1, False, None),  # not worth retrying
        (8, True, None),  # the last attempt
    ],
)
def test_back_off_doubles_up_to_the_cap_and_stops_at_the_last_attempt(
    attempt: int, retryable: bool, expected: float | None
) -> None:
    policy = RetryPolicy(max_attempts=8, base=1.0, cap=30.0)
    assert retry_delay(policy, attempt, retryable, FixedRandom()) == expected


def test_back_off_always_waits_at_least_half_its_ceiling() -> None:
    policy = RetryPolicy(max_attempts=5, base=1.0, cap=30.0)
    rng = random.Random(1)
    delays = [retry_delay(policy, 3, True, rng) for _ in range(200)]
    assert all(d is not None and 2.0 <= d <= 4.0 for d in delays)
