"""What is worth an alert: a job's state after a run (JobSnapshot), the alerts a change of that
state gives (`transitions`), and when a job has gone without success too long (`stale`). Pure:
no I/O, no clock. An alert carries the job, counts, an error *type* and a guard's reason - never
an error message (Selzy's text can name a contact), never a contact, never a secret.

One alert per state change, never one per run. A job's state has three parts, each changed (and
alerted on) only by a run that knows it:

    part            known from                              alerts
    health          succeeded -> ok, failed -> failing,     failing, blocked, recovered
                    blocked -> blocked (interrupted: no)
    quarantine      succeeded and blocked runs              quarantine_high, quarantine_resolved
    rejected share  succeeded and blocked runs that         rejected_high, rejected_resolved
                    rejected nothing or pushed at least
                    REJECTED_MIN_ROWS rows
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeAlias

from syncd.config import AlertsConfig
from syncd.db import RunRecord

State: TypeAlias = Literal["ok", "failing", "blocked"]
Severity: TypeAlias = Literal["info", "warning", "error"]
Kind: TypeAlias = Literal[
    "failing",
    "blocked",
    "recovered",
    "quarantine_high",
    "quarantine_resolved",
    "rejected_high",
    "rejected_resolved",
    "stale",
    "stale_resolved",
    "test",
]

STATE_OF_STATUS: Mapping[str, State] = {
    "succeeded": "ok",
    "failed": "failing",
    "blocked": "blocked",
}
MEASURED_STATUSES = frozenset({"succeeded", "blocked"})  # runs whose plan, so counts, is complete
# The rejected share is only a signal over this many pushed rows ("1 of 2 rejected" is noise);
# a run that rejected nothing is below the threshold whatever its size.
REJECTED_MIN_ROWS = 20
# The counts a rejected share is taken over: every row a run pushed or tried to push.
PUSHED_COUNTS = ("added", "updated", "opted_out", "deleted", "excluded", "imported", "rejected")
SHOWN_COUNTS = ("added", "updated", "deleted", "excluded", "rejected")  # in a recovery's text
STALE_PERIODS = 3  # no success for this many periods of the job's schedule: stale
MAX_REASON_CHARS = 300  # of a guard's reason in an alert

SEVERITY: Mapping[Kind, Severity] = {
    "failing": "error",
    "blocked": "error",
    "stale": "error",
    "quarantine_high": "warning",
    "rejected_high": "warning",
    "recovered": "info",
    "quarantine_resolved": "info",
    "rejected_resolved": "info",
    "stale_resolved": "info",
    "test": "info",
}

# An error type is the part of syncd.runs.error before the first ':' (`AuthError`,
# `configuration`, `the run exceeded run_timeout=3600s`). Anything else - an '@', a long number
# (a phone?), punctuation syncd's own types never have - is not shown.
_ERROR_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_ .=-]{0,79}")
_LONG_NUMBER = re.compile(r"\d{7,}")
UNKNOWN_ERROR_TYPE = "error"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. `text` is one plain line; `as_json` is what a command gets on stdin."""

    job: str | None  # None: not about one job (a test)
    kind: Kind
    text: str
    at: datetime
    run_id: int | None = None

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "kind": self.kind,
            "severity": self.severity,
            "text": self.text,
            "run_id": self.run_id,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """A job's state as one finished run left it; None where the run does not know."""

    job: str
    run_id: int
    at: datetime
    state: State | None  # None: an interrupted run, which says nothing about the job
    error_type: str | None = None
    blocked_reason: str | None = None
    quarantined: int | None = None
    rejected: int | None = None  # with `pushed`: None when the share is not a signal
    pushed: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)  # SHOWN_COUNTS, for the text


def error_type(error: str | None) -> str | None:
    """The type of a syncd.runs error (the part before the first ':'), never its message."""
    if not error:
        return None
    head = error.split(":", 1)[0].strip()
    if _ERROR_TYPE.fullmatch(head) and not _LONG_NUMBER.search(head) and "@" not in head:
        return head
    return UNKNOWN_ERROR_TYPE


