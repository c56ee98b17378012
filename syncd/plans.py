"""`syncd plan` and `syncd apply`: binding plans. `plan` is a dry run that also stores its
complete plan (every contact's action, values and reason) with an id, the config's hash and the
time, and can write it as JSON lines for review. `apply PLAN` re-exports and executes exactly
that plan: whatever changed since is skipped and reported as drift, never improvised; a plan of
another configuration, an old one, or one applied before is refused. Both runs are recorded in
syncd.runs, linked to the plan (syncd.plans.run_id, syncd.runs.plan_id).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from syncd.api import SelzyClient
from syncd.config import Config, JobConfig
from syncd.db import create_pool
from syncd.db.plans import load_plan
from syncd.errors import UsageError
from syncd.oneshot import (
    EXIT_BLOCKED,
    EXIT_FAILED,
    OUTCOME_EXIT,
    format_outcome,
    stop_on_signals,
    verify_job_sources,
)
from syncd.planfile import write_plan
from syncd.reconcile import Binding, RunOutcome, RunServices, run_job
from syncd.reconcile.binding import PlanFacts, refusal


async def _run(
    cfg: Config, job: JobConfig, binding: Binding, *, allow_mass_delete: bool
) -> RunOutcome:
    stop = asyncio.Event()
    pool = await create_pool(cfg.database)
    try:
        await verify_job_sources(cfg, [job])
        with stop_on_signals(stop):
            async with SelzyClient(cfg.selzy) as client:
                services = RunServices(config=cfg, pool=pool, client=client)
                return await run_job(
                    services, job, allow_mass_delete=allow_mass_delete, stop=stop, binding=binding
                )
    finally:
        await pool.close()


async def make_plan(
    cfg: Config, job: JobConfig, *, out: Path | None, allow_mass_delete: bool
) -> int:
    """`syncd plan`: exit 0, or 3 when the guards would block the plan's deletions (the plan is
    stored either way; made with --allow-mass-delete, apply will let them pass)."""
    outcome = await _run(cfg, job, Binding(kind="plan"), allow_mass_delete=allow_mass_delete)
    print(format_outcome(outcome, dry_run=True), flush=True)
    if outcome.plan_id is None:  # the dry run failed before its plan could be stored
        return OUTCOME_EXIT.get(outcome.status, EXIT_FAILED) or EXIT_FAILED
    print(f"  plan {outcome.plan_id} stored: `syncd apply {outcome.plan_id}` executes it")
    if out is not None:
        plan = await load_plan(cfg.database, outcome.plan_id)
        if plan is None:  # pragma: no cover - it was just stored
            raise UsageError(f"plan {outcome.plan_id} vanished")
        lines = await write_plan(cfg.database, plan, out)
        print(f"  written to {out} ({lines} contacts)")
    if outcome.status == "blocked":
        return EXIT_BLOCKED
    return OUTCOME_EXIT.get(outcome.status, EXIT_FAILED)


async def apply_plan(cfg: Config, plan_id: int) -> int:
    """`syncd apply PLAN`: refused (UsageError, exit 2) unless the plan is applicable now."""
    plan = await load_plan(cfg.database, plan_id)
    if plan is None:
        raise UsageError(f"no plan {plan_id} in syncd.plans")
    jobs = {job.name: job for job in cfg.jobs}
    job = jobs.get(plan.job)
    if job is None:
        raise UsageError(f"plan {plan_id} is of job {plan.job!r}, which this config does not have")
    facts = PlanFacts(
        plan.id, plan.job, plan.created_at, plan.config_hash, plan.applied_run, plan.applied_status
    )
    problem = refusal(facts, job, datetime.now(UTC))
    if problem is not None:
        raise UsageError(problem)
    binding = Binding(kind="apply", plan_id=plan.id, allow_mass_delete=plan.allow_mass_delete)
    outcome = await _run(cfg, job, binding, allow_mass_delete=False)
    print(format_outcome(outcome, dry_run=False), flush=True)
    drift = outcome.counts.get("drift", 0)
    if drift:
        sample = ", ".join(outcome.drift_sample)
        print(
            f"  drift: {drift} contact(s) changed since the plan and were skipped ({sample}); "
            "the next run decides them anew"
        )
    return OUTCOME_EXIT.get(outcome.status, EXIT_FAILED)


def planning_job(cfg: Config, names: list[str] | None) -> JobConfig:
    """The one job `syncd plan` plans: --job, or the only job configured."""
    if names:
        [name] = names[-1:]
        for job in cfg.jobs:
            if job.name == name:
                return job
        raise UsageError(
            f"unknown job {name!r}; configured jobs: {', '.join(j.name for j in cfg.jobs)}"
        )
    if len(cfg.jobs) != 1:
        raise UsageError("several jobs are configured: say which one to plan with --job NAME")
    return cfg.jobs[0]
