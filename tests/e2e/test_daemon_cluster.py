"""Two `syncd run` processes on one database (failover pair): a job never runs in both at once,
and when one is killed with SIGKILL mid-run the other takes the job over and marks the dead
process's run `interrupted`."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from syncd.config import DatabaseConfig
from tests.e2e.test_daemon import CONTACTS, runs, setup, wait_until
from tests.fixtures.sandbox import SandboxHandle

pytestmark = pytest.mark.timeout(60)
__all__ = ["setup"]  # the fixture, re-used from test_daemon
# Seconds each export of the collision test takes: well over the runner's retries at a busy
# job lock (5 x 0.2 s) plus the scheduler's 1 s period
EXPORT_HOLD = 3.0


def overlapping(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Pairs of runs whose [started_at, finished_at) intervals intersect."""
    done = [r for r in rows if r["finished_at"] is not None]
    return [
        (a["id"], b["id"])
        for i, a in enumerate(done)
        for b in done[i + 1 :]
        if a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]
    ]


async def test_two_daemons_never_run_one_job_at_once(
    setup: dict[str, Any], sandbox: SandboxHandle, db_config: DatabaseConfig
) -> None:
    # Both daemons fire every second and every run holds the job for EXPORT_HOLD: the other
    # daemon's next attempt always comes while the lock is held, and for longer than the
    # runner's own retries at it, so collisions are certain, not a matter of timing
    await sandbox.fault(method="async/exportContacts", kind="latency", delay=EXPORT_HOLD, times=-1)
    config = setup["config"]()
    first, second = await setup["start"](config), await setup["start"](config)

    async def enough() -> bool:
        finished = first.find("run_finished") + second.find("run_finished")
        busy = first.find("run_skipped", reason="busy") + second.find("run_skipped", reason="busy")
        return len(finished) >= 3 and len(busy) >= 2

    await wait_until(enough, within=40, what="three runs and two busy skips")
    rows = await runs(db_config, "news")
    assert overlapping(rows) == []
    assert {r["status"] for r in rows if r["finished_at"]} == {"succeeded"}
    assert len(await sandbox.contacts(list_id=setup["list_id"])) == CONTACTS


async def test_killing_one_daemon_lets_the_other_take_the_job_over(
    setup: dict[str, Any], sandbox: SandboxHandle, db_config: DatabaseConfig
) -> None:
    await sandbox.fault(method="async/exportContacts", kind="latency", delay=1.0, times=-1)
    config = setup["config"]()
    doomed = await setup["start"](config)
    await doomed.wait_for("run_started")
    survivor = await setup["start"](config)
    await survivor.wait_for("daemon_started")

    async def doomed_run() -> list[dict[str, Any]]:
        return [
            r
            for r in await runs(db_config, "news")
            if r["pid"] == doomed.pid and r["status"] == "running"
        ]

    [victim] = await wait_until(doomed_run, what="a run of the first daemon")
    doomed.signal(signal.SIGKILL)
    assert await doomed.wait_exit() == -signal.SIGKILL

    taken = await survivor.wait_for("run_finished", within=20, status="succeeded")
    assert taken["run_id"] > victim["id"]
    rows = {r["id"]: r for r in await runs(db_config, "news")}
    assert rows[victim["id"]]["status"] == "interrupted"
    assert rows[taken["run_id"]]["pid"] == survivor.pid
    assert overlapping(list(rows.values())) == []
    await asyncio.sleep(0)
