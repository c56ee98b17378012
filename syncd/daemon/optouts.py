"""The daemon's fast opt-out passes: one supervised task per job with `opt_out_latency`, running
syncd.reconcile's pass every `opt_out_latency / 2` seconds (at once again after a pass that hit
its cap), never while this process runs the job (the runner's in-flight runs and its gate), and
whatever PostgreSQL or Selzy do: a failure is logged at most once a minute per job and kind,
and the next pass waits longer, up to RETRY_MAX. `apply(jobs)` follows a config reload.

It decides nothing about contacts: what a pass does is syncd.reconcile.optouts'.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from syncd.config import JobConfig
from syncd.daemon.jobs import JobRunner
from syncd.errors import SyncdError
from syncd.events.throttle import LogThrottle
from syncd.reconcile import RunServices
from syncd.reconcile.optouts import OptOutOutcome, run_opt_out_pass

log = structlog.get_logger(__name__)

PASS_TIMEOUT = 300.0  # seconds one pass may take; a run of the job waits for it at most this long
RETRY_MAX = 60.0  # seconds: the longest wait after failed passes (doubling from the interval)


def retry_delay(interval: float, failures: int) -> float:
    """Seconds before the next pass after `failures` failed ones in a row: the interval doubled
    each time, up to RETRY_MAX (never less than the interval itself)."""
    return min(interval * (1 << min(failures, 32)), max(interval, RETRY_MAX))


class Spawn(Protocol):
    """Supervisor.spawn: a named task; `may_end` lets it return."""

    def __call__(
        self, name: str, coro: Coroutine[Any, Any, Any], *, may_end: bool = ...
    ) -> asyncio.Task[Any]: ...


@dataclass(slots=True)
class PassStats:
    """Per job, since start."""

    passes: int = 0  # passes that held the lock and looked
    skipped: int = 0  # passes left out: a run in flight or the lock held elsewhere
    runs: int = 0  # passes that pushed something (recorded as runs)
    opted_out: int = 0  # contacts Selzy accepted an opt-out of
    failures: int = 0


class OptOutPasses:
    """`apply(jobs)` starts (or wakes) the loop of every job with opt_out_latency; a loop ends
    by itself when its job loses the setting. `pass_once` is one pass (tests call it)."""

    def __init__(
        self,
        *,
        runner: JobRunner,
        services: Callable[[], RunServices],
        stop: asyncio.Event,
        spawn: Spawn,
        pass_timeout: float = PASS_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runner = runner
        self._services = services
        self._stop = stop
        self._spawn = spawn
        self._pass_timeout = pass_timeout
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._throttle = LogThrottle(clock=clock)
        self.stats: dict[str, PassStats] = {}
        self.last: dict[str, OptOutOutcome] = {}  # each job's last pass that held the lock

    @property
    def jobs(self) -> list[str]:
        """The jobs whose loop is running."""
        return sorted(name for name, task in self._tasks.items() if not task.done())

    def apply(self, jobs: Sequence[JobConfig]) -> None:
        """Match the loops to `jobs` (the runner's jobs are already the new ones): start the
        missing, wake the others to read their (maybe changed or removed) setting now."""
        wanted = [job.name for job in jobs if job.opt_out_latency is not None]
        for name in wanted:
            task = self._tasks.get(name)
            if task is not None and not task.done():
                self._wake[name].set()
                continue
            self._wake[name] = asyncio.Event()
            self.stats.setdefault(name, PassStats())
            self._tasks[name] = self._spawn(f"opt-outs:{name}", self._loop(name), may_end=True)
        for name, task in self._tasks.items():
            if name not in wanted and not task.done():
                self._wake[name].set()

    def _job(self, name: str) -> JobConfig | None:
        job = self._runner.jobs.get(name)
        return job if job is not None and job.opt_out_latency is not None else None

    async def _loop(self, name: str) -> None:
        failures = 0
        log.info("opt_out_passes_started", job=name)
        while not self._stop.is_set():
            job = self._job(name)
            if job is None:
                log.info("opt_out_passes_stopped", job=name)
                return
            assert job.opt_out_latency is not None  # noqa: S101 - _job() checked it
            interval = job.opt_out_latency / 2
            outcome: OptOutOutcome | None = None
            try:
                outcome = await self.pass_once(job)
            except SyncdError as exc:
                self._warn("opt_out_pass_failed", job=name, error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug in a pass must not end the daemon: said, retried
                self._warn("opt_out_pass_crashed", job=name, error=repr(exc), exc_info=exc)
            if outcome is None or outcome.status == "failed":
                failures += 1
                self.stats[name].failures += 1
                if outcome is not None:
                    self._warn(
                        "opt_out_pass_failed", job=name, run_id=outcome.run_id, error=outcome.error
                    )
                delay = retry_delay(interval, failures)
            else:
                failures = 0
                delay = 0.0 if outcome.more else interval
            await self._sleep(name, delay)

    async def pass_once(self, job: JobConfig) -> OptOutOutcome:
        """One pass of `job`, unless this process runs the job right now (then `skipped`).
        SyncdError when it could not look (PostgreSQL down, the table gone), TimeoutError
        after PASS_TIMEOUT."""
        gate = self._runner.gate(job.name)
        stats = self.stats.setdefault(job.name, PassStats())
        if job.name in self._runner.in_flight or gate.locked():
            stats.skipped += 1
            log.debug("opt_out_pass_skipped", job=job.name, reason="running")
            return OptOutOutcome(job.name, "skipped", reason="running")
        async with gate:
            try:
                async with asyncio.timeout(self._pass_timeout):
                    outcome = await run_opt_out_pass(self._services(), job, stop=self._stop)
            except TimeoutError as exc:
                raise SyncdError(
                    f"the opt-out pass took longer than {self._pass_timeout:g}s"
                ) from exc
        if outcome.status == "skipped":
            stats.skipped += 1
            log.debug("opt_out_pass_skipped", job=job.name, reason=outcome.reason)
            return outcome
        stats.passes += 1
        self.last[job.name] = outcome
        if outcome.run_id is not None:
            stats.runs += 1
            stats.opted_out += outcome.counts.get("opted_out", 0)
        return outcome

    async def _sleep(self, name: str, delay: float) -> None:
        """`delay` seconds, or until apply() wakes the loop (a reload)."""
        wake = self._wake[name]
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()
        wake.clear()

    def _warn(self, event: str, *, job: str, **values: Any) -> None:
        held = self._throttle.allow(f"{event}:{job}")
        if held is not None:
            log.warning(event, job=job, held_back=held, **values)
