"""One reconciliation run of one job (`run_job`): the one place where the database and the Selzy
API meet. A thin shell: the decisions are decision.py (what happens to each contact, applied
by the plan SQL), batches.py (what a row carries) and guards.py (whether deletions may go out).

Phases: lock -> export (and, meanwhile on the session, the local half of the plan) -> stage ->
plan -> guards -> [dry run stops here] -> ledger -> check Selzy's fields -> push -> import ->
writeback -> finish. Every phase is timed; the run row and one `run_finished` log line record
the outcome. Run-level failures become status "failed", never an exception. The database is
reached through the run's RunSession (its own connection: lock, TEMP tables) and a Database
(the pool); asyncpg's types never show here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from syncd.config import JobConfig
from syncd.db import Database, PlannedAction, PlanSummary, RunSession
from syncd.errors import ConfigError, DatabaseError, SyncdError
from syncd.reconcile.actions import (
    ACCEPTED_COUNT,
    DELETIONS,
    EXPORT_FIELDS,
    PLANNED_COUNT,
    PUSH_ORDER,
    empty_counts,
)
from syncd.reconcile.batches import check_mapping, profile_fields
from syncd.reconcile.binding import config_hash
from syncd.reconcile.export import wait_for_export
from syncd.reconcile.guards import GuardVerdict, evaluate_guards
from syncd.reconcile.outcome import Binding, RunOutcome, RunServices, RunStatus, phase_timer
from syncd.reconcile.planning import LocalHalf, PlanScope, narrow_limit, plan_run, read_local
from syncd.reconcile.push import Pusher
from syncd.reconcile.selzy_side import check_selzy_side

log = structlog.get_logger(__name__)

HEARTBEAT_INTERVAL = 15.0  # seconds between run-row heartbeats
SAMPLE_PER_ACTION = 5  # keys per action in a dry run's plan sample
OUTCOME_RETENTION_DAYS = 30  # per-row outcomes older than this are pruned
# Recording a run's end is tried again when its connection was lost (the pool opens a new one):
# a run cut off from its database still records its failure once the database answers again.
FINISH_ATTEMPTS = 3
FINISH_RETRY_DELAY = 0.5  # seconds before the third attempt; the second one is immediate
LOCK_TRIES = 5  # attempts at the job lock before the run is "busy"
LOCK_RETRY_DELAY = 0.2  # seconds between them
LOCK_WAIT_STEP = 0.5  # seconds between looks at a lock held by something other than a run
# A run that wrote at least this many ledger rows, and this share of the job's contacts, vacuums
# the ledger before it ends (maintain): the next runs' reads need not prune what it left.
VACUUM_MIN = 10_000
VACUUM_SHARE = 0.2


@dataclass
class _RunState:
    counts: dict[str, int] = field(default_factory=empty_counts)
    planned: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sample: dict[str, list[str]] = field(default_factory=dict)
    api_errors: dict[str, int] = field(default_factory=dict)
    verdict: GuardVerdict = field(default_factory=lambda: GuardVerdict(blocked=False, reason=None))
    plan_id: int | None = None
    drift_sample: tuple[str, ...] = ()

    def timed(self, phase: str) -> contextlib.AbstractContextManager[None]:
        return phase_timer(self.timings, phase)


async def run_job(
    services: RunServices,
    job: JobConfig,
    *,
    dry_run: bool = False,
    allow_mass_delete: bool = False,
    trigger: str = "cli",
    stop: asyncio.Event | None = None,
    binding: Binding | None = None,
) -> RunOutcome:
    """Run `job` once. ConfigError for configuration problems found before anything is written;
    every other failure is returned as status "failed" (or "busy" when another process holds
    the job's lock). `binding`: store this run's plan (a dry run), or execute a stored one."""
    started = time.monotonic()
    if binding is not None and binding.kind == "plan":
        dry_run, trigger = True, "plan"
    elif binding is not None:
        allow_mass_delete = allow_mass_delete or binding.allow_mass_delete
        trigger = "apply"
    check_mapping(job)
    async with RunSession.open(services.config.database, job) as session:
        database = Database(services.pool)
        patience = services.config.database.lock_timeout
        if not await _lock(session, database, job.name, patience):
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
                services,
                database,
                job,
                session,
                dry_run,
                allow_mass_delete,
                trigger,
                stop,
                started,
                binding,
            )
        finally:
            await session.unlock()


async def _lock(session: RunSession, database: Database, job: str, patience: float) -> bool:
    """The job's lock, tried LOCK_TRIES times LOCK_RETRY_DELAY apart: the event worker holds it
    for a few milliseconds at a time, which must not make a scheduled run skip its slot. Still
    held then: by a run (another process's, recorded `running`) the job is busy at once; by a
    short holder (a fast opt-out pass of another daemon, which can take seconds) it is waited
    for, up to `patience` seconds ([database] lock_timeout), looking every LOCK_WAIT_STEP."""
    for attempt in range(LOCK_TRIES):
        if await session.try_lock():
            return True
        if attempt + 1 < LOCK_TRIES:
            await asyncio.sleep(LOCK_RETRY_DELAY)
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if await database.run_in_progress(job):
            return False
        await asyncio.sleep(LOCK_WAIT_STEP)
        if await session.try_lock():
            return True
    return False


async def _locked_run(
    services: RunServices,
    database: Database,
    job: JobConfig,
    session: RunSession,
    dry_run: bool,
    allow_mass_delete: bool,
    trigger: str,
    stop: asyncio.Event | None,
    started: float,
    binding: Binding | None,
) -> RunOutcome:
    run_id = await database.start_run(
        job.name, dry_run=dry_run, allow_mass_delete=allow_mass_delete, trigger=trigger
    )
    state = _RunState()
    status: RunStatus = "failed"
    error: str | None = None
    with structlog.contextvars.bound_contextvars(job=job.name, run_id=run_id):
        log.info("run_started", dry_run=dry_run, trigger=trigger)
        beat = asyncio.create_task(_heartbeat(database, run_id), name=f"heartbeat-{run_id}")
        with services.client.counting() as calls:
            try:
                async with asyncio.timeout(job.run_timeout):
                    run = _Run(services, database, job, session, run_id, state, stop, binding)
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
                # the heartbeat ends before the run is recorded: it cannot touch a finished run
                await _stop_heartbeat(beat)
                state.counts["api_calls"] = calls.total
                state.api_errors = dict(calls.errors)
                await _finish(database, job, run_id, status, error, state, started)
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
        plan_id=state.plan_id,
        drift_sample=state.drift_sample,
    )


async def _heartbeat(database: Database, run_id: int) -> None:
    """Mark the run alive every HEARTBEAT_INTERVAL until cancelled. A beat that fails, whatever
    the failure (the database gone, the pool closed, a bug), is logged and the next one tried:
    the heartbeat never ends by itself and never decides the run's outcome."""
    while True:
        await asyncio.sleep(HEARTBEAT_INTERVAL)
        try:
            await database.heartbeat(run_id)
        except Exception as exc:
            log.warning("heartbeat_failed", error=str(exc), error_type=type(exc).__name__)


async def _cancel_all(*tasks: asyncio.Task[object]) -> None:
    """Cancel the tasks still going and wait until every one has ended; their own failures are
    the caller's to report (the first one is already being raised), not to raise again."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: not reported again as "never retrieved"


async def _stop_heartbeat(beat: asyncio.Task[None]) -> None:
    """Cancel the heartbeat and wait until it has ended; whatever it ended with stays here (a
    cancel of the run itself still reaches the caller)."""
    beat.cancel()
    await asyncio.wait([beat])
    if not beat.cancelled() and (exc := beat.exception()) is not None:  # pragma: no cover
        log.warning("heartbeat_failed", error=str(exc), error_type=type(exc).__name__)


async def _finish(
    database: Database,
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
    for attempt in range(1, FINISH_ATTEMPTS + 1):
        try:
            await database.finish_run(
                run_id,
                status="failed" if status == "busy" else status,
                counts=state.counts,
                planned=state.planned,
                timings=state.timings,
                blocked_reason=state.verdict.reason if state.verdict.blocked else None,
                error=error,
            )
            break
        except SyncdError as exc:
            # finish_run is one UPDATE of one row by id: writing it again is always safe
            lost = isinstance(exc, DatabaseError) and exc.retryable
            if not lost or attempt == FINISH_ATTEMPTS:
                # the run row stays 'running'; the next run marks it interrupted
                log.error("run_record_failed", error=str(exc), attempts=attempt)
                break
            await asyncio.sleep(FINISH_RETRY_DELAY * (attempt - 1))
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
        database: Database,
        job: JobConfig,
        session: RunSession,
        run_id: int,
        state: _RunState,
        stop: asyncio.Event | None,
        binding: Binding | None = None,
    ) -> None:
        self.binding = binding
        self.services = services
        self.database = database
        self.job = job
        self.session = session
        self.run_id = run_id
        self.state = state
        self.stop = stop
        self.profile = profile_fields(job)
        self._local_valid = 0
        self._local: LocalHalf | None = None
        self._scope: PlanScope | None = None
        self._exported = 0
        self._ledger_rows = 0  # ledger rows the ledger phase wrote or forgot
        self._summary = PlanSummary(actions={}, writeback=0, ledger=0, status_changes=0, reasons={})

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def execute(self, dry_run: bool, allow_mass_delete: bool) -> RunStatus:
        state, job = self.state, self.job
        await self._load_export()
        if self._stopping():
            return "interrupted"
        planned = await self._plan()
        if self.binding is not None and self.binding.kind == "apply":
            planned = await self._hold_to_plan()
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
            state.sample = await self.session.plan_sample(SAMPLE_PER_ACTION)
            self._count_plan_as_done(planned)
            if self.binding is not None and self.binding.kind == "plan":
                await self._store_plan(allow_mass_delete)
            return final
        if self._stopping():
            return "interrupted"
        if self.binding is not None and self.binding.plan_id is not None:
            await self._claim_plan(self.binding.plan_id)
        await self._ledger()
        if any(action in planned for action in PUSH_ORDER):
            with state.timed("check"):
                await check_selzy_side(self.services.client, job, self.profile)
        if not await self._push():
            return "interrupted"
        await self._import(planned)
        with state.timed("writeback"):
            state.counts["written_back"] = await self.session.write_back(
                flagged=self._summary.writeback
            )
        await self._write_digest()
        await self.database.prune_outcomes(OUTCOME_RETENTION_DAYS)
        await self.session.prune_history()
        await self._maintain()
        return final

    async def _maintain(self) -> None:
        """After a run that rewrote much of the ledger: VACUUM (ANALYZE) it now, not whenever
        autovacuum comes (if it runs at all). Maintenance never fails a finished run."""
        counts = self.state.counts
        written = self._ledger_rows + counts["imported"]
        written += sum(counts[name] for name in set(ACCEPTED_COUNT.values()))
        contacts = max(counts["local_count"], counts["remote_count"])
        if written < max(VACUUM_MIN, contacts * VACUUM_SHARE):
            return
        try:
            with self.state.timed("maintain"):
                await self.session.vacuum_ledger()
        except SyncdError as exc:
            log.warning("ledger_vacuum_failed", error=str(exc))
            return
        log.info("ledger_vacuumed", rows=written, seconds=round(self.state.timings["maintain"], 3))

    async def _write_digest(self) -> None:
        """The run is done: what its plan found needing nothing goes into the job's digest, so
        the next run plans only what changed since (db/digest.py)."""
        scope = self._scope
        if scope is None:  # pragma: no cover - execute() plans before it gets here
            raise ValueError("no plan to write the digest of")
        counts = self.state.counts
        limit = narrow_limit(max(counts["local_count"], counts["remote_count"]))
        with self.state.timed("digest"):
            written = await self.session.write_digest(
                version=scope.version, narrowed=scope.narrowed, limit=limit
            )
        if written.dropped:
            log.info("digest_dropped", reason="unsettled", limit=limit)
        elif written.settled or written.touched:
            log.info("digest_written", settled=written.settled, touched=written.touched)

    async def _store_plan(self, allow_mass_delete: bool) -> None:
        """`syncd plan`: keep this dry run's complete plan, with the config's hash."""
        state = self.state
        state.plan_id = await self.session.store_plan(
            run_id=self.run_id,
            config_hash=config_hash(self.job),
            allow_mass_delete=allow_mass_delete,
            blocked_reason=state.verdict.reason if state.verdict.blocked else None,
            counts=state.planned,
        )
        log.info("plan_stored", plan_id=state.plan_id, **state.planned)

    async def _hold_to_plan(self) -> Mapping[str, PlannedAction]:
        """`syncd apply`: only what the stored plan decided, exactly, is done; a contact whose
        decision changed since (locally or in Selzy) is skipped and reported as drift."""
        plan_id = self.binding.plan_id if self.binding is not None else None
        if plan_id is None:  # pragma: no cover - execute() calls this for an apply only
            raise ValueError("no plan to hold the run to")
        state = self.state
        drift = await self.session.restrict_to_plan(plan_id)
        summary = await self.session.plan_counts()
        self._summary = dataclasses.replace(self._summary, actions=summary.actions)
        state.planned = {action: p.rows for action, p in summary.actions.items()}
        state.counts["drift"] = drift.contacts
        state.drift_sample = drift.sample
        state.plan_id = plan_id
        if drift.contacts:
            log.warning("plan_drift", contacts=drift.contacts, sample=list(drift.sample))
        return summary.actions

    async def _claim_plan(self, plan_id: int) -> None:
        if not await self.session.claim_plan(plan_id, run_id=self.run_id):
            raise ConfigError(f"plan {plan_id} was applied by another run meanwhile")

    async def _load_export(self) -> None:
        """Request the export and, while Selzy prepares it, read the local half of the plan on
        the session's otherwise idle connection (`local` phase); then download and COPY the file
        (`load`). `export` is Selzy's part alone: from the request until the file is ready. When
        the local half takes longer, the rest of it is `local_wait` (syncd's own time)."""
        client, state = self.services.client, self.state
        expected = await self.database.expected_export_seconds(self.job.name)
        await self.session.tune()  # before the session's first TEMP table
        local = asyncio.create_task(self._read_local(), name=f"read-local-{self.run_id}")
        export = asyncio.create_task(
            wait_for_export(
                client,
                self.services.config.selzy,
                self.job.list_id,
                callbacks=self.services.callbacks,
                expected=expected,
            ),
            name=f"export-{self.run_id}",
        )
        began = time.monotonic()
        ready: list[float] = []
        export.add_done_callback(lambda _: ready.append(time.monotonic()))
        try:
            # a local failure (a column gone, PostgreSQL lost) ends the wait at once
            done, _ = await asyncio.wait((export, local), return_when=asyncio.FIRST_EXCEPTION)
            if local in done and local.exception() is not None:
                await local  # raises it; the export's wait is cancelled below
            url = await export
            self._local = await local  # the rest of it, when the export was quicker
        except BaseException:
            await _cancel_all(export, local)
            raise
        finally:
            ended = time.monotonic()
            state.timings["export"] = (ready[0] if ready else ended) - began
            if ready and ended - ready[0] > 0.0005:
                state.timings["local_wait"] = ended - ready[0]
        with state.timed("load"):
            async with client.download(url) as chunks:
                rows = await self.session.stage_export(chunks, required=EXPORT_FIELDS)
        self._exported = rows
        log.info("export_loaded", rows=rows)

    async def _read_local(self) -> LocalHalf:
        started = time.monotonic()
        half = await read_local(self.session, self.profile, config_hash(self.job))
        self.state.timings["local"] = time.monotonic() - started
        return half

    async def _plan(self) -> Mapping[str, PlannedAction]:
        state = self.state
        with state.timed("plan"):
            if self._local is None:  # pragma: no cover - _load_export reads it first
                raise ValueError("no local half to plan with")
            result = await plan_run(self.session, local=self._local, exported=self._exported)
        self._summary = result.summary
        self._scope = result.scope
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
        log.info(
            "plan_built",
            local_valid=self._local_valid,
            narrowed=result.scope.narrowed,
            candidates=result.scope.candidates,
            **state.planned,
        )
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
        state = self.state
        with state.timed("ledger"):
            if self._summary.ledger or "import" in self._summary.actions:
                # the run's own ledger writes: it plans and settles them itself
                await self.session.own_digest()
            ledger = await self.session.sync_ledger(
                run_id=self.run_id, changes=self._summary.ledger
            )
            await self.session.record_plan_outcomes(run_id=self.run_id)
        state.counts["status_changes"] = self._summary.status_changes
        self._ledger_rows = ledger.written + ledger.forgotten
        if ledger.written or ledger.forgotten:
            log.info("ledger_updated", rows=ledger.written, forgotten=ledger.forgotten)

    async def _push(self) -> bool:
        state = self.state
        actions = [a for a in PUSH_ORDER if not (a in DELETIONS and state.verdict.blocked)]
        pusher = Pusher(
            session=self.session,
            database=self.database,
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
            result = await self.session.import_remote(self.profile, run_id=self.run_id)
            if result.refused:
                await self.database.record_outcomes(
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
