"""Event webhook benchmark: a real daemon (`syncd run`, `[webhook] events = true`, listening on a
local port) with the sandbox (`syncd sandbox`, Selzy's real rate limits) delivering webhooks to
it over HTTP, and PostgreSQL read from outside. Every scenario starts from the same settled job
of N contacts (a first `syncd sync` and a settle run, saved once and restored per scenario):

- `latency`: unsubscribes in the sandbox through its admin API (the person clicking the link in
  a letter), a few a second, so the backlog stays below event_backlog_run and the worker applies
  each (getContact, no early run): per contact, the time from the sandbox accepting the
  unsubscribe to the local writeback column showing it (PostgreSQL polled). Goal p95 <= 5 s.
- `latency-burst`: the same number of unsubscribes in one go: past event_backlog_run, so one
  early run applies them instead.
- `burst`: signed unsubscribe events POSTed at the daemon's event URL, 10,000 in one minute (the
  contacts were unsubscribed in the sandbox before the daemon registered its handler, so the
  events are true and nothing else is delivered), some POSTs sent twice; `kill -9` of the
  daemon mid-burst and a restart. POST latency, the daemon's RSS, every event stored once and
  applied, and nothing that was answered 200 before the kill lost.

Results: bench/out/events-<UTC time>.json and markdown tables for bench/README.md.

    .venv/bin/python bench/events.py --contacts 100000 --scenarios latency,latency-burst,burst
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import databases
from harness import (
    API_KEY,
    Sandbox,
    code_fingerprint,
    free_port,
    machine_facts,
    restore_state,
    run_sync,
    tail,
)
from prometheus_client.parser import text_string_to_metric_families

from syncd.events.address import event_address
from syncd.events.payload import Parsed, parse_body
from syncd.sandbox.payload import signed

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
JOB = "bench"
SCENARIOS = ("latency", "latency-burst", "burst")
MIB = 1024
LATENCY_GOAL_S = 5.0  # p95, Selzy-side unsubscribe -> local writeback column
POST_GOAL_S = 3.0  # Selzy wants its 200 within 3 s (selzy-api.md §11.5)
POLL_S = 0.05  # seconds between two PostgreSQL polls for written-back contacts
RSS_SAMPLE_S = 0.1  # seconds between two VmRSS samples of the daemon
READY_TIMEOUT = 60.0  # seconds for a started daemon to answer and register its handler
POST_TIMEOUT = 10.0  # seconds the benchmark waits for one POST (Selzy: 3 s, then a retry)
ADMIN_CHUNK = 1000  # contacts per /_sandbox/contacts call when preparing a burst
LOGIN = "sandbox"  # the account login the bodies carry (the sandbox's)

CREATE = (
    "CREATE TABLE contacts (id bigserial PRIMARY KEY, email text NOT NULL, first_name text,"
    " selzy_email_status text, selzy_list_status text)"
)
SEED = (
    "INSERT INTO contacts (email, first_name)"
    " SELECT 'user' || i || '@example.com', 'User ' || i FROM generate_series(1, $1) AS i"
)


def email_of(contact_id: int) -> str:
    return f"user{contact_id}@example.com"


def spread(n: int, count: int, offset: int = 0) -> list[int]:
    """`count` contact ids spread over 1..n (every n/count-th, shifted by `offset`)."""
    step = max(1, n // count)
    return [1 + (offset + i * step) % n for i in range(count)]


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of the values; nan for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": round(quantile(values, 0.50), 3),
        "p95": round(quantile(values, 0.95), 3),
        "p99": round(quantile(values, 0.99), 3),
        "max": round(max(values), 3) if values else None,
        "mean": round(statistics.fmean(values), 3) if values else None,
    }


def proc_kib(pid: int, key: str) -> int:
    """VmRSS / VmHWM of a process from /proc, in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- the processes --------------------------------------------------------------------------


@dataclass
class Options:
    syncd: Path
    contacts: int
    scenarios: list[str]
    latency_events: int
    latency_rate: float
    latency_group: int
    burst_events: int
    burst_seconds: float
    burst_per_post: int
    burst_parallel: int
    burst_duplicates: float
    kill_at: float
    restart_after: float
    retry_after: float
    drain_timeout: float
    hook_batch_delay: float
    export_delay: float
    reuse: bool
    out: Path
    package: str = ""
    code: str = ""


