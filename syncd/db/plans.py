"""Binding plans in PostgreSQL (sql/queries/plans.sql): a plan run keeps its TEMP syncd_plan as
syncd.plans + syncd.plan_rows; an apply run holds its fresh plan to the stored one. Decides
nothing: what counts as the same decision is the SQL's (same action, reason and values).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.config import DatabaseConfig
from syncd.db.migrate import ensure_schema
from syncd.db.pool import Connection, connect, translating
from syncd.db.sql import QUERIES

PAGE_ROWS = 5000  # plan rows per fetch when streaming a plan out


@dataclass(frozen=True, slots=True)
class StoredPlan:
    id: int
    job: str
    created_at: datetime
    run_id: int
    config_hash: str
    allow_mass_delete: bool
    blocked_reason: str | None
    counts: Mapping[str, int]
    applied_run: int | None
    applied_status: str | None  # the status of the run that applied it


@dataclass(frozen=True, slots=True)
class Drift:
    contacts: int
    sample: tuple[str, ...]


async def store_plan(
    conn: Connection,
    *,
    job: str,
    run_id: int,
    config_hash: str,
    allow_mass_delete: bool,
    blocked_reason: str | None,
    counts: Mapping[str, int],
) -> int:
    """Keep the session's TEMP syncd_plan as a plan; its id."""
    with translating(conn=conn):
        async with conn.transaction():
            plan_id = await conn.fetchval(
                QUERIES["store_plan"],
                job,
                run_id,
                config_hash,
                allow_mass_delete,
                blocked_reason,
                json.dumps(dict(counts)),
            )
            await conn.execute(QUERIES["link_run_plan"], run_id, plan_id)
    return int(plan_id)


def _plan(row: Mapping[str, Any]) -> StoredPlan:
    counts = row["counts"]
    return StoredPlan(
        id=row["id"],
        job=row["job"],
        created_at=row["created_at"],
        run_id=row["run_id"],
        config_hash=row["config_hash"],
        allow_mass_delete=row["allow_mass_delete"],
        blocked_reason=row["blocked_reason"],
        counts=json.loads(counts) if isinstance(counts, str) else dict(counts),
        applied_run=row["applied_run"],
        applied_status=row["applied_status"],
    )


async def load_plan(database: DatabaseConfig, plan_id: int) -> StoredPlan | None:
    conn = await connect(database)
    try:
        await ensure_schema(conn)
        with translating(conn=conn):
            row = await conn.fetchrow(QUERIES["get_plan"], plan_id)
    finally:
        await conn.close()
    return _plan(dict(row)) if row is not None else None


async def plan_rows(database: DatabaseConfig, plan_id: int) -> AsyncIterator[dict[str, Any]]:
    """Every row of a stored plan in order, PAGE_ROWS at a time (memory stays flat)."""
    conn = await connect(database)
    try:
        after = 0
        while True:
            with translating(conn=conn):
                page = await conn.fetch(QUERIES["plan_rows_page"], plan_id, after, PAGE_ROWS)
            if not page:
                return
            for row in page:
                yield {
                    "seq": row["seq"],
                    "key": row["key"],
                    "action": row["action"],
                    "reason": row["reason"],
                    "values": list(row["vals"]) if row["vals"] is not None else None,
                }
            after = int(page[-1]["seq"])
    finally:
        await conn.close()


async def restrict_to_plan(conn: Connection, plan_id: int) -> Drift:
    """Hold the session's fresh plan to the stored one: what differs becomes 'drift'."""
    with translating(conn=conn):
        row = await conn.fetchrow(QUERIES["restrict_to_plan"], plan_id)
    if row is None:  # pragma: no cover - the statement always returns one row
        return Drift(contacts=0, sample=())
    return Drift(contacts=int(row["drift"]), sample=tuple(row["sample"]))


async def mark_applied(conn: Connection, plan_id: int, run_id: int) -> bool:
    """Claim the plan for this run; False when another run applied it already."""
    with translating(conn=conn):
        async with conn.transaction():
            claimed = await conn.fetchval(QUERIES["mark_plan_applied"], plan_id, run_id)
            if claimed is not None:
                await conn.execute(QUERIES["link_run_plan"], run_id, plan_id)
    return claimed is not None
