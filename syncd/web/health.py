"""Is every job healthy? A pure evaluation over each job's last runs (read from syncd.runs, so a
job run by another syncd process counts too) plus the one query that fetches them.
It must not decide anything about scheduling or runs.

Rule: a job is healthy when its last *successful* run finished at most
`3 x period + run_timeout` ago (three missed periods plus the longest a run may take), or when
the daemon has been up for less than that (it has not had the chance yet). `blocked` and
`failed` runs do not count as success: both need an operator. Every job healthy -> HTTP 200.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.db import Pool
from syncd.db.sql import QUERIES

MISSED_PERIODS = 3


@dataclass(frozen=True, slots=True)
class JobRuns:
    """What syncd.runs says about one job."""

    job: str
    last_status: str | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_success_at: datetime | None = None
    last_success_epoch: float | None = None
    success_age_s: float | None = None


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


async def fetch_job_runs(pool: Pool, jobs: Sequence[str]) -> list[JobRuns]:
    """The last run and last success of each job, in one query."""
    rows = await pool.fetch(QUERIES["job_health"], list(jobs))
    return [JobRuns(**dict(row)) for row in rows]