class DaemonProcess:
    """`syncd -c CONFIG run` as a child process; its log appended to one file, RSS sampled."""

    def __init__(self, syncd: Path, config: Path, log: Path) -> None:
        self.syncd, self.config, self.log = syncd, config, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnations: list[dict[str, Any]] = []  # per process: pid, samples, hwm
        self._sampler: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(self.syncd), "-c", str(self.config), "run"],
                env=dict(os.environ, SELZY_API_KEY=API_KEY),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.incarnations.append(
            {"pid": self.proc.pid, "started": time.monotonic(), "rss": [], "hwm_kib": 0}
        )
        if self._sampler is None:
            self._sampler = asyncio.ensure_future(self._sample())

    async def _sample(self) -> None:
        while True:
            if self.proc is not None and self.proc.poll() is None:
                rss = proc_kib(self.proc.pid, "VmRSS")
                if rss:
                    self.incarnations[-1]["rss"].append((time.monotonic(), rss))
                    self.incarnations[-1]["hwm_kib"] = max(
                        self.incarnations[-1]["hwm_kib"], proc_kib(self.proc.pid, "VmHWM")
                    )
            await asyncio.sleep(RSS_SAMPLE_S)

    def rss_kib(self) -> int:
        return proc_kib(self.pid, "VmRSS")

    def kill(self) -> None:
        """kill -9, after reading its VmHWM."""
        assert self.proc is not None
        self.incarnations[-1]["hwm_kib"] = max(
            self.incarnations[-1]["hwm_kib"], proc_kib(self.proc.pid, "VmHWM")
        )
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.incarnations[-1]["killed"] = time.monotonic()

    def stop(self) -> int | None:
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.incarnations[-1]["hwm_kib"] = max(
            self.incarnations[-1]["hwm_kib"], proc_kib(self.proc.pid, "VmHWM")
        )
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def peak_kib(self, index: int, since: float = 0.0, until: float = float("inf")) -> int:
        samples = self.incarnations[index]["rss"]
        return max((rss for at, rss in samples if since <= at <= until), default=0)


