"""Reconciliation benchmark: N contacts on both sides, measured through the real CLI.

For each N it creates a fresh database and a fresh sandbox process, seeds N local contacts, then
times three `syncd sync` runs as separate processes:

1. the first full sync (N adds into an empty list),
2. the second run, which writes every contact's Selzy status back into the local table,
3. a no-change run,
4. a 1%-change run (0.4% of rows edited, 0.3% new, 0.3% deleted),

and reports wall time, the syncd process's peak RSS (from wait4's rusage) and importContacts calls
(from the sandbox's call log) against the lower bound ceil(changes / 500) per action.

    .venv/bin/python bench/run.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
ADMIN_DSN = os.environ.get("SYNCD_TEST_DSN", "postgresql://root@127.0.0.1:5432/postgres")
KEY = "bench-key"
SYNCD = ROOT / ".venv" / "bin" / "syncd"
TIME = "/usr/bin/time"  # GNU time (Debian package `time`) measures the child's own peak RSS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin(root: str, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - loopback sandbox only
        f"{root}/_sandbox/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310
        return json.loads(resp.read() or b"null")


def import_calls(root: str) -> int:
    return len(admin(root, "calls?method=importContacts", method="GET")["calls"])


def run_sync(config: Path) -> tuple[float, int, int]:
    """Run `syncd sync` as a child process; return (seconds, peak RSS KiB, exit status).

    The peak comes from /usr/bin/time (%M). wait4's ru_maxrss is not used: Linux carries the
    forking parent's resident size over exec into the child's high-water mark, so it would
    report this benchmark's own memory rather than syncd's.
    """
    env = dict(os.environ, SELZY_API_KEY=KEY)
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        started = time.perf_counter()
        proc = subprocess.run(
            [TIME, "-f", "%M", "-o", rss.name, str(SYNCD), "-c", str(config), "sync"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - started
        peak_kib = int(rss.read().split()[-1])
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        print(f"sync exited {proc.returncode}: {err[-2000:]}", file=sys.stderr)
    return elapsed, peak_kib, proc.returncode


async def make_database(name: str, n: int) -> str:
    admin_conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin_conn.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE contacts (id bigserial PRIMARY KEY, email text NOT NULL,"
            " first_name text, city text, selzy_email_status text)"
        )
        await conn.execute(
            "INSERT INTO contacts (email, first_name, city)"
            " SELECT 'user' || i || '@example.com', 'User ' || i, 'City ' || (i % 100)"
            " FROM generate_series(1, $1) AS i",
            n,
        )
        await conn.execute("ANALYZE contacts")
    finally:
        await conn.close()
    return dsn


async def change_one_percent(dsn: str, n: int) -> dict[str, int]:
    edits, adds, deletes = int(n * 0.004), int(n * 0.003), int(n * 0.003)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE contacts SET first_name = first_name || ' (edited)' WHERE id <= $1", edits
        )
        await conn.execute("DELETE FROM contacts WHERE id > $1", n - deletes)
        await conn.execute(
            "INSERT INTO contacts (email, first_name, city)"
            " SELECT 'new' || i || '@example.com', 'New ' || i, 'City 0'"
            " FROM generate_series(1, $1) AS i",
            adds,
        )
    finally:
        await conn.close()
    return {"update": edits, "add": adds, "delete": deletes}


def write_config(path: Path, dsn: str, base_url: str, list_id: int) -> None:
    path.write_text(
        f"""
[selzy]
base_url = "{base_url}"
poll_interval = 0.5
poll_interval_max = 2.0

[database]
dsn = "{dsn}"

[log]
level = "info"
format = "json"

[[jobs]]
name = "bench"
list_id = {list_id}
table = "public.contacts"
match = "email"
schedule = "every 15m"
max_deletes = 100000
max_delete_fraction = 0.05

[jobs.fields]
email = "email"
Name = "first_name"
City = "city"

[jobs.writeback]
email_status = "selzy_email_status"
"""
    )


def bench_size(n: int) -> list[dict[str, Any]]:
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    state = OUT / f"sandbox-{n}.sqlite"
    state.unlink(missing_ok=True)
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd.sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--export-delay",
            "1",
            "--state-file",
            str(state),
        ],
        env=dict(os.environ, SELZY_API_KEY=KEY),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                admin(root, "calls", method="GET")
                break
            except OSError:
                time.sleep(0.1)
        list_id = admin(root, "lists", {"title": "bench"})["id"]
        admin(root, "fields", {"name": "Name", "type": "string"})
        admin(root, "fields", {"name": "City", "type": "string"})
        dsn = asyncio.run(make_database(f"syncd_bench_{n}", n))
        config = OUT / f"config-{n}.toml"
        write_config(config, dsn, f"{root}/en/api", list_id)
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "syncd"), "-c", str(config), "migrate"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        results = []
        # The run after the first sync writes every contact's status back (the first export that
        # shows them), so the no-change run is the third.
        scenarios: list[tuple[str, dict[str, int]]] = [
            ("first full sync", {"add": n}),
            ("second run (first writeback)", {}),
            ("no-change run", {}),
            ("1% change run", {}),
        ]
        for label, changes in scenarios:
            if label == "1% change run":
                changes = asyncio.run(change_one_percent(dsn, n))
            before = import_calls(root)
            seconds, rss_kib, code = run_sync(config)
            calls = import_calls(root) - before
            bound = sum(math.ceil(count / 500) for count in changes.values())
            row = {
                "n": n,
                "scenario": label,
                "exit": code,
                "seconds": round(seconds, 1),
                "peak_rss_mib": round(rss_kib / 1024, 1),
                "import_calls": calls,
                "lower_bound": bound,
            }
            print(json.dumps(row), flush=True)
            results.append(row)
        return results
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    rows = [row for n in args.sizes for row in bench_size(n)]
    print()
    print("| N | scenario | exit | wall s | peak RSS MiB | importContacts calls | lower bound |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['scenario']} | {r['exit']} | {r['seconds']} | {r['peak_rss_mib']}"
            f" | {r['import_calls']} | {r['lower_bound']} |"
        )


if __name__ == "__main__":
    main()
