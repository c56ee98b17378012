"""The daemon in the test's own event loop (real PostgreSQL, real sandbox over HTTP), for what is
awkward to provoke from outside a process: a supervised task dying, the scheduler stopping,
a hung run hitting its timeout, and /healthz turning 503."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import structlog.testing

from syncd.config import Config, DatabaseConfig, JobConfig, MetricsConfig, Schedule
from syncd.daemon import lifecycle
from syncd.daemon.lifecycle import Daemon
from tests.e2e.test_daemon import create_contacts, wait_until
from tests.fixtures.sandbox import SandboxHandle, free_port

pytestmark = pytest.mark.timeout(60)
HUNG_RUN_TIMEOUT = 5.0  # seconds; a run of 5 contacts takes a fraction of one


@pytest.fixture
async def config(db_config: DatabaseConfig, sandbox: SandboxHandle) -> Config:
    await create_contacts(db_config, 5)
    list_id = await sandbox.create_list("Newsletter")
    job = JobConfig(
        name="news",
        list_id=list_id,
        table="public.contacts",
        match="email",
        schedule=Schedule("every 1s", interval_seconds=1),
        fields={"email": "email"},
        run_timeout=20,
    )
    return Config(selzy=sandbox.config, database=db_config, jobs=(job,))


async def started(daemon: Daemon) -> asyncio.Task[int]:
    task = asyncio.create_task(daemon.run())
    await wait_until(lambda: _true(daemon.scheduler.running), within=10, what="the scheduler")
    return task


async def _true(value: bool) -> bool:
    return value


async def test_a_dying_supervised_task_makes_the_daemon_exit_1(config: Config) -> None:
    daemon = Daemon(config, None, environ={})
    with structlog.testing.capture_logs() as logs:
        task = await started(daemon)

        async def broken() -> None:
            raise RuntimeError("lost the plot")

        daemon.supervisor.spawn("broken", broken())
        assert await asyncio.wait_for(task, 30) == 1
    died = [e for e in logs if e["event"] == "task_died"]
    assert [d["task"] for d in died] == ["broken"]
    [stopped] = [e for e in logs if e["event"] == "daemon_stopped"]
    assert stopped["exit_code"] == 1
    assert stopped["reason"] == "task_died:broken"


async def test_a_scheduler_that_stops_by_itself_is_a_death(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "HEARTBEAT_INTERVAL", 0.05)
    daemon = Daemon(config, None, environ={})
    with structlog.testing.capture_logs() as logs:
        task = await started(daemon)
        daemon.scheduler.pause()
        assert await asyncio.wait_for(task, 30) == 1
    [died] = [e for e in logs if e["event"] == "task_died"]
    assert died["task"] == "heartbeat"
    assert "scheduler stopped" in died["error"]


async def test_a_hung_run_is_failed_at_its_timeout_and_later_runs_still_happen(
    config: Config, sandbox: SandboxHandle
) -> None:
    await sandbox.fault(method="async/exportContacts", kind="hang", times=1)
    # the hung run is cut at run_timeout; the next one must fit in it, on a loaded machine too
    job = replace(config.jobs[0], run_timeout=HUNG_RUN_TIMEOUT)
    selzy = replace(config.selzy, timeout=HUNG_RUN_TIMEOUT * 4)  # the run's timeout cuts first
    daemon = Daemon(replace(config, selzy=selzy, jobs=(job,)), None, environ={})
    with structlog.testing.capture_logs() as logs:
        task = await started(daemon)

        async def two_runs() -> list[dict[str, Any]]:
            return [e for e in logs if e["event"] == "run_finished"][:2]

        first, second = await wait_until(
            lambda: _pair(two_runs()), within=40, what="a timed-out run and the next one"
        )
        daemon.request_stop("test")
        assert await asyncio.wait_for(task, 30) == 0
    assert first["status"] == "failed"
    assert second["status"] == "succeeded"
    [failed] = [e for e in logs if e["event"] == "run_failed"]
    assert "run_timeout" in failed["error"]


async def _pair(found: Any) -> Any:
    runs = await found
    return runs if len(runs) == 2 else None


async def test_healthz_turns_503_when_a_job_never_succeeds(
    config: Config, sandbox: SandboxHandle
) -> None:
    """max age = 3 x 1 s + run_timeout 1 s: after 4 s without a success the daemon is unhealthy."""
    await sandbox.fault(
        method="async/exportContacts", kind="error", code="invalid_arg", message="no", times=-1
    )
    port = free_port()
    job = replace(config.jobs[0], run_timeout=1.0)
    cfg = replace(config, jobs=(job,), metrics=MetricsConfig(listen=f"127.0.0.1:{port}"))
    daemon = Daemon(cfg, None, environ={})
    task = await started(daemon)
    try:
        async with aiohttp.ClientSession() as session:

            async def health() -> tuple[int, dict[str, Any]]:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    return resp.status, await resp.json()

            status, body = await health()
            assert status == 200
            assert body["jobs"]["news"]["state"] == "starting"

            async def unhealthy() -> dict[str, Any] | None:
                status, body = await health()
                return body if status == 503 else None

            body = await wait_until(unhealthy, within=15, what="503")
            assert body["jobs"]["news"]["state"] == "never_succeeded"
            assert body["jobs"]["news"]["last_status"] == "failed"
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            assert "syncd_up 0" in text
            assert 'syncd_runs_total{job="news",status="failed"}' in text
    finally:
        daemon.request_stop("test")
        assert await asyncio.wait_for(task, 30) == 0
