"""A run that finds its job's lock held: by another process's run (recorded `running`) the job
is busy at once; by a short holder that is not a run (a fast opt-out pass of another daemon, the
event worker) the run waits for it, up to [database] lock_timeout, instead of skipping its slot."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from syncd.db import Connection, connect, ensure_job
from syncd.db.runs import JOB_LOCK_NAMESPACE
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture

HOLD = 3.0  # seconds the lock is held: well past the runner's first second of retries


@contextlib.asynccontextmanager
async def job_lock_held(harness: Harness) -> AsyncIterator[tuple[Connection, int]]:
    """The job's lock, taken on a connection of the test's own (another process, as syncd sees
    it); the connection and the job's id."""
    holder = await connect(harness.db_config)
    try:
        job_id = await ensure_job(holder, harness.job.name)
        assert await holder.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", JOB_LOCK_NAMESPACE, job_id
        )
        yield holder, job_id
    finally:
        await holder.close()


async def test_a_lock_held_by_something_else_than_a_run_is_waited_for(harness: Harness) -> None:
    await harness.insert({"email": "a@example.com"})
    async with job_lock_held(harness) as (holder, job_id):
        run = asyncio.create_task(harness.run())
        await asyncio.sleep(HOLD)
        assert not run.done(), "the run gave up while a short holder had the lock"
        await holder.fetchval("SELECT pg_advisory_unlock($1, $2)", JOB_LOCK_NAMESPACE, job_id)
        outcome = await asyncio.wait_for(run, 60)
    assert outcome.status == "succeeded"
    assert outcome.counts["added"] == 1


async def test_a_lock_held_by_another_processs_run_makes_the_job_busy(harness: Harness) -> None:
    await harness.insert({"email": "a@example.com"})
    async with job_lock_held(harness) as (holder, _):
        await holder.execute(  # what another process's run records while it holds the lock
            "INSERT INTO syncd.runs (job, dry_run, trigger, host, pid)"
            " VALUES ($1, false, 'schedule', 'elsewhere', 1)",
            harness.job.name,
        )
        # well under lock_timeout (30 s): a run holder is not waited for
        outcome = await asyncio.wait_for(harness.run(), 20)
    assert outcome.status == "busy"
    assert await harness.import_calls() == []
