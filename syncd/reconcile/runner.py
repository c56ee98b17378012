"""One reconciliation run of one job (`run_job`): the one place where the database and the Selzy
API meet. A thin shell: the decisions are decision.py (what happens to each contact, applied
by the plan SQL), batches.py (what a row carries) and guards.py (whether deletions may go out).

Phases: lock -> export -> stage -> plan -> guards -> [dry run stops here] -> ledger -> check
Selzy's fields -> push -> import -> writeback -> finish. Every phase is timed; the run row and
one `run_finished` log line record the outcome. Run-level failures become status "failed",
never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import structlog

from syncd.config import JobConfig
from syncd.db import (
    Connection,
    SourceInfo,
    connect,
    describe_source,
    ensure_job,
    ensure_schema,
    finish_run,
    heartbeat,
    load_export,
    prune_outcomes,
    start_run,
    try_lock_job,
    unlock_job,
)
from syncd.db.local import import_remote, write_back
from syncd.db.plan import (
    PlannedAction,
    PlanSummary,
    plan_sample,
    record_plan_outcomes,
    sync_ledger,
    tune_session,
)
from syncd.db.runs import expected_export_seconds, record_outcomes
from syncd.errors import ConfigError, SyncdError
from syncd.reconcile.actions import (
    DELETIONS,
    EXPORT_FIELDS,
    PLANNED_COUNT,
    PUSH_ORDER,
    empty_counts,
)
from syncd.reconcile.batches import check_mapping, profile_fields
from syncd.reconcile.export import wait_for_export
from syncd.reconcile.guards import GuardVerdict, evaluate_guards
from syncd.reconcile.outcome import RunOutcome, RunServices, RunStatus
from syncd.reconcile.planning import plan_run
from syncd.reconcile.push import Pusher
from syncd.reconcile.selzy_side import check_selzy_side

log = structlog.get_logger(__name__)

HEARTBEAT_INTERVAL = 15.0  # seconds between run-row heartbeats
SAMPLE_PER_ACTION = 5  # keys per action in a dry run's plan sample
OUTCOME_RETENTION_DAYS = 30  # per-row outcomes older than this are pruned


@dataclass
class _RunState:
    counts: dict[str, int] = field(default_factory=empty_counts)
    planned: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sample: dict[str, list[str]] = field(default_factory=dict)
    api_errors: dict[str, int] = field(default_factory=dict)
    verdict: GuardVerdict = field(default_factory=lambda: GuardVerdict(blocked=False, reason=None))

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.monotonic() - started


async def run_job(
    services: RunServices,
    job: JobConfig,
    *,
    dry_run: bool = False,
    allow_mass_delete: bool = False,
    trigger: str = "cli",
    stop: asyncio.Event | None = None,
) -> RunOutcome:
    """Run `job` once. ConfigError for configuration problems found before anything is written;
    every other failure is returned as status "failed" (or "busy" when another process holds
    the job's lock)."""
    started = time.monotonic()
    check_mapping(job)
    conn = await connect(services.config.database)
    try:
        source = await describe_source(conn, job)
        await ensure_schema(conn)
        job_id = await ensure_job(conn, job.name, list_id=job.list_id, match=job.match)
        if not await try_lock_job(conn, job_id):
            log.warning("job_busy", job=job.name)
            return RunOutcome(
                job=job.name,
                run_id=None,
                status="busy",
                counts={},
                planned={},
                error=f"job {job.name!r} is already running in another process",
                duration_s=time.monotonic() - started,
                dry_run=dry_run,
            )
        try:
            return await _locked_run(
                services, job, conn, source, dry_run, allow_mass_delete, trigger, stop, started
            )
        finally:
            with contextlib.suppress(SyncdError):
                await unlock_job(conn, job_id)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


async def _locked_run(
    services: RunServices,
    job: JobConfig,
    conn: Connection,
    source: SourceInfo,
    dry_run: bool,
    allow_mass_delete: bool,
    trigger: str,
    stop: asyncio.Event | None,
    started: float,
) -> RunOutcome:
    async with services.pool.acquire() as pooled:
        run_id = await start_run(
            pooled, job.name, dry_run=dry_run, allow_mass_delete=allow_mass_delete, trigger=trigger
        )
    state = _RunState()
    status: RunStatus = "failed"
    error: str | None = None
    with structlog.contextvars.bound_contextvars(job=job.name, run_id=run_id):
        log.info("run_started", dry_run=dry_run, trigger=trigger)
        beat = asyncio.create_task(_heartbeat(services, run_id), name=f"heartbeat-{run_id}")
        try:
            with services.client.counting() as calls:
                try:
                    async with asyncio.timeout(job.run_timeout):
                        run = _Run(services, job, conn, source, run_id, state, stop)
                        status = await run.execute(dry_run, allow_mass_delete)
                except TimeoutError:
                    error = f"the run exceeded run_timeout={job.run_timeout:g}s"
                except ConfigError as exc:
                    error = f"configuration: {exc}"
                except SyncdError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                except Exception as exc:  # a bug: record it as a failed run, never crash the daemon
                    log.exception("run_crashed")
                    error = f"internal error {type(exc).__name__}: {exc}"
                except asyncio.CancelledError:
                    status, error = "interrupted", "the run was cancelled"
                    raise
                finally:
                    state.counts["api_calls"] = calls.total
                    state.api_errors = dict(calls.errors)
                    await _finish(services, job, run_id, status, error, state, started)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
    return RunOutcome(
        job=job.name,
        run_id=run_id,
        status=status,
        counts=dict(state.counts),
        planned=dict(state.planned),
        error=error,
        duration_s=time.monotonic() - started,
        plan_sample=dict(state.sample),
        blocked_reason=state.verdict.reason if state.verdict.blocked else None,
        dry_run=dry_run,
        api_errors=state.api_errors,
    )


async def _heartbeat(services: RunServices, run_id: int) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_INTERVAL)
        try:
            async with services.pool.acquire() as pooled:
                await heartbeat(pooled, run_id)
        except SyncdError as exc:
            log.warning("heartbeat_failed", error=str(exc))