class Bench:
    """The settled job of N contacts, its sandbox, and the daemon of each scenario."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.n = opts.contacts
        self.dir = OUT / f"events-{self.n}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.database = f"syncd_bench_events_{self.n}"
        self.settled = f"{self.database}_settled"
        self.dsn = databases.dsn_of(self.database)
        self.snapshot = self.dir / "settled.sqlite"
        self.sandbox = Sandbox(
            opts.syncd,
            self.dir / "sandbox.sqlite",
            export_delay=opts.export_delay,
            log=self.dir / "sandbox.log",
        )
        self.port = free_port()
        self.public_url = f"http://127.0.0.1:{self.port}/selzy-callback"
        self.event_url = event_address(self.public_url, API_KEY).url
        self.list_id = 0

    # -- the settled state --------------------------------------------------------------------

    def prepare(self) -> dict[str, Any]:
        """The settled job, made now or (with --reuse) taken from an earlier run."""
        meta_path = self.snapshot.with_suffix(".json")
        if self.opts.reuse and meta_path.exists() and databases.database_exists(self.settled):
            meta = json.loads(meta_path.read_text())
            print(f"  reusing the settled state of {meta['created']}", flush=True)
            self.list_id = int(meta["list_id"])
            return dict(meta, reused=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.sandbox.state}{suffix}").unlink(missing_ok=True)
        self.sandbox.start()
        try:
            self.list_id = int(self.sandbox.api("createList", [("title", "bench")])["id"])
            self.sandbox.api("createField", [("name", "Name"), ("type", "string")])
            databases.execute(
                databases.ADMIN_DSN,
                (f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)', ()),
                (f'CREATE DATABASE "{self.database}"', ()),
            )
            databases.execute(self.dsn, (CREATE, ()), (SEED, (self.n,)), ("ANALYZE contacts", ()))
            config = self.write_config(events=False)
            subprocess.run(
                [str(self.opts.syncd), "-c", str(config), "migrate"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            runs = []
            for label in ("first full sync", "settle run"):
                log = self.dir / f"{label.replace(' ', '-')}.log"
                result = run_sync(self.opts.syncd, config, log)
                runs.append({"run": label, "exit": result.exit, "wall_s": round(result.seconds, 2)})
                print(f"  {label}: exit {result.exit}, {result.seconds:.1f} s", flush=True)
                if result.exit != 0:
                    raise RuntimeError(f"{label} exited {result.exit}:\n{tail(log)}")
            subscribed = self.fetchval(
                "SELECT count(*) FROM contacts WHERE selzy_list_status = 'subscribed'"
            )
            if subscribed != self.n:
                raise RuntimeError(f"{subscribed} of {self.n} rows written back after settling")
            databases.copy_database(self.database, self.settled)
            self.sandbox.backup(self.snapshot)
        finally:
            self.sandbox.stop()
        meta = {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "list_id": self.list_id,
            "code": self.opts.code,
            "runs": runs,
        }
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        return dict(meta, reused=False)

    def restore(self) -> None:
        """The settled database and sandbox state, the sandbox started on them."""
        databases.copy_database(self.settled, self.database)
        restore_state(self.snapshot, self.sandbox.state)
        self.sandbox.start()
        self.sandbox.admin("settings", {"hook_batch_delay": self.opts.hook_batch_delay})

    def write_config(self, *, events: bool) -> Path:
        lines = [
            "[selzy]",
            f'base_url = "{self.sandbox.api_url}"',
            "poll_interval = 0.5",
            "poll_interval_max = 2.0",
            "",
            "[database]",
            f'dsn = "{self.dsn}"',
            "",
            "[log]",
            'level = "info"',
            'format = "json"',
            "",
        ]
        if events:
            lines += [
                "[webhook]",
                f'listen = "127.0.0.1:{self.port}"',
                f'public_url = "{self.public_url}"',
                "events = true",
                "",
            ]
        lines += [
            "[[jobs]]",
            f'name = "{JOB}"',
            f"list_id = {self.list_id}",
            'table = "public.contacts"',
            'match = "email"',
            'schedule = "every 1h"',  # no scheduled run within a scenario
            f"max_deletes = {self.n}",
            "",
            "[jobs.fields]",
            'email = "email"',
            'Name = "first_name"',
            "",
            "[jobs.writeback]",
            'email_status = "selzy_email_status"',
            'list_status = "selzy_list_status"',
        ]
        path = self.dir / ("daemon.toml" if events else "sync.toml")
        path.write_text("\n".join(lines) + "\n")
        return path

    def fetchval(self, sql: str, *args: Any) -> Any:
        async def one() -> Any:
            conn = await asyncpg.connect(self.dsn)
            try:
                return await conn.fetchval(sql, *args)
            finally:
                await conn.close()

        return asyncio.run(one())

    # -- one scenario's daemon ------------------------------------------------------------------

    def daemon(self, scenario: str) -> DaemonProcess:
        config = self.write_config(events=True)
        log = self.dir / f"daemon-{scenario}.log"
        log.unlink(missing_ok=True)
        return DaemonProcess(self.opts.syncd, config, log)

    async def ready(self, session: aiohttp.ClientSession, daemon: DaemonProcess) -> float:
        """Wait until the daemon answers GET on its event URL and its handler is active in the
        sandbox; the seconds that took."""
        started = time.monotonic()
        while True:
            assert daemon.proc is not None
            if daemon.proc.poll() is not None:
                raise RuntimeError(
                    f"the daemon exited {daemon.proc.returncode}: {tail(daemon.log)}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(self.event_url) as response:
                    answered = response.status == 200
                async with session.get(f"{self.sandbox.root}/_sandbox/hooks") as response:
                    hooks = (await response.json())["hooks"]
                active = [h for h in hooks if h["hook_url"] == self.event_url]
                if answered and active and active[0]["status"] == "active":
                    return time.monotonic() - started
            if time.monotonic() - started > READY_TIMEOUT:
                raise RuntimeError(f"the daemon was not ready in {READY_TIMEOUT:g}s")
            await asyncio.sleep(0.1)

    async def metrics(self, session: aiohttp.ClientSession) -> dict[str, float]:
        """The daemon's event counters (its /metrics on the webhook listener), flattened."""
        async with session.get(f"http://127.0.0.1:{self.port}/metrics") as response:
            text = await response.text()
        found = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.startswith(("syncd_event", "syncd_events", "syncd_runs_total")):
                    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    found[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return found

    async def admin_unsubscribe(self, session: aiohttp.ClientSession, ids: Sequence[int]) -> None:
        """The people unsubscribe from the list (the sandbox's admin API: no API call)."""
        body = {
            "contacts": [
                {"email": email_of(i), "email_unsubscribed_list_ids": [self.list_id]} for i in ids
            ]
        }
        async with session.post(f"{self.sandbox.root}/_sandbox/contacts", json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"/_sandbox/contacts answered {response.status}")
            await response.read()

    async def runs(self, conn: asyncpg.Connection) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            "SELECT id, trigger, status, extract(epoch FROM finished_at - started_at) AS seconds,"
            " written_back, status_changes FROM syncd.runs WHERE job = $1 AND NOT dry_run"
            " AND trigger <> 'cli' ORDER BY id",
            JOB,
        )
        return [
            {
                "id": r["id"],
                "trigger": r["trigger"],
                "status": r["status"],
                "seconds": round(float(r["seconds"]), 2) if r["seconds"] is not None else None,
                "written_back": r["written_back"],
                "status_changes": r["status_changes"],
            }
            for r in rows
        ]

    async def calls(self, session: aiohttp.ClientSession, method: str) -> int:
        url = f"{self.sandbox.root}/_sandbox/calls?method={method}"
        async with session.get(url) as response:
            return len((await response.json())["calls"])

    # -- the scenarios --------------------------------------------------------------------------

    async def latency(self, scenario: str) -> dict[str, Any]:
        """Unsubscribes in the sandbox, in groups; per contact the time to its writeback."""
        count = self.opts.latency_events
        group = count if scenario == "latency-burst" else self.opts.latency_group
        interval = group / self.opts.latency_rate if scenario == "latency" else 0.0
        ids = spread(self.n, count)
        groups = [ids[i : i + group] for i in range(0, len(ids), group)]
        daemon = self.daemon(scenario)
        conn = await asyncpg.connect(self.dsn)
        async with aiohttp.ClientSession() as session:
            daemon.start()
            try:
                ready_s = await self.ready(session, daemon)
                idle_kib = daemon.rss_kib()
                pending: dict[int, float] = {}
                seen: dict[int, float] = {}
                backlog_max = 0
                sending = True
                all_seen = asyncio.Event()

                async def poll() -> None:
                    nonlocal backlog_max
                    while True:
                        if pending:
                            rows = await conn.fetch(
                                "SELECT id FROM contacts WHERE id = ANY($1::bigint[])"
                                " AND selzy_list_status = 'unsubscribed'",
                                list(pending),
                            )
                            now = time.monotonic()
                            for row in rows:
                                seen[row["id"]] = now - pending.pop(row["id"])
                        if not sending and not pending:
                            all_seen.set()
                        queued = await conn.fetchval(
                            "SELECT count(*) FROM syncd.event_queue WHERE job = $1", JOB
                        )
                        backlog_max = max(backlog_max, queued)
                        await asyncio.sleep(POLL_S)

                poller = asyncio.ensure_future(poll())
                started = time.monotonic()
                for k, chunk in enumerate(groups):
                    await asyncio.sleep(max(0.0, started + k * interval - time.monotonic()))
                    await self.admin_unsubscribe(session, chunk)
                    accepted = time.monotonic()
                    pending.update(dict.fromkeys(chunk, accepted))
                sent_s = time.monotonic() - started
                sending = False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.opts.drain_timeout):
                        await all_seen.wait()
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
                missing = sorted(pending)
                counters = await self.metrics(session)
                runs = await self.runs(conn)
                get_contact = await self.calls(session, "getContact")
                peak_kib = daemon.peak_kib(0)
            finally:
                exit_code = daemon.stop()
                await conn.close()
        latencies = list(seen.values())
        result = {
            "scenario": scenario,
            "contacts": self.n,
            "unsubscribes": count,
            "group": group,
            "interval_s": round(interval, 3),
            "sent_s": round(sent_s, 2),
            "hook_batch_delay": self.opts.hook_batch_delay,
            "ready_s": round(ready_s, 2),
            "latency_s": summary(latencies),
            "written_back": len(latencies),
            "missing": len(missing),
            "backlog_max": backlog_max,
            "early_runs": [r for r in runs if r["trigger"] == "events"],
            "runs": runs,
            "getcontact_calls": get_contact,
            "rss_idle_kib": idle_kib,
            "rss_peak_kib": peak_kib,
            "metrics": counters,
            "daemon_exit": exit_code,
            "log": str(daemon.log.relative_to(ROOT)),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        p95 = result["latency_s"]["p95"]
        print(
            f"  {scenario}: {len(latencies)}/{count} written back, p50"
            f" {result['latency_s']['p50']:.2f} s p95 {p95:.2f} s max"
            f" {result['latency_s']['max']} s; backlog max {backlog_max};"
            f" early runs {len(result['early_runs'])}; getContact {get_contact}",
            flush=True,
        )
        return result

    async def burst(self) -> dict[str, Any]:
        opts = self.opts
        ids = spread(self.n, opts.burst_events)
        async with aiohttp.ClientSession() as session:
            for i in range(0, len(ids), ADMIN_CHUNK):  # before any handler: nothing delivered
                await self.admin_unsubscribe(session, ids[i : i + ADMIN_CHUNK])
        posts = self._burst_bodies(ids)
        rng = random.Random(9)  # a repeatable schedule
        schedule = [(k * opts.burst_seconds / len(posts), k) for k in range(len(posts))]
        duplicates = rng.sample(range(len(posts)), round(opts.burst_duplicates * len(posts)))
        schedule += [
            (rng.uniform(k * opts.burst_seconds / len(posts), opts.burst_seconds), k)
            for k in duplicates
        ]
        schedule.sort()
        parsed = [parse_body(body) for body in posts]
        digests = [[e.digest for e in p.events] for p in parsed if isinstance(p, Parsed)]
        assert len(digests) == len(posts), "a generated body does not parse"

        daemon = self.daemon("burst")
        conn = await asyncpg.connect(self.dsn)
        connector = aiohttp.TCPConnector(limit=opts.burst_parallel)
        async with aiohttp.ClientSession(connector=connector) as session:
            daemon.start()
            try:
                ready_s = await self.ready(session, daemon)
                await asyncio.sleep(1.0)
                idle_kib = daemon.rss_kib()
                deliveries = len(await self._deliveries(session))
                attempts: list[dict[str, Any]] = []
                acked: dict[int, float] = {}  # post -> when first answered 200
                kill: dict[str, float] = {}
                slots = asyncio.Semaphore(opts.burst_parallel)
                started = time.monotonic()

                async def deliver(k: int) -> None:
                    """One POST and, like Selzy, its retries until it is answered 200."""
                    while True:
                        async with slots:
                            sent = time.monotonic()
                            status: int | None = None
                            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                                async with session.post(
                                    self.event_url,
                                    data=posts[k],
                                    headers={"Content-Type": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT),
                                ) as response:
                                    await response.read()
                                    status = response.status
                            done = time.monotonic()
                        attempts.append({"post": k, "sent": sent, "done": done, "status": status})
                        if status == 200:
                            acked.setdefault(k, done)
                            return
                        await asyncio.sleep(opts.retry_after)

                async def killer() -> None:
                    await asyncio.sleep(opts.kill_at * opts.burst_seconds)
                    kill["at"] = time.monotonic()
                    kill["acked_before"] = len(acked)
                    daemon.kill()
                    await asyncio.sleep(opts.restart_after)
                    daemon.start()
                    kill["restarted"] = time.monotonic()

                tasks = []
                killing = asyncio.ensure_future(killer()) if opts.kill_at > 0 else None
                for offset, k in schedule:
                    await asyncio.sleep(max(0.0, started + offset - time.monotonic()))
                    tasks.append(asyncio.ensure_future(deliver(k)))
                sent_s = time.monotonic() - started
                await asyncio.gather(*tasks)
                answered_s = time.monotonic() - started
                if killing is not None:
                    await killing
                drained_s, drain = await self._drain(conn, ids, started)
                checks = await self._burst_checks(conn, ids, digests, acked, kill)
                counters = await self.metrics(session)
                runs = await self.runs(conn)
                get_contact = await self.calls(session, "getContact")
                after_kib = daemon.rss_kib()
                delivered_by_sandbox = len(await self._deliveries(session)) - deliveries
            finally:
                exit_code = daemon.stop()
                await conn.close()
        ok = [a["done"] - a["sent"] for a in attempts if a["status"] == 200]
        statuses: dict[str, int] = {}
        for a in attempts:
            key = str(a["status"]) if a["status"] is not None else "no answer"
            statuses[key] = statuses.get(key, 0) + 1
        first = daemon.incarnations[0]
        rss = {
            "idle_kib": idle_kib,
            "peak_first_kib": daemon.peak_kib(0),
            "hwm_first_kib": first["hwm_kib"],
            "after_kib": after_kib,
        }
        if len(daemon.incarnations) > 1:
            rss["peak_restarted_kib"] = daemon.peak_kib(1)
            rss["hwm_restarted_kib"] = daemon.incarnations[1]["hwm_kib"]
        result = {
            "scenario": "burst",
            "contacts": self.n,
            "events": len(ids),
            "posts": len(posts),
            "events_per_post": opts.burst_per_post,
            "duplicate_posts": len(duplicates),
            "parallel": opts.burst_parallel,
            "seconds": opts.burst_seconds,
            "sent_s": round(sent_s, 2),
            "answered_s": round(answered_s, 2),
            "ready_s": round(ready_s, 2),
            "attempts": len(attempts),
            "statuses": statuses,
            "post_latency_s": summary(ok),
            "over_3s": sum(1 for s in ok if s > POST_GOAL_S),
            "kill_at_s": round(kill["at"] - started, 2) if kill else None,
            "acked_before_kill": kill.get("acked_before"),
            "restart_s": round(kill["restarted"] - kill["at"], 2) if kill else None,
            "drained_s": drained_s,
            "drain": drain,
            "checks": checks,
            "rss": rss,
            "early_runs": [r for r in runs if r["trigger"] == "events"],
            "runs": runs,
            "getcontact_calls": get_contact,
            "sandbox_deliveries": delivered_by_sandbox,
            "metrics_after_restart": counters,
            "daemon_exit": exit_code,
            "log": str(daemon.log.relative_to(ROOT)),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        lat = result["post_latency_s"]
        print(
            f"  burst: {len(posts)} POSTs ({len(duplicates)} repeated) in {sent_s:.1f} s,"
            f" p50 {lat['p50']} s p99 {lat['p99']} s max {lat['max']} s, statuses {statuses};"
            f" drained after {drained_s} s; checks {checks}",
            flush=True,
        )
        return result

    def _burst_bodies(self, ids: Sequence[int]) -> list[bytes]:
        """Signed json_post bodies (selzy-api.md §11.3, §11.4) as Selzy sends them: flat with
        one event a POST (single_event=1), or batched (events_by_user)."""
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        data = [{"email": email_of(i), "unsubscribed_list_ids": [self.list_id]} for i in ids]
        per = self.opts.burst_per_post
        if per == 1:
            return [
                signed(
                    {"login": LOGIN, "event_name": "unsubscribe", "event_time": when, **d}, API_KEY
                )
                for d in data
            ]
        return [
            signed(
                {
                    "events_by_user": [
                        {
                            "login": LOGIN,
                            "events": [
                                {"event_name": "unsubscribe", "event_time": when, "event_data": d}
                                for d in data[i : i + per]
                            ],
                        }
                    ]
                },
                API_KEY,
            )
            for i in range(0, len(data), per)
        ]

    async def _deliveries(self, session: aiohttp.ClientSession) -> list[Any]:
        async with session.get(f"{self.sandbox.root}/_sandbox/deliveries") as response:
            return list((await response.json())["deliveries"])

    async def _drain(
        self, conn: asyncpg.Connection, ids: Sequence[int], started: float
    ) -> tuple[float | None, dict[str, Any]]:
        """Wait until every burst contact is written back and nothing is queued or unrouted."""
        deadline = time.monotonic() + self.opts.drain_timeout
        while True:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM syncd.event_queue WHERE job = $1) AS queued,"
                " (SELECT count(*) FROM syncd.events WHERE routed_at IS NULL) AS unrouted,"
                " (SELECT count(*) FROM contacts WHERE id = ANY($2::bigint[])"
                "  AND selzy_list_status = 'unsubscribed') AS written_back",
                JOB,
                list(ids),
            )
            state = dict(row)
            if not state["queued"] and not state["unrouted"] and state["written_back"] == len(ids):
                return round(time.monotonic() - started, 2), state
            if time.monotonic() > deadline:
                return None, state
            await asyncio.sleep(0.5)

    async def _burst_checks(
        self,
        conn: asyncpg.Connection,
        ids: Sequence[int],
        digests: Sequence[Sequence[bytes]],
        acked: dict[int, float],
        kill: dict[str, float],
    ) -> dict[str, Any]:
        stored = {bytes(r["digest"]) for r in await conn.fetch("SELECT digest FROM syncd.events")}
        every = {d for post in digests for d in post}
        before_kill = {
            d for k, at in acked.items() if kill and at <= kill["at"] for d in digests[k]
        }
        emails = [email_of(i) for i in ids]
        ledger = await conn.fetchval(
            "SELECT count(*) FROM syncd.contacts WHERE job = $1 AND list_status = 'unsubscribed'"
            " AND key IN (SELECT syncd.email_key(e) FROM unnest($2::text[]) AS e)",
            JOB,
            emails,
        )
        # each contact's change (subscribed -> unsubscribed) learnt once: by the worker (an
        # `event` history row) or by a run (a `selzy_change` row), never both, never twice
        learnt = await conn.fetch(
            "SELECT n, count(*) AS contacts FROM ("
            "  SELECT k.key, count(h.id) AS n"
            "  FROM (SELECT syncd.email_key(e) AS key FROM unnest($2::text[]) AS e) AS k"
            "  LEFT JOIN syncd.history AS h ON h.job = $1 AND h.key = k.key"
            "   AND h.kind IN ('event', 'selzy_change')"
            "  GROUP BY k.key) AS per_contact GROUP BY n ORDER BY n",
            JOB,
            emails,
        )
        by_worker = await conn.fetchval(
            "SELECT count(*) FROM syncd.history WHERE job = $1 AND kind = 'event'"
            " AND message LIKE '%written back%'",
            JOB,
        )
        by_runs = await conn.fetchval(
            "SELECT coalesce(sum(written_back), 0) FROM syncd.runs WHERE job = $1"
            " AND trigger <> 'cli'",
            JOB,
        )
        return {
            "events_stored": len(stored),
            "distinct_events_sent": len(every),
            "never_stored": len(every - stored),
            "acked_before_kill_events": len(before_kill),
            "acked_before_kill_lost": len(before_kill - stored),
            "ledger_unsubscribed": ledger,
            "changes_learnt_per_contact": {str(r["n"]): r["contacts"] for r in learnt},
            "rows_written_back_by_worker": by_worker,
            "rows_written_back_by_runs": by_runs,
        }


