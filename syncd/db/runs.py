"""The run log (syncd.runs, syncd.row_outcomes), the job registry (syncd.jobs) and the one-run-
per-job lock. Owns these tables' queries and how a run is shown (`syncd runs`); it decides
nothing about what a run does.

The job lock is a session-level advisory lock taken on the run's *dedicated* connection
(`syncd.db.connect`), never on a pooled one: the lock belongs to the server session, so it must
live exactly as long as the run's connection. A pooled connection goes back to the pool (and
its lock with it, held by no one) or is reset; a dedicated one dies with the process, and the
server then frees the lock (TCP keepalives catch a host that vanished without closing it).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from syncd.db.pool import Connection, translating
from syncd.db.sql import QUERIES
from syncd.errors import DatabaseError

log = structlog.get_logger(__name__)

# First key of pg_try_advisory_lock(int4, int4) for job locks (the bytes of "sync"); the second
# key is syncd.jobs.id. Other applications' advisory locks on the same database are unlikely to
# use this namespace; syncd's migration lock uses the one-bigint form, a separate key space.
JOB_LOCK_NAMESPACE = int.from_bytes(b"sync", "big")

# syncd.runs columns that finish_run accepts in `counts` (RECONCILE.md "Counts").
COUNT_COLUMNS = (
    "local_count",
    "remote_count",
    "added",
    "updated",
    "deleted",
    "excluded",
    "opted_out",
    "imported",
    "rejected",
    "quarantined",
    "duplicates",
    "remote_only",
    "suppressed",
    "status_changes",
    "written_back",
    "api_calls",
    "drift",
)
FINAL_STATUSES = ("succeeded", "failed", "blocked", "interrupted")
# The trigger of a fast opt-out pass's run (a job's opt_out_latency): it pushes opt-outs only,
# without an export, so the job's health, alerts, `syncd status` and the event queue's "covered
# by a run" look past it. The SQL that does so names it literally: health.sql (job_health),
# status.sql (job_overview), alerts.sql (alert_history), events.sql (discard_covered_events)
# and the optout_candidates template.
OPT_OUT_TRIGGER = "opt_out"
OUTCOME_COLUMNS = ("run_id", "job", "key", "action", "outcome", "code", "message")
MAX_ERROR_CHARS = 4000  # what a run row keeps of an error message

OutcomeRow = tuple[str, str, str, str | None, str | None]  # key, action, outcome, code, message


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One syncd.runs row. `counts` maps every COUNT_COLUMNS name to its value (None = unknown)."""

    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime
    status: str
    dry_run: bool
    allow_mass_delete: bool
    trigger: str
    host: str | None
    pid: int | None
    counts: Mapping[str, int | None]
    planned: Mapping[str, int] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    blocked_reason: str | None = None
    error: str | None = None
    plan_id: int | None = None  # the plan this run made (`syncd plan`) or applied

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def _count(result: str) -> int:
    """The row count of a command status such as `COPY 12` or `DELETE 3`."""
    return int(result.rsplit(" ", 1)[-1])


async def ensure_job(
    conn: Connection, name: str, *, list_id: int | None = None, match: str | None = None
) -> int:
    """The id of the job called `name` (created on first use): the job's lock key. `list_id`
    and `match` record what the job is about (the ledger's suppressions are per list)."""
    with translating(conn=conn):
        job_id: int = await conn.fetchval(QUERIES["ensure_job"], name, list_id, match)
    return job_id


async def try_lock_job(conn: Connection, job_id: int) -> bool:
    """Take the job's lock for the life of `conn`'s session; False when another session holds it.

    `conn` must be a dedicated connection (see the module docstring). Re-entrant in a session:
    each successful call needs its own unlock_job.
    """
    with translating(conn=conn):
        acquired: bool = await conn.fetchval(QUERIES["try_lock_job"], JOB_LOCK_NAMESPACE, job_id)
    return acquired


