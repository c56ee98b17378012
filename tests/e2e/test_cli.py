"""The `syncd` console script as an operator runs it: help, usage errors, configuration errors,
`migrate`, `runs`, `check` against the sandbox and PostgreSQL, and `syncd sandbox` itself.
Every command runs in a real subprocess (asyncio's, so the in-process sandbox keeps serving)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from syncd.config import DatabaseConfig
from syncd.db import Connection
from tests.fixtures.sandbox import SandboxHandle, free_port

SYNCD = Path(sys.executable).parent / "syncd"
COMMAND = [str(SYNCD)] if SYNCD.exists() else [sys.executable, "-m", "syncd"]
WRONG_KEY = "wrong-key-5a4b3c2d1e"
CLI_TIMEOUT = 60.0


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


async def syncd(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the console script; the environment holds no Selzy key or config path unless given."""
    base = {k: v for k, v in os.environ.items() if k not in ("SELZY_API_KEY", "SYNCD_CONFIG")}
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        env={**base, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def write_config(tmp_path: Path, *, base_url: str, dsn: str, table: str = "contacts") -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f"""
[selzy]
base_url = "{base_url}"
timeout = 5
poll_interval = 0.05
poll_interval_max = 0.2

[database]
dsn = "{dsn}"
connect_timeout = 5

[[jobs]]
name = "newsletter"
list_id = 1
table = "{table}"
[jobs.fields]
email = "email"
Name = "first_name"
"""
    )
    return path


async def test_help_lists_every_command() -> None:
    result = await syncd("--help")
    assert result.code == 0
    for command in ("migrate", "check", "sync", "run", "runs", "sandbox", "demo"):
        assert command in result.out


async def test_python_dash_m_works_like_the_script() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd", "--version", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode().startswith("syncd ")


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("frobnicate",),
        ("sync", "--bogus"),
        ("runs", "--limit", "0"),
        ("sandbox", "--port", "http"),
    ],
)
async def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = await syncd(*args)
    assert result.code == 2
    assert "usage: syncd" in result.err


async def test_broken_config_exits_78_listing_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(
        """
[selzy]
timeout = "30"
api_key = "PASTED-IN-CONFIG-77"

[log]
levle = "info"

[[jobs]]
name = "newsletter"
list_id = 0
table = "contacts"
schedule = "every 5 weeks"
[jobs.fields]
email = "email"
Name = 1
"""
    )
    result = await syncd("-c", str(path), "check")
    assert result.code == 78
    assert result.err.splitlines() == [
        "config error: selzy.api_key: the API key is never read from the config file:"
        " set $SELZY_API_KEY or selzy.api_key_file",
        "config error: selzy.timeout: expected a number, got string",
        "config error: log.levle: unknown key (did you mean 'level'?)",
        "config error: jobs[0].list_id: must be at least 1, got 0",
        "config error: jobs[0].schedule: expected 'every N' + s|m|h or a 5-field cron"
        " expression, got 'every 5 weeks'",
        "config error: jobs[0].fields.Name: expected a string, got integer",
    ]
    assert "PASTED-IN-CONFIG-77" not in result.text


async def test_missing_config_file_exits_78_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = await syncd("migrate", env={"SYNCD_CONFIG": str(missing)})
    assert result.code == 78
    assert result.err.strip() == (
        f"config error: {missing}: cannot read the config file: No such file or directory"
    )


async def test_sync_without_api_key_exits_78(tmp_path: Path) -> None:
    path = write_config(tmp_path, base_url="http://127.0.0.1:9/en/api", dsn="host=/nonexistent")
    result = await syncd("-c", str(path), "sync")
    assert result.code == 78
    assert "config error: no API key: set $SELZY_API_KEY or selzy.api_key_file" in result.err


async def test_sync_of_an_unknown_job_is_a_usage_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, base_url="http://127.0.0.1:9/en/api", dsn="host=/nonexistent")
    result = await syncd("-c", str(path), "sync", "--job", "nope", env={"SELZY_API_KEY": "k"})
    assert result.code == 2
    assert "unknown job 'nope'; configured jobs: newsletter" in result.err


async def test_migrate_applies_then_reports_up_to_date(
    tmp_path: Path, empty_db_config: DatabaseConfig
) -> None:
    assert empty_db_config.dsn is not None
    dsn = empty_db_config.dsn.reveal()
    path = write_config(tmp_path, base_url="http://127.0.0.1:9/en/api", dsn=dsn)
    first = await syncd("-c", str(path), "migrate")
    assert first.code == 0, first.text
    assert "applied 0001" in first.out
    second = await syncd("-c", str(path), "migrate")
    assert second.code == 0, second.text
    assert "schema is up to date" in second.out


async def test_runs_on_an_empty_log(tmp_path: Path, db_dsn: str) -> None:
    path = write_config(tmp_path, base_url="http://127.0.0.1:9/en/api", dsn=db_dsn)
    table = await syncd("-c", str(path), "runs")
    assert table.code == 0, table.text
    assert "no runs recorded yet" in table.out
    as_json = await syncd("-c", str(path), "runs", "--json", "--job", "newsletter")
    assert as_json.code == 0, as_json.text
    assert json.loads(as_json.out) == []


