"""Typed wrappers of sql/queries/plan.sql and decide.sql: staging the export, building the plan
(one join of the local rows, the export and the contact ledger, decided by pg_temp.syncd_decide)
and streaming it, and bringing the ledger up to date with what the plan saw.

Everything here runs on the run's dedicated connection, where the TEMP tables live (syncd_export,
syncd_local, syncd_local_odd, syncd_dupkey, syncd_remote, syncd_plan). It decides nothing: the
rules are decision.py, as SQL in decide.sql.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import asyncpg

from syncd.db.pool import Connection, translating
from syncd.db.sql import QUERIES


@dataclass(frozen=True, slots=True)
class PlanRow:
    seq: int
    key: str
    vals: tuple[str, ...] | None
    fingerprint: int | None


@dataclass(frozen=True, slots=True)
class PlannedAction:
    rows: int
    remote_only: int


@dataclass(frozen=True, slots=True)
class PlanSummary:
    actions: dict[str, PlannedAction]  # the reported actions (add, update, delete, keep, ...)
    writeback: int  # contacts whose local writeback columns differ from Selzy's view
    ledger: int  # ledger rows the plan changes (local side, Selzy's view, forgotten contacts)
    status_changes: int  # Selzy-side status changes since the ledger's last view
    reasons: dict[str, int]  # the reported actions per decision rule (decision.REASONS codes)


@dataclass(frozen=True, slots=True)
class LedgerResult:
    written: int
    forgotten: int
    history: int  # history rows appended (changed decisions, Selzy-side changes)


_WRITEBACK_FLAGS = ("email_status", "phone_status", "email_availability", "list_status")


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def tune_session(conn: Connection) -> None:
    """Session settings of the run's connection; before its first TEMP table (temp_buffers)."""
    with translating():
        await conn.execute(QUERIES["tune_session"])


async def create_decide_function(conn: Connection) -> None:
    """pg_temp.syncd_decide on this connection (before build_plan)."""
    with translating():
        await conn.execute(QUERIES["create_decide_function"])


async def absorb_carried_suppressions(
    conn: Connection, *, job: str, list_id: int, channel: str
) -> int:
    """Move suppressions carried over from schema 0001 for this list into the job's ledger."""
    with translating():
        return _count(
            await conn.execute(QUERIES["absorb_carried_suppressions"], job, list_id, channel)
        )


async def stage_remote(conn: Connection, *, channel: str, list_id: int) -> int:
    """TEMP syncd_remote from TEMP syncd_export: the rows with a usable key of `channel`
    (duplicated keys are removed later by dedupe). Returns how many rows that is."""
    with translating():
        status = await conn.execute(QUERIES["stage_remote"], channel, str(list_id))
        await conn.execute(QUERIES["analyze_remote"])
    return _count(status)


async def dedupe_remote(conn: Connection) -> int:
    """Keep one exported row per key (TEMP syncd_remote, indexed on its key). Returns the list's
    contact count."""
    with translating():
        try:
            await conn.execute(QUERIES["index_remote"])
        except asyncpg.UniqueViolationError:  # the export holds a key twice: the rare path
            await conn.execute(QUERIES["dedupe_remote"])
            await conn.execute(QUERIES["index_remote"])
        remote_count = await conn.fetchval(QUERIES["remote_count"])
    return int(remote_count)


async def find_local_duplicates(conn: Connection) -> None:
    """The local rows build_plan reports instead of planning: unusable keys and keys held twice
    (TEMP syncd_local_odd, syncd_dupkey). Needs syncd_local only."""
    with translating():
        await conn.execute(QUERIES["find_local_duplicates"])