async def unlock_job(conn: Connection, job_id: int) -> None:
    with translating(conn=conn):
        released: bool = await conn.fetchval(QUERIES["unlock_job"], JOB_LOCK_NAMESPACE, job_id)
    if not released:
        log.warning("job_lock_not_held", job_id=job_id)


async def start_run(
    conn: Connection, job: str, *, dry_run: bool, allow_mass_delete: bool, trigger: str
) -> int:
    """Record a new running run of `job` and return its id.

    In the same statement the job's older 'running' rows become 'interrupted': call this only
    while holding the job's lock, so that no live process can own them.
    """
    with translating(conn=conn):
        row = await conn.fetchrow(
            QUERIES["start_run"],
            job,
            dry_run,
            allow_mass_delete,
            trigger,
            socket.gethostname(),
            os.getpid(),
        )
    if row is None:  # pragma: no cover - an INSERT ... RETURNING always gives its row
        raise DatabaseError("start_run returned no row")
    run_id: int = row["id"]
    if row["interrupted"]:
        log.warning("stale_runs_interrupted", job=job, run_ids=list(row["interrupted"]))
    return run_id


async def heartbeat(conn: Connection, run_id: int) -> None:
    """Mark the run as alive now (a monitoring query can spot runs that stopped beating)."""
    with translating(conn=conn):
        await conn.execute(QUERIES["heartbeat"], run_id)


def _int_mapping(name: str, values: Mapping[str, int]) -> str:
    if any(not isinstance(v, int) or isinstance(v, bool) for v in values.values()):
        raise TypeError(f"finish_run: {name} values must be integers: {dict(values)!r}")
    return json.dumps(dict(values), sort_keys=True)


async def finish_run(
    conn: Connection,
    run_id: int,
    *,
    status: str,
    counts: Mapping[str, int],
    planned: Mapping[str, int],
    timings: Mapping[str, float],
    blocked_reason: str | None,
    error: str | None,
) -> None:
    """Close the run with its final status, counts, planned actions, phase timings and error.

    `counts` keys must be COUNT_COLUMNS names (ValueError otherwise: a typo would lose a count);
    counts not given keep their current value.
    """
    if status not in FINAL_STATUSES:
        raise ValueError(f"finish_run: status must be one of {FINAL_STATUSES}, not {status!r}")
    unknown = sorted(set(counts) - set(COUNT_COLUMNS))
    if unknown:
        raise ValueError(f"finish_run: unknown count names {unknown}")
    timings_json = json.dumps({k: round(float(v), 3) for k, v in timings.items()}, sort_keys=True)
    if error is not None and len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 1] + "…"
    with translating(conn=conn):
        await conn.execute(
            QUERIES["finish_run"],
            run_id,
            status,
            _int_mapping("counts", counts),
            _int_mapping("planned", planned),
            timings_json,
            blocked_reason,
            error,
        )


async def record_outcomes(
    conn: Connection, run_id: int, job: str, rows: Iterable[OutcomeRow]
) -> int:
    """Append per-row outcomes (key, action, outcome, code, message) of a run; returns how many.

    Streams `rows` through COPY: any iterable works, nothing is collected first.
    """
    records = (
        (run_id, job, key, action, outcome, code, msg) for key, action, outcome, code, msg in rows
    )
    with translating(conn=conn):
        result = await conn.copy_records_to_table(
            "row_outcomes", schema_name="syncd", columns=OUTCOME_COLUMNS, records=records
        )
    return _count(result)


async def prune_outcomes(conn: Connection, older_than_days: int) -> int:
    """Delete per-row outcomes older than `older_than_days` days; returns how many went."""
    with translating(conn=conn):
        result = await conn.execute(QUERIES["prune_outcomes"], older_than_days)
    return _count(result)


async def recent_runs(
    conn: Connection, *, job: str | None = None, limit: int = 20
) -> list[RunRecord]:
    """The newest `limit` runs (of `job`, or of every job), newest first."""
    with translating(conn=conn):
        rows = await conn.fetch(QUERIES["recent_runs"], job, limit)
    return [run_record(dict(row)) for row in rows]


