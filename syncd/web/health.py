"""Is every job healthy? A pure evaluation over each job's last runs (read from syncd.runs, so a
job run by another syncd process counts too), the bounded read that fetches them, and what
/healthz says when that read fails. It must not decide anything about scheduling or runs.

Rule: a job is healthy when its last *successful* run finished at most
`3 x period + run_timeout` ago (three missed periods plus the longest a run may take), or when
the daemon has been up for less than that (it has not had the chance yet). `blocked` and
`failed` runs do not count as success: both need an operator. Every job healthy -> HTTP 200.
PostgreSQL unreachable (no answer within HEALTH_TIMEOUT) -> unhealthy, with what this process
itself knows of each job; the `syncd_database_up` gauge says the same to Prometheus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd.db import Database, JobRuns
from syncd.errors import DatabaseError

MISSED_PERIODS = 3
# Seconds /healthz and /metrics wait for syncd.runs (a pooled connection and the query) before
# they answer that the database is unreachable: less than a scraper's usual 10 s timeout.
HEALTH_TIMEOUT = 5.0

__all__ = [
    "HEALTH_TIMEOUT",
    "DatabaseGauge",
    "JobRuns",
    "LocalRun",
    "database_unreachable",
    "evaluate",
    "fetch_job_runs",
    "max_success_age",
]


@dataclass(frozen=True, slots=True)
class LocalRun:
    """What this process knows of a job without the database: its own runs only."""

    running: bool = False
    last_status: str | None = None
    last_finished_at: datetime | None = None


def max_success_age(period_seconds: float, run_timeout: float) -> float:
    return MISSED_PERIODS * period_seconds + run_timeout


def evaluate(
    runs: Sequence[JobRuns], max_age: Mapping[str, float], uptime_s: float
) -> tuple[bool, dict[str, Any]]:
    """(healthy, JSON body) for the jobs in `max_age` (job name -> allowed success age)."""
    by_job = {r.job: r for r in runs}
    jobs: dict[str, Any] = {}
    healthy = True
    for name, limit in max_age.items():
        r = by_job.get(name, JobRuns(name))
        age = r.success_age_s
        if age is not None and age <= limit:
            state = "ok"
        elif uptime_s <= limit:
            state = "starting"
        else:
            state = "stale" if age is not None else "never_succeeded"
            healthy = False
        jobs[name] = {
            "state": state,
            "last_status": r.last_status,
            "last_success_at": r.last_success_at.isoformat() if r.last_success_at else None,
            "seconds_since_success": round(age, 1) if age is not None else None,
            "max_age_s": limit,
        }
    return healthy, {"status": "ok" if healthy else "unhealthy", "jobs": jobs}


def database_unreachable(
    max_age: Mapping[str, float], local: Mapping[str, LocalRun], error: str
) -> dict[str, Any]:
    """/healthz's body (always unhealthy) when syncd.runs cannot be read: per job, its state is
    unknown; what this process ran itself is given as far as it knows."""
    jobs: dict[str, Any] = {}
    for name, limit in max_age.items():
        known = local.get(name, LocalRun())
        jobs[name] = {
            "state": "unknown",
            "running": known.running,
            "last_status": known.last_status,
            "last_finished_at": known.last_finished_at.isoformat()
            if known.last_finished_at
            else None,
            "max_age_s": limit,
        }
    return {"status": "unhealthy", "database": "unreachable", "error": error, "jobs": jobs}


async def fetch_job_runs(database: Database, jobs: Sequence[str]) -> list[JobRuns]:
    """The last run and last success of each job; DatabaseError when PostgreSQL fails or does
    not answer within HEALTH_TIMEOUT."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            return await database.job_health(jobs)
    except TimeoutError as exc:
        raise DatabaseError(
            f"PostgreSQL did not answer within {HEALTH_TIMEOUT:g}s", retryable=True
        ) from exc


class DatabaseGauge(Collector):
    """`syncd_database_up`: 1 when the last read of syncd.runs (by /healthz or /metrics)
    answered; the daemon registers it beside syncd's other metrics and sets `up`."""

    def __init__(self) -> None:
        self.up = True

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "syncd_database_up",
            "1 when PostgreSQL answered the last read of the run log, 0 when it did not "
            "within the health timeout.",
        )
        gauge.add_metric([], 1.0 if self.up else 0.0)
        return [gauge]
