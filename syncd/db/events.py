"""Selzy's event webhooks in PostgreSQL (syncd.events, syncd.event_queue): the receiver's store,
the worker's routing and backlog reads (`EventStore`, on the pool), and the apply of fetched
contacts under the job's lock (`EventSession`, a dedicated connection of its own).

It decides nothing: which contact a stored event concerns is route_events' SQL, what Selzy's
answer means is syncd.events.truth's, when to apply or ask for a run is the worker's. The
writeback UPDATE names the user's table only through the event_writeback template.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from syncd.config import DatabaseConfig, JobConfig
from syncd.db import runs
from syncd.db.migrate import ensure_schema
from syncd.db.pool import (
    DedicatedConnection,
    Pool,
    bounded_lock_call,
    close_dedicated,
    connect,
    translating,
)
from syncd.db.source import SourceInfo, describe_source
from syncd.db.sql import QUERIES
from syncd.db.templates import Fragment, Ident, join, render
from syncd.errors import SyncdError

log = structlog.get_logger(__name__)

_ALIAS = "src"  # the user's table in the writeback statement
# writeback key -> column of the event_writeback template's `u` (what getContact shows);
# phone_status is not among them: getContact shows the email channel only
EVENT_WRITEBACK_SOURCE = {
    "email_status": "email_status",
    "email_availability": "email_availability",
    "list_status": "list_status",
}


class EventRow(Protocol):
    """One verified event as the receiver parsed it (syncd.events.payload.Event)."""

    @property
    def digest(self) -> bytes: ...
    @property
    def name(self) -> str: ...
    @property
    def time(self) -> datetime | None: ...
    @property
    def email(self) -> str: ...
    @property
    def list_ids(self) -> tuple[int, ...] | None: ...
    @property
    def data(self) -> Mapping[str, object]: ...


@dataclass(frozen=True, slots=True)
class Routed:
    events: int  # stored events routed
    contacts: int  # queue rows written (new or bumped)


@dataclass(frozen=True, slots=True)
class Backlog:
    job: str
    contacts: int
    events: int
    oldest: datetime


@dataclass(frozen=True, slots=True)
class QueuedContact:
    """A job's queue row: a contact with events not applied yet."""

    key: str
    email: str
    version: int
    last_event: str
    events: int


@dataclass(frozen=True, slots=True)
class ContactView:
    """Selzy's email-channel view of one contact, as getContact showed it (syncd.events.truth)."""

    key: str
    email: str
    email_status: str
    email_availability: str
    email_list_ids: str | None  # comma-separated, as an export writes them
    email_unsubscribed_list_ids: str | None
    list_status: str  # of the job's list: subscribed | unsubscribed | absent


@dataclass(frozen=True, slots=True)
class Applied:
    changed: tuple[str, ...]  # keys whose ledger view or local row changed
    written_back: int  # local rows whose writeback columns changed
    dequeued: int


class EventStore:
    """The pooled operations on stored events; owned by whoever owns the Pool."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def store(self, events: Sequence[EventRow]) -> int:
        """Store verified events in one transaction; how many were new (not a replay)."""
        if not events:
            return 0
        args = (
            [e.digest for e in events],
            [e.name for e in events],
            [e.time for e in events],
            [e.email for e in events],
            [None if e.list_ids is None else ",".join(map(str, e.list_ids)) for e in events],
            [json.dumps(e.data, separators=(",", ":")) for e in events],
        )
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                stored: int = await conn.fetchval(QUERIES["store_events"], *args)
        return stored

    async def route(self, jobs: Sequence[tuple[str, int]], *, limit: int) -> Routed:
        """Queue up to `limit` stored events for the (name, list_id) email jobs they concern."""
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                row = await conn.fetchrow(
                    QUERIES["route_events"], [j for j, _ in jobs], [i for _, i in jobs], limit
                )
        assert row is not None  # noqa: S101 - an aggregate always gives its row
        return Routed(events=int(row["events"]), contacts=int(row["contacts"]))

    async def backlogs(self) -> list[Backlog]:
        """Every job's queue: contacts, events folded in, the oldest row's age."""
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                rows = await conn.fetch(QUERIES["event_backlogs"])
        return [Backlog(r["job"], r["contacts"], r["events"], r["oldest"]) for r in rows]

    async def pending(self) -> int:
        """Stored events not routed yet."""
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                pending: int = await conn.fetchval(QUERIES["events_pending"])
        return pending

    async def discard_covered(self, job: str) -> int:
        """Drop the job's queue rows its last real run already covered; rows dropped."""
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                status = await conn.execute(QUERIES["discard_covered_events"], job)
        return int(status.rsplit(" ", 1)[-1])

    async def backlog(self, job: str) -> int:
        """The job's queue rows: contacts with events not applied yet."""
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                contacts: int = await conn.fetchval(QUERIES["event_backlog"], job)
        return contacts

    async def take(self, job: str, limit: int) -> list[QueuedContact]:
        """The job's oldest `limit` queue rows (they stay queued until applied)."""
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                rows = await conn.fetch(QUERIES["take_event_queue"], job, limit)
        return [
            QueuedContact(r["key"], r["email"], r["version"], r["last_event"], r["events"])
            for r in rows
        ]

    async def latest_run_id(self, job: str) -> int:
        """The id of the job's newest run, 0 for none: an apply that sees a newer one when it
        writes knows a run may have written fresher knowledge meanwhile."""
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                run_id: int = await conn.fetchval(QUERIES["latest_run_id"], job)
        return run_id

    async def run_ended_since(self, job: str, run_id: int) -> bool:
        """Whether a real run of the job newer than `run_id` has ended (however it ended)."""
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                ended: bool = await conn.fetchval(QUERIES["run_ended_since"], job, run_id)
        return ended

    async def prune(self, older_than_days: int) -> int:
        async with self._pool.acquire() as conn:
            with translating(self._pool.cfg, conn):
                pruned: int = await conn.fetchval(QUERIES["prune_events"], older_than_days)
        return pruned


