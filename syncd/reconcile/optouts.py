"""The fast opt-out pass (a job's `opt_out_latency`; the daemon runs it between runs): under the
job's lock, the local rows newly opted out are decided by decision.py's `decide()` over what
the ledger remembers of Selzy, and only those whose reason is an opt-out push
(`optout_status`, `optout_list`) are sent — through the run's own Pusher (intents before the
call, the answer recorded with the history), and recorded as a run with trigger "opt_out".

Everything else is left to the next full run, so a pass can never add, re-subscribe, delete or
carry profile data: the consent rules hold by construction. `facts_of` and `opt_out_pushes`
are pure; `run_opt_out_pass` is the thin shell that does the I/O and never raises a failure
of PostgreSQL or Selzy past its run record (only the ones before it: no lock, no run).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import structlog

from syncd.config import JobConfig
from syncd.db import OPT_OUT_TRIGGER, Database, OptOutCandidate, OptOutSession, PlanRow
from syncd.errors import SyncdError
from syncd.reconcile.actions import PushAction, empty_counts
from syncd.reconcile.batches import OPT_OUTS, profile_fields
from syncd.reconcile.decision import Facts, Membership, Reason, decide
from syncd.reconcile.outcome import RunServices, phase_timer
from syncd.reconcile.push import Pusher

log = structlog.get_logger(__name__)

PASS_LIMIT = 500  # candidates one pass decides (one importContacts call); more: the next pass
# A pass reads neither the whole local table nor an export: its run row leaves these unknown.
UNKNOWN_COUNTS = frozenset({"local_count", "remote_count"})
PUSH_ORDER: tuple[PushAction, ...] = ("optout_status", "optout_list")

PassStatus: TypeAlias = Literal["skipped", "idle", "succeeded", "failed", "interrupted"]


@dataclass(frozen=True, slots=True)
class OptOutOutcome:
    """What one pass did. `skipped`: the lock was held (`reason` busy) or the job never ran
    (`reason` never_run); `idle`: nothing to push, nothing written; otherwise a run was
    recorded (`run_id`) with its `counts`. `more`: the pass took PASS_LIMIT candidates, so
    others may be waiting (the daemon starts the next pass at once)."""

    job: str
    status: PassStatus
    run_id: int | None = None
    reason: str | None = None
    candidates: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    more: bool = False
    error: str | None = None
    duration_s: float = 0.0


# -- the pure part ----------------------------------------------------------------------------


def _ids(text: str | None) -> set[str]:
    """The ids of a comma-separated list as an export writes it ('12, 34' or '12,34')."""
    return {part for part in (text or "").replace(" ", "").split(",") if part}


def facts_of(candidate: OptOutCandidate, job: JobConfig) -> Facts:
    """The decision's Facts of an opted-out local contact, from the ledger's remembered view of
    Selzy (as stage_remote and build_plan derive them from an export)."""
    email = job.match == "email"
    status, other = (
        (candidate.email_status, candidate.phone_status)
        if email
        else (candidate.phone_status, candidate.email_status)
    )
    own_unsub, other_unsub = (
        (candidate.email_unsubscribed_list_ids, candidate.phone_unsubscribed_list_ids)
        if email
        else (candidate.phone_unsubscribed_list_ids, candidate.email_unsubscribed_list_ids)
    )
    membership: Membership = "none"
    if candidate.list_status == "subscribed":
        membership = "subscribed"
    elif candidate.list_status == "unsubscribed":
        membership = "unsubscribed"
    return Facts(
        local="present",
        opted_out=True,
        changed=candidate.fingerprint != candidate.pushed_fp,
        membership=membership,
        status=status,
        other_status=other,
        unsubscribed_elsewhere=bool(_ids(other_unsub))
        or bool(_ids(own_unsub) - {str(job.list_id)}),
        suppressed_before=candidate.suppressed_reason is not None,
        pushed=candidate.pushed_fp is not None,
        in_flight=candidate.intent_action is not None,
        quarantined=candidate.quarantined_at is not None
        and candidate.rejected_fp == candidate.fingerprint,
        delete_mode=job.delete_mode,
        remote_only=job.remote_only,
    )


def opt_out_pushes(
    candidates: Sequence[OptOutCandidate], job: JobConfig
) -> list[tuple[OptOutCandidate, Reason]]:
    """The candidates `decide()` sends an opt-out for, with their reason; nothing else."""
    decided = ((c, decide(facts_of(c, job))) for c in candidates)
    return [(c, reason) for c, reason in decided if reason.action in OPT_OUTS]


class _Decided:
    """The pass's decided rows as the Pusher's batch source (a run reads its plan table)."""

    def __init__(self, pushes: Sequence[tuple[OptOutCandidate, Reason]]) -> None:
        self._rows: dict[str, list[PlanRow]] = {}
        for seq, (candidate, reason) in enumerate(pushes, start=1):
            row = PlanRow(seq=seq, key=candidate.key, vals=None, fingerprint=candidate.fingerprint)
            self._rows.setdefault(reason.action, []).append(row)

    @property
    def planned(self) -> dict[str, int]:
        return {action: len(rows) for action, rows in self._rows.items()}

    async def plan_batch(self, action: str, after_seq: int, limit: int) -> list[PlanRow]:
        return [row for row in self._rows.get(action, ()) if row.seq > after_seq][:limit]


# -- the shell --------------------------------------------------------------------------------


async def run_opt_out_pass(
    services: RunServices,
    job: JobConfig,
    *,
    stop: asyncio.Event | None = None,
    limit: int = PASS_LIMIT,
) -> OptOutOutcome:
    """One pass of `job` (which has an opt_out_column). Raises SyncdError (ConfigError for a
    table or column gone) only before a run is recorded; after that, a failure is the run's
    status "failed", as for a full run."""
    started = time.monotonic()
    profile = profile_fields(job)
    timings: dict[str, float] = {}
    database = Database(services.pool)
    async with OptOutSession.open(services.config.database, job) as session:
        if not session.locked:
            return OptOutOutcome(
                job.name,
                "skipped",
                reason="busy" if session.known else "never_run",
                duration_s=time.monotonic() - started,
            )
        with phase_timer(timings, "candidates"):
            candidates = await session.candidates(profile, limit=limit)
        pushes = opt_out_pushes(candidates, job)
        if not pushes:
            return OptOutOutcome(
                job.name, "idle", candidates=len(candidates), duration_s=time.monotonic() - started
            )
        run_id = await database.start_run(
            job.name, dry_run=False, allow_mass_delete=False, trigger=OPT_OUT_TRIGGER
        )
        source = _Decided(pushes)
        counts = {k: v for k, v in empty_counts().items() if k not in UNKNOWN_COUNTS}
        status: PassStatus = "failed"
        error: str | None = None
        with (
            structlog.contextvars.bound_contextvars(job=job.name, run_id=run_id),
            services.client.counting() as calls,
        ):
            try:
                await session.record_decisions(
                    run_id=run_id, decided=[(c.key, reason.code) for c, reason in pushes]
                )
                pusher = Pusher(
                    session=source,
                    database=database,
                    client=services.client,
                    job=job,
                    run_id=run_id,
                    profile=profile,
                    stop=stop,
                )
                try:
                    with phase_timer(timings, "push"):
                        completed = await pusher.run(PUSH_ORDER)
                finally:
                    for name, value in pusher.tally.counts.items():
                        counts[name] += value
                status = "succeeded" if completed else "interrupted"
            except SyncdError as exc:
                error = f"{type(exc).__name__}: {exc}"
            except asyncio.CancelledError:
                status, error = "interrupted", "the opt-out pass was cancelled"
                raise
            except Exception as exc:  # a bug: recorded as a failed run, never a dead daemon
                log.exception("run_crashed", trigger=OPT_OUT_TRIGGER)
                error = f"internal error {type(exc).__name__}: {exc}"
            finally:
                counts["api_calls"] = calls.total
                await _finish(
                    database,
                    job,
                    run_id,
                    status,
                    error,
                    counts,
                    source.planned,
                    timings,
                    calls.errors,
                    started,
                )
    return OptOutOutcome(
        job.name,
        status,
        run_id=run_id,
        candidates=len(candidates),
        counts={k: v for k, v in counts.items() if v},
        more=len(candidates) >= limit,
        error=error,
        duration_s=time.monotonic() - started,
    )


async def _finish(
    database: Database,
    job: JobConfig,
    run_id: int,
    status: PassStatus,
    error: str | None,
    counts: Mapping[str, int],
    planned: Mapping[str, int],
    timings: dict[str, float],
    api_errors: Mapping[str, int],
    started: float,
) -> None:
    """The pass's run row and its `run_finished` line (the same line a full run writes)."""
    try:
        await database.finish_run(
            run_id,
            status=status,
            counts=counts,
            planned=planned,
            timings=timings,
            blocked_reason=None,
            error=error,
        )
    except SyncdError as exc:  # the row stays 'running'; the job's next run marks it interrupted
        log.error("run_record_failed", error=str(exc), attempts=1)
    log.info(
        "run_finished",
        job=job.name,
        run_id=run_id,
        status=status,
        trigger=OPT_OUT_TRIGGER,
        duration_s=round(time.monotonic() - started, 3),
        **counts,
        api_errors=dict(api_errors),
        error=error,
    )
