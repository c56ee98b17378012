"""What `syncd explain` reads of one contact (sql/queries/explain.sql and the local_explain
template): the user's rows holding its key, its ledger row, its history and its per-row outcomes,
for one job. Read-only; keys arrive canonical (syncd.reconcile.keys); decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.config import DatabaseConfig, JobConfig
from syncd.db.local import create_key_functions, explain_rows
from syncd.db.migrate import ensure_schema
from syncd.db.pool import Connection, connect, translating
from syncd.db.source import describe_source
from syncd.db.sql import QUERIES

HISTORY_ROWS = 200  # the newest history rows shown per contact
OUTCOME_ROWS = 20


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """Everything one job's side of syncd holds of one contact (plain values, JSON-ready)."""

    job: str
    key: str
    local_rows: list[dict[str, Any]] = field(default_factory=list)
    ledger: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return bool(self.local_rows or self.ledger or self.history or self.outcomes)


async def _ledger_key(conn: Connection, job: JobConfig, keys: Mapping[str, str]) -> str | None:
    """The job's key for what was asked: the match channel's canonical form, or the ledger key
    of the contact whose other-channel address it is."""
    if keys.get(job.match):
        return keys[job.match]
    for channel, key in keys.items():
        if key:
            found = await conn.fetchval(
                QUERIES["explain_key_by_other_channel"], job.name, channel, key
            )
            if found:
                return str(found)
    return None


async def _record(
    conn: Connection, job: JobConfig, profile: Sequence[str], keys: Mapping[str, str]
) -> ContactRecord | None:
    key = await _ledger_key(conn, job, keys)
    if key is None:
        return None
    source = await describe_source(conn, job)
    local = await explain_rows(conn, job, source, profile, key)
    ledger = await conn.fetchrow(QUERIES["explain_ledger"], job.name, key)
    history = await conn.fetch(QUERIES["explain_history"], job.name, key, HISTORY_ROWS)
    outcomes = await conn.fetch(QUERIES["explain_outcomes"], job.name, key, OUTCOME_ROWS)
    return ContactRecord(
        job=job.name,
        key=key,
        local_rows=local,
        ledger=dict(ledger) if ledger is not None else None,
        history=[dict(r) for r in history],
        outcomes=[dict(r) for r in outcomes],
    )


async def explain_contact(
    database: DatabaseConfig,
    jobs: Sequence[tuple[JobConfig, Sequence[str]]],
    keys: Mapping[str, str],
) -> list[ContactRecord]:
    """For each (job, profile field names): what syncd holds of the contact whose canonical
    key per channel is `keys` ({"email": ..., "phone": ...}; '' where it is not one)."""
    conn = await connect(database)
    try:
        await ensure_schema(conn)
        await create_key_functions(conn)
        records = []
        with translating(conn=conn):
            for job, profile in jobs:
                record = await _record(conn, job, profile, keys)
                if record is not None and record.known:
                    records.append(record)
        return records
    finally:
        await conn.close()
