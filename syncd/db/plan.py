"""Typed wrappers of sql/queries/plan.sql and mirror.sql: staging the export, building the plan
and streaming it, the remote mirror and the suppression list.

Everything here runs on the run's dedicated connection, where the TEMP tables live (syncd_export,
syncd_local, syncd_local_odd, syncd_dupkey, syncd_remote, syncd_plan). It decides nothing: the
rules are in the SQL.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import asyncpg

from syncd.db.pool import Connection, translating
from syncd.db.sql import QUERIES
from syncd.errors import DatabaseError


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
    forget: int  # pushed rows of keys neither local nor in the list any more


@dataclass(frozen=True, slots=True)
class MirrorResult:
    status_changes: int
    removed: int
    new_suppressions: int


_WRITEBACK_FLAGS = ("email_status", "phone_status", "email_availability", "list_status")


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def tune_session(conn: Connection) -> None:
    """Session settings of the run's connection; before its first TEMP table (temp_buffers)."""
    with translating():
        await conn.execute(QUERIES["tune_session"])


async def stage_remote(conn: Connection, *, channel: str, list_id: int) -> int:
    """TEMP syncd_remote from TEMP syncd_export: the rows with a usable key of `channel`
    (duplicated keys are removed later by dedupe). Returns how many rows that is."""
    with translating():
        status = await conn.execute(QUERIES["stage_remote"], channel, str(list_id))
        await conn.execute(QUERIES["analyze_remote"])
    return _count(status)


async def dedupe(conn: Connection) -> int:
    """Keep one exported row per key (TEMP syncd_remote, indexed on its key) and find the local
    rows build_plan reports instead of planning: unusable keys and keys held twice (TEMP
    syncd_local_odd, syncd_dupkey). Needs syncd_local and syncd_remote. Returns the list's
    contact count."""
    with translating():
        try:
            await conn.execute(QUERIES["index_remote"])
        except asyncpg.UniqueViolationError:  # the export holds a key twice: the rare path
            await conn.execute(QUERIES["dedupe_remote"])
            await conn.execute(QUERIES["index_remote"])
        await conn.execute(QUERIES["find_local_duplicates"])
        remote_count = await conn.fetchval(QUERIES["remote_count"])
    return int(remote_count)


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
    """TEMP syncd_plan from syncd_local, syncd_remote, syncd.pushed and syncd.suppressions.
    `writeback`: the configured writeback keys (email_status, list_status, ...)."""
    flags = [name in writeback for name in _WRITEBACK_FLAGS]
    with translating():
        await conn.execute(QUERIES["create_plan_table"])
        await conn.execute(
            QUERIES["build_plan"], job, list_id, channel, delete_mode, remote_only, *flags
        )
        await conn.execute(QUERIES["index_plan"])


async def plan_counts(conn: Connection) -> PlanSummary:
    with translating():
        rows = await conn.fetch(QUERIES["plan_counts"])
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
        forget=bookkeeping.get("forget", 0),
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


async def cleanup_pushed(conn: Connection, *, job: str, forget: int) -> int:
    """Drop the pushed rows the plan marked 'forget' (`forget`: how many; none: no statement)."""
    if not forget:
        return 0
    with translating():
        return _count(await conn.execute(QUERIES["cleanup_pushed"], job))


async def update_mirror(
    conn: Connection, *, job: str, run_id: int, list_id: int, channel: str
) -> MirrorResult:
    """syncd.remote_contacts and syncd.suppressions from syncd_remote, in one transaction."""
    with translating():
        async with conn.transaction():
            row = await conn.fetchrow(QUERIES["mirror_sync"], job, run_id)
            suppressed = await conn.execute(
                QUERIES["mirror_suppressions"], list_id, channel, run_id
            )
    if row is None:  # pragma: no cover - the statement always returns one row
        raise DatabaseError("mirror_sync returned no row")
    return MirrorResult(
        status_changes=int(row["status_changes"]),
        removed=int(row["removed"]),
        new_suppressions=_count(suppressed),
    )
