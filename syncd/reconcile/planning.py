"""The plan phase of a run: stage the export, read the local source, find duplicates and build
TEMP syncd_plan on the run's dedicated connection, in that order (each step needs the previous
ones' TEMP tables).

It sequences the statements of syncd.db.plan and syncd.db.local and returns what the runner
needs to count and guard; it decides nothing itself (the rules are decision.py, applied by the
plan SQL through pg_temp.syncd_decide) and writes nothing outside the session's TEMP tables but
the suppressions carried over from schema 0001, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from syncd.config import JobConfig
from syncd.db import Connection, SourceInfo
from syncd.db.local import build_local, create_key_functions
from syncd.db.plan import (
    PlanSummary,
    absorb_carried_suppressions,
    build_plan,
    create_decide_function,
    dedupe,
    plan_counts,
    stage_remote,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PlanResult:
    summary: PlanSummary
    local_count: int  # rows in the local source
    local_valid: int  # rows with a usable key
    remote_count: int  # contacts of the list in the export


async def plan_run(
    conn: Connection, job: JobConfig, source: SourceInfo, profile: Sequence[str], *, exported: int
) -> PlanResult:
    """Build TEMP syncd_plan for `job` from TEMP syncd_export (`exported` rows)."""
    await create_key_functions(conn)
    await create_decide_function(conn)
    await absorb_carried_suppressions(conn, job=job.name, list_id=job.list_id, channel=job.match)
    keyed = await stage_remote(conn, channel=job.match, list_id=job.list_id)
    if keyed < exported:
        log.warning("export_rows_without_key", rows=exported - keyed, channel=job.match)
    local_count = await build_local(conn, job, source, profile)
    remote_count = await dedupe(conn)
    await build_plan(
        conn,
        job=job.name,
        list_id=job.list_id,
        channel=job.match,
        delete_mode=job.delete_mode,
        remote_only=job.remote_only,
        writeback=tuple(job.writeback),
    )
    summary = await plan_counts(conn)
    invalid = summary.actions["invalid_key"].rows if "invalid_key" in summary.actions else 0
    return PlanResult(
        summary=summary,
        local_count=local_count,
        local_valid=local_count - invalid,
        remote_count=remote_count,
    )