def snapshot(run: RunRecord) -> JobSnapshot:
    """What one finished run of syncd.runs says of its job."""

    def count(name: str) -> int:
        return run.counts.get(name) or 0

    measured = run.status in MEASURED_STATUSES
    rejected, pushed = count("rejected"), sum(count(name) for name in PUSHED_COUNTS)
    share_known = measured and (rejected == 0 or pushed >= REJECTED_MIN_ROWS)
    reason = " ".join((run.blocked_reason or "").split())[:MAX_REASON_CHARS] or None
    return JobSnapshot(
        job=run.job,
        run_id=run.id,
        at=run.finished_at or run.heartbeat_at,
        state=STATE_OF_STATUS.get(run.status),
        error_type=error_type(run.error) if run.status == "failed" else None,
        blocked_reason=reason if run.status == "blocked" else None,
        quarantined=count("quarantined") if measured else None,
        rejected=rejected if share_known else None,
        pushed=pushed if share_known else None,
        counts={name: count(name) for name in SHOWN_COUNTS},
    )


def carry(earlier: JobSnapshot | None, later: JobSnapshot) -> JobSnapshot:
    """`later`, with each part of the state it does not know taken from `earlier`."""
    if earlier is None:
        return later
    changes: dict[str, Any] = {}
    if later.state is None:
        changes.update(
            state=earlier.state,
            error_type=earlier.error_type,
            blocked_reason=earlier.blocked_reason,
        )
    if later.quarantined is None:
        changes["quarantined"] = earlier.quarantined
    if later.rejected is None:
        changes.update(rejected=earlier.rejected, pushed=earlier.pushed)
    return replace(later, **changes) if changes else later


def fold(runs: Sequence[RunRecord]) -> JobSnapshot | None:
    """The job's state after `runs` (oldest first): each part from the newest run that knew it."""
    state: JobSnapshot | None = None
    for run in runs:
        state = carry(state, snapshot(run))
    return state


def quarantine_high(snap: JobSnapshot, config: AlertsConfig) -> bool | None:
    if snap.quarantined is None:
        return None
    return snap.quarantined >= config.quarantine_alert


def rejected_high(snap: JobSnapshot, config: AlertsConfig) -> bool | None:
    if snap.rejected is None or snap.pushed is None:
        return None
    if snap.rejected == 0:
        return False
    return snap.rejected > config.rejected_alert_fraction * snap.pushed


def transitions(
    previous: JobSnapshot | None, current: JobSnapshot, config: AlertsConfig
) -> list[Alert]:
    """The alerts of `current` given the job's state before it (None: a job with no history,
    taken as ok and below every threshold). At most one per part of the state."""
    if current.state is None:
        return []
    alerts: list[Alert] = []
    before: State = (previous.state if previous else None) or "ok"
    if current.state != before:
        alerts.append(_health_alert(before, current))
    was_q = bool(previous and quarantine_high(previous, config))
    now_q = quarantine_high(current, config)
    if now_q is not None and now_q != was_q:
        alerts.append(_quarantine_alert(current, config, high=now_q))
    was_r = bool(previous and rejected_high(previous, config))
    now_r = rejected_high(current, config)
    if now_r is not None and now_r != was_r:
        alerts.append(_rejected_alert(current, config, high=now_r))
    return alerts


def _hint(job: str) -> str:
    return f"see: syncd status --job {job}"


