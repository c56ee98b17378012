"""The pooled side of syncd's database: every operation a run or the daemon performs on a
connection of the pool — the run log, the ledger writes around each pushed batch, the health read.

Each method borrows one pooled connection (bounded by acquire_timeout) for one statement or one
transaction, delegating to the typed wrappers of runs.py and push.py; nothing here holds session
state (the run's own connection is RunSession's) or decides anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from syncd.db import push, runs, status
from syncd.db.pool import Pool, translating
from syncd.db.push import Accepted, Rejected
from syncd.db.runs import OutcomeRow
from syncd.db.sql import QUERIES


@dataclass(frozen=True, slots=True)
class JobRuns:
    """What syncd.runs says about one job (its last run and last success; dry runs ignored)."""

    job: str
    last_status: str | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_success_at: datetime | None = None
    last_success_epoch: float | None = None
    success_age_s: float | None = None


class Database:
    """The operations of syncd.db that run on the pool; owned by whoever owns the Pool."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    # -- the run log -----------------------------------------------------------------------

    async def start_run(
        self, job: str, *, dry_run: bool, allow_mass_delete: bool, trigger: str
    ) -> int:
        """A new running run of `job` (call it holding the job's lock: see runs.start_run)."""
        async with self._pool.acquire() as conn:
            return await runs.start_run(
                conn, job, dry_run=dry_run, allow_mass_delete=allow_mass_delete, trigger=trigger
            )

    async def run_in_progress(self, job: str) -> bool:
        """Whether a run of `job` (not a fast opt-out pass) is going on in some process."""
        async with self._pool.acquire() as conn:
            return await runs.run_in_progress(conn, job)

    async def heartbeat(self, run_id: int) -> None:
        async with self._pool.acquire() as conn:
            await runs.heartbeat(conn, run_id)

    async def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        counts: Mapping[str, int],
        planned: Mapping[str, int],
        timings: Mapping[str, float],
        blocked_reason: str | None,
        error: str | None,
    ) -> None:
        async with self._pool.acquire() as conn:
            await runs.finish_run(
                conn,
                run_id,
                status=status,
                counts=counts,
                planned=planned,
                timings=timings,
                blocked_reason=blocked_reason,
                error=error,
            )

    async def record_outcomes(self, run_id: int, job: str, rows: Iterable[OutcomeRow]) -> int:
        async with self._pool.acquire() as conn:
            return await runs.record_outcomes(conn, run_id, job, rows)

    async def prune_outcomes(self, older_than_days: int) -> int:
        async with self._pool.acquire() as conn:
            return await runs.prune_outcomes(conn, older_than_days)

    async def expected_export_seconds(self, job: str) -> float | None:
        async with self._pool.acquire() as conn:
            return await runs.expected_export_seconds(conn, job)

    # -- the ledger around a pushed batch (push.py: one transaction each) -----------------

    async def record_intent(
        self,
        *,
        job: str,
        run_id: int,
        action: str,
        keys: Sequence[str],
        fingerprints: Sequence[int | None],
    ) -> None:
        await push.record_intent(
            self._pool, job=job, run_id=run_id, action=action, keys=keys, fingerprints=fingerprints
        )

    async def clear_intent(self, *, job: str, keys: Sequence[str]) -> None:
        await push.clear_intent(self._pool, job=job, keys=keys)

    async def record_batch(
        self,
        *,
        job: str,
        run_id: int,
        action: str,
        channel: str,
        accepted: Sequence[Accepted],
        rejected: Sequence[Rejected],
        quarantine_after: int,
        batch: int | None = None,
    ) -> None:
        await push.record_batch(
            self._pool,
            job=job,
            run_id=run_id,
            action=action,
            channel=channel,
            accepted=accepted,
            rejected=rejected,
            quarantine_after=quarantine_after,
            batch=batch,
        )

    async def record_unanswered(
        self,
        *,
        job: str,
        run_id: int,
        action: str,
        keys: Sequence[str],
        outcome: str,
        code: str,
        message: str,
        batch: int | None = None,
    ) -> None:
        await push.record_unanswered(
            self._pool,
            job=job,
            run_id=run_id,
            action=action,
            keys=keys,
            outcome=outcome,
            code=code,
            message=message,
            batch=batch,
        )

    async def record_schedule(
        self, job: str, next_run_at: datetime | None, scheduled_by: str
    ) -> None:
        """What this daemon says of the job's next run (read by `syncd status`)."""
        async with self._pool.acquire() as conn:
            await status.record_schedule(conn, job, next_run_at, scheduled_by)

    # -- the daemon's health read ----------------------------------------------------------

    async def job_health(self, jobs: Sequence[str]) -> list[JobRuns]:
        """The last run and last success of each job, in one query (for /healthz, /metrics)."""
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                rows = await conn.fetch(QUERIES["job_health"], list(jobs))
        return [JobRuns(**dict(row)) for row in rows]
