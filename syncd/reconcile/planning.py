"""The plan phase of a run, in two halves on the run's session. `read_local` needs nothing from
Selzy: the session's functions, TEMP syncd_local (one scan of the user's table) and the local
rows reported rather than planned (unusable keys, duplicates); the runner starts it while Selzy
prepares the export, on the otherwise idle session connection. `plan_run`, once the export is
staged: TEMP syncd_remote, one row per exported key, and TEMP syncd_plan (each step needs the
previous ones' TEMP tables).

It sequences the steps of the RunSession and returns what the runner needs to count and guard;
it decides nothing itself (the rules are decision.py, applied by the plan SQL through
pg_temp.syncd_decide) and writes nothing outside the session's TEMP tables but the suppressions
carried over from schema 0001, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from syncd.db import PlanSummary, RunSession

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PlanResult:
    summary: PlanSummary
    local_count: int  # rows in the local source
    local_valid: int  # rows with a usable key
    remote_count: int  # contacts of the list in the export


async def read_local(session: RunSession, profile: Sequence[str]) -> int:
    """The local half (no export needed); the rows in the local source. After session.tune()."""
    await session.create_functions()
    local_count = await session.build_local(profile)
    await session.find_local_duplicates()
    return local_count


async def plan_run(session: RunSession, *, local_count: int, exported: int) -> PlanResult:
    """Build TEMP syncd_plan for the session's job from TEMP syncd_export (`exported` rows) and
    the local half `read_local` left (`local_count` rows)."""
    channel = session.job.match
    await session.absorb_carried_suppressions()
    keyed = await session.stage_remote()
    if keyed < exported:
        log.warning("export_rows_without_key", rows=exported - keyed, channel=channel)
    remote_count = await session.dedupe_remote()
    await session.build_plan()
    summary = await session.plan_counts()
    invalid = summary.actions["invalid_key"].rows if "invalid_key" in summary.actions else 0
    return PlanResult(
        summary=summary,
        local_count=local_count,
        local_valid=local_count - invalid,
        remote_count=remote_count,
    )
