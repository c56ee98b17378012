"""`syncd status`: one screen per job — schedule, last run and its outcome, last success and its
age, next run (when a daemon holds the job), quarantined, suppressed and pending counts — read
from PostgreSQL only, so it works from any host. Presentation only; it changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from syncd.config import Config, JobConfig
from syncd.db import connect, ensure_schema
from syncd.db.status import job_overview


def _age(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 1)


def _human_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit} ago"
    return f"{seconds:.0f}s ago"


async def gather(cfg: Config, jobs: Sequence[JobConfig]) -> list[dict[str, Any]]:
    """One dict per job, JSON-ready (times as ISO 8601 strings)."""
    now = datetime.now(UTC)
    conn = await connect(cfg.database)
    try:
        await ensure_schema(conn)
        found = [(job, await job_overview(conn, job.name)) for job in jobs]
    finally:
        await conn.close()
    return [_entry(job, row, now) for job, row in found]


def _entry(job: JobConfig, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    last = None
    if row.get("last_run_id") is not None:
        last = {
            "run_id": row["last_run_id"],
            "status": row["last_status"],
            "dry_run": row["last_dry_run"],
            "started_at": iso(row["last_started_at"]),
            "finished_at": iso(row["last_finished_at"]),
            "error": row["last_error"],
            "blocked_reason": row["last_blocked_reason"],
        }
    optout = None
    if row.get("optout_run_id") is not None:  # the job's last fast opt-out pass that pushed
        optout = {
            "run_id": row["optout_run_id"],
            "status": row["optout_status"],
            "started_at": iso(row["optout_started_at"]),
            "opted_out": row["optout_opted_out"],
            "rejected": row["optout_rejected"],
            "error": row["optout_error"],
        }
    scheduled_at = row.get("scheduled_at")
    return {
        "job": job.name,
        "list_id": job.list_id,
        "schedule": job.schedule.text,
        "last_run": last,
        "last_success_at": iso(row.get("success_at")),
        "last_success_age_s": _age(row.get("success_at"), now),
        "opt_out_latency_s": job.opt_out_latency,
        "last_opt_out_pass": optout,
        "next_run_at": iso(row.get("next_run_at")),
        "scheduled_by": row.get("scheduled_by"),
        "scheduled_age_s": _age(scheduled_at, now),
        "contacts": row.get("contacts", 0),
        "quarantined": row.get("quarantined", 0),
        "suppressed": row.get("suppressed", 0),
        "pending": row.get("pending", 0),
        "in_flight": row.get("in_flight", 0),
    }


def render(entries: Sequence[dict[str, Any]], *, as_json: bool) -> str:
    if as_json:
        return json.dumps(list(entries), indent=2)
    blocks = []
    for e in entries:
        last = e["last_run"]
        if last is None:
            outcome = "no run recorded yet"
        else:
            outcome = f"#{last['run_id']} {last['status']}" + (
                " (dry run)" if last["dry_run"] else ""
            )
            outcome += f", started {last['started_at']}"
            if last["blocked_reason"]:
                outcome += f"\n    blocked: {last['blocked_reason']}"
            elif last["error"]:
                outcome += f"\n    error: {last['error']}"
        next_run = e["next_run_at"] or "not scheduled by a running daemon"
        if e["next_run_at"] and e["scheduled_by"]:
            next_run += f" (daemon {e['scheduled_by']})"
        blocks.append(
            "\n".join(
                [
                    f"{e['job']} (list {e['list_id']}, schedule {e['schedule']})",
                    f"  last run:     {outcome}",
                    f"  last success: {e['last_success_at'] or 'never'}"
                    f" ({_human_age(e['last_success_age_s'])})",
                    f"  next run:     {next_run}",
                    *_opt_out_lines(e),
                    f"  contacts:     {e['contacts']} known; {e['quarantined']} quarantined,"
                    f" {e['suppressed']} suppressed, {e['pending']} pending"
                    f" ({e['in_flight']} in flight)",
                ]
            )
        )
    return "\n\n".join(blocks)


def _opt_out_lines(e: dict[str, Any]) -> list[str]:
    """The job's last fast opt-out pass (opt_out_latency), when it has had one."""
    last = e["last_opt_out_pass"]
    if last is None:
        return []
    line = (
        f"  opt-outs:     pass #{last['run_id']} {last['status']}, started {last['started_at']}:"
        f" {last['opted_out'] or 0} opted out, {last['rejected'] or 0} rejected"
    )
    return [line + (f"\n    error: {last['error']}" if last["error"] else "")]
