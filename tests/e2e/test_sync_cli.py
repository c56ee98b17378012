"""`syncd sync` as an operator runs it, in a real subprocess against the sandbox and a fresh
database: the summary line, dry runs, the guards' exit status, one run per job at a time, and a
run killed with SIGKILL or cut off from its database mid-push, followed by a run that converges."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from syncd.reconcile.actions import COUNT_NAMES
from tests.e2e.cli_harness import CLI_TIMEOUT, Result
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture


def _env(harness: Harness) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SELZY_API_KEY", "SYNCD_CONFIG")}
    return {**base, "SELZY_API_KEY": harness.sandbox.api_key}


async def start(harness: Harness, config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        "-c",
        str(config),
        "sync",
        *args,
        env=_env(harness),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process) -> Result:
    out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def sync(harness: Harness, config: Path, *args: str) -> Result:
    return await finish(await start(harness, config, *args))


HELD_BATCHES = 30  # contacts (one per batch) of a run that a test holds in its push
HELD_BATCH_DELAY = 1.0  # seconds each held batch takes; held at most 30 s, released far sooner
WAIT_LIMIT = 30.0  # seconds a test waits for a condition in the database (a loaded CI machine)


async def wait_for(condition: Any) -> None:
    async with asyncio.timeout(WAIT_LIMIT):
        while not await condition():  # noqa: ASYNC110 - polling another process's effects
            await asyncio.sleep(0.02)


JOB_LOCK_HELD = """
SELECT EXISTS (
    SELECT FROM pg_locks
    WHERE locktype = 'advisory'
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
"""


async def wait_for_the_job_lock_to_go(harness: Harness) -> None:
    """A server session outlives its client by a moment: the backend of a killed or cut-off
    run holds the job lock while it exits. A run started in that moment is `busy` - right, but
    not what a test of the *next* run is about. Wait until the server has let the lock go."""

    async def released() -> bool:
        return not await harness.db.fetchval(JOB_LOCK_HELD)

    await wait_for(released)


async def test_sync_adds_contacts_and_logs_one_run_finished_line(
    harness: Harness, tmp_path: Path
) -> None:
    config = harness.write_config(tmp_path / "syncd.toml")
    await harness.insert({"email": "ann@example.com", "first_name": "Ann"}, {"email": "bad"})
    result = await sync(harness, config)
    assert result.code == 0, result
    [line] = result.events("run_finished")
    assert line["job"] == "newsletter"
    assert line["status"] == "succeeded"
    assert isinstance(line["run_id"], int)
    assert isinstance(line["duration_s"], float)
    for name in COUNT_NAMES:
        assert isinstance(line[name], int), name
    assert (line["added"], line["rejected"], line["local_count"]) == (1, 1, 2)
    assert line["api_calls"] >= 4  # export, poll, download, importContacts
    assert "newsletter: succeeded" in result.out
    assert harness.sandbox.api_key not in result.out + result.err
    members = await harness.members()
    assert members["ann@example.com"]["fields"] == {"Name": "Ann"}

    await harness.sandbox.clear_calls()
    again = await sync(harness, config)
    assert again.code == 0
    assert await harness.import_calls() == []  # no change, no importContacts


async def test_dry_run_prints_the_plan_and_touches_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    config = harness.write_config(tmp_path / "syncd.toml")
    await harness.insert(*({"email": f"new{i}@example.com"} for i in range(3)))
    result = await sync(harness, config, "--dry-run")
    assert result.code == 0, result
    assert "dry run" in result.out
    assert "add 3" in result.out
    assert "new0@example.com" in result.out
    assert await harness.import_calls() == []
    assert await harness.members() == {}
    assert await harness.pushed() == {}
    run = await harness.db.fetchrow("SELECT dry_run, added FROM syncd.runs")
    assert run is not None
    assert run["dry_run"] is True
    assert run["added"] == 3


async def test_guard_exits_3_until_allow_mass_delete_is_given_once(
    harness: Harness, tmp_path: Path
) -> None:
    config = harness.write_config(
        tmp_path / "syncd.toml", dataclasses.replace(harness.job, max_delete_fraction=0.1)
    )
    await harness.insert(*({"email": f"u{i}@example.com"} for i in range(5)))
    assert (await sync(harness, config)).code == 0
    await harness.db.execute(
        "DELETE FROM public.contacts WHERE email IN ('u0@example.com', 'u1@example.com')"
    )
    for _ in range(2):
        blocked = await sync(harness, config)
        assert blocked.code == 3, blocked
        assert "blocked" in blocked.out
        assert "--allow-mass-delete" in blocked.out
        [line] = blocked.events("run_blocked")
        assert line["level"] == "error"
        assert "max_delete_fraction" in line["reason"]
        assert len(await harness.members()) == 5
    allowed = await sync(harness, config, "--allow-mass-delete")
    assert allowed.code == 0, allowed
    assert set(await harness.members()) == {f"u{i}@example.com" for i in (2, 3, 4)}
    assert (await sync(harness, config)).code == 0


async def test_two_concurrent_syncs_never_both_push(harness: Harness, tmp_path: Path) -> None:
    """The second `syncd sync` of a job finds the first one's lock and does nothing (exit 3)."""
    job = dataclasses.replace(harness.job, batch_size=1, max_in_flight=1)
    config = harness.write_config(tmp_path / "syncd.toml", job)
    emails = [f"u{i:02}@example.com" for i in range(HELD_BATCHES)]
    await harness.insert(*({"email": e} for e in emails))
    # Every batch is slow until the faults are cleared: the first run holds the job for as long
    # as the second one needs to start (seconds on a loaded machine), not for a fixed delay.
    await harness.sandbox.fault(
        method="importContacts", kind="latency", delay=HELD_BATCH_DELAY, times=-1
    )
    first = await start(harness, config)
    try:

        async def first_is_running() -> bool:
            return bool(
                await harness.db.fetchval(
                    "SELECT count(*) FROM syncd.runs WHERE status = 'running'"
                )
            )

        await wait_for(first_is_running)
        second = await sync(harness, config)
    finally:
        await harness.sandbox.clear_faults()  # let the first run go, whatever happened
    assert second.code == 3, second
    assert "busy" in second.out
    done = await finish(first)
    assert done.code == 0, done
    assert await harness.db.fetchval("SELECT count(*) FROM syncd.runs") == 1
    sent = [row for call in await harness.import_calls() for row in call["params"]["data"]]
    assert sorted(row[0] for row in sent) == emails  # each contact pushed once, by the first


TERMINATE_SYNCD = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'syncd' AND pid <> pg_backend_pid()
"""


async def _kill_process(harness: Harness, proc: asyncio.subprocess.Process) -> str:
    """kill -9: the run cannot record its end; the next run marks its row interrupted."""
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    return "interrupted"


async def _cut_database(harness: Harness, proc: asyncio.subprocess.Process) -> str:
    """What a PostgreSQL restart does to its clients: every syncd connection is terminated.

    The run fails; it neither hangs nor claims success. Whether it can *record* that depends on
    the moment: pg_terminate_backend only signals the backends, each ends at its own pace, so
    the run may notice the loss on one connection and write its end on another that is doomed
    but not yet gone (on a loaded machine, often). Then it says run_record_failed, the row
    stays `running`, and the next run marks it `interrupted` - as after a real restart, where
    the database is not there to write to. Either is correct; a `succeeded` row never is.
    """
    assert await harness.db.fetchval(TERMINATE_SYNCD) >= 1
    result = await finish(proc)
    assert result.code == 1, result
    [line] = result.events("run_finished")
    assert line["status"] == "failed", line
    status = await harness.db.fetchval(
        "SELECT status FROM syncd.runs WHERE id = $1", line["run_id"]
    )
    if result.events("run_record_failed"):
        assert status == "running", result
        return "interrupted"
    assert status == "failed", result
    return "failed"


@pytest.mark.parametrize(
    "interrupt", [_kill_process, _cut_database], ids=["kill-9", "database-restart"]
)
async def test_run_interrupted_mid_push_then_a_normal_run_converges(
    harness: Harness, tmp_path: Path, interrupt: Any
) -> None:
    """PRODUCT.md: a run interrupted at any point loses nothing; nothing is recorded as pushed
    that Selzy did not accept, and the next run converges."""
    job = dataclasses.replace(harness.job, batch_size=2, max_in_flight=1)
    config = harness.write_config(tmp_path / "syncd.toml", job)
    emails = [f"u{i:02}@example.com" for i in range(20)]
    await harness.insert(*({"email": e, "first_name": e[:3]} for e in emails))
    await harness.sandbox.fault(method="importContacts", kind="latency", delay=0.25, times=-1)
    proc = await start(harness, config)

    async def some_batches_recorded() -> bool:
        return bool(
            await harness.db.fetchval(
                "SELECT count(*) >= 4 FROM syncd.contacts WHERE pushed_fp IS NOT NULL"
            )
        )

    await wait_for(some_batches_recorded)
    lost_run_status = await interrupt(harness, proc)
    pushed = await harness.pushed()
    members = await harness.members()
    assert 4 <= len(pushed) < 20
    # nothing recorded as pushed that Selzy did not accept
    assert set(pushed) <= set(members)
    for key in pushed:
        assert members[key]["fields"] == {"Name": key[:3]}

    await harness.sandbox.clear_faults()
    await wait_for_the_job_lock_to_go(harness)
    result = await sync(harness, config)
    assert result.code == 0, result
    members = await harness.members()
    assert set(members) == set(emails)
    assert all(members[e]["fields"] == {"Name": e[:3]} for e in emails)
    assert set(await harness.pushed()) == set(emails)
    runs = await harness.db.fetch("SELECT id, status, error FROM syncd.runs ORDER BY id")
    assert [r["status"] for r in runs] == [lost_run_status, "succeeded"]
    assert runs[0]["error"]  # a failed or interrupted run always says why
    if lost_run_status == "interrupted":
        assert f"found by run {runs[1]['id']}" in runs[0]["error"]
    await harness.sandbox.clear_calls()
    assert (await sync(harness, config)).code == 0
    assert await harness.import_calls() == []
