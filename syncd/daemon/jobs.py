"""One scheduled run of one job, as the daemon does it: skip when stopping or already running
here, bound it by `run_timeout`, turn whatever happens into a log line and the metrics, and never
raise into the scheduler. What a run *does* is syncd.reconcile's business.

Cross-process exclusion is run_job's advisory lock: another process holding the job gives
status "busy", logged as `run_skipped` (info), not as an error. Within this process a run also
waits for the job's `gate` (held by a fast opt-out pass for the second it takes), so that a
pass never makes a scheduled run busy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from syncd.config import JobConfig
from syncd.errors import ConfigError, SyncdError
from syncd.reconcile import RunOutcome, RunServices, run_job
from syncd.web.metrics import RunStats

log = structlog.get_logger(__name__)

# run_job enforces run_timeout itself (and records the run failed); the daemon's own bound is a
# backstop a little later, for a run that hangs where run_job cannot see it.
TIMEOUT_GRACE = 30.0
STUCK_GRACE = 60.0  # seconds past the backstop after which a run that did not end counts as stuck


# What the daemon does after each run that ran (alerts on a state change, the next run time
# for `syncd status`); it must never raise.
AfterRun = Callable[[JobConfig, RunOutcome], Awaitable[None]]


@dataclass(slots=True)
class InFlight:
    task: asyncio.Task[object]
    trigger: str
    started: float  # time.monotonic()
    timeout: float


@dataclass(frozen=True, slots=True)
class LastRun:
    status: str
    at: datetime


class JobRunner:
    """The coroutine the scheduler fires (`run`), plus what the daemon needs to know about runs."""

    def __init__(
        self,
        services: Callable[[], RunServices],
        stop: asyncio.Event,
        stats: RunStats,
        on_finished: Callable[[], None] = lambda: None,
        after_run: AfterRun | None = None,
    ) -> None:
        self._services = services
        self._stop = stop
        self.stats = stats
        self._on_finished = on_finished
        self._after_run = after_run
        self.jobs: Mapping[str, JobConfig] = {}
        self.in_flight: dict[str, InFlight] = {}
        self.last: dict[str, LastRun] = {}
        self.finished = 0
        self._gates: dict[str, asyncio.Lock] = {}

    def gate(self, job_name: str) -> asyncio.Lock:
        """The in-process exclusion of the job's run and its between-runs work (the fast opt-out
        pass): a run waits for it, a pass skips when a run is in flight or holds it."""
        return self._gates.setdefault(job_name, asyncio.Lock())

    async def run(self, job_name: str, trigger: str) -> None:
        job = self.jobs.get(job_name)
        if job is None or self._stop.is_set():
            return
        if job_name in self.in_flight:
            log.info("run_skipped", job=job_name, trigger=trigger, reason="already_running")
            return
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always inside a task
        self.in_flight[job_name] = InFlight(
            task, trigger, time.monotonic(), job.run_timeout + TIMEOUT_GRACE
        )
        self.stats.running[job_name] = True
        try:
            async with self.gate(job_name):
                await self._run(job, trigger)
        finally:
            self.in_flight.pop(job_name, None)
            self.stats.running[job_name] = False
            self.finished += 1
            self._on_finished()

    async def _run(self, job: JobConfig, trigger: str) -> None:
        started = time.monotonic()
        status = "failed"
        counts: Mapping[str, int] = {}
        api_errors: Mapping[str, int] = {}
        try:
            async with asyncio.timeout(job.run_timeout + TIMEOUT_GRACE) as deadline:
                outcome: RunOutcome = await run_job(
                    self._services(), job, trigger=trigger, stop=self._stop
                )
            status, counts, api_errors = outcome.status, outcome.counts, outcome.api_errors
            if status == "busy":
                log.info("run_skipped", job=job.name, trigger=trigger, reason="busy")
            elif self._after_run is not None:
                await self._after_run(job, outcome)  # alerts, the recorded schedule; never raises
        except TimeoutError:
            if not deadline.expired():
                log.error("run_crashed", job=job.name, trigger=trigger, error="TimeoutError")
            else:
                log.error(
                    "run_timed_out", job=job.name, trigger=trigger, run_timeout_s=job.run_timeout
                )
        except ConfigError as exc:
            log.error("run_config_error", job=job.name, trigger=trigger, problems=exc.problems)
        except SyncdError as exc:
            log.error("run_crashed", job=job.name, trigger=trigger, error=str(exc))
        except asyncio.CancelledError:
            log.warning("run_cancelled", job=job.name, trigger=trigger)
            status = "interrupted"
            raise
        except Exception as exc:  # a bug in a run must not stop the schedule of every job
            log.exception("run_crashed", job=job.name, trigger=trigger, error=repr(exc))
        finally:
            duration = time.monotonic() - started
            self.stats.record(job.name, status, counts, duration, api_errors)
            if status != "busy":
                self.last[job.name] = LastRun(status, datetime.now(UTC))

    def stuck(self, now: float | None = None) -> list[str]:
        """Jobs whose run outlived the backstop by STUCK_GRACE: even cancelling did not end it."""
        now = time.monotonic() if now is None else now
        return [
            name
            for name, run in self.in_flight.items()
            if now - run.started > run.timeout + STUCK_GRACE
        ]

    def status_line(self) -> str:
        """One line for systemd's STATUS=: each job's last outcome (or that it is running)."""
        parts = []
        for name in self.jobs:
            if name in self.in_flight:
                parts.append(f"{name}: running")
            elif (last := self.last.get(name)) is not None:
                parts.append(f"{name}: {last.status} at {last.at.strftime('%H:%M:%SZ')}")
            else:
                parts.append(f"{name}: waiting")
        return "; ".join(parts) or "no jobs"

    async def drain(self, deadline: float) -> list[str]:
        """Wait up to `deadline` s for runs in flight (they were told to stop), then cancel them.
        Returns the jobs whose runs had to be cancelled."""
        tasks = {run.task: name for name, run in self.in_flight.items()}
        if not tasks:
            return []
        _, pending = await asyncio.wait(tasks, timeout=deadline)
        cancelled = sorted(tasks[t] for t in pending)
        if pending:
            log.warning("runs_cancelled", jobs=cancelled, deadline_s=deadline)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=5.0)
        return cancelled
