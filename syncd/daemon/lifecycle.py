"""The daemon's life: start in order (pool -> Selzy client -> callbacks and web -> scheduler ->
event webhook), serve until a signal or a supervised task's death, stop in reverse within a
deadline, and say so in one `daemon_stopped` line. Also SIGHUP reloads and the systemd watchdog
heartbeat. It decides nothing about runs (jobs.py) or timing (syncd.scheduler).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from syncd.alerts import AlertEngine
from syncd.api import SelzyClient
from syncd.config import Config, JobConfig
from syncd.daemon.jobs import JobRunner
from syncd.daemon.optouts import OptOutPasses
from syncd.daemon.reload import diff_jobs, restart_required
from syncd.daemon.supervisor import Supervisor
from syncd.db import Database, connect, create_pool, ensure_schema, verify_sources
from syncd.errors import ConfigError, SyncdError
from syncd.events.service import EventService
from syncd.logs import register_secret
from syncd.reconcile import RunOutcome, RunServices
from syncd.scheduler import JobScheduler, TriggerPlan, plan_triggers
from syncd.systemd import Notifier
from syncd.web import CallbackRegistry, Listener, RunStats, WebServer, parse_listen
from syncd.web.health import (
    DatabaseGauge,
    JobRuns,
    LocalRun,
    database_unreachable,
    evaluate,
    fetch_job_runs,
    max_success_age,
)
from syncd.web.metrics import DaemonMetrics, Scrape
from syncd.web.optout_metrics import OptOutCollector

log = structlog.get_logger(__name__)

SHUTDOWN_DEADLINE = 30.0  # seconds a run gets to finish its batches after SIGTERM
HEARTBEAT_INTERVAL = 5.0  # seconds between liveness checks when systemd asks for no watchdog
STALE_CHECK_INTERVAL = 60.0  # seconds between checks for jobs without a success for 3 periods


class Daemon:
    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        *,
        environ: Mapping[str, str] | None = None,
        shutdown_deadline: float = SHUTDOWN_DEADLINE,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.shutdown_deadline = shutdown_deadline
        self.notifier = Notifier(os.environ if environ is None else environ)
        self.supervisor = Supervisor()
        self.stats = RunStats()
        self.exposition = DaemonMetrics(self.stats)  # this daemon's own Prometheus registry
        self.database_gauge = DatabaseGauge()  # syncd_database_up: did the last health read answer
        self.exposition.registry.register(self.database_gauge)
        self._stop_requested = asyncio.Event()
        self._run_stop = asyncio.Event()  # handed to every run: finish the batch, mark interrupted
        self._reload_lock = asyncio.Lock()
        self._stop_reason = "signal"
        self._signals = 0
        self._started = time.monotonic()
        self._services: RunServices | None = None
        self._database: Database | None = None  # the pool's operations (health reads)
        self.runner = JobRunner(
            self._current_services,
            self._run_stop,
            self.stats,
            self._status,
            after_run=self._after_run,
        )
        self.scheduler = JobScheduler(self.runner.run)
        # jobs with opt_out_latency: their opt-outs pushed between runs
        self.optouts = OptOutPasses(
            runner=self.runner,
            services=self._current_services,
            stop=self._run_stop,
            spawn=self.supervisor.spawn,
        )
        self.exposition.registry.register(OptOutCollector(lambda: self.optouts.stats))
        self.web: WebServer | None = None
        self.events: EventService | None = None  # [webhook] events = true
        self.alerts: AlertEngine | None = None  # [alerts]
        self._holder = f"{socket.gethostname()}:{os.getpid()}"  # who schedules, for syncd status

    # -- the whole life -------------------------------------------------------------------------

    async def run(self) -> int:
        plans = plan_triggers(self.config.jobs)  # ConfigError before anything starts
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        exit_code = 0
        try:
            async with contextlib.AsyncExitStack() as stack:
                await self._start(stack, plans)
                self.notifier.ready(self.runner.status_line())
                log.info("daemon_started", pid=os.getpid(), jobs=[j.name for j in self.config.jobs])
                await self._wait_for_stop()
                if self.supervisor.failed.is_set():
                    exit_code, self._stop_reason = 1, f"task_died:{self.supervisor.failure}"
                self.notifier.stopping()
                log.info("daemon_stopping", reason=self._stop_reason)
                cancelled = await self._stop_runs()
        finally:
            self._remove_signals(loop)
        log.info(
            "daemon_stopped",
            reason=self._stop_reason,
            exit_code=exit_code,
            uptime_s=round(time.monotonic() - self._started, 3),
            runs=self.runner.finished,
            cancelled_runs=cancelled,
            last={name: last.status for name, last in self.runner.last.items()},
        )
        return exit_code

    async def _start(
        self, stack: contextlib.AsyncExitStack, plans: Mapping[str, TriggerPlan]
    ) -> None:
        config = self.config
        pool = await create_pool(config.database)
        stack.push_async_callback(pool.close)
        self._database = Database(pool)
        if config.alerts is not None:
            self.alerts = AlertEngine(config.alerts, pool)
            stack.push_async_callback(self.alerts.aclose)  # runs before the pool closes
        await self._check_sources(config.jobs)
        client = SelzyClient(config.selzy)
        await stack.enter_async_context(client)
        callbacks = CallbackRegistry(config.webhook.public_url) if config.webhook else None
        self._services = RunServices(config=config, pool=pool, client=client, callbacks=callbacks)
        if config.webhook is not None and config.webhook.events:
            self.events = EventService(
                config,
                pool=pool,
                client=client,
                jobs=lambda: self.config.jobs,
                request_run=self.request_run,
            )
            self.exposition.watch_events(self.events.counters)
        self.web = self._build_web(config, callbacks)
        if self.web is not None:
            stack.push_async_callback(self.web.stop)
            await self.web.start()
        stack.push_async_callback(self.supervisor.stop)
        self.runner.jobs = {job.name: job for job in config.jobs}
        for job in config.jobs:
            self.scheduler.set_job(job, plans[job.name])
        self.scheduler.start()
        stack.callback(self.scheduler.shutdown)
        for job in config.jobs:
            if job.run_at_start:
                self.scheduler.run_now(job.name)
        for job in config.jobs:
            await self._record_schedule(job.name)
        self.supervisor.spawn("heartbeat", self._heartbeat())
        self.optouts.apply(config.jobs)
        if self.alerts is not None:
            self.supervisor.spawn("alerts-stale", self._watch_stale())
        if self.events is not None:  # the listener answers GET on the event URL by now
            self.events.start(self.supervisor.spawn)

    async def _wait_for_stop(self) -> None:
        waits = [
            asyncio.create_task(self._stop_requested.wait(), name="wait-stop"),
            asyncio.create_task(self.supervisor.failed.wait(), name="wait-failure"),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def _stop_runs(self) -> list[str]:
        """Stop scheduling; runs in flight finish their batches and mark themselves interrupted."""
        self.scheduler.pause()
        self._run_stop.set()
        deadline = 0.0 if self._signals > 1 else self.shutdown_deadline
        return await self.runner.drain(deadline)

    # -- signals --------------------------------------------------------------------------------

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    def request_stop(self, reason: str = "requested") -> None:
        self._signals += 1
        if self._signals == 1:
            self._stop_reason = reason
            log.info("stop_requested", reason=reason, deadline_s=self.shutdown_deadline)
            self._stop_requested.set()
        else:  # a second signal: do not wait for the runs any longer
            log.warning("stop_forced", reason=reason)
            for run in self.runner.in_flight.values():
                run.task.cancel()

    async def _after_run(self, job: JobConfig, outcome: RunOutcome) -> None:
        """After each run: alert on a state change, and record when the job runs next."""
        if self.alerts is not None and outcome.run_id is not None and not outcome.dry_run:
            await self.alerts.after_run(job.name, outcome.run_id)  # never raises
        await self._record_schedule(job.name)

    async def _record_schedule(self, job_name: str) -> None:
        if self._database is None:
            return
        when = self.scheduler.next_run_at(job_name)
        try:
            await self._database.record_schedule(
                job_name, datetime.fromisoformat(when) if when else None, self._holder
            )
        except SyncdError as exc:  # syncd status shows an older time; the schedule is unaffected
            log.warning("schedule_record_failed", job=job_name, error=str(exc))

    async def _watch_stale(self) -> None:
        """Every STALE_CHECK_INTERVAL: an alert when a job has had no success for 3 periods."""
        while True:
            await asyncio.sleep(STALE_CHECK_INTERVAL)
            if self.alerts is None:
                continue
            try:
                runs = await self._job_runs()
            except SyncdError:
                continue  # the database is away: /healthz says so; try again next round
            for run in runs:
                period = self.scheduler.period_seconds(run.job)
                if period is not None:
                    await self.alerts.check_stale(run.job, run.last_success_at, period)

    def request_run(self, job_name: str) -> None:
        """An early run of the job (the event worker's backlog), unless stopping."""
        if not self._stop_requested.is_set():
            self.scheduler.run_now(job_name, trigger="events")

    def request_reload(self) -> None:
        if not self._stop_requested.is_set():
            self.supervisor.spawn("reload", self.reload(), may_end=True)

    # -- reload ---------------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config; swap it in only if it is valid. Returns whether it was applied."""
        from syncd.config import load_config  # the loader is only needed here

        async with self._reload_lock:
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
                plans = plan_triggers(new.jobs)
                changes = diff_jobs(self.config.jobs, new.jobs)
                await self._check_sources(
                    [j for j in new.jobs if j.name in changes.added + changes.changed]
                )
            except ConfigError as exc:
                log.error("config_reload_failed", problems=exc.problems)
                return False
            except SyncdError as exc:
                log.error("config_reload_failed", problems=[str(exc)])
                return False
            except Exception as exc:  # e.g. an unreadable file: keep running on the old config
                log.exception("config_reload_failed", problems=[repr(exc)])
                return False
            _register_secrets(new)
            old, self.config = self.config, new
            if self._services is not None:
                self._services = replace(self._services, config=new)
            self.runner.jobs = {job.name: job for job in new.jobs}
            self.optouts.apply(new.jobs)
            for name in changes.removed:
                self.scheduler.remove_job(name)
            for job in new.jobs:
                if job.name in changes.added + changes.changed:
                    self.scheduler.set_job(job, plans[job.name])
                if job.name in changes.added and job.run_at_start:
                    self.scheduler.run_now(job.name)
            log.info(
                "config_reloaded",
                added=list(changes.added),
                removed=list(changes.removed),
                changed=list(changes.changed),
                restart_required=restart_required(old, new),
            )
            self._status()
            return True

    async def _check_sources(self, jobs: Sequence[JobConfig]) -> None:
        """Every job's table and columns exist (ConfigError listing all problems) and the schema
        is migrated, before the daemon schedules anything."""
        conn = await connect(self.config.database)
        try:
            await ensure_schema(conn)
            await verify_sources(conn, jobs)
        finally:
            await conn.close()

    # -- heartbeat, health, metrics -------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """WATCHDOG=1 only while the loop turns, the scheduler runs and no run outlived its
        timeout; a stopped scheduler is a death (the supervisor exits 1)."""
        interval = min(self.notifier.watchdog_interval or HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL)
        withheld = False
        while True:
            if not self.scheduler.running and not self._stop_requested.is_set():
                raise RuntimeError("the scheduler stopped")
            stuck = self.runner.stuck()
            if stuck:
                if not withheld:
                    log.error("watchdog_withheld", stuck_jobs=stuck)
                withheld = True
            else:
                withheld = False
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _status(self) -> None:
        self.notifier.status(self.runner.status_line())

    def _current_services(self) -> RunServices:
        assert self._services is not None  # noqa: S101 - runs are scheduled after start
        return self._services

    def _max_ages(self) -> dict[str, float]:
        ages = {}
        for job in self.config.jobs:
            period = self.scheduler.period_seconds(job.name) or 0.0
            ages[job.name] = max_success_age(period, job.run_timeout)
        return ages

    async def _job_runs(self) -> list[JobRuns]:
        """syncd.runs' view of every job, within HEALTH_TIMEOUT (DatabaseError otherwise)."""
        assert self._database is not None  # noqa: S101 - the web starts after the pool
        try:
            runs = await fetch_job_runs(self._database, [job.name for job in self.config.jobs])
        except SyncdError as exc:
            self._database_seen(str(exc))
            raise
        self._database_seen(None)
        return runs

    def _database_seen(self, error: str | None) -> None:
        """Whether the last read of syncd.runs answered: the gauge, and one line per change."""
        up = error is None
        if up != self.database_gauge.up:
            if up:
                log.info("database_reachable")
            else:
                log.warning("database_unreachable", error=error)
        self.database_gauge.up = up

    def _local_runs(self) -> dict[str, LocalRun]:
        local = {}
        for job in self.config.jobs:
            last = self.runner.last.get(job.name)
            local[job.name] = LocalRun(
                running=job.name in self.runner.in_flight,
                last_status=last.status if last else None,
                last_finished_at=last.at if last else None,
            )
        return local

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """/healthz: 200 when every job is healthy, 503 otherwise, and 503 within HEALTH_TIMEOUT
        when PostgreSQL does not answer (with what this process knows of each job)."""
        try:
            runs = await self._job_runs()
        except SyncdError as exc:
            healthy = False
            body = database_unreachable(self._max_ages(), self._local_runs(), str(exc))
        else:
            healthy, body = evaluate(runs, self._max_ages(), time.monotonic() - self._started)
            body["database"] = "ok"
        body["uptime_s"] = round(time.monotonic() - self._started, 1)
        return healthy, body

    async def metrics(self, accept: str = "") -> tuple[bytes, str]:
        """/metrics: (body, Content-Type) in the format `accept` (the Accept header) asks for."""
        jobs = tuple(job.name for job in self.config.jobs)
        queues = (  # read beside the runs, not after them: both within the health timeout
            asyncio.ensure_future(self.events.reading(self.config.jobs))
            if self.events is not None
            else None
        )
        try:
            runs = await self._job_runs()
            healthy, _ = evaluate(runs, self._max_ages(), time.monotonic() - self._started)
        except SyncdError:
            runs, healthy = [], False
        last_success = {r.job: r.last_success_epoch for r in runs}
        events = await queues if queues is not None else None
        return self.exposition.expose(Scrape(jobs, last_success, healthy, events), accept)

    def _build_web(self, config: Config, callbacks: CallbackRegistry | None) -> WebServer | None:
        listeners: list[Listener] = []
        if config.webhook is not None:
            host, port = parse_listen(config.webhook.listen, "webhook.listen")
            listeners.append(Listener(host, port, callbacks=True, name="webhook"))
        if config.metrics is not None:
            host, port = parse_listen(config.metrics.listen, "metrics.listen")
            if not listeners or (host, port) != (listeners[0].host, listeners[0].port):
                listeners.append(Listener(host, port, callbacks=False, name="metrics"))
        if not listeners:
            return None
        return WebServer(
            listeners,
            health=self.health,
            metrics=self.metrics,
            callbacks=callbacks,
            public_url=config.webhook.public_url if config.webhook else "",
            max_body_bytes=config.webhook.max_body_bytes if config.webhook else 65536,
            events=self.events.receiver if self.events is not None else None,
        )


def _register_secrets(config: Config) -> None:
    for secret in (config.selzy.api_key, config.database.dsn):
        if secret:
            register_secret(secret.reveal())
