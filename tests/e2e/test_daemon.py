"""`syncd run` as systemd runs it: the real process against a fresh PostgreSQL database and the
sandbox over HTTP. Schedules, SIGTERM mid-run, SIGHUP reloads, sd_notify, /healthz, /metrics and
the notify_url callback, each observed from outside (JSON log lines, syncd.runs, HTTP).

The harness (DaemonProcess, write_config, ...) is imported by test_daemon_cluster.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.config import DatabaseConfig
from syncd.db import Connection, connect
from tests.fixtures.sandbox import SandboxHandle, free_port

pytestmark = pytest.mark.timeout(60)

Event = dict[str, Any]
CONTACTS = 40


class DaemonProcess:
    """A `syncd -c CONFIG run` subprocess whose JSON log lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc = proc
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._stderr = stderr
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, config: Path, *, env: dict[str, str] | None = None, prelude: str | None = None
    ) -> DaemonProcess:
        stderr = config.with_suffix(f".{time.monotonic_ns()}.stderr")
        launcher = ["-m", "syncd"] if prelude is None else ["-c", prelude]
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *launcher,
                "-c",
                str(config),
                "run",
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, **(env or {})},
            )
        return cls(proc, stderr)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self.events.append(event)
                    self._changed.set()
        self._changed.set()

    def find(self, event: str, **match: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e.get("event") == event and all(e.get(k) == v for k, v in match.items())
        ]

    async def wait_for(
        self, event: str, *, within: float = 15, count: int = 1, **match: Any
    ) -> Event:
        """The `count`-th line with this event and these values (waits for it)."""
        deadline = time.monotonic() + within
        while True:
            found = self.find(event, **match)
            if len(found) >= count:
                return found[count - 1]
            if self.proc.returncode is not None and self._reader.done():
                raise AssertionError(f"daemon exited before {event} {match}: {self.tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {event} {match} within {within}s: {self.tail()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def tail(self) -> str:
        lines = [json.dumps(e) for e in self.events[-15:]]
        err = self._stderr.read_text(errors="replace")[-2000:] if self._stderr.exists() else ""
        return "\n" + "\n".join(lines) + "\nstderr: " + err

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, within: float = 40) -> int:
        code = await asyncio.wait_for(self.proc.wait(), within)
        await asyncio.wait_for(self._reader, 5)
        return code

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 40)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 5)


