"""The daemon's view of runs in flight: what counts as stuck (withholds the watchdog) and the
one-line STATUS= systemd shows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from syncd.config import JobConfig, Schedule
from syncd.daemon.jobs import STUCK_GRACE, TIMEOUT_GRACE, InFlight, JobRunner, LastRun
from syncd.web.metrics import RunStats


def job(name: str) -> JobConfig:
    return JobConfig(
        name, 1, "t", "email", Schedule("every 1m", 60), {"email": "email"}, run_timeout=100
    )


async def test_a_run_is_stuck_only_past_its_timeout_backstop_and_grace() -> None:
    runner = JobRunner(lambda: None, asyncio.Event(), RunStats())  # type: ignore[arg-type, return-value]
    task = asyncio.current_task()
    assert task is not None
    limit = 100 + TIMEOUT_GRACE
    runner.in_flight["a"] = InFlight(task, "schedule", started=1000.0, timeout=limit)  # type: ignore[arg-type]
    assert runner.stuck(now=1000.0 + limit + STUCK_GRACE - 1) == []
    assert runner.stuck(now=1000.0 + limit + STUCK_GRACE + 1) == ["a"]


async def test_status_line_names_each_jobs_last_outcome() -> None:
    runner = JobRunner(lambda: None, asyncio.Event(), RunStats())  # type: ignore[arg-type, return-value]
    runner.jobs = {"a": job("a"), "b": job("b"), "c": job("c")}
    runner.last["a"] = LastRun("succeeded", datetime(2025, 1, 6, 14, 15, 3, tzinfo=UTC))
    task = asyncio.current_task()
    assert task is not None
    runner.in_flight["b"] = InFlight(task, "schedule", 0.0, 1.0)  # type: ignore[arg-type]
    assert runner.status_line() == "a: succeeded at 14:15:03Z; b: running; c: waiting"
