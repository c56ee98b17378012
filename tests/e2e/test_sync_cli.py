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


WAIT_LIMIT = 20.0  # seconds a test waits for a condition in the database


async def wait_for(condition: Any) -> None:
    async with asyncio.timeout(WAIT_LIMIT):
        while not await condition():  # noqa: ASYNC110 - polling another process's effects
            await asyncio.sleep(0.02)


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
    config = harness.write_config(tmp_path / "syncd.toml")
    await harness.insert(*({"email": f"u{i}@example.com"} for i in range(4)))
    await harness.sandbox.fault(method="importContacts", kind="latency", delay=1.5, times=1)
    first = await start(harness, config)

    async def first_is_running() -> bool:
        return bool(
            await harness.db.fetchval("SELECT count(*) FROM syncd.runs WHERE status = 'running'")
        )

    await wait_for(first_is_running)
    second = await sync(harness, config)
    assert second.code == 3, second
    assert "busy" in second.out
    done = await finish(first)
    assert done.code == 0, done
    assert await harness.db.fetchval("SELECT count(*) FROM syncd.runs") == 1
    calls = await harness.import_calls()
    assert len(calls) == 1
    assert len(calls[0]["params"]["data"]) == 4


TERMINATE_SYNCD = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'syncd' AND pid <> pg_backend_pid()
"""


async def _kill_process(harness: Harness, proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def _cut_database(harness: Harness, proc: asyncio.subprocess.Process) -> None:
    """What a PostgreSQL restart does to its clients: every syncd connection is terminated."""
    assert await harness.db.fetchval(TERMINATE_SYNCD) >= 1
    assert (await finish(proc)).code == 1  # the run fails; it neither hangs nor claims success


@pytest.mark.parametrize(
    ("interrupt", "lost_run_status"),
    [(_kill_process, "interrupted"), (_cut_database, "failed")],
    ids=["kill-9", "database-restart"],
)
async def test_run_interrupted_mid_push_then_a_normal_run_converges(
    harness: Harness, tmp_path: Path, interrupt: Any, lost_run_status: str
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
    await interrupt(harness, proc)
    pushed = await harness.pushed()
    members = await harness.members()
    assert 4 <= len(pushed) < 20
    # nothing recorded as pushed that Selzy did not accept
    assert set(pushed) <= set(members)
    for key in pushed:
        assert members[key]["fields"] == {"Name": key[:3]}

    await harness.sandbox.clear_faults()
    result = await sync(harness, config)
    assert result.code == 0, result
    members = await harness.members()
    assert set(members) == set(emails)
    assert all(members[e]["fields"] == {"Name": e[:3]} for e in emails)
    assert set(await harness.pushed()) == set(emails)
    statuses = [
        r["status"] for r in await harness.db.fetch("SELECT status FROM syncd.runs ORDER BY id")
    ]
    assert statuses == [lost_run_status, "succeeded"]
    await harness.sandbox.clear_calls()
    assert (await sync(harness, config)).code == 0
    assert await harness.import_calls() == []
