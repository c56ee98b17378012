"""The run log as alerts read it (sql/queries/alerts.sql): a finished run and the earlier runs
that say what state its job was in. Reads syncd.runs only; decides nothing (syncd.alerts does).
"""

from __future__ import annotations

from syncd.db.pool import Pool, translating
from syncd.db.runs import RunRecord, run_record
from syncd.db.sql import QUERIES


async def alert_history(pool: Pool, job: str, run_id: int, *, min_rows: int) -> list[RunRecord]:
    """Run `run_id` of `job`, last, after the earlier runs it is compared with, oldest first
    (`min_rows`: the fewest pushed rows whose rejected share counts); [] or only earlier runs
    when `run_id` is not a finished, non-dry run of `job`."""
    async with pool.acquire() as conn:
        with translating(pool.cfg, conn):
            rows = await conn.fetch(QUERIES["alert_history"], job, run_id, min_rows)
    return [run_record(dict(row), planned="planned_text", timings="timings_text") for row in rows]
