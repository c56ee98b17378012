"""The event worker: applies stored events (syncd.db.events) to each email-matched job — routes
them to the jobs they concern, asks getContact for every queued contact (the payload is only
a hint), and writes the answers into the ledger and the writeback columns under the job's lock.

A job whose backlog exceeds `event_backlog_run` contacts gets one early run (`request_run`)
instead of that many getContact calls; its queue is then dropped as that run covers it.
Another is asked for once that run has ended, at most every EARLY_RUN_SPACING (events that came
during a storm wait a minute, not ten). A job whose lock is held (a run) keeps its queue for the
next pass. getContact calls go only while the API key's rate limit has room now, less a reserve for
the runs: a spent window defers the batch (and the pass after it) instead of stalling in the
limiter while the backlog passes event_backlog_run unnoticed. Phone-matched jobs are not served:
getContact looks contacts up by email only (selzy-api.md §6.1); their export covers them.
Nothing is held in memory between passes: what is not applied stays queued in PostgreSQL, so a
killed daemon applies it after restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import structlog

from syncd.api import SelzyClient
from syncd.config import DatabaseConfig, JobConfig
from syncd.db.events import Applied, ContactView, EventSession, EventStore, QueuedContact
from syncd.errors import ApiError, ConfigError, InvalidArgument, SelzyError, SyncdError
from syncd.events.throttle import LogThrottle
from syncd.events.truth import Unreadable, view_of

log = structlog.get_logger(__name__)

ROUTE_BATCH = 5000  # stored events routed per statement
APPLY_BATCH = 25  # contacts fetched, then written under the lock, at a time
FETCH_CONCURRENCY = 4  # getContact calls in flight per batch
POLL_INTERVAL = 5.0  # seconds between passes when nothing wakes the worker (a busy job, events
#                      stored by another syncd process)
RETRY_DELAY = 5.0  # seconds after a pass failed (PostgreSQL or Selzy unreachable)
EARLY_RUN_SPACING = 60.0  # seconds at least between two early runs of a job asked for
EARLY_RUN_COOLDOWN = 600.0  # seconds before an early run that never ended is asked for again
RATE_RESERVE = 0.1  # share of the key's rate limit left to runs (an early run's export goes now)
THROTTLE_DELAY = 1.0  # seconds before the next pass when the rate limit had no room
PRUNE_INTERVAL = 3600.0  # seconds between two prunes of old events
EVENT_RETENTION_DAYS = 7  # routed events are kept this long (replays within it are stored once)


@dataclass(slots=True)
class WorkerStats:
    """Counts since start, for the metrics."""

    passes: int = 0
    routed: int = 0  # stored events routed to the jobs
    fetched: int = 0  # getContact answers
    not_found: int = 0  # getContact did not know the address
    unreadable: int = 0  # answers with a status nobody documented: left to the export
    refused: int = 0  # getContact refused the one contact (an invalid address, ...)
    applied: int = 0  # contacts dequeued and written
    changed: int = 0  # contacts whose ledger view or local row changed
    written_back: int = 0  # local rows changed
    busy: int = 0  # batches put back because the job's lock was held
    superseded: int = 0  # batches put back because a run started while they were fetched
    throttled: int = 0  # batches not taken because the key's rate limit had no room
    early_runs: int = 0  # early runs asked for
    failures: int = 0  # passes that failed


@dataclass(frozen=True, slots=True)
class JobPass:
    """What one pass did for one job."""

    job: str
    applied: int = 0
    changed: int = 0
    backlog: int = 0
    early_run: bool = False
    busy: bool = False
    throttled: bool = False  # the key's rate limit had no room for getContact now


class EventWorker:
    """`run_forever` is the supervised task; `apply_pending` one pass (tests call it directly);
    `wake` (the receiver, after storing) starts a pass at once."""

    def __init__(
        self,
        *,
        store: EventStore,
        database: DatabaseConfig,
        client: SelzyClient,
        jobs: Callable[[], Sequence[JobConfig]],
        request_run: Callable[[str], None],
        poll_interval: float = POLL_INTERVAL,
        batch: int = APPLY_BATCH,
        early_run_spacing: float = EARLY_RUN_SPACING,
        early_run_cooldown: float = EARLY_RUN_COOLDOWN,
        throttle_delay: float = THROTTLE_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._database = database
        self._client = client
        self._jobs = jobs
        self._request_run = request_run
        self._poll_interval = poll_interval
        self._batch = batch
        self._spacing = early_run_spacing
        self._cooldown = early_run_cooldown
        self._throttle_delay = throttle_delay
        self._clock = clock
        self._wake = asyncio.Event()
        # job -> when its early run was asked for, and the job's newest run id then
        self._early: dict[str, tuple[float, int]] = {}
        self._pruned_at: float | None = None
        self._throttle = LogThrottle(clock=clock)
        self._not_served: set[str] = set()
        self.stats = WorkerStats()

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            delay = self._poll_interval
            try:
                passes = await self.apply_pending()
            except SyncdError as exc:
                self.stats.failures += 1
                self._warn("event_pass_failed", error=str(exc))
                delay = max(delay, RETRY_DELAY)
            else:
                if any(p.throttled for p in passes):  # not at every stored event: at a pace
                    await asyncio.sleep(self._throttle_delay)
                    continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def apply_pending(self) -> list[JobPass]:
        """One pass: route every stored event, then work on each email job's queue."""
        self.stats.passes += 1
        jobs = self._served_jobs()
        while True:
            routed = await self._store.route(
                [(job.name, job.list_id) for job in jobs], limit=ROUTE_BATCH
            )
            self.stats.routed += routed.events
            if routed.events < ROUTE_BATCH:
                break
        passes = [await self.apply_job(job) for job in jobs]
        await self._prune()
        return passes

    async def apply_job(self, job: JobConfig) -> JobPass:
        """Apply the job's queue, batch by batch, while its lock is free and the rate limit has
        room; or ask for one early run when the backlog is larger than `event_backlog_run`."""
        applied = changed = 0
        while True:
            await self._store.discard_covered(job.name)
            backlog = await self._store.backlog(job.name)
            if backlog == 0:
                self._early.pop(job.name, None)
                return JobPass(job.name, applied, changed)
            if backlog > job.event_backlog_run:
                early = await self._early_run(job)
                return JobPass(job.name, applied, changed, backlog, early_run=early)
            room = self._room()
            if room < 1:
                self.stats.throttled += 1
                return JobPass(job.name, applied, changed, backlog, throttled=True)
            taken = await self._store.take(job.name, min(self._batch, room))
            since_run = await self._store.latest_run_id(job.name)
            views = await self._fetch(job, taken)
            result = await self._write(job, taken, views, since_run)
            if result is None:
                return JobPass(job.name, applied, changed, backlog, busy=True)
            applied += result.dequeued
            changed += len(result.changed)
            if not result.dequeued:  # another worker applied them meanwhile
                return JobPass(job.name, applied, changed, backlog)
            if result.changed or result.written_back:
                log.info(
                    "events_applied",
                    job=job.name,
                    contacts=result.dequeued,
                    changed=len(result.changed),
                    written_back=result.written_back,
                    backlog=backlog - result.dequeued,
                )

    # -- one batch ----------------------------------------------------------------------------

    async def _fetch(
        self, job: JobConfig, taken: Sequence[QueuedContact]
    ) -> dict[str, ContactView]:
        """getContact for each queued contact, a few at a time. A contact Selzy does not know, or
        whose answer this code cannot read, gets no view (it is dequeued; the export decides).
        An API failure other than a refusal of that one contact fails the pass (rows stay)."""
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(queued: QueuedContact) -> tuple[str, ContactView | None]:
            async with limit:
                return queued.key, await self._truth(job, queued)

        answers = await asyncio.gather(*(one(q) for q in taken))
        return {key: view for key, view in answers if view is not None}

    async def _truth(self, job: JobConfig, queued: QueuedContact) -> ContactView | None:
        try:
            contact = await self._client.find_contact(queued.email)
        except ApiError as exc:
            if exc.retryable or not _refuses_the_contact(exc):
                raise
            self.stats.refused += 1
            self._warn("event_contact_refused", job=job.name, error=str(exc))
            return None
        self.stats.fetched += 1
        if contact is None:
            self.stats.not_found += 1
            return None
        view = view_of(contact, key=queued.key, list_id=job.list_id)
        if isinstance(view, Unreadable):
            self.stats.unreadable += 1
            self._warn("event_contact_unreadable", job=job.name, reason=view.reason)
            return None
        return view

    async def _write(
        self,
        job: JobConfig,
        taken: Sequence[QueuedContact],
        views: dict[str, ContactView],
        since_run: int,
    ) -> Applied | None:
        """The batch under the job's lock; None when the lock was held or a run started since
        the batch was fetched (the rows stay queued; covered ones go at the next look)."""
        async with self._session(job) as session:
            if not session.locked:
                self.stats.busy += 1
                return None
            result = await session.apply(taken, views, since_run=since_run)
        if result is None:
            self.stats.superseded += 1
            return None
        self.stats.applied += result.dequeued
        self.stats.changed += len(result.changed)
        self.stats.written_back += result.written_back
        return result

    @contextlib.asynccontextmanager
    async def _session(self, job: JobConfig) -> AsyncIterator[EventSession]:
        try:
            async with EventSession.open(self._database, job) as session:
                yield session
        except ConfigError as exc:  # the table or a column went away: a run will say so too
            raise SyncdError(f"jobs[{job.name}]: {'; '.join(exc.problems)}") from exc

    # -- early runs, pruning, logging ---------------------------------------------------------

    def _room(self) -> int:
        """getContact calls that may go now without waiting, the runs' reserve left free."""
        limiter = self._client.limiter
        return limiter.room() - math.ceil(limiter.capacity * RATE_RESERVE)

    async def _early_run(self, job: JobConfig) -> bool:
        """Ask for the job's early run, unless the last one asked for has not ended yet (within
        the cooldown) or was asked less than the spacing ago; whether asked now."""
        asked = self._early.get(job.name)
        now = self._clock()
        if asked is not None:
            at, newest = asked
            if now - at < self._spacing:
                return False
            if now - at < self._cooldown and not await self._store.run_ended_since(
                job.name, newest
            ):
                return False
        self._early[job.name] = (now, await self._store.latest_run_id(job.name))
        self.stats.early_runs += 1
        log.info("event_backlog_run_requested", job=job.name, threshold=job.event_backlog_run)
        self._request_run(job.name)
        return True

    def _served_jobs(self) -> list[JobConfig]:
        served = []
        for job in self._jobs():
            if serves(job):
                served.append(job)
            elif job.name not in self._not_served:
                self._not_served.add(job.name)
                log.info("event_job_not_served", job=job.name, reason="getContact_is_by_email")
        return served

    async def _prune(self) -> None:
        now = self._clock()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_INTERVAL:
            return
        self._pruned_at = now
        pruned = await self._store.prune(EVENT_RETENTION_DAYS)
        if pruned:
            log.info("events_pruned", rows=pruned, older_than_days=EVENT_RETENTION_DAYS)

    def _warn(self, event: str, **values: object) -> None:
        held = self._throttle.allow(event)
        if held is not None:
            log.warning(event, held_back=held, **values)


def serves(job: JobConfig) -> bool:
    """Whether the worker applies the job's events: getContact finds contacts by email only."""
    return job.match == "email"


def _refuses_the_contact(exc: ApiError) -> bool:
    """An answer about this one contact (an invalid address, ...), not about the call or the
    account: the contact is dequeued and left to the export. Auth and limit errors are not."""
    return isinstance(exc, InvalidArgument) or (
        type(exc) is SelzyError and exc.code == "unspecified"
    )