async def test_check_with_a_refused_key_fails_without_printing_it(
    tmp_path: Path, sandbox: SandboxHandle, db_dsn: str
) -> None:
    path = write_config(tmp_path, base_url=sandbox.base_url, dsn=db_dsn)
    result = await syncd("-c", str(path), "check", env={"SELZY_API_KEY": WRONG_KEY})
    assert result.code == 78
    assert "FAIL selzy: the API key was refused" in result.out
    assert WRONG_KEY not in result.text


async def test_check_lists_every_problem_then_passes_once_fixed(
    tmp_path: Path, sandbox: SandboxHandle, db_dsn: str, db: Connection
) -> None:
    path = write_config(tmp_path, base_url=sandbox.base_url, dsn=db_dsn)
    env = {"SELZY_API_KEY": sandbox.api_key}
    broken = await syncd("-c", str(path), "check", env=env)
    assert broken.code == 78
    assert "FAIL jobs[0].list_id: Selzy has no list 1" in broken.out
    assert "FAIL jobs[0].fields.Name: Selzy has no user field 'Name'" in broken.out
    assert "contacts" in broken.out  # the missing table is reported too
    assert "ok   database.schema" in broken.out

    await sandbox.create_list("Newsletter", list_id=1)
    await sandbox.create_field("Name")
    await db.execute("CREATE TABLE contacts (email text, first_name text)")
    fixed = await syncd("-c", str(path), "check", env=env)
    assert fixed.code == 0, fixed.text
    assert "FAIL" not in fixed.out
    assert "ok   jobs[0].list_id: list 1 'Newsletter'" in fixed.out
    assert sandbox.api_key not in fixed.text


async def test_sync_prints_a_summary_and_exits_with_the_worst_status(
    tmp_path: Path, sandbox: SandboxHandle, db_dsn: str, db: Connection
) -> None:
    """Dry run prints the plan (0), a real run succeeds (0), emptying the table is blocked (3)."""
    await sandbox.create_list("Newsletter", list_id=1)
    await sandbox.create_field("Name")
    await db.execute("CREATE TABLE contacts (email text, first_name text)")
    await db.execute(
        "INSERT INTO contacts SELECT 'u' || i || '@example.com', 'U' || i"
        " FROM generate_series(1, 3) i"
    )
    path = write_config(tmp_path, base_url=sandbox.base_url, dsn=db_dsn)
    env = {"SELZY_API_KEY": sandbox.api_key}

    plan = await syncd("-c", str(path), "sync", "--dry-run", env=env)
    assert plan.code == 0, plan.text
    assert "newsletter: dry run, nothing written" in plan.out
    assert "  plan: add 3" in plan.out
    assert "add: u1@example.com" in plan.out
    assert await sandbox.contacts(list_id=1) == []

    done = await syncd("-c", str(path), "sync", "--job", "newsletter", env=env)
    assert done.code == 0, done.text
    assert "newsletter: succeeded" in done.out
    assert "added 3" in done.out

    await db.execute("DELETE FROM contacts")
    blocked = await syncd("-c", str(path), "sync", env=env)
    assert blocked.code == 3, blocked.text
    assert "newsletter: blocked" in blocked.out
    assert "--allow-mass-delete" in blocked.out
    assert sandbox.api_key not in blocked.text


async def test_sync_of_a_job_locked_elsewhere_exits_3(
    tmp_path: Path, sandbox: SandboxHandle, db_dsn: str, db: Connection
) -> None:
    from syncd.db import ensure_job, try_lock_job

    await sandbox.create_list("Newsletter", list_id=1)
    await sandbox.create_field("Name")
    await db.execute("CREATE TABLE contacts (email text, first_name text)")
    assert await try_lock_job(db, await ensure_job(db, "newsletter"))
    path = write_config(tmp_path, base_url=sandbox.base_url, dsn=db_dsn)
    result = await syncd("-c", str(path), "sync", env={"SELZY_API_KEY": sandbox.api_key})
    assert result.code == 3, result.text
    assert "newsletter: busy" in result.out


async def test_sandbox_command_serves_the_api_until_sigterm() -> None:
    port = free_port()
    key = "e2e-sandbox-key-1234"
    base = {k: v for k, v in os.environ.items() if k != "SELZY_API_KEY"}
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        "sandbox",
        "--port",
        str(port),
        "--export-delay",
        "0.1",
        env={**base, "SELZY_API_KEY": key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/en/api/getLists"
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.post(url, data={"api_key": key, "format": "json"}) as r:
                        body = await r.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("syncd sandbox did not start")
        assert body == {"result": []}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    assert proc.returncode == 0
    assert f"http://127.0.0.1:{port}/en/api" in err.decode()
    assert key not in out.decode() + err.decode()
