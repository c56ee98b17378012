"""Binding plans: what makes a stored plan applicable to a job now (`syncd apply`). Pure.

A plan binds the decisions of one dry run. It may be applied once, by the same job, with the
same configuration of everything that shapes decisions (hashed), within the job's
`plan_max_age`; anything else is refused with a reason naming what differs. An apply whose run
failed or was interrupted does not count: the plan may be applied again, and what that run did
push is in step by then, so it drifts out of the plan instead of being pushed twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from syncd.config import JobConfig

# The job settings that shape a plan. Operational knobs (schedule, timeouts, batch size,
# concurrency, history) may change between plan and apply without changing what it does.
PLAN_SETTINGS = (
    "list_id",
    "table",
    "match",
    "fields",
    "writeback",
    "remote_only",
    "delete_mode",
    "opt_out_column",
    "max_deletes",
    "max_delete_fraction",
    "quarantine_after",
)


def config_hash(job: JobConfig) -> str:
    """A stable hash of the settings in PLAN_SETTINGS (sha256, hex)."""
    shaped = {name: getattr(job, name) for name in PLAN_SETTINGS}
    text = json.dumps(shaped, sort_keys=True, default=dict, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PlanFacts:
    """What `apply` knows of a stored plan before it runs."""

    id: int
    job: str
    created_at: datetime
    config_hash: str
    applied_run: int | None
    applied_status: str | None = None  # the status of the run that applied it (syncd.runs)


RETRYABLE_APPLY = frozenset({"failed", "interrupted"})  # an apply run that ended so: not applied


def refusal(plan: PlanFacts, job: JobConfig, now: datetime) -> str | None:
    """Why `plan` cannot be applied to `job` now, or None."""
    if plan.job != job.name:
        return f"plan {plan.id} was made for job {plan.job!r}, not {job.name!r}"
    if plan.applied_run is not None and plan.applied_status not in RETRYABLE_APPLY:
        return f"plan {plan.id} was already applied by run {plan.applied_run}"
    if plan.config_hash != config_hash(job):
        return (
            f"plan {plan.id} was made with another configuration of job {job.name!r} "
            f"(one of {', '.join(PLAN_SETTINGS)} changed): make a new plan"
        )
    age = (now - plan.created_at).total_seconds()
    if age > job.plan_max_age:
        return (
            f"plan {plan.id} is {age / 3600:.1f} h old, older than plan_max_age = "
            f"{job.plan_max_age / 3600:g} h: make a new plan"
        )
    return None