class EventSession:
    """The writes of one batch of fetched contacts of one job, on a dedicated connection that
    holds the job's lock (or not: see `locked`). Open it with `open()`."""

    def __init__(
        self, conn: DedicatedConnection, job: JobConfig, source: SourceInfo | None, *, locked: bool
    ) -> None:
        self._conn = conn
        self.job = job
        self._writeback = event_writeback_sql(job, source) if source is not None else None
        self.locked = locked

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, cfg: DatabaseConfig, job: JobConfig) -> AsyncIterator[EventSession]:
        """Connect and try the job's lock without waiting: `locked` is False when a run (or
        another worker) holds it. Leaving the block frees the lock and closes the connection.
        ConfigError when the job's table or columns are gone (writeback needs them)."""
        conn = await connect(cfg)
        try:
            await ensure_schema(conn)
            job_id = await runs.ensure_job(conn, job.name, list_id=job.list_id, match=job.match)
            source = await describe_source(conn, job) if _writes_back(job) else None
            async with bounded_lock_call(cfg.lock_timeout, "the job lock"):
                locked = await runs.try_lock_job(conn, job_id)
            try:
                yield cls(conn, job, source, locked=locked)
            finally:
                if locked:
                    with contextlib.suppress(SyncdError):
                        async with bounded_lock_call(cfg.lock_timeout, "the job unlock"):
                            await runs.unlock_job(conn, job_id)
        finally:
            await close_dedicated(conn)

    async def apply(
        self, taken: Sequence[QueuedContact], views: Mapping[str, ContactView], *, since_run: int
    ) -> Applied | None:
        """In one transaction, for the `taken` queue rows that no newer event changed meanwhile:
        remove them, write their `views` (by key; a contact without one is only dequeued) into
        the ledger and the writeback columns, and add one 'event' history row per contact whose
        ledger view or local row changed. None, and nothing written, when a run of the job
        started after `since_run` (the newest run when the contacts were fetched): it may have
        written fresher knowledge than these answers."""
        job = self.job.name
        actions = {q.key: q.last_event for q in taken}
        changed: dict[str, list[str]] = {}
        written_back = 0
        with translating(conn=self._conn):
            async with self._conn.transaction():
                if await self._conn.fetchval(QUERIES["latest_run_id"], job) != since_run:
                    return None
                rows = await self._conn.fetch(
                    QUERIES["dequeue_events"],
                    job,
                    [q.key for q in taken],
                    [q.version for q in taken],
                )
                dequeued = {row["key"] for row in rows}
                fresh = [views[k] for k in sorted(dequeued) if k in views]
                if fresh:
                    for row in await self._conn.fetch(
                        QUERIES["event_ledger"], job, *_columns(fresh)
                    ):
                        changed.setdefault(row["key"], []).append(row["change"])
                    members = [v for v in fresh if v.list_status != "absent"]
                    if self._writeback is not None and members:
                        keys = await self._conn.fetch(
                            self._writeback,
                            [v.key for v in members],
                            [v.email_status for v in members],
                            [v.email_availability for v in members],
                            [v.list_status for v in members],
                        )
                        written_back = len(keys)
                        for row in keys:
                            changed.setdefault(row["key"], []).append("written back")
                if changed:
                    keys_changed = sorted(changed)
                    await self._conn.execute(
                        QUERIES["event_history"],
                        job,
                        keys_changed,
                        [actions.get(k) for k in keys_changed],
                        [_message(changed[k]) for k in keys_changed],
                    )
        return Applied(tuple(sorted(changed)), written_back, len(dequeued))


def _columns(views: Sequence[ContactView]) -> tuple[list[str | None], ...]:
    """event_ledger's $2..$8: one array per ContactView field, aligned."""
    return (
        [v.key for v in views],
        [v.email for v in views],
        [v.email_status for v in views],
        [v.email_availability for v in views],
        [v.email_list_ids for v in views],
        [v.email_unsubscribed_list_ids for v in views],
        [v.list_status for v in views],
    )


def _message(parts: Sequence[str]) -> str:
    """`list_status subscribed -> unsubscribed; written back` (one per local row written)."""
    seen = dict.fromkeys(parts)  # a duplicate local row is written back twice: say it once
    return "; ".join(seen)


def _writes_back(job: JobConfig) -> bool:
    return any(key in job.writeback for key in EVENT_WRITEBACK_SOURCE)


def _text(column: str) -> Fragment:
    return render("local_text_column", column=Ident(_ALIAS, column))


def event_writeback_sql(job: JobConfig, source: SourceInfo) -> str | None:
    """UPDATE the writeback columns getContact can fill (email_status, email_availability,
    list_status) of the local rows of the fetched contacts; None when the job maps none of them.
    $1 keys, $2 email_status, $3 email_availability, $4 list_status (text[], aligned)."""
    columns = [
        (column, Ident("u", EVENT_WRITEBACK_SOURCE[key]))
        for key, column in job.writeback.items()
        if key in EVENT_WRITEBACK_SOURCE
    ]
    if not columns or job.match != "email":
        return None
    return render(
        "event_writeback",
        table=Ident(source.schema, source.name),
        assignments=join(
            render("local_assignment", column=Ident(column), value=remote)
            for column, remote in columns
        ),
        key=render("event_email_key", value=_text(job.fields[job.match])),
        local_values=join(_text(column) for column, _ in columns),
        remote_values=join(remote for _, remote in columns),
    ).sql