def write_config(
    path: Path,
    *,
    db_dsn: str,
    sandbox: SandboxHandle,
    jobs: list[dict[str, Any]],
    poll_interval: float = 0.05,
    webhook: dict[str, Any] | None = None,
    metrics_port: int | None = None,
) -> Path:
    """A TOML config: the sandbox, the test database, JSON logs, and `jobs` (list_id, name, ...)."""
    lines = [
        "[selzy]",
        f'base_url = "{sandbox.base_url}"',
        "timeout = 5",
        "max_attempts = 3",
        "export_deadline = 30",
        f"poll_interval = {poll_interval}",
        f"poll_interval_max = {max(poll_interval, 0.2)}",
        "[database]",
        f'dsn = "{db_dsn}"',
        "pool_size = 3",
        "[log]",
        'level = "info"',
        'format = "json"',
    ]
    if webhook is not None:
        lines += ["[webhook]", *(f"{k} = {json.dumps(v)}" for k, v in webhook.items())]
    if metrics_port is not None:
        lines += ["[metrics]", f'listen = "127.0.0.1:{metrics_port}"']
    for job in jobs:
        settings = {
            "table": "public.contacts",
            "match": "email",
            "schedule": "every 1s",
            "run_timeout": 20,
            **job,
        }
        lines.append("[[jobs]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        lines += ["[jobs.fields]", 'email = "email"', 'Name = "name"']
    path.write_text("\n".join(lines) + "\n")
    return path


async def create_contacts(db_config: DatabaseConfig, count: int = CONTACTS) -> None:
    conn = await connect(db_config)
    try:
        await conn.execute(
            "CREATE TABLE public.contacts (id serial PRIMARY KEY, email text NOT NULL, name text)"
        )
        await conn.execute(
            "INSERT INTO public.contacts (email, name) "
            "SELECT 'user' || i || '@example.com', 'User ' || i FROM generate_series(1, $1) AS i",
            count,
        )
    finally:
        await conn.close()


async def runs(db_config: DatabaseConfig, job: str | None = None) -> list[dict[str, Any]]:
    conn: Connection = await connect(db_config)
    try:
        rows = await conn.fetch(
            "SELECT * FROM syncd.runs WHERE $1::text IS NULL OR job = $1 ORDER BY id", job
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


async def wait_until(check: Callable[[], Any], within: float = 15, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def setup(
    db_config: DatabaseConfig, db_dsn: str, sandbox: SandboxHandle, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    """A contacts table with CONTACTS rows, a sandbox list and the Name field; daemons started
    through `start` are stopped afterwards."""
    await create_contacts(db_config)
    list_id = await sandbox.create_list("Newsletter")
    await sandbox.create_field("Name")
    started: list[DaemonProcess] = []

    async def start(config: Path, **kwargs: Any) -> DaemonProcess:
        daemon = await DaemonProcess.start(config, env={"SELZY_API_KEY": sandbox.api_key}, **kwargs)
        started.append(daemon)
        return daemon

    def config(name: str = "config.toml", **kwargs: Any) -> Path:
        kwargs.setdefault("jobs", [{"name": "news", "list_id": list_id}])
        return write_config(tmp_path / name, db_dsn=db_dsn, sandbox=sandbox, **kwargs)

    yield {"list_id": list_id, "start": start, "config": config, "tmp": tmp_path}
    await asyncio.gather(*(d.stop() for d in started))


FIRST_POLL = 20  # seconds: the callback test's poll interval, so its first poll
FORGERY_WINDOW = 5.0  # seconds the callback test's export takes: its forged callbacks go first


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """systemd's side of NOTIFY_SOCKET."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.setblocking(False)
        yield sock


def notifications(sock: socket.socket) -> list[str]:
    messages = []
    with contextlib.suppress(BlockingIOError):
        while True:
            messages.append(sock.recv(4096).decode())
    return messages


async def test_scheduled_runs_happen_are_logged_and_watched(
    setup: dict[str, Any], sandbox: SandboxHandle, db_config: DatabaseConfig
) -> None:
    """Runs every second, one run_finished line each; /healthz and /metrics answer with the
    job's state; SIGTERM -> one daemon_stopped line, exit 0."""
    port = free_port()
    daemon = await setup["start"](setup["config"](metrics_port=port))
    await daemon.wait_for("daemon_started")
    first = await daemon.wait_for("run_finished", job="news")
    second = await daemon.wait_for("run_finished", job="news", count=2)
    assert first["status"] == second["status"] == "succeeded"
    assert first["added"] == CONTACTS
    assert second["added"] == 0
    assert len(await sandbox.contacts(list_id=setup["list_id"])) == CONTACTS

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
            health = await resp.json()
            assert resp.status == 200, health
        assert health["jobs"]["news"]["state"] == "ok"
        assert health["jobs"]["news"]["last_status"] == "succeeded"
        assert health["jobs"]["news"]["seconds_since_success"] < 10
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            metrics = await resp.text()
    served = {
        (s.name, *sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    assert served[("syncd_runs_total", ("job", "news"), ("status", "succeeded"))] >= 1
    assert served[("syncd_contacts_total", ("action", "added"), ("job", "news"))] == CONTACTS
    assert served[("syncd_last_success_timestamp_seconds", ("job", "news"))] > 0
    assert served[("syncd_run_duration_seconds_count", ("job", "news"))] >= 1
    # what `syncd status` reads from any host: the daemon recorded when the job runs next
    conn: Connection = await connect(db_config)
    try:
        job = await conn.fetchrow("SELECT next_run_at, scheduled_by FROM syncd.jobs")
    finally:
        await conn.close()
    assert job is not None
    assert job["next_run_at"] is not None
    assert job["scheduled_by"].endswith(f":{daemon.pid}")

    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit() == 0
    stopped = daemon.find("daemon_stopped")
    assert len(stopped) == 1
    assert stopped[0]["exit_code"] == 0
    assert stopped[0]["runs"] >= 2


async def test_systemd_hears_ready_status_watchdog_and_stopping(
    setup: dict[str, Any], notify_socket: socket.socket, tmp_path: Path
) -> None:
    daemon = await DaemonProcess.start(
        setup["config"](),
        env={
            "SELZY_API_KEY": "test-key",
            "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
            "WATCHDOG_USEC": "2000000",  # systemd sets WATCHDOG_PID too; absent = ours
        },
    )
    messages: list[str] = []
    try:
        await daemon.wait_for("run_finished", job="news")
        # the watchdog pings every second: wait for one, however slow the machine is
        deadline = time.monotonic() + 30
        while "WATCHDOG=1" not in messages and time.monotonic() < deadline:
            messages += notifications(notify_socket)
            await asyncio.sleep(0.05)
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    finally:
        await daemon.stop()
    messages += notifications(notify_socket)
    assert messages[0].startswith("READY=1\nSTATUS=news: ")
    assert "WATCHDOG=1" in messages
    assert any(m.startswith("STATUS=news: succeeded at ") for m in messages)
    # STOPPING=1 when the stop begins; while a run still in flight finishes (for as long as a
    # loaded machine makes it), it may report its end and the watchdog keeps being fed
    stopping = next(i for i, m in enumerate(messages) if m.startswith("STOPPING=1"))
    after = messages[stopping + 1 :]
    assert all(m.startswith("STATUS=") or m == "WATCHDOG=1" for m in after), messages


async def test_sigterm_during_a_slow_run_interrupts_it_and_a_later_run_converges(
    setup: dict[str, Any], sandbox: SandboxHandle, db_config: DatabaseConfig
) -> None:
    config = setup["config"](
        jobs=[{"name": "news", "list_id": setup["list_id"], "batch_size": 5, "max_in_flight": 1,
               "schedule": "every 1h", "run_at_start": True}],
    )  # fmt: skip
    await sandbox.fault(method="importContacts", kind="latency", delay=1.0, times=-1)
    daemon = await setup["start"](config)
    await wait_until(
        lambda: sandbox.calls("importContacts"), within=15, what="the first importContacts call"
    )
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit() == 0
    # the run stopped after its batch in flight (not after all of them), by itself (not
    # cancelled at the 30 s deadline): what happened, not how long it took on this machine
    [run] = await runs(db_config, "news")
    assert run["status"] == "interrupted"
    assert 0 < run["added"] < CONTACTS
    assert daemon.find("daemon_stopped")[0]["cancelled_runs"] == []

    await sandbox.clear_faults()
    again = await setup["start"](config)
    finished = await again.wait_for("run_finished", job="news")
    assert finished["status"] == "succeeded"
    assert len(await sandbox.contacts(list_id=setup["list_id"])) == CONTACTS


async def test_sighup_keeps_the_old_config_when_the_new_one_is_broken_and_applies_a_valid_one(
    setup: dict[str, Any], sandbox: SandboxHandle
) -> None:
    path = setup["config"]()
    daemon = await setup["start"](path)
    await daemon.wait_for("run_finished", job="news")
    good = path.read_text()

    path.write_text(good.replace('schedule = "every 1s"', 'schedule = "every banana"'))
    daemon.signal(signal.SIGHUP)
    failed = await daemon.wait_for("config_reload_failed")
    assert any("schedule" in p for p in failed["problems"]), failed
    finished = len(daemon.find("run_finished"))
    await daemon.wait_for("run_finished", job="news", count=finished + 1)  # still scheduled

    path.write_text(good.replace('table = "public.contacts"', 'table = "public.missing"'))
    daemon.signal(signal.SIGHUP)
    failed = await daemon.wait_for("config_reload_failed", count=2)
    assert any("missing" in p for p in failed["problems"]), failed  # checked against PostgreSQL

    other = await sandbox.create_list("Second")
    setup["config"](
        jobs=[
            {"name": "news", "list_id": setup["list_id"], "schedule": "every 2s"},
            {"name": "second", "list_id": other},
        ]
    )
    daemon.signal(signal.SIGHUP)
    reloaded = await daemon.wait_for("config_reloaded")
    assert reloaded["added"] == ["second"]
    assert reloaded["changed"] == ["news"]
    assert reloaded["removed"] == []
    assert reloaded["restart_required"] == []
    second = await daemon.wait_for("run_finished", job="second")
    assert second["status"] == "succeeded"
    assert len(await sandbox.contacts(list_id=other)) == CONTACTS


async def test_the_callback_completes_the_export_without_waiting_for_a_poll(
    setup: dict[str, Any], sandbox: SandboxHandle
) -> None:
    """First poll after 20 s: a run that finishes before it was woken by the callback. Forged
    callbacks (unknown token, another task, a replay) are answered and ignored."""
    port = free_port()
    public = f"http://127.0.0.1:{port}/selzy-callback"
    config = setup["config"](
        poll_interval=FIRST_POLL,
        webhook={"listen": f"127.0.0.1:{port}", "public_url": public},
        jobs=[{"name": "news", "list_id": setup["list_id"], "schedule": "every 1h",
               "run_at_start": True}],
    )  # fmt: skip
    # keeps the slot open long enough to forge against, even when the machine is slow
    await sandbox.settings(export_delay=FORGERY_WINDOW)
    daemon = await setup["start"](config)
    [export] = await wait_until(lambda: sandbox.calls("async/exportContacts"), what="the export")
    notify_url = export["params"]["notify_url"]
    assert notify_url.startswith(public + "/")
    assert len(notify_url) > len(public) + 40

    async with aiohttp.ClientSession() as session:

        async def post(url: str, task_uuid: str) -> int:
            body = {"result": {"task_uuid": task_uuid, "status": "completed",
                               "file_to_download": "http://127.0.0.1:1/forged.csv"}}  # fmt: skip
            async with session.post(url, json=body) as resp:
                return resp.status

        assert await post(public + "/" + "x" * 43, "whatever") == 404
        assert await post(notify_url, "not-the-task") == 403
        finished = await daemon.wait_for("run_finished", job="news")
        assert finished["status"] == "succeeded", finished
        assert finished["duration_s"] < FIRST_POLL
        assert await post(notify_url, "not-the-task") == 409  # replay after the run: ignored

    assert daemon.find("callback_received")
    assert daemon.find("export_ready", via="callback")
    assert notify_url.rsplit("/", 1)[1] not in json.dumps(daemon.events)  # the token is a secret
    assert {c["params"].get("status") for c in await sandbox.calls("notify_url")} == {200}
    assert len(await sandbox.contacts(list_id=setup["list_id"])) == CONTACTS


async def test_runs_work_with_writable_executable_memory_forbidden(setup: dict[str, Any]) -> None:
    """The unit sets MemoryDenyWriteExecute=yes: PR_SET_MDWE is the same rule, set in-process."""
    prelude = (
        "import ctypes, runpy, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit(77)\n"  # PR_SET_MDWE, REFUSE_EXEC_GAIN
        "sys.argv[0] = 'syncd'\n"
        "runpy.run_module('syncd', run_name='__main__')\n"
    )
    config = setup["config"](
        jobs=[{"name": "news", "list_id": setup["list_id"], "run_at_start": True}]
    )
    daemon = await setup["start"](config, prelude=prelude)
    try:
        finished = await daemon.wait_for("run_finished", job="news")
    except AssertionError:
        if daemon.proc.returncode == 77:
            pytest.skip("this kernel has no PR_SET_MDWE (Linux >= 6.3)")
        raise
    assert finished["status"] == "succeeded"


async def test_a_configuration_problem_at_start_exits_78_before_anything_runs(
    setup: dict[str, Any], sandbox: SandboxHandle
) -> None:
    """78 is the unit's RestartPreventExitStatus: systemd does not restart into the same error."""
    config = setup["config"](
        jobs=[{"name": "news", "list_id": setup["list_id"], "table": "public.missing"}]
    )
    daemon = await setup["start"](config)
    assert await daemon.wait_exit(within=20) == 78
    assert "public.missing" in daemon.tail()
    assert await sandbox.calls() == []
