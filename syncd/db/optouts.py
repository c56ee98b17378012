"""The fast opt-out pass in PostgreSQL (`OptOutSession`): a dedicated connection that holds the
job's lock (or not: see `locked`), reads the candidates — local rows newly opted out whose
ledger row remembers them mailable — and records the pass's decisions in the ledger.

It decides nothing: which candidates are pushed is decision.py's `decide()`, what the pass does
is syncd.reconcile.optouts'. The read of the user's table is the optout_candidates template,
built from the very expressions of a full run's local scan (syncd.db.local), so the fingerprint
a pass records is the one the next full run computes. Pushes are recorded through
syncd.db.Database like a run's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from syncd.config import DatabaseConfig, JobConfig
from syncd.db import runs
from syncd.db.local import create_key_functions, row_exprs
from syncd.db.migrate import ensure_schema
from syncd.db.pool import (
    DedicatedConnection,
    bounded_lock_call,
    close_dedicated,
    connect,
    translating,
)
from syncd.db.source import SourceInfo, describe_source
from syncd.db.sql import QUERIES
from syncd.db.templates import Ident, render
from syncd.errors import SyncdError

_ALIAS = "src"  # the user's table in the candidates statement (as in syncd.db.local)


@dataclass(frozen=True, slots=True)
class OptOutCandidate:
    """One opted-out local contact and what the ledger remembers of it (plain values)."""

    key: str
    fingerprint: int  # of the local row, opted out: what Selzy holds once the opt-out is in
    pushed_fp: int | None
    intent_action: str | None
    suppressed_reason: str | None
    quarantined_at: datetime | None
    rejected_fp: int | None
    list_status: str  # subscribed | unsubscribed | absent (this list, the match channel)
    email_status: str | None
    phone_status: str | None
    email_unsubscribed_list_ids: str | None
    phone_unsubscribed_list_ids: str | None
    decision: str | None  # the last decision recorded for it


def candidates_sql(job: JobConfig, source: SourceInfo, profile: Sequence[str]) -> str:
    """The optout_candidates statement for `job` ($1 job, $2 channel, $3 profile field names,
    $4 limit). Needs the pg_temp key and fingerprint functions on the connection."""
    if job.opt_out_column is None:
        raise ValueError(f"job {job.name!r} has no opt_out_column")
    row = row_exprs(job, profile)
    return render(
        "optout_candidates",
        table=Ident(source.schema, source.name),
        opted_out=Ident(_ALIAS, job.opt_out_column),
        key_raw=row.key_raw,
        key=row.key,
        vals=row.vals,
    ).sql


class OptOutSession:
    """One pass of one job on a dedicated connection. Open it with `open()`: it connects, finds
    the job and tries its lock without waiting; `locked` says whether it got it. Leaving the
    block frees the lock and closes the connection."""

    def __init__(
        self,
        conn: DedicatedConnection,
        job: JobConfig,
        source: SourceInfo | None,
        *,
        locked: bool,
        known: bool = True,
    ) -> None:
        self._conn = conn
        self.job = job
        self._source = source
        self.locked = locked
        self.known = known  # the job has run before (a ledger to read, a lock key)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, cfg: DatabaseConfig, job: JobConfig) -> AsyncIterator[OptOutSession]:
        """`locked` is False when a run (or an event worker) holds the job's lock, or the job
        never ran (it has no ledger to read yet). ConfigError when the job's table or columns
        are gone, SchemaError when syncd's schema is not migrated, DatabaseError otherwise."""
        conn = await connect(cfg)
        try:
            await ensure_schema(conn)
            with translating(conn=conn):
                job_id: int | None = await conn.fetchval(QUERIES["optout_job_id"], job.name)
            locked = False
            source = None
            if job_id is not None:
                source = await describe_source(conn, job)
                async with bounded_lock_call(cfg.lock_timeout, "the job lock"):
                    locked = await runs.try_lock_job(conn, job_id)
            try:
                yield cls(conn, job, source, locked=locked, known=job_id is not None)
            finally:
                if locked and job_id is not None:
                    with contextlib.suppress(SyncdError):
                        async with bounded_lock_call(cfg.lock_timeout, "the job unlock"):
                            await runs.unlock_job(conn, job_id)
        finally:
            await close_dedicated(conn)

    def _held(self) -> SourceInfo:
        if not self.locked or self._source is None:
            raise RuntimeError("the opt-out session does not hold the job's lock")
        return self._source

    async def candidates(self, profile: Sequence[str], *, limit: int) -> list[OptOutCandidate]:
        """Up to `limit` opted-out local contacts the ledger remembers as mailable, by key."""
        statement = candidates_sql(self.job, self._held(), profile)
        await create_key_functions(self._conn)
        with translating(conn=self._conn):
            rows = await self._conn.fetch(
                statement, self.job.name, self.job.match, list(profile), limit
            )
        return [OptOutCandidate(**dict(row)) for row in rows]

    async def record_decisions(self, *, run_id: int, decided: Sequence[tuple[str, str]]) -> int:
        """The pass's (key, reason) decisions into the ledger and, where a decision changed, the
        history (one transaction); the history rows written."""
        self._held()
        if not decided:
            return 0
        with translating(conn=self._conn):
            status = await self._conn.execute(
                QUERIES["optout_decisions"],
                self.job.name,
                run_id,
                [key for key, _ in decided],
                [reason for _, reason in decided],
            )
        return int(status.rsplit(" ", 1)[-1])
