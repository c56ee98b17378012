"""Where a run's plan phase spends its time: the steps of syncd's own plan code (the very
RunSession methods a run calls), one by one, on a settled job, with the wall and the database
backend's CPU seconds of each step.

    .venv/bin/python bench/plan_profile.py bench/out/narrow-1000000/config.toml \\
        bench/out/narrow-1000000/export.csv --repeats 3

The config and the export file are the ones `bench/run.py` leaves per shape and N (the export
is the list's own, as the floor uses it). Nothing outside the session's TEMP tables is written:
the profile stops after the plan is built (no ledger, no push, no writeback), so it can be
repeated on the same database. The backend's CPU time comes from /proc (PostgreSQL on this
host); it moves less with the load of other processes than the wall time does, but it moves
too (shared caches, a busy second core): compare two versions of the SQL at the same load.
`--explain` logs each statement's plan with its actual row counts into the server log
(auto_explain; needs a superuser).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from syncd.config import load_config
from syncd.db.session import RunSession
from syncd.reconcile.batches import profile_fields
from syncd.reconcile.binding import config_hash
from syncd.reconcile.planning import check_digest, narrow
from syncd.reconcile.runner import EXPORT_FIELDS

CHUNK = 1 << 20

STEPS = (
    "copy",
    "functions",
    "build_local",
    "local_dups",
    "local_cands",
    "narrow",
    "stage_remote",
    "dedupe",
    "build_plan",
    "counts",
)


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def profile_once(
    config: Path, export: Path, *, explain: bool
) -> dict[str, tuple[float, float]]:
    cfg = load_config(config)
    job = cfg.jobs[0]
    profile = profile_fields(job)
    result: dict[str, tuple[float, float]] = {}
    async with RunSession.open(cfg.database, job) as session:
        pid = await session.backend_pid()
        if explain:
            await session.log_plans()

        async def step(name: str, call: Callable[[], Awaitable[object]]) -> None:
            wall, cpu = time.monotonic(), _cpu_seconds(pid)
            await call()
            result[name] = (time.monotonic() - wall, _cpu_seconds(pid) - cpu)

        async def copy() -> None:
            await session.tune()
            await session.stage_export(_chunks(export), required=EXPORT_FIELDS)

        await step("copy", copy)
        await step("functions", session.create_functions)
        local_rows = 0

        async def build_local() -> None:
            nonlocal local_rows
            local_rows = await session.build_local(profile)

        await step("build_local", build_local)
        await step("local_dups", session.find_local_duplicates)
        half = None

        async def local_cands() -> None:
            nonlocal half
            half = await check_digest(session, config_hash(job), local_rows)

        async def narrow_plan() -> None:
            if half is not None:
                await narrow(session, half, exported=local_rows)

        await step("local_cands", local_cands)
        await step("narrow", narrow_plan)
        await step("stage_remote", session.stage_remote)
        await step("dedupe", session.dedupe_remote)
        await step("build_plan", session.build_plan)
        await step("counts", session.plan_counts)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "config", type=Path, help="a bench config (bench/out/<shape>-<N>/config.toml)"
    )
    parser.add_argument("export", type=Path, help="the list's export file (.../export.csv)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--explain", action="store_true", help="auto_explain into the server log")
    args = parser.parse_args()
    os.environ.setdefault("SELZY_API_KEY", "bench-profile")  # the config needs one; no call is made
    print("| repeat | " + " | ".join(f"{s} s (cpu)" for s in STEPS) + " | total s (cpu) |")
    print("|---" * (len(STEPS) + 2) + "|")
    for repeat in range(args.repeats):
        steps = asyncio.run(profile_once(args.config, args.export, explain=args.explain))
        cells = [f"{steps[s][0]:.2f} ({steps[s][1]:.2f})" for s in STEPS]
        wall = sum(w for w, _ in steps.values())
        cpu = sum(c for _, c in steps.values())
        print(f"| {repeat + 1} | " + " | ".join(cells) + f" | {wall:.2f} ({cpu:.2f}) |", flush=True)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