# -- the report -----------------------------------------------------------------------------


def markdown(results: Sequence[dict[str, Any]]) -> str:
    out = []
    latency = [r for r in results if r["scenario"] != "burst"]
    if latency:
        out += [
            "| scenario | N | unsubscribes | sent as | written back | p50 s | p95 s | p99 s |"
            " max s | backlog max | early runs | getContact calls | goal p95 ≤ 5 s | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in latency:
            lat = r["latency_s"]
            sent = (
                f"1 call of {r['group']:,}"
                if r["scenario"] == "latency-burst"
                else f"{r['group']} every {r['interval_s']:g} s"
            )
            early = ", ".join(f"{e['seconds']} s" for e in r["early_runs"]) or "0"
            ok = lat["p95"] <= LATENCY_GOAL_S and not r["missing"]
            out.append(
                f"| {r['scenario']} | {r['contacts']:,} | {r['unsubscribes']:,} | {sent} |"
                f" {r['written_back']:,} | {lat['p50']:.2f} | {lat['p95']:.2f} |"
                f" {lat['p99']:.2f} | {lat['max']:.2f} | {r['backlog_max']} | {early} |"
                f" {r['getcontact_calls']:,} | {'PASS' if ok else 'FAIL'} | {r['loadavg_1m']} |"
            )
    for r in (r for r in results if r["scenario"] == "burst"):
        lat, c, rss = r["post_latency_s"], r["checks"], r["rss"]
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["statuses"].items()))
        learnt = ", ".join(
            f"{v:,} contacts {k}x" for k, v in c["changes_learnt_per_contact"].items()
        )
        early = ", ".join(f"{e['seconds']} s" for e in r["early_runs"]) or "none"
        rows = [
            (
                "events (distinct) / POSTs / repeated POSTs",
                f"{r['events']:,} / {r['posts']:,} /"
                f" {r['duplicate_posts']:,} ({r['events_per_post']} event a POST,"
                f" {r['parallel']} in parallel)",
            ),
            ("sent in", f"{r['sent_s']} s (all answered 200 after {r['answered_s']} s)"),
            ("POST attempts by answer", statuses),
            (
                "POST latency (200s) p50 / p99 / max",
                f"{lat['p50']} / {lat['p99']} / {lat['max']} s",
            ),
            ("POSTs answered 200 after more than 3 s", f"{r['over_3s']}"),
            (
                "kill -9 at / restarted after",
                f"{r['kill_at_s']} s / {r['restart_s']} s" if r["kill_at_s"] else "no kill",
            ),
            (
                "events answered 200 before the kill / of them not stored",
                f"{c['acked_before_kill_events']:,} / {c['acked_before_kill_lost']}",
            ),
            (
                "events stored / distinct sent / never stored",
                f"{c['events_stored']:,} / {c['distinct_events_sent']:,} / {c['never_stored']}",
            ),
            (
                "all applied (queue empty, every row written back) after",
                f"{r['drained_s']} s"
                if r["drained_s"] is not None
                else f"not within the deadline: {r['drain']}",
            ),
            ("ledger: contacts unsubscribed", f"{c['ledger_unsubscribed']:,}"),
            ("each contact's change learnt (history: event + selzy_change rows)", learnt),
            (
                "rows written back by the worker / by early runs",
                f"{c['rows_written_back_by_worker']:,} / {c['rows_written_back_by_runs']:,}",
            ),
            ("early runs (duration)", early),
            ("getContact calls", f"{r['getcontact_calls']:,}"),
            ("webhook POSTs the sandbox made itself (expected 0)", f"{r['sandbox_deliveries']}"),
            (
                "RSS idle / peak before the kill (VmHWM) / after restart peak / at the end",
                f"{rss['idle_kib'] / MIB:.1f} / {rss['peak_first_kib'] / MIB:.1f}"
                f" ({rss['hwm_first_kib'] / MIB:.1f})"
                f" / {rss.get('peak_restarted_kib', 0) / MIB:.1f}"
                f" / {rss['after_kib'] / MIB:.1f} MiB",
            ),
            ("load average (1 min) at the end", f"{r['loadavg_1m']}"),
        ]
        out += ["", f"Burst at N = {r['contacts']:,}:", "", "| figure | value |", "|---|---|"]
        out += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(out)


