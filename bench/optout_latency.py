"""Local opt-out -> unmailable in Selzy, through a real `syncd run` with a job's opt_out_latency.

A fresh database (the wide shape of bench/shapes.py, N contacts) and a fresh sandbox (`syncd
sandbox`, Selzy's real rate limits); `syncd sync` twice (the first full sync, then one that
learns Selzy's statuses); then the daemon, scheduled `every 1h` so that no full run happens
during the measurement: only its fast opt-out passes push. OPT_OUTS local rows are then opted
out, RATE a second (one UPDATE each, autocommit), and the sandbox's admin API is polled every
POLL seconds for the list's contacts. Each opt-out's latency is from its UPDATE's commit
returning to the first poll answer that shows the contact unmailable (email_status unsubscribed
or blocked, or the list no longer among its email_list_ids): the poll interval is in it.

Reports p50 / p95 / max against the goal p95 <= opt_out_latency + 5 s, the daemon's opt-out
runs (syncd.runs, trigger opt_out) and the machine's load average; the JSON goes to bench/out/.

    .venv/bin/python bench/optout_latency.py --latency 10s --opt-outs 1000 --rate 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import databases
from harness import API_KEY, Sandbox, run_sync, tail
from shapes import WIDE, job_config

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE = "syncd_bench_optout_latency"
GOAL_MARGIN = 5.0  # seconds over opt_out_latency the p95 may take (issue 9)
DRAIN_TIMEOUT = 120.0  # seconds after the last opt-out for the stragglers to show
START_TIMEOUT = 60.0  # seconds for the daemon to start its passes
STOP_TIMEOUT = 40.0


def seconds_of(text: str) -> float:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([smh]?)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of `values`."""
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


class Daemon:
    """`syncd -c config run`, its output into a log file."""

    def __init__(self, syncd: Path, config: Path, log: Path) -> None:
        self.syncd, self.config, self.log = syncd, config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(self.syncd), "-c", str(self.config), "run"],
                env=dict(os.environ, SELZY_API_KEY=API_KEY),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while '"opt_out_passes_started"' not in self.log.read_text(errors="replace"):
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start its passes: {tail(self.log)}")
            await asyncio.sleep(0.2)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


async def unmailable_now(
    session: aiohttp.ClientSession, root: str, list_id: int
) -> tuple[float, set[str]]:
    """When the answer came, and the list's contacts unmailable in it."""
    url = f"{root}/_sandbox/contacts"
    async with session.get(url, params={"list_id": str(list_id)}) as response:
        body = await response.json()
    seen = time.monotonic()
    gone = set()
    for c in body["contacts"]:
        if c["email_status"] in ("unsubscribed", "blocked") or list_id not in c["email_list_ids"]:
            gone.add(c["email"].lower())
    return seen, gone


