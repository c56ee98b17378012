"""The queries behind `syncd status` (sql/queries/status.sql) and the daemon's record of when a
job runs next. Reads syncd's tables only; decides nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from syncd.db.pool import Connection, translating
from syncd.db.sql import QUERIES


async def job_overview(conn: Connection, job: str) -> dict[str, Any]:
    """The last run, the last success and the recorded next run of `job` (NULLs: unknown)."""
    with translating(conn=conn):
        row = await conn.fetchrow(QUERIES["job_overview"], job)
        counts = await conn.fetchrow(QUERIES["job_ledger_counts"], job)
    found = dict(row) if row is not None else {}
    found.update({k: int(v) for k, v in dict(counts or {}).items()})
    return found


async def record_schedule(
    conn: Connection, job: str, next_run_at: datetime | None, scheduled_by: str
) -> None:
    """What the daemon that schedules `job` says of its next run."""
    with translating(conn=conn):
        await conn.execute(QUERIES["record_schedule"], job, next_run_at, scheduled_by)