async def _finish(
    services: RunServices,
    job: JobConfig,
    run_id: int,
    status: RunStatus,
    error: str | None,
    state: _RunState,
    started: float,
) -> None:
    duration = time.monotonic() - started
    if status == "failed":
        log.error("run_failed", error=error)
    try:
        async with services.pool.acquire() as pooled:
            await finish_run(
                pooled,
                run_id,
                status="failed" if status == "busy" else status,
                counts=state.counts,
                planned=state.planned,
                timings=state.timings,
                blocked_reason=state.verdict.reason if state.verdict.blocked else None,
                error=error,
            )
    except SyncdError as exc:  # the run row stays 'running'; the next run marks it interrupted
        log.error("run_record_failed", error=str(exc))
    log.info(
        "run_finished",
        job=job.name,
        run_id=run_id,
        status=status,
        duration_s=round(duration, 3),
        **state.counts,
        api_errors=state.api_errors,
    )


class _Run:
    """The phases of one locked run; mutates `state` as it goes so a failure keeps the counts."""

    def __init__(
        self,
        services: RunServices,
        job: JobConfig,
        conn: Connection,
        source: SourceInfo,
        run_id: int,
        state: _RunState,
        stop: asyncio.Event | None,
    ) -> None:
        self.services = services
        self.job = job
        self.conn = conn
        self.source = source
        self.run_id = run_id
        self.state = state
        self.stop = stop
        self.profile = profile_fields(job)
        self._local_valid = 0
        self._exported = 0
        self._summary = PlanSummary(actions={}, writeback=0, ledger=0, status_changes=0, reasons={})

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def execute(self, dry_run: bool, allow_mass_delete: bool) -> RunStatus:
        state, job = self.state, self.job
        await self._load_export()
        if self._stopping():
            return "interrupted"
        planned = await self._plan()
        deletions = sum(planned[a].rows for a in DELETIONS if a in planned)
        state.verdict = evaluate_guards(
            deletions=deletions,
            remote_count=state.counts["remote_count"],
            local_valid=self._local_valid,
            max_deletes=job.max_deletes,
            max_delete_fraction=job.max_delete_fraction,
            allow_mass_delete=allow_mass_delete,
        )
        if state.verdict.blocked:
            log.error("run_blocked", reason=state.verdict.reason, deletions=deletions)
        elif state.verdict.overridden:
            log.warning("guards_overridden", reason=state.verdict.reason, deletions=deletions)
        final: RunStatus = "blocked" if state.verdict.blocked else "succeeded"
        if dry_run:
            state.sample = await plan_sample(self.conn, SAMPLE_PER_ACTION)
            self._count_plan_as_done(planned)
            return final
        if self._stopping():
            return "interrupted"
        await self._ledger()
        if any(action in planned for action in PUSH_ORDER):
            with state.timed("check"):
                await check_selzy_side(self.services.client, job, self.profile)
        if not await self._push():
            return "interrupted"
        await self._import(planned)
        with state.timed("writeback"):
            state.counts["written_back"] = await write_back(
                self.conn, job, self.source, flagged=self._summary.writeback
            )
        async with self.services.pool.acquire() as pooled:
            await prune_outcomes(pooled, OUTCOME_RETENTION_DAYS)
        return final

    async def _load_export(self) -> None:
        client, state = self.services.client, self.state
        async with self.services.pool.acquire() as pooled:
            expected = await expected_export_seconds(pooled, self.job.name)
        with state.timed("export"):
            url = await wait_for_export(
                client,
                self.services.config.selzy,
                self.job.list_id,
                callbacks=self.services.callbacks,
                expected=expected,
            )
        with state.timed("load"):
            await tune_session(self.conn)  # before the session's first TEMP table
            async with client.download(url) as chunks:
                rows = await load_export(self.conn, chunks, required=EXPORT_FIELDS)
        self._exported = rows
        log.info("export_loaded", rows=rows)

    async def _plan(self) -> Mapping[str, PlannedAction]:
        state = self.state
        with state.timed("plan"):
            result = await plan_run(
                self.conn, self.job, self.source, self.profile, exported=self._exported
            )
        self._summary = result.summary
        planned = result.summary.actions
        self._local_valid = result.local_valid
        local_count, remote_count = result.local_count, result.remote_count
        state.counts["local_count"] = local_count
        state.counts["remote_count"] = remote_count
        state.planned = {action: p.rows for action, p in planned.items()}
        state.counts["remote_only"] = sum(p.remote_only for p in planned.values())
        for action, count_name in PLANNED_COUNT.items():
            if action in planned:
                state.counts[count_name] += planned[action].rows
        log.info("plan_built", local_valid=self._local_valid, **state.planned)
        return planned

    def _count_plan_as_done(self, planned: Mapping[str, PlannedAction]) -> None:
        """A dry run records the plan as its counts (what a real run would do)."""
        counts = self.state.counts
        for action, count_name in (
            ("add", "added"),
            ("update", "updated"),
            ("delete", "deleted"),
            ("exclude", "excluded"),
            ("optout_status", "opted_out"),
            ("optout_list", "opted_out"),
            ("import", "imported"),
        ):
            if action in planned and not (action in DELETIONS and self.state.verdict.blocked):
                counts[count_name] += planned[action].rows

    async def _ledger(self) -> None:
        """The ledger takes what the plan saw (the local side, Selzy's view, new suppressions,
        forgotten contacts) before anything is pushed; reported rows go to row_outcomes."""
        state, job = self.state, self.job
        with state.timed("ledger"):
            ledger = await sync_ledger(
                self.conn,
                job=job.name,
                run_id=self.run_id,
                channel=job.match,
                changes=self._summary.ledger,
            )
            await record_plan_outcomes(self.conn, run_id=self.run_id, job=job.name)
        state.counts["status_changes"] = self._summary.status_changes
        if ledger.written or ledger.forgotten:
            log.info("ledger_updated", rows=ledger.written, forgotten=ledger.forgotten)

    async def _push(self) -> bool:
        state = self.state
        actions = [a for a in PUSH_ORDER if not (a in DELETIONS and state.verdict.blocked)]
        pusher = Pusher(
            conn=self.conn,
            pool=self.services.pool,
            client=self.services.client,
            job=self.job,
            run_id=self.run_id,
            profile=self.profile,
            stop=self.stop,
        )
        try:
            with state.timed("push"):
                completed = await pusher.run(actions)
        finally:
            for name, value in pusher.tally.counts.items():
                state.counts[name] += value
        return completed

    async def _import(self, planned: Mapping[str, PlannedAction]) -> None:
        if self.job.remote_only != "import" or "import" not in planned:
            return
        with self.state.timed("import"):
            result = await import_remote(
                self.conn, self.job, self.source, self.profile, self.run_id
            )
            if result.refused:
                async with self.services.pool.acquire() as pooled:
                    await record_outcomes(
                        pooled,
                        self.run_id,
                        self.job.name,
                        ((r.key, "import", "rejected", r.code, r.message) for r in result.refused),
                    )
        self.state.counts["imported"] = result.imported
        self.state.counts["rejected"] += len(result.refused)
        if result.refused:
            log.warning(
                "import_refused",
                rows=len(result.refused),
                sample=[r.key for r in result.refused[:5]],
                codes=sorted({r.code for r in result.refused}),
            )