async def measure(args: argparse.Namespace, dsn: str, root: str, list_id: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM contacts ORDER BY id")]
    chosen = random.Random(9).sample(ids, args.opt_outs)  # a repeatable choice
    committed: dict[str, float] = {}
    latency: dict[str, float] = {}
    done = asyncio.Event()

    async def opt_out() -> None:
        start = time.monotonic()
        for i, contact_id in enumerate(chosen):
            await asyncio.sleep(max(0.0, start + i / args.rate - time.monotonic()))
            email = await conn.fetchval(
                "UPDATE contacts SET unsubscribed = true WHERE id = $1 RETURNING lower(email)",
                contact_id,
            )
            committed[email] = time.monotonic()
        done.set()

    async def poll(session: aiohttp.ClientSession) -> None:
        deadline = None
        while True:
            seen, gone = await unmailable_now(session, root, list_id)
            for email, at in list(committed.items()):
                if email not in latency and email in gone:
                    latency[email] = seen - at
            if done.is_set():
                deadline = deadline or time.monotonic() + DRAIN_TIMEOUT
                if len(latency) == len(committed) or time.monotonic() > deadline:
                    return
            await asyncio.sleep(args.poll)

    load_before = os.getloadavg()
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(opt_out(), poll(session))
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()
    runs = await conn.fetch(
        "SELECT trigger, status, count(*) AS runs, sum(opted_out) AS opted_out,"
        " sum(rejected) AS rejected FROM syncd.runs GROUP BY 1, 2 ORDER BY 1, 2"
    )
    await conn.close()
    values = list(latency.values())
    goal = args.latency + GOAL_MARGIN
    p95 = percentile(values, 0.95) if values else None
    return {
        "opt_outs": len(committed),
        "unmailable": len(values),
        "missing": len(committed) - len(values),
        "p50_s": round(percentile(values, 0.5), 2) if values else None,
        "p95_s": round(p95, 2) if p95 is not None else None,
        "max_s": round(max(values), 2) if values else None,
        "mean_s": round(statistics.fmean(values), 2) if values else None,
        "goal_p95_s": goal,
        "pass": p95 is not None and p95 <= goal and len(values) == len(committed),
        "elapsed_s": round(elapsed, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "runs": [dict(r) for r in runs],
    }


def config_text(dsn: str, base_url: str, list_id: int, latency: float) -> str:
    """bench/shapes.py's job config for the wide shape, scheduled hourly, with the latency."""
    text = job_config(WIDE, dsn=dsn, base_url=base_url, list_id=list_id)
    return text.replace(
        'schedule = "every 15m"\n', f'schedule = "every 1h"\nopt_out_latency = {latency}\n'
    )


def main(args: argparse.Namespace) -> int:
    work = OUT / f"optout-latency-{args.contacts}"
    work.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(args.syncd, work / "sandbox.sqlite", export_delay=1.0, log=work / "sb.log")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{sandbox.state}{suffix}").unlink(missing_ok=True)
    daemon = Daemon(args.syncd, work / "config.toml", work / "daemon.log")
    try:
        sandbox.start()
        list_id = int(sandbox.api("createList", [("title", "bench")])["id"])
        for name in WIDE.user_fields:
            sandbox.api("createField", [("name", name), ("type", "string")])
        print(f"database {DATABASE}: {args.contacts:,} contacts (wide shape)", flush=True)
        dsn = databases.create_database(DATABASE, WIDE, args.contacts)
        config = work / "config.toml"
        config.write_text(config_text(dsn, sandbox.api_url, list_id, args.latency))
        subprocess.run(
            [str(args.syncd), "-c", str(config), "migrate"],
            env=dict(os.environ, SELZY_API_KEY=API_KEY),
            check=True,
            capture_output=True,
        )
        for step in ("first full sync", "settle run"):
            run = run_sync(args.syncd, config, work / f"sync-{step.split()[0]}.log")
            print(f"  {step}: exit {run.exit}, {run.seconds:.1f} s", flush=True)
            if run.exit != 0:
                raise RuntimeError(f"{step} failed: {tail(work / f'sync-{step.split()[0]}.log')}")
        daemon.start()
        asyncio.run(daemon.started())
        print(
            f"daemon running (opt_out_latency {args.latency:g} s); {args.opt_outs:,} opt-outs"
            f" at {args.rate:g}/s, polling every {args.poll:g} s",
            flush=True,
        )
        result = asyncio.run(measure(args, dsn, sandbox.root, list_id))
    finally:
        exit_code = daemon.stop()
        sandbox.stop()
    meta = {
        "created": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "contacts": args.contacts,
        "opt_out_latency_s": args.latency,
        "rate_per_s": args.rate,
        "poll_s": args.poll,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "daemon_exit": exit_code,
    }
    out = args.out or OUT / f"optout-latency-{meta['created']}.json"
    out.write_text(json.dumps({"meta": meta, "result": result}, indent=2, default=str))
    r = result
    print(f"results: {out}")
    print()
    print(
        "| opt_out_latency | opt-outs | unmailable | p50 s | p95 s | max s | goal p95 s | target"
        " | load average (1 min) before / after |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.latency:g} s | {r['opt_outs']:,} | {r['unmailable']:,} | {r['p50_s']}"
        f" | {r['p95_s']} | {r['max_s']} | {r['goal_p95_s']:g} | {'PASS' if r['pass'] else 'FAIL'}"
        f" | {r['load_before'][0]} / {r['load_after'][0]} |"
    )
    print(f"runs: {r['runs']}")
    return 0 if r["pass"] else 1


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=seconds_of, default=10.0, help="opt_out_latency")
    parser.add_argument("--opt-outs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=4.0, help="opt-outs a second")
    parser.add_argument("--contacts", type=int, default=3000, help="contacts in table and list")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between sandbox polls")
    parser.add_argument("--syncd", type=Path, default=ROOT / ".venv" / "bin" / "syncd")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.opt_outs > args.contacts:
        parser.error("--opt-outs cannot exceed --contacts")
    return args


if __name__ == "__main__":
    sys.exit(main(parse(sys.argv[1:])))
