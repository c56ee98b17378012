"""The run log and the one-run-per-job lock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from syncd.config import DatabaseConfig
from syncd.db import (
    COUNT_COLUMNS,
    Connection,
    connect,
    ensure_job,
    finish_run,
    format_runs_table,
    heartbeat,
    prune_outcomes,
    recent_runs,
    record_outcomes,
    run_as_dict,
    start_run,
    try_lock_job,
    unlock_job,
)
from syncd.db.runs import RunRecord


async def _wait_for_lock(conn: Connection, job_id: int) -> bool:
    """Poll for the lock for up to 3 s (a terminated backend goes away asynchronously)."""
    for _ in range(60):
        if await try_lock_job(conn, job_id):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_ensure_job_gives_a_stable_id_per_name(db: Connection) -> None:
    first = await ensure_job(db, "newsletter")
    assert await ensure_job(db, "newsletter") == first
    assert await ensure_job(db, "sms") != first


async def test_only_one_connection_holds_a_job_lock_and_closing_it_frees_the_lock(
    db: Connection, db_config: DatabaseConfig
) -> None:
    job_id = await ensure_job(db, "newsletter")
    other_job = await ensure_job(db, "sms")
    holder = await connect(db_config)
    try:
        assert await try_lock_job(holder, job_id)
        assert not await try_lock_job(db, job_id)
        assert await try_lock_job(db, other_job), "locks are per job"
        await holder.close()
        assert await _wait_for_lock(db, job_id)
    finally:
        await holder.close()


async def test_unlock_job_lets_another_connection_take_the_lock(
    db: Connection, db_config: DatabaseConfig
) -> None:
    job_id = await ensure_job(db, "newsletter")
    other = await connect(db_config)
    try:
        assert await try_lock_job(db, job_id)
        await unlock_job(db, job_id)
        assert await try_lock_job(other, job_id)
    finally:
        await other.close()


async def test_a_killed_process_releases_its_job_lock(
    db: Connection, db_config: DatabaseConfig
) -> None:
    """kill -9 of the holder is played by terminating its backend: the server frees the lock."""
    job_id = await ensure_job(db, "newsletter")
    holder = await connect(db_config)
    try:
        assert await try_lock_job(holder, job_id)
        assert not await try_lock_job(db, job_id)
        await db.execute("SELECT pg_terminate_backend($1)", holder.get_server_pid())
        assert await _wait_for_lock(db, job_id)
    finally:
        holder.terminate()


async def test_start_run_marks_the_jobs_stale_running_rows_interrupted(db: Connection) -> None:
    stale = await start_run(db, "newsletter", dry_run=False, allow_mass_delete=False, trigger="cli")
    other_job = await start_run(db, "sms", dry_run=False, allow_mass_delete=False, trigger="cli")
    new = await start_run(
        db, "newsletter", dry_run=True, allow_mass_delete=True, trigger="schedule"
    )
    rows = {r["id"]: r for r in await db.fetch("SELECT * FROM syncd.runs")}
    assert rows[stale]["status"] == "interrupted"
    assert rows[stale]["finished_at"] is not None
    assert rows[stale]["error"] == f"the process running it stopped (found by run {new})"
    assert rows[other_job]["status"] == "running", "another job's run is not touched"
    fresh = rows[new]
    assert (fresh["status"], fresh["dry_run"], fresh["allow_mass_delete"], fresh["trigger"]) == (
        "running",
        True,
        True,
        "schedule",
    )
    assert fresh["pid"] > 0
    assert fresh["host"]


async def test_heartbeat_moves_the_runs_heartbeat_forward(db: Connection) -> None:
    run_id = await start_run(
        db, "newsletter", dry_run=False, allow_mass_delete=False, trigger="cli"
    )
    await db.execute(
        "UPDATE syncd.runs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1", run_id
    )
    await heartbeat(db, run_id)
    age = await db.fetchval("SELECT now() - heartbeat_at FROM syncd.runs WHERE id = $1", run_id)
    assert age.total_seconds() < 5


async def test_finish_run_records_counts_plan_timings_and_recent_runs_reads_them_back(
    db: Connection,
) -> None:
    first = await start_run(db, "newsletter", dry_run=False, allow_mass_delete=False, trigger="cli")
    counts = {name: i + 1 for i, name in enumerate(COUNT_COLUMNS)}
    await finish_run(
        db,
        first,
        status="blocked",
        counts=counts,
        planned={"add": 3, "delete": 2000},
        timings={"export": 1.23456, "push": 0.5},
        blocked_reason="2000 deletions > max_deletes 1000",
        error=None,
    )
    second = await start_run(db, "sms", dry_run=True, allow_mass_delete=False, trigger="cli")
    await finish_run(
        db,
        second,
        status="failed",
        counts={"added": 1},
        planned={},
        timings={},
        blocked_reason=None,
        error="boom",
    )
    runs = await recent_runs(db, job=None, limit=10)
    assert [r.id for r in runs] == [second, first], "newest first"
    blocked = runs[1]
    assert blocked.status == "blocked"
    assert dict(blocked.counts) == counts
    assert blocked.planned == {"add": 3, "delete": 2000}
    assert blocked.timings == {"export": 1.235, "push": 0.5}
    assert blocked.blocked_reason == "2000 deletions > max_deletes 1000"
    assert blocked.duration_s is not None
    assert blocked.duration_s >= 0
    failed = runs[0]
    assert failed.counts["added"] == 1
    assert failed.counts["updated"] == 0, "counts not given keep their default"
    assert failed.counts["local_count"] is None
    assert [r.id for r in await recent_runs(db, job="newsletter", limit=10)] == [first]
    assert [r.id for r in await recent_runs(db, job=None, limit=1)] == [second]


async def test_finish_run_refuses_unknown_count_names_and_statuses(db: Connection) -> None:
    run_id = await start_run(
        db, "newsletter", dry_run=False, allow_mass_delete=False, trigger="cli"
    )
    common = {"planned": {}, "timings": {}, "blocked_reason": None, "error": None}
    with pytest.raises(ValueError, match=r"unknown count names \['addded'\]"):
        await finish_run(db, run_id, status="succeeded", counts={"addded": 1}, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status must be one of"):
        await finish_run(db, run_id, status="running", counts={}, **common)  # type: ignore[arg-type]
    assert await db.fetchval("SELECT status FROM syncd.runs WHERE id = $1", run_id) == "running"


async def test_record_outcomes_streams_rows_and_prune_forgets_old_ones(db: Connection) -> None:
    run_id = await start_run(
        db, "newsletter", dry_run=False, allow_mass_delete=False, trigger="cli"
    )
    rows = (
        (f"user{i}@example.com", "add", "rejected", "invalid_arg", f"bad {i}") for i in range(1000)
    )
    assert await record_outcomes(db, run_id, "newsletter", rows) == 1000
    assert (
        await record_outcomes(db, run_id, "newsletter", [("", "none", "invalid_key", None, None)])
        == 1
    )
    stored = await db.fetchrow("SELECT * FROM syncd.row_outcomes WHERE key = 'user7@example.com'")
    assert stored is not None
    assert (stored["run_id"], stored["job"], stored["code"], stored["message"]) == (
        run_id,
        "newsletter",
        "invalid_arg",
        "bad 7",
    )
    await db.execute(
        "UPDATE syncd.row_outcomes SET created_at = now() - interval '31 days'"
        " WHERE key LIKE 'user1%'"
    )
    assert await prune_outcomes(db, 30) == 111  # user1, user10..19, user100..199
    assert await db.fetchval("SELECT count(*) FROM syncd.row_outcomes") == 890


def _record(**overrides: object) -> RunRecord:
    fields: dict[str, object] = {
        "id": 7,
        "job": "newsletter",
        "started_at": datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC),
        "finished_at": datetime(2025, 3, 1, 12, 1, 5, tzinfo=UTC),
        "heartbeat_at": datetime(2025, 3, 1, 12, 1, 5, tzinfo=UTC),
        "status": "succeeded",
        "dry_run": False,
        "allow_mass_delete": False,
        "trigger": "schedule",
        "host": "box",
        "pid": 42,
        "counts": dict.fromkeys(COUNT_COLUMNS, 0) | {"added": 1500, "api_calls": 4},
    }
    fields.update(overrides)
    return RunRecord(**fields)  # type: ignore[arg-type]


def test_format_runs_table_aligns_columns_and_truncates_long_notes() -> None:
    runs = [
        _record(),
        _record(
            id=8,
            job="sms",
            status="blocked",
            dry_run=True,
            finished_at=None,
            blocked_reason="would delete 5000 contacts " + "x" * 100,
        ),
    ]
    lines = format_runs_table(runs).splitlines()
    assert lines[0].split() == [
        "id", "job", "started", "duration", "status", "dry",
        "added", "updated", "deleted", "excluded", "rejected", "dups", "api", "note",
    ]  # fmt: skip
    assert len(lines) == 3
    assert "1m05s" in lines[1]
    assert "1500" in lines[1]
    assert " dry " in lines[2]
    assert lines[2].endswith("…")
    started = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert started in lines[1]
    # every column starts at the same offset on every line
    assert lines[1].index("newsletter") == lines[2].index("sms") == lines[0].index("job")
    assert lines[1].index("succeeded") == lines[2].index("blocked") == lines[0].index("status")


def test_format_runs_table_says_so_when_there_are_no_runs() -> None:
    assert format_runs_table([]) == "no runs recorded yet"


def test_run_as_dict_is_json_ready_with_every_count() -> None:
    data = json.loads(json.dumps(run_as_dict(_record(error="boom"))))
    assert (data["id"], data["added"], data["error"]) == (7, 1500, "boom")
    assert data["started_at"] == "2025-03-01T12:00:00+00:00"
    assert data["duration_s"] == 65.0
    assert set(COUNT_COLUMNS) <= set(data)