def run_record(
    row: Mapping[str, Any], *, planned: str = "planned", timings: str = "timings"
) -> RunRecord:
    """A syncd.runs row as a RunRecord; `planned`/`timings` name the columns holding those
    jsonb values as text."""
    return RunRecord(
        id=row["id"],
        job=row["job"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        heartbeat_at=row["heartbeat_at"],
        status=row["status"],
        dry_run=row["dry_run"],
        allow_mass_delete=row["allow_mass_delete"],
        trigger=row["trigger"],
        host=row["host"],
        pid=row["pid"],
        counts={name: row[name] for name in COUNT_COLUMNS},
        planned=json.loads(row[planned]),
        timings=json.loads(row[timings]),
        blocked_reason=row["blocked_reason"],
        error=row["error"],
        plan_id=row["plan_id"],
    )


async def expected_export_seconds(conn: Connection, job: str) -> float | None:
    """Seconds `job`'s export is expected to take (for `wait_for_export`): the median over its
    last 5 succeeded, non-dry runs; None before the first such run."""
    with translating(conn=conn):
        seconds: float | None = await conn.fetchval(QUERIES["expected_export_seconds"], job)
    return seconds


# --- presentation (`syncd runs`) ------------------------------------------------------------

NOTE_WIDTH = 60
_TABLE_COUNTS = (
    ("added", "added"),
    ("updated", "updated"),
    ("deleted", "deleted"),
    ("excluded", "excluded"),
    ("rejected", "rejected"),
    ("dups", "duplicates"),
    ("api", "api_calls"),
)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _local_time(moment: datetime) -> str:
    return moment.astimezone().replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def _note(run: RunRecord) -> str:
    text = " ".join((run.blocked_reason or run.error or "").split())
    if run.trigger == OPT_OUT_TRIGGER:  # its only count is not a column of the table
        done = f"opt-out pass: {run.counts.get('opted_out') or 0} opted out"
        text = f"{done}; {text}" if text else done
    return text if len(text) <= NOTE_WIDTH else text[: NOTE_WIDTH - 1] + "…"


def format_runs_table(runs: Sequence[RunRecord]) -> str:
    """Runs as an aligned text table, one line per run (no trailing newline)."""
    if not runs:
        return "no runs recorded yet"
    header = ["id", "job", "started", "duration", "status", "dry"]
    header += [title for title, _ in _TABLE_COUNTS] + ["note"]
    lines = [header]
    for run in runs:
        line = [
            str(run.id),
            run.job,
            _local_time(run.started_at),
            format_duration(run.duration_s),
            run.status,
            "dry" if run.dry_run else "",
        ]
        line += [str(run.counts.get(col) or 0) for _, col in _TABLE_COUNTS]
        line.append(_note(run))
        lines.append(line)
    numeric = {0, 3} | set(range(6, 6 + len(_TABLE_COUNTS)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for line in lines:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def run_as_dict(run: RunRecord) -> dict[str, Any]:
    """A JSON-ready mapping of the run (for `syncd runs --json`); times are ISO 8601 with offset."""
    return {
        "id": run.id,
        "job": run.job,
        "status": run.status,
        "dry_run": run.dry_run,
        "allow_mass_delete": run.allow_mass_delete,
        "trigger": run.trigger,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "heartbeat_at": _iso(run.heartbeat_at),
        "duration_s": run.duration_s,
        "host": run.host,
        "pid": run.pid,
        **dict(run.counts),
        "planned": dict(run.planned),
        "timings": dict(run.timings),
        "blocked_reason": run.blocked_reason,
        "error": run.error,
        "plan_id": run.plan_id,
    }


async def run_in_progress(conn: Connection, job: str) -> bool:
    """Whether a run of `job` (not a fast opt-out pass) is going on in some process."""
    with translating(conn=conn):
        found: bool = await conn.fetchval(QUERIES["run_in_progress"], job)
    return found
