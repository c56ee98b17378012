"""The run log as alerts read it (sql/queries/alerts.sql): a finished run and the earlier runs
that say what state its job was in. Reads syncd.runs only; decides nothing (syncd.alerts does).
"""

from __future__ import annotations

import json

import asyncpg

from syncd.db.pool import Pool, translating
from syncd.db.runs import COUNT_COLUMNS, RunRecord
from syncd.db.sql import QUERIES


async def alert_history(pool: Pool, job: str, run_id: int, *, min_rows: int) -> list[RunRecord]:
    """Run `run_id` of `job`, last, after the earlier runs it is compared with, oldest first
    (`min_rows`: the fewest pushed rows whose rejected share counts); [] or only earlier runs
    when `run_id` is not a finished, non-dry run of `job`."""
    async with pool.acquire() as conn:
        with translating(pool.cfg, conn):
            rows = await conn.fetch(QUERIES["alert_history"], job, run_id, min_rows)
    return [_record(row) for row in rows]


def _record(row: asyncpg.Record) -> RunRecord:
    return RunRecord(
        id=row["id"],
        job=row["job"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        heartbeat_at=row["heartbeat_at"],
        status=row["status"],
        dry_run=row["dry_run"],
        allow_mass_delete=row["allow_mass_delete"],
        trigger=row["trigger"],
        host=row["host"],
        pid=row["pid"],
        counts={name: row[name] for name in COUNT_COLUMNS},
        planned=json.loads(row["planned_text"]),
        timings=json.loads(row["timings_text"]),
        blocked_reason=row["blocked_reason"],
        error=row["error"],
    )