async def build_plan(
    conn: Connection,
    *,
    job: str,
    list_id: int,
    channel: str,
    delete_mode: str,
    remote_only: str,
    writeback: Collection[str] = (),
) -> None:
    """TEMP syncd_plan from syncd_local, syncd_remote and the job's ledger rows.
    `writeback`: the configured writeback keys (email_status, list_status, ...)."""
    flags = [name in writeback for name in _WRITEBACK_FLAGS]
    with translating():
        await conn.execute(QUERIES["create_plan_table"])
        await conn.execute(QUERIES["build_plan"], job, channel, delete_mode, remote_only, *flags)
        await conn.execute(QUERIES["index_plan"])


async def plan_counts(conn: Connection) -> PlanSummary:
    with translating():
        rows = await conn.fetch(QUERIES["plan_counts"])
        reason_rows = await conn.fetch(QUERIES["plan_reasons"])
    actions: dict[str, PlannedAction] = {}
    bookkeeping: dict[str, int] = {}
    for r in rows:
        if r["action"].startswith("."):
            bookkeeping[r["action"][1:]] = int(r["rows"])
        else:
            actions[r["action"]] = PlannedAction(int(r["rows"]), int(r["remote_only"]))
    return PlanSummary(
        actions=actions,
        writeback=bookkeeping.get("writeback", 0),
        ledger=bookkeeping.get("ledger", 0),
        status_changes=bookkeeping.get("status_changes", 0),
        reasons={r["reason"]: int(r["rows"]) for r in reason_rows},
    )


async def plan_sample(conn: Connection, per_action: int) -> dict[str, list[str]]:
    """The first `per_action` keys of every action, in plan order."""
    with translating():
        rows = await conn.fetch(QUERIES["plan_sample"], per_action)
    sample: dict[str, list[str]] = {}
    for row in rows:
        sample.setdefault(row["action"], []).append(row["key"])
    return sample


async def plan_batch(conn: Connection, action: str, after_seq: int, limit: int) -> list[PlanRow]:
    """The next `limit` rows of `action` after `after_seq`, in seq order (empty: done)."""
    with translating():
        rows = await conn.fetch(QUERIES["plan_batch"], action, after_seq, limit)
    return [
        PlanRow(
            seq=int(r["seq"]),
            key=r["key"],
            vals=tuple(r["vals"]) if r["vals"] is not None else None,
            fingerprint=r["fingerprint"],
        )
        for r in rows
    ]


async def record_plan_outcomes(conn: Connection, *, run_id: int, job: str) -> int:
    """Invalid keys, duplicates and quarantined contacts of the plan into syncd.row_outcomes."""
    with translating():
        return _count(await conn.execute(QUERIES["record_plan_outcomes"], run_id, job))


async def sync_ledger(
    conn: Connection, *, job: str, run_id: int, channel: str, changes: int
) -> LedgerResult:
    """The ledger rows the plan found out of date, in one transaction (`changes`: how many;
    none: no statement at all, so a run with nothing to change writes nothing)."""
    if not changes:
        return LedgerResult(written=0, forgotten=0, history=0)
    with translating():
        async with conn.transaction():
            history = await conn.execute(QUERIES["record_plan_history"], job, run_id)
            written = await conn.execute(QUERIES["ledger_sync"], job, run_id)
            forgotten = await conn.execute(QUERIES["ledger_forget"], job)
    return LedgerResult(
        written=_count(written), forgotten=_count(forgotten), history=_count(history)
    )


async def prune_history(conn: Connection, *, job: str, days: int) -> int:
    """Drop the job's history rows older than `days` days; how many went."""
    with translating():
        return _count(await conn.execute(QUERIES["prune_history"], job, days))


async def vacuum_ledger(conn: Connection) -> None:
    """VACUUM (ANALYZE) the ledger and the digest's tables (outside any transaction)."""
    with translating():
        await conn.execute(QUERIES["vacuum_ledger"])


async def backend_pid(conn: Connection) -> int:
    with translating():
        return int(await conn.fetchval(QUERIES["backend_pid"]))


async def log_plans(conn: Connection) -> None:
    with translating():
        await conn.execute(QUERIES["log_plans"])
