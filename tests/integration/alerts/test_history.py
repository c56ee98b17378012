"""The engine after each run, reading syncd.runs on a real PostgreSQL and posting to a real
receiver: one alert per state change over failing, interrupted, blocked and recovering runs;
dry runs and unknown runs change nothing; a part of the state is carried across runs that do not
know it (the quarantine across a failed run, the rejected share across small runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from syncd.alerts import AlertEngine
from syncd.api import RetryPolicy
from syncd.config import AlertsConfig, DatabaseConfig, Secret
from syncd.db import Connection, Pool, create_pool, finish_run, start_run
from tests.integration.alerts.receiver import Receiver, serving

FAST = RetryPolicy(max_attempts=2, base=0.01, cap=0.05)
JOB = "newsletter"


@pytest.fixture
async def pool(db_config: DatabaseConfig) -> AsyncIterator[Pool]:
    pool = await create_pool(db_config)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as found:
        yield found


async def record(
    db: Connection,
    status: str,
    *,
    dry_run: bool = False,
    error: str | None = None,
    reason: str | None = None,
    **counts: int,
) -> int:
    run_id = await start_run(db, JOB, dry_run=dry_run, allow_mass_delete=False, trigger="cli")
    if status != "running":
        await finish_run(
            db,
            run_id,
            status=status,
            counts=counts,
            planned={},
            timings={},
            blocked_reason=reason,
            error=error,
        )
    return run_id


async def kinds_after(engine: AlertEngine, run_id: int) -> list[str]:
    return [alert.kind for alert in await engine.after_run(JOB, run_id)]


async def test_one_alert_per_state_change_over_a_failing_then_recovering_sequence(
    db: Connection, pool: Pool, receiver: Receiver
) -> None:
    config = AlertsConfig(webhook_url=Secret(receiver.url()))
    engine = AlertEngine(config, pool, retry=FAST)
    secret_error = "AuthError: Selzy says alice@example.com is refused"
    steps: list[tuple[dict[str, Any], list[str]]] = [
        ({"status": "succeeded", "added": 3}, []),
        ({"status": "failed", "error": secret_error}, ["failing"]),
        ({"status": "failed", "error": secret_error}, []),
        ({"status": "interrupted", "error": "the run was cancelled"}, []),
        ({"status": "failed", "dry_run": True}, []),  # a dry run changes nothing
        ({"status": "failed", "error": "TransportError: down"}, []),
        ({"status": "blocked", "reason": "2 deletions exceed max_deletes=1"}, ["blocked"]),
        ({"status": "blocked", "reason": "2 deletions exceed max_deletes=1"}, []),
        ({"status": "succeeded", "deleted": 2}, ["recovered"]),
        ({"status": "succeeded"}, []),
    ]
    got = []
    for step, _ in steps:
        run_id = await record(db, **step)
        got.append(await kinds_after(engine, run_id))
    await engine.aclose()
    assert got == [expected for _, expected in steps]
    assert len(receiver.texts) == 3
    failing, blocked, recovered = receiver.texts
    assert "failing" in failing
    assert "AuthError" in failing
    assert "max_deletes=1" in blocked
    assert "recovered" in recovered
    assert not [t for t in receiver.texts if "alice" in t or "refused" in t]


async def test_an_unknown_or_unfinished_run_gives_no_alert(
    db: Connection, pool: Pool, receiver: Receiver
) -> None:
    engine = AlertEngine(AlertsConfig(webhook_url=Secret(receiver.url())), pool, retry=FAST)
    running = await record(db, "running")
    assert await engine.after_run(JOB, running) == []
    assert await engine.after_run(JOB, 10_000) == []
    assert await engine.after_run("other-job", await record(db, "failed")) == []
    await engine.aclose()
    assert receiver.bodies == []


async def test_the_quarantine_is_carried_across_a_failed_run(
    db: Connection, pool: Pool, receiver: Receiver
) -> None:
    config = AlertsConfig(webhook_url=Secret(receiver.url()), quarantine_alert=100)
    engine = AlertEngine(config, pool, retry=FAST)
    got = [
        await kinds_after(engine, await record(db, "succeeded", quarantined=150)),
        await kinds_after(engine, await record(db, "failed", error="ExportError: x")),
        await kinds_after(engine, await record(db, "succeeded", quarantined=150)),
        await kinds_after(engine, await record(db, "succeeded", quarantined=10)),
    ]
    await engine.aclose()
    assert got == [["quarantine_high"], ["failing"], ["recovered"], ["quarantine_resolved"]]


async def test_the_rejected_share_is_carried_across_small_runs(
    db: Connection, pool: Pool, receiver: Receiver
) -> None:
    engine = AlertEngine(AlertsConfig(webhook_url=Secret(receiver.url())), pool, retry=FAST)
    got = [
        await kinds_after(engine, await record(db, "succeeded", rejected=30, added=70)),
        await kinds_after(engine, await record(db, "succeeded", rejected=2, added=1)),
        await kinds_after(engine, await record(db, "interrupted")),
        await kinds_after(engine, await record(db, "succeeded", rejected=1, added=2)),
        await kinds_after(engine, await record(db, "succeeded", rejected=0, added=2)),
    ]
    await engine.aclose()
    assert got == [["rejected_high"], [], [], [], ["rejected_resolved"]]


async def test_a_success_after_the_job_was_called_stale_says_it_is_fresh_once(
    db: Connection, pool: Pool, receiver: Receiver
) -> None:
    engine = AlertEngine(AlertsConfig(webhook_url=Secret(receiver.url())), pool, retry=FAST)
    await kinds_after(engine, await record(db, "succeeded"))
    stale = await engine.check_stale(JOB, None, 0.001)  # since the engine started: long ago
    assert stale is not None
    assert stale.kind == "stale"
    assert await kinds_after(engine, await record(db, "succeeded")) == ["stale_resolved"]
    await engine.aclose()
    stale_text, fresh_text = receiver.texts
    assert "job newsletter is stale" in stale_text
    assert "job newsletter is no longer stale" in fresh_text


async def test_a_database_that_fails_is_logged_and_gives_no_alert(
    db_config: DatabaseConfig, receiver: Receiver
) -> None:
    pool = await create_pool(db_config)
    await pool.close()
    engine = AlertEngine(AlertsConfig(webhook_url=Secret(receiver.url())), pool, retry=FAST)
    with structlog.testing.capture_logs() as logs:
        assert await engine.after_run(JOB, 1) == []
    await engine.aclose()
    [failed] = [entry for entry in logs if entry["event"] == "alert_check_failed"]
    assert (failed["job"], failed["run_id"]) == (JOB, 1)
    assert receiver.bodies == []
