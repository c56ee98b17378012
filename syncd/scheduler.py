"""When jobs run: job schedules -> APScheduler triggers, and the one AsyncIOScheduler of the daemon.
The only module that imports APScheduler (3.x, untyped; quarantined here). It decides *when*,
never *what*: the coroutine it fires is handed in by the daemon.

Policy: coalesce a backlog into one run, never two instances of a job at once, misfire grace
sized to the job's period (APScheduler's 1 s default silently drops late runs), a little jitter
so several daemons or jobs do not hit Selzy in the same second.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config import JobConfig, Schedule
from syncd.errors import ConfigError

log = structlog.get_logger(__name__)

MAX_JITTER_SECONDS = 30.0  # never delay a run by more than this
JITTER_FRACTION = 0.05  # of the period
CRON_PERIOD_PROBES = 4  # fire times sampled to estimate a cron schedule's shortest period

# Crontab numbers Sunday 0 (and 7); APScheduler 3.x numbers Monday 0. We translate to names.
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_TOKEN = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/([0-9]+))?$")

RunJob = Callable[[str, str], Awaitable[None]]  # (job name, trigger "schedule"|"startup"|"events")


@dataclass(frozen=True, slots=True)
class TriggerPlan:
    """Everything APScheduler needs to know about one job's timing (pure, testable)."""

    trigger: Any  # an APScheduler trigger
    period_seconds: float  # the (shortest) time between two runs
    misfire_grace_seconds: int
    jitter_seconds: float


def _dow_value(token: str, where: str) -> int:
    if token.isdigit():
        number = int(token)
        if not 0 <= number <= 7:
            raise ConfigError(f"{where}: day of week {token} is out of range 0-7")
        return number % 7
    if token in _DOW_NAMES:
        return _DOW_NAMES.index(token)
    raise ConfigError(f"{where}: unknown day of week {token!r}")


