"""The run's heartbeat never decides how a run ends: a beat that raises anything, that finds
PostgreSQL gone or that is still waiting for a pooled connection when the run ends leaves a
finished run finished and recorded as such; and the heartbeat has stopped before the run row is
written. Each test makes the run wait, at its first pooled read, until the heartbeat did what
the test is about (no sleeps, no timing assertions)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import structlog.testing

from syncd.db import Database, create_pool
from syncd.reconcile import RunOutcome, runner
from tests.fixtures.pg_proxy import PgProxy
from tests.integration.reconcile.harness import Harness

Hook = Callable[[], Awaitable[None]]


@dataclasses.dataclass
class Beats:
    """Events of the run's heartbeats, seen through Database.heartbeat."""

    ok: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    failed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    started: int = 0


@pytest.fixture
def beats(monkeypatch: pytest.MonkeyPatch) -> Beats:
    """Heartbeats every millisecond, watched."""
    seen = Beats()
    original = Database.heartbeat

    async def watched(self: Database, run_id: int) -> None:
        seen.started += 1
        try:
            await original(self, run_id)
        except Exception:
            seen.failed.set()
            raise
        seen.ok.set()

    monkeypatch.setattr(runner, "HEARTBEAT_INTERVAL", 0.001)
    monkeypatch.setattr(Database, "heartbeat", watched)
    return seen


def at_run_start(monkeypatch: pytest.MonkeyPatch, hook: Hook) -> None:
    """Run `hook` once the run is under way (its heartbeat started), before the export."""
    original = Database.expected_export_seconds

    async def hooked(self: Database, job: str) -> float | None:
        seconds = await original(self, job)
        await hook()
        return seconds

    monkeypatch.setattr(Database, "expected_export_seconds", hooked)


@pytest.fixture
async def proxy(harness: Harness) -> AsyncIterator[PgProxy]:
    async with PgProxy.serving(harness.db_config) as proxy:
        yield proxy


async def _run_through(harness: Harness, proxy: PgProxy, **db: Any) -> RunOutcome:
    """A run whose pooled connections (heartbeat included) go through `proxy`; its own session
    connects directly."""
    pool = await create_pool(proxy.config(harness.db_config, **db))
    try:
        return await dataclasses.replace(harness, pool=pool).run()
    finally:
        await pool.close()


async def _assert_recorded(harness: Harness, outcome: RunOutcome) -> None:
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["added"] == 2
    row = await harness.run_row(outcome.run_id)
    assert (row["status"], row["added"], row["error"]) == ("succeeded", 2, None)
    assert set(await harness.members()) == {"ann@example.com", "bob@example.com"}


@pytest.fixture
async def contacts(harness: Harness) -> None:
    await harness.insert(
        {"email": "ann@example.com", "first_name": "Ann"},
        {"email": "bob@example.com", "first_name": "Bob"},
    )


@pytest.mark.usefixtures("contacts")
async def test_a_heartbeat_raising_a_foreign_error_leaves_the_run_succeeded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    broke = asyncio.Event()

    async def broken(self: Database, run_id: int) -> None:
        broke.set()
        raise RuntimeError("a bug in the heartbeat")

    monkeypatch.setattr(runner, "HEARTBEAT_INTERVAL", 0.001)
    monkeypatch.setattr(Database, "heartbeat", broken)
    at_run_start(monkeypatch, broke.wait)
    with structlog.testing.capture_logs() as logs:
        outcome = await harness.run()
    await _assert_recorded(harness, outcome)
    failures = [e for e in logs if e["event"] == "heartbeat_failed"]
    assert failures
    assert {e["error_type"] for e in failures} == {"RuntimeError"}
    assert not [e for e in logs if e["event"] == "run_crashed"]


@pytest.mark.usefixtures("contacts")
async def test_heartbeats_failing_while_postgresql_is_away_leave_the_run_succeeded(
    harness: Harness, proxy: PgProxy, beats: Beats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL goes away for the pool (the heartbeat's connection is reset, new ones are
    refused) and comes back before the run needs the pool again."""

    async def away_for_a_beat() -> None:
        await beats.ok.wait()
        await proxy.cut()
        await beats.failed.wait()
        await proxy.restore()

    at_run_start(monkeypatch, away_for_a_beat)
    with structlog.testing.capture_logs() as logs:
        outcome = await _run_through(harness, proxy)
    await _assert_recorded(harness, outcome)
    failures = [e for e in logs if e["event"] == "heartbeat_failed"]
    assert failures
    assert {e["error_type"] for e in failures} == {"DatabaseError"}


@pytest.mark.usefixtures("contacts")
async def test_a_heartbeat_still_waiting_for_a_connection_is_cancelled_not_fatal(
    harness: Harness, proxy: PgProxy, beats: Beats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat's new connection goes into a black hole (a server that never answers);
    the run goes on on the pool's other connections, and ends while that beat still waits."""

    async def beat_into_a_black_hole() -> None:
        await beats.ok.wait()
        accepted = proxy.accepted
        await proxy.blackhole()
        await proxy.wait_accepted(accepted + 1)  # the next beat is connecting into it
        await proxy.restore()

    at_run_start(monkeypatch, beat_into_a_black_hole)
    with structlog.testing.capture_logs() as logs:
        outcome = await _run_through(
            harness, proxy, pool_size=4, connect_timeout=300.0, acquire_timeout=300.0
        )
    await _assert_recorded(harness, outcome)
    assert not [e for e in logs if e["event"] in ("run_crashed", "run_record_failed")]


@pytest.mark.usefixtures("contacts")
async def test_the_heartbeat_has_ended_before_the_run_is_recorded(
    harness: Harness, beats: Beats, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_run_start(monkeypatch, beats.ok.wait)
    beating_at_finish: list[list[str]] = []
    original = Database.finish_run

    async def finish_run(self: Database, run_id: int, **kwargs: Any) -> None:
        beating_at_finish.append(
            [t.get_name() for t in asyncio.all_tasks() if t.get_name() == f"heartbeat-{run_id}"]
        )
        await original(self, run_id, **kwargs)

    monkeypatch.setattr(Database, "finish_run", finish_run)
    outcome = await harness.run()
    await _assert_recorded(harness, outcome)
    assert beats.started > 0
    assert beating_at_finish == [[]]
