"""Supervised tasks: a death is logged once and reported; a clean stop is not a death."""

from __future__ import annotations

import asyncio

import structlog.testing

from syncd.daemon.supervisor import Supervisor


async def test_a_task_that_raises_fails_the_supervisor_and_is_logged_once() -> None:
    supervisor = Supervisor()

    async def boom() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("disk on fire")

    with structlog.testing.capture_logs() as logs:
        supervisor.spawn("heartbeat", boom())
        supervisor.spawn("other", boom())
        await asyncio.wait_for(supervisor.failed.wait(), 1)
        await asyncio.sleep(0.01)
    assert supervisor.failure == "heartbeat"
    deaths = [entry for entry in logs if entry["event"] == "task_died"]
    assert len(deaths) == 1
    assert deaths[0]["task"] == "heartbeat"
    assert "disk on fire" in deaths[0]["error"]


async def test_a_forever_task_that_returns_is_a_death_but_a_may_end_task_is_not() -> None:
    supervisor = Supervisor()

    async def done() -> None:
        return None

    await supervisor.spawn("reload", done(), may_end=True)
    await asyncio.sleep(0)
    assert not supervisor.failed.is_set()
    await supervisor.spawn("heartbeat", done())
    await asyncio.sleep(0)
    assert supervisor.failed.is_set()
    assert supervisor.failure == "heartbeat"


async def test_stop_cancels_running_tasks_without_reporting_a_death() -> None:
    supervisor = Supervisor()
    task = supervisor.spawn("heartbeat", asyncio.sleep(3600))
    await asyncio.sleep(0)
    await supervisor.stop()
    assert task.cancelled()
    assert not supervisor.failed.is_set()