# -- the command ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--contacts", type=int, default=100_000, help="N, the settled job's contacts")
    add("--scenarios", default=",".join(SCENARIOS), help=f"of {', '.join(SCENARIOS)}")
    add("--syncd", type=Path, default=ROOT / ".venv" / "bin" / "syncd")
    add("--latency-events", type=int, default=1000, help="unsubscribes (latency scenarios)")
    add("--latency-rate", type=float, default=10.0, help="unsubscribes a second (latency)")
    add("--latency-group", type=int, default=1, help="unsubscribes per admin call (latency)")
    add("--burst-events", type=int, default=10_000, help="distinct events (burst)")
    add("--burst-seconds", type=float, default=60.0, help="over how long they are POSTed")
    add("--burst-per-post", type=int, default=1, help="events a POST (1: single_event=1)")
    add("--burst-parallel", type=int, default=10, help="POSTs in flight at most")
    add("--burst-duplicates", type=float, default=0.05, help="fraction of POSTs sent twice")
    add("--kill-at", type=float, default=0.5, help="kill -9 at this fraction of the burst; 0: no")
    add("--restart-after", type=float, default=2.0, help="seconds before the restart")
    add("--retry-after", type=float, default=5.0, help="seconds before a failed POST is retried")
    add("--drain-timeout", type=float, default=900.0, help="seconds to wait for the apply")
    add("--hook-batch-delay", type=float, default=1.0, help="the sandbox's webhook batching, s")
    add("--export-delay", type=float, default=1.0, help="the sandbox's export delay, s")
    add("--reuse", action="store_true", help="reuse the settled state of an earlier run")
    add("--out", type=Path, default=None, help="result file (JSON)")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.replace(" ", ",").split(",") if s]
    if not scenarios or set(scenarios) - set(SCENARIOS):
        parser.error(f"scenarios of {', '.join(SCENARIOS)}")
    if args.contacts < max(args.latency_events, args.burst_events):
        parser.error("--contacts must be at least the events of each scenario")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    syncd = args.syncd.absolute()
    package, code = code_fingerprint(syncd)
    return Options(
        syncd=syncd,
        contacts=args.contacts,
        scenarios=scenarios,
        latency_events=args.latency_events,
        latency_rate=args.latency_rate,
        latency_group=args.latency_group,
        burst_events=args.burst_events,
        burst_seconds=args.burst_seconds,
        burst_per_post=args.burst_per_post,
        burst_parallel=args.burst_parallel,
        burst_duplicates=args.burst_duplicates,
        kill_at=args.kill_at,
        restart_after=args.restart_after,
        retry_after=args.retry_after,
        drain_timeout=args.drain_timeout,
        hook_batch_delay=args.hook_batch_delay,
        export_delay=args.export_delay,
        reuse=args.reuse,
        out=args.out or OUT / f"events-{stamp}.json",
        package=package,
        code=code,
    )


def meta(opts: Options) -> dict[str, Any]:
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
        **machine_facts(opts.syncd, databases.ADMIN_DSN),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


async def scenarios(bench: Bench, opts: Options) -> list[dict[str, Any]]:
    results = []
    for scenario in opts.scenarios:
        print(f"{scenario}: restoring the settled job", flush=True)
        await asyncio.to_thread(bench.restore)  # the sync helpers run loops of their own
        try:
            if scenario == "burst":
                results.append(await bench.burst())
            else:
                results.append(await bench.latency(scenario))
        finally:
            bench.sandbox.stop()
    return results


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    info = meta(opts)
    print(f"load average {info['loadavg']} on {info['cpus']} CPUs", flush=True)
    bench = Bench(opts)
    print(f"settled job of {opts.contacts:,} contacts", flush=True)
    info["settled"] = bench.prepare()
    results = asyncio.run(scenarios(bench, opts))
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    opts.out.write_text(json.dumps({"meta": info, "results": results}, indent=2) + "\n")
    print()
    print(markdown(results))
    print(f"\nresults: {opts.out}")


if __name__ == "__main__":
    main()
