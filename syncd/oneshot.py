"""`syncd sync`: run the selected jobs once, one after the other, and tell a human what each run
did. SIGTERM/SIGINT let the batches in flight finish and mark the run interrupted. Owns the exit
status of a run's outcome; the command line itself (parsing, config, logging) is cli.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import structlog

from syncd.config import Config, JobConfig
from syncd.logs import redact

if TYPE_CHECKING:
    from syncd.alerts import AlertEngine
    from syncd.reconcile import RunOutcome

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_CONFIG = 78
# status of a RunOutcome -> exit status; a failure outranks a guard (see `worst`)
OUTCOME_EXIT = {
    "succeeded": EXIT_OK,
    "blocked": EXIT_BLOCKED,
    "busy": EXIT_BLOCKED,
    "failed": EXIT_FAILED,
    "interrupted": EXIT_FAILED,
}
SAMPLE_SHOWN = 5  # keys shown per planned action in a --dry-run summary
ALWAYS_SHOWN = ("local_count", "remote_count")  # other counts are shown when non-zero

log = structlog.get_logger(__name__)


async def sync_jobs(
    cfg: Config, jobs: Sequence[JobConfig], *, dry_run: bool, allow_mass_delete: bool
) -> int:
    """Run the jobs one after the other; SIGTERM/SIGINT finish the current batches and stop.
    With [alerts], each run's state change is alerted on; alerts still going out are waited for
    (up to the engine's deadline) before the command ends."""
    from syncd.alerts import AlertEngine
    from syncd.api import SelzyClient
    from syncd.db import create_pool
    from syncd.reconcile import RunServices, run_job

    stop = asyncio.Event()
    outcomes: list[RunOutcome] = []
    pool = await create_pool(cfg.database)
    alerts = AlertEngine(cfg.alerts, pool) if cfg.alerts and not dry_run else None
    try:
        # every job's table and columns are verified before anything is written anywhere
        await verify_job_sources(cfg, jobs)
        with stop_on_signals(stop):
            async with SelzyClient(cfg.selzy) as client:
                services = RunServices(config=cfg, pool=pool, client=client)
                for job in jobs:
                    if stop.is_set():
                        print(f"{job.name}: not started (stop requested)")
                        continue
                    outcome = await run_job(
                        services,
                        job,
                        dry_run=dry_run,
                        allow_mass_delete=allow_mass_delete,
                        trigger="cli",
                        stop=stop,
                    )
                    outcomes.append(outcome)
                    print(format_outcome(outcome, dry_run=dry_run), flush=True)
                    await _alert(alerts, outcome)
    finally:
        try:
            if alerts is not None:
                await alerts.aclose()
        finally:
            await pool.close()
    codes = [OUTCOME_EXIT.get(o.status, EXIT_FAILED) for o in outcomes]
    if len(outcomes) < len(jobs):
        codes.append(EXIT_FAILED)  # a job was skipped because a stop was requested
    return worst(codes)


async def _alert(alerts: AlertEngine | None, outcome: RunOutcome) -> None:
    """Alert on what the run changed (a dry run or a busy job changes nothing)."""
    if alerts is not None and outcome.run_id is not None and not outcome.dry_run:
        await alerts.after_run(outcome.job, outcome.run_id)


async def verify_job_sources(cfg: Config, jobs: Sequence[JobConfig]) -> None:
    """ConfigError listing every missing table/column of every job, before any job starts."""
    from syncd.db import connect, verify_sources

    conn = await connect(cfg.database)
    try:
        await verify_sources(conn, jobs)
    finally:
        await conn.close()


def worst(codes: Sequence[int]) -> int:
    """1 if anything failed, else 3 if anything was blocked or busy, else 0."""
    for code in (EXIT_FAILED, EXIT_BLOCKED):
        if code in codes:
            return code
    return EXIT_OK


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()

    def request_stop(signame: str) -> None:
        if not stop.is_set():
            log.warning("stop_requested", signal=signame)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, sig.name)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def format_outcome(outcome: RunOutcome, *, dry_run: bool) -> str:
    """The human summary of one run: status line, counts, and for a dry run the plan."""
    run = f" (run {outcome.run_id})" if outcome.run_id is not None else ""
    if outcome.status == "busy":
        return f"{outcome.job}: busy: another syncd process is running this job; nothing done"
    title = "dry run, nothing written" if dry_run else outcome.status
    lines = [f"{outcome.job}: {title} in {outcome.duration_s:.1f}s{run}"]
    if dry_run:
        lines[0] += f" [{outcome.status}]"
        lines.append("  plan: " + _pairs(outcome.planned))
        for action, keys in outcome.plan_sample.items():
            if keys:
                shown = ", ".join(list(keys)[:SAMPLE_SHOWN])
                more = " ..." if len(keys) > SAMPLE_SHOWN else ""
                lines.append(f"    {action}: {shown}{more}")
    if outcome.counts:
        lines.append("  counts: " + _pairs(outcome.counts, always=ALWAYS_SHOWN))
    if outcome.blocked_reason:
        lines.append(f"  blocked: {redact(outcome.blocked_reason)}")
    if outcome.error and outcome.error != outcome.blocked_reason:
        lines.append(f"  error: {redact(outcome.error)}")
    if outcome.status == "blocked":
        lines.append("  (rerun with --allow-mass-delete once the deletions are confirmed)")
    return "\n".join(lines)


def _pairs(values: Mapping[str, int], *, always: tuple[str, ...] = ()) -> str:
    """`name n, ...` for the non-zero values (and those in `always`)."""
    shown = [f"{k} {v}" for k, v in values.items() if v or k in always]
    return ", ".join(shown) or "nothing"