def _health_alert(before: State, current: JobSnapshot) -> Alert:
    job, run = current.job, current.run_id
    kind: Kind
    if current.state == "failing":
        kind = "failing"
        text = (
            f"syncd: job {job} is failing: run {run} failed "
            f"({current.error_type or UNKNOWN_ERROR_TYPE}); {_hint(job)}"
        )
    elif current.state == "blocked":
        kind = "blocked"
        reason = current.blocked_reason or "a safety guard tripped"
        text = (
            f"syncd: job {job} is blocked by a safety guard: run {run} deleted nothing "
            f"({reason}); once the deletions are confirmed: "
            f"syncd sync --job {job} --allow-mass-delete"
        )
    else:
        kind = "recovered"
        counts = ", ".join(f"{name} {current.counts.get(name, 0)}" for name in SHOWN_COUNTS)
        text = f"syncd: job {job} recovered: run {run} succeeded after {before} ({counts})"
    return Alert(job=job, kind=kind, text=text, at=current.at, run_id=run)


def _quarantine_alert(current: JobSnapshot, config: AlertsConfig, *, high: bool) -> Alert:
    job, threshold = current.job, config.quarantine_alert
    if high:
        text = (
            f"syncd: job {job} has {current.quarantined} quarantined contacts (alert at "
            f"{threshold}): Selzy rejected their values on too many runs; {_hint(job)}"
        )
    else:
        text = (
            f"syncd: job {job} quarantine is back below {threshold}: "
            f"{current.quarantined} quarantined contacts after run {current.run_id}"
        )
    kind: Kind = "quarantine_high" if high else "quarantine_resolved"
    return Alert(job=job, kind=kind, text=text, at=current.at, run_id=current.run_id)


def _rejected_alert(current: JobSnapshot, config: AlertsConfig, *, high: bool) -> Alert:
    job, limit = current.job, f"{config.rejected_alert_fraction * 100:g}%"
    rejected, pushed = current.rejected or 0, current.pushed or 0
    share = f"{rejected / pushed:.1%}" if pushed else "0%"
    if high:
        text = (
            f"syncd: job {job}: {rejected} of {pushed} rows rejected in run {current.run_id} "
            f"({share}, alert above {limit}); see: syncd runs --job {job}"
        )
    else:
        text = (
            f"syncd: job {job}: rejected rows are back below {limit}: {rejected} of {pushed} "
            f"in run {current.run_id}"
        )
    kind: Kind = "rejected_high" if high else "rejected_resolved"
    return Alert(job=job, kind=kind, text=text, at=current.at, run_id=current.run_id)


# --- staleness ------------------------------------------------------------------------------


def stale(
    last_success_at: datetime | None,
    period: float | None,
    now: datetime,
    *,
    since: datetime | None = None,
) -> bool:
    """No success for STALE_PERIODS periods (seconds) of the job's schedule. A job that never
    succeeded counts from `since` (when the caller started watching); without a period (the job
    is not scheduled) or a starting point, a job is never stale."""
    start = last_success_at or since
    if start is None or not period or period <= 0:
        return False
    return (now - start).total_seconds() > STALE_PERIODS * period


def stale_alert(job: str, last_success_at: datetime | None, period: float, now: datetime) -> Alert:
    if last_success_at is None:
        known = "no successful run yet"
    else:
        age = duration((now - last_success_at).total_seconds())
        known = f"last success {age} ago"
    text = (
        f"syncd: job {job} is stale: no successful run for {STALE_PERIODS} periods of "
        f"{duration(period)} ({known}); {_hint(job)}"
    )
    return Alert(job=job, kind="stale", text=text, at=now)


def fresh_alert(job: str, now: datetime, run_id: int | None = None) -> Alert:
    text = f"syncd: job {job} is no longer stale: it succeeded again"
    if run_id is not None:
        text += f" (run {run_id})"
    return Alert(job=job, kind="stale_resolved", text=text, at=now, run_id=run_id)


def test_alert(now: datetime, host: str) -> Alert:
    text = f"syncd: test alert from {host} (syncd alert-test): this channel receives alerts"
    return Alert(job=None, kind="test", text=text, at=now)


def duration(seconds: float) -> str:
    """`45s`, `15m`, `3h05m`, `2d03h`: for a human, in one word."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m" if not secs else f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
