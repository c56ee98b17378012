"""Typed wrappers of sql/queries/plan.sql and mirror.sql: staging the export, building the plan
and streaming it, the remote mirror and the suppression list.

Everything here runs on the run's dedicated connection, where the TEMP tables live (syncd_export,
syncd_local, syncd_remote, syncd_plan). It decides nothing: the rules are in the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from syncd.db.pool import Connection, translating
from syncd.db.sql import QUERIES
from syncd.errors import DatabaseError


@dataclass(frozen=True, slots=True)
class RemoteStats:
    exported: int  # rows in the export file
    unkeyed: int  # rows without a usable key for the job's channel (skipped)
    remote_count: int  # contacts of the list (subscribed or unsubscribed there)


@dataclass(frozen=True, slots=True)
class PlanRow:
    seq: int
    key: str
    vals: tuple[str, ...] | None
    fingerprint: UUID | None


@dataclass(frozen=True, slots=True)
class PlannedAction:
    rows: int
    remote_only: int


@dataclass(frozen=True, slots=True)
class MirrorResult:
    status_changes: int
    removed: int
    new_suppressions: int


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def tune_session(conn: Connection) -> None:
    with translating():
        await conn.execute(QUERIES["tune_session"])


async def stage_remote(conn: Connection, *, channel: str, list_id: int) -> RemoteStats:
    """TEMP syncd_remote from TEMP syncd_export: one row per key of `channel`."""
    with translating():
        await conn.execute(QUERIES["stage_remote"], channel, str(list_id))
        await conn.execute(QUERIES["dedupe_remote"])
        await conn.execute(QUERIES["analyze_remote"])
        row = await conn.fetchrow(QUERIES["remote_stats"], channel)
    if row is None:  # pragma: no cover - an aggregate query always returns a row
        raise DatabaseError("remote_stats returned no row")
    return RemoteStats(
        exported=int(row["exported"]),
        unkeyed=int(row["unkeyed"]),
        remote_count=int(row["remote_count"]),
    )


async def build_plan(
    conn: Connection,
    *,
    job: str,
    list_id: int,
    channel: str,
    delete_mode: str,
    remote_only: str,
) -> None:
    """TEMP syncd_plan from syncd_local, syncd_remote, syncd.pushed and syncd.suppressions."""
    with translating():
        await conn.execute(QUERIES["plan_duplicate_keys"])
        await conn.execute(QUERIES["create_plan_table"])
        await conn.execute(QUERIES["build_plan"], job, list_id, channel, delete_mode, remote_only)
        await conn.execute(QUERIES["index_plan"])


async def plan_counts(conn: Connection) -> dict[str, PlannedAction]:
    with translating():
        rows = await conn.fetch(QUERIES["plan_counts"])
    return {r["action"]: PlannedAction(int(r["rows"]), int(r["remote_only"])) for r in rows}


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


async def cleanup_pushed(conn: Connection, *, job: str) -> int:
    with translating():
        return _count(await conn.execute(QUERIES["cleanup_pushed"], job))


async def update_mirror(
    conn: Connection, *, job: str, run_id: int, list_id: int, channel: str
) -> MirrorResult:
    """syncd.remote_contacts and syncd.suppressions from syncd_remote, in one transaction."""
    with translating():
        async with conn.transaction():
            status_changes = await conn.fetchval(QUERIES["mirror_upsert"], job, run_id)
            removed = await conn.execute(QUERIES["mirror_delete_missing"], job)
            suppressed = await conn.execute(
                QUERIES["mirror_suppressions"], list_id, channel, run_id
            )
    return MirrorResult(
        status_changes=int(status_changes),
        removed=_count(removed),
        new_suppressions=_count(suppressed),
    )