def crontab_day_of_week(field: str, where: str = "schedule") -> str:
    """A crontab day-of-week field (0/7 = Sunday) as APScheduler 3.x day names ("mon,wed")."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        match = _DOW_TOKEN.match(part)
        if match is None:
            raise ConfigError(f"{where}: cannot read day of week {part!r}")
        span, step_text = match.group(1), match.group(2)
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ConfigError(f"{where}: step must be at least 1 in {part!r}")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-", 1)
            first, last = _dow_value(low, where), _dow_value(high, where)
            if high == "7":
                last = 7  # "5-7" is Friday to Sunday
            if last < first:
                raise ConfigError(f"{where}: day range {part!r} runs backwards")
        else:
            first = last = _dow_value(span, where)
            if step_text:
                last = 6  # "1/2": from Monday, every second day
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_DOW_NAMES[day] for day in sorted(days))


def _cron_trigger(expr: str, jitter: float | None) -> Any:
    values = expr.split()
    if len(values) != 5:
        raise ConfigError(f"schedule {expr!r}: a cron expression has 5 fields, got {len(values)}")
    minute, hour, day, month, dow = values
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_day_of_week(dow, f"schedule {expr!r}"),
            timezone=UTC,
            jitter=jitter,
        )
    except ValueError as exc:
        raise ConfigError(f"schedule {expr!r}: {exc}") from exc


def _cron_period(trigger: Any, now: datetime) -> float:
    """The shortest gap between the next few fire times: good enough to size grace and jitter."""
    previous = None
    current = trigger.get_next_fire_time(None, now)
    shortest = float("inf")
    for _ in range(CRON_PERIOD_PROBES):
        if current is None:
            break
        if previous is not None:
            shortest = min(shortest, (current - previous).total_seconds())
        previous, current = current, trigger.get_next_fire_time(current, current)
    return shortest if shortest != float("inf") else 86400.0


def jitter_for(period_seconds: float) -> float:
    return min(MAX_JITTER_SECONDS, period_seconds * JITTER_FRACTION)


def misfire_grace_for(period_seconds: float) -> int:
    """A run may start up to one period late; later than that the next one is due anyway."""
    return max(1, int(period_seconds))


def plan_trigger(schedule: Schedule, *, now: datetime | None = None) -> TriggerPlan:
    """The trigger and its timing policy for a schedule; ConfigError if it cannot be scheduled."""
    if schedule.interval_seconds is not None:
        period = float(schedule.interval_seconds)
        if period <= 0:
            raise ConfigError(f"schedule {schedule.text!r}: the interval must be positive")
        jitter = jitter_for(period)
        trigger = IntervalTrigger(seconds=schedule.interval_seconds, timezone=UTC, jitter=jitter)
        return TriggerPlan(trigger, period, misfire_grace_for(period), jitter)
    if schedule.cron is not None:
        probe = _cron_trigger(schedule.cron, None)
        period = _cron_period(probe, now or datetime.now(UTC))
        jitter = jitter_for(period)
        trigger = _cron_trigger(schedule.cron, jitter)
        return TriggerPlan(trigger, period, misfire_grace_for(period), jitter)
    raise ConfigError(f"schedule {schedule.text!r}: neither an interval nor a cron expression")


def plan_triggers(jobs: Iterable[JobConfig]) -> dict[str, TriggerPlan]:
    """Plans for every job; one ConfigError listing every unschedulable job."""
    plans: dict[str, TriggerPlan] = {}
    problems: list[str] = []
    for index, job in enumerate(jobs):
        try:
            plans[job.name] = plan_trigger(job.schedule)
        except ConfigError as exc:
            problems.extend(f"jobs[{index}].schedule: {p}" for p in exc.problems)
    if problems:
        raise ConfigError(problems)
    return plans


class JobScheduler:
    """The daemon's scheduler. `run` is awaited for each due run; it must not raise."""

    def __init__(self, run: RunJob) -> None:
        self._run = run
        # APScheduler re-logs through stdlib logging what our listener already logs as events.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_listener(
            self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )
        self._plans: dict[str, TriggerPlan] = {}
        self._paused = False

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and not self._paused

    def start(self) -> None:
        self._scheduler.start()

    def pause(self) -> None:
        """Stop firing new runs (runs in flight go on)."""
        if self._scheduler.running:
            self._scheduler.pause()
        self._paused = True

    def shutdown(self) -> None:
        """Forget every job. Call after the runs in flight are done: APScheduler cancels them."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def set_job(self, job: JobConfig, plan: TriggerPlan) -> None:
        """Add or replace the job's schedule."""
        self._scheduler.add_job(
            self._run,
            trigger=plan.trigger,
            args=(job.name, "schedule"),
            id=job.name,
            name=job.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=plan.misfire_grace_seconds,
            replace_existing=True,
        )
        self._plans[job.name] = plan
        log.info(
            "job_scheduled",
            job=job.name,
            schedule=job.schedule.text,
            next_run_at=self.next_run_at(job.name),
            misfire_grace_s=plan.misfire_grace_seconds,
            jitter_s=round(plan.jitter_seconds, 3),
        )

    def run_now(self, job_name: str, trigger: str = "startup") -> None:
        """One extra run now (start-up runs; `events`: an event backlog's early run); its own id
        per trigger, so it never replaces the schedule."""
        self._scheduler.add_job(
            self._run,
            trigger=DateTrigger(run_date=datetime.now(UTC), timezone=UTC),
            args=(job_name, trigger),
            id=f"{job_name}@{trigger}",
            name=f"{job_name}@{trigger}",
            misfire_grace_time=None,
            replace_existing=True,
        )

    def remove_job(self, job_name: str) -> None:
        for job_id in (job_name, f"{job_name}@startup", f"{job_name}@events"):
            if self._scheduler.get_job(job_id) is not None:
                self._scheduler.remove_job(job_id)
        self._plans.pop(job_name, None)

    def job_names(self) -> list[str]:
        return list(self._plans)

    def period_seconds(self, job_name: str) -> float | None:
        plan = self._plans.get(job_name)
        return plan.period_seconds if plan else None

    def next_run_at(self, job_name: str) -> str | None:
        job = self._scheduler.get_job(job_name)
        when = getattr(job, "next_run_time", None) if job is not None else None
        return when.isoformat() if when is not None else None

    def _on_event(self, event: JobEvent) -> None:
        job, _, trigger = str(event.job_id).partition("@")
        scheduled = getattr(event, "scheduled_run_time", None)
        at = scheduled.isoformat() if scheduled is not None else None
        if event.code == EVENT_JOB_MISSED:
            log.warning("run_missed", job=job, scheduled_at=at)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            log.info("run_skipped", job=job, reason="still_running", scheduled_at=at)
        else:  # EVENT_JOB_ERROR: the run wrapper raises only when cancelled (and says so)
            exception = getattr(event, "exception", None)
            if isinstance(exception, asyncio.CancelledError):
                return
            log.error(
                "scheduler_job_error",
                job=job,
                trigger=trigger or "schedule",
                error=repr(exception),
            )
