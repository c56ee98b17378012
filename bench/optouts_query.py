"""What one fast opt-out pass costs PostgreSQL (a job's `opt_out_latency`): the candidates query
of syncd.db.optouts at N local rows (the wide shape of bench/shapes.py), with a fraction of the
rows opted out, without and with a partial index on the opt-out column.

The database is the wide shape's table with N rows and a contact ledger as a settled full sync
leaves it (every contact subscribed and active; the opted-out ones already unsubscribed in
Selzy), written directly in SQL: the pass reads the ledger, it does not care who wrote it. Two
states per fraction:

- steady: NEW_OPT_OUTS rows opted out since the last pass (what every pass of a running daemon
  sees: a few new candidates among many old opt-outs);
- mass: every opted-out row still mailable in the ledger (the first pass after turning the
  setting on, or a mass opt-out): the pass takes its cap (500) of them.

Each is timed as the daemon runs it — `OptOutSession.open` (connect, schema check, job lookup,
lock) + `candidates()` (the pg_temp functions and the statement) — and as the statement alone
(EXPLAIN ANALYZE's execution time), REPEATS times; the median counts.

    .venv/bin/python bench/optouts_query.py --rows 1000000 --fractions 0.01,0.1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import databases
from shapes import WIDE

from syncd.config import DatabaseConfig, JobConfig, Schedule, Secret
from syncd.db import OptOutSession, describe_source, ensure_job, migrate
from syncd.db.local import create_key_functions
from syncd.db.optouts import candidates_sql
from syncd.reconcile.batches import profile_fields
from syncd.reconcile.optouts import PASS_LIMIT

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE = "syncd_bench_optouts"
NEW_OPT_OUTS = 20  # opt-outs since the last pass in the steady state
REPEATS = 5
INDEX = "CREATE INDEX contacts_unsubscribed_idx ON contacts (id) WHERE unsubscribed"


def job() -> JobConfig:
    return JobConfig(
        name="bench",
        list_id=1,
        table="public.contacts",
        match="email",
        schedule=Schedule("every 15m", interval_seconds=900),
        fields=WIDE.fields,
        writeback=WIDE.writeback,
        opt_out_column=WIDE.opt_out_column,
        opt_out_latency=30.0,
    )


LEDGER = """
INSERT INTO syncd.contacts (job, key, local_fp, pushed_fp, pushed_action, remote_seen, email,
                            email_status, email_list_ids, list_status, decision)
SELECT 'bench', syncd.email_key(email), 1, 1, 'add', true, lower(email), 'active', '1',
       'subscribed', 'none:in_step'
FROM contacts
"""


def opt_out_sql(every: int) -> list[str]:
    """Every `every`-th row opted out; the ledger shows those unsubscribed (a settled state)."""
    return [
        "UPDATE contacts SET unsubscribed = false WHERE unsubscribed",
        f"UPDATE contacts SET unsubscribed = true WHERE id % {every} = 0",
        "UPDATE syncd.contacts SET email_status = 'active', decision = 'none:in_step'"
        " WHERE job = 'bench' AND email_status <> 'active'",
        "UPDATE syncd.contacts AS c SET email_status = 'unsubscribed',"
        " decision = 'none:unmailable' FROM contacts AS l"
        " WHERE c.job = 'bench' AND c.key = syncd.email_key(l.email) AND l.unsubscribed",
    ]


def remailable(count: int | None) -> list[str]:
    """`count` (None: all) opted-out rows back to mailable in the ledger: not pushed yet."""
    limit = "" if count is None else f" LIMIT {count}"
    return [
        "UPDATE syncd.contacts SET email_status = 'unsubscribed'"
        " WHERE job = 'bench' AND decision = 'none:unmailable'",
        "UPDATE syncd.contacts AS c SET email_status = 'active' FROM ("
        "  SELECT syncd.email_key(email) AS key FROM contacts WHERE unsubscribed"
        f"  ORDER BY id DESC{limit}) AS n WHERE c.job = 'bench' AND c.key = n.key",
    ]


async def execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def time_pass(cfg: DatabaseConfig) -> tuple[float, int]:
    """One pass's read as the daemon does it: seconds, candidates found."""
    started = time.perf_counter()
    async with OptOutSession.open(cfg, job()) as session:
        assert session.locked
        found = await session.candidates(profile_fields(job()), limit=PASS_LIMIT)
    return time.perf_counter() - started, len(found)


async def time_statement(dsn: str) -> tuple[float, str]:
    """The statement alone: EXPLAIN ANALYZE's execution time (s) and the plan's scan node."""
    conn = await asyncpg.connect(dsn)
    try:
        await create_key_functions(conn)
        source = await describe_source(conn, job())
        sql = candidates_sql(job(), source, profile_fields(job()))
        profile = list(profile_fields(job()))
        plan = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", "bench", "email", profile, PASS_LIMIT
        )
    finally:
        await conn.close()
    top = json.loads(plan)[0]
    return top["Execution Time"] / 1000.0, _scan(top["Plan"])


def _scan(node: dict[str, Any]) -> str:
    """The node that reads the local table."""
    if node.get("Relation Name") == "contacts" and node.get("Schema", "public") == "public":
        return node["Node Type"] + (f" {node['Index Name']}" if "Index Name" in node else "")
    for child in node.get("Plans", ()):
        found = _scan(child)
        if found:
            return found
    return ""


async def measure(cfg: DatabaseConfig, dsn: str) -> dict[str, Any]:
    passes, statements = [], []
    found = 0
    scan = ""
    for _ in range(REPEATS):
        seconds, found = await time_pass(cfg)
        passes.append(seconds)
        seconds, scan = await time_statement(dsn)
        statements.append(seconds)
    return {
        "pass_s": round(statistics.median(passes), 4),
        "statement_s": round(statistics.median(statements), 4),
        "candidates": found,
        "scan": scan,
    }


def main(args: argparse.Namespace) -> int:
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    if args.reuse:
        dsn = databases.dsn_of(DATABASE)
    else:
        print(f"creating {DATABASE} with {args.rows:,} rows of the wide shape", flush=True)
        dsn = databases.create_database(DATABASE, WIDE, args.rows)
    return asyncio.run(measure_all(args, dsn, load))


async def measure_all(args: argparse.Namespace, dsn: str, load: tuple[float, ...]) -> int:
    n = args.rows
    cfg = DatabaseConfig(dsn=Secret(dsn))
    if not args.reuse:
        await migrate(cfg)
        conn = await asyncpg.connect(dsn)
        try:
            await ensure_job(conn, "bench", list_id=1, match="email")
        finally:
            await conn.close()
        await execute(dsn, LEDGER, "VACUUM ANALYZE syncd.contacts")
    results = []
    for fraction in args.fractions:
        every = round(1 / fraction)
        await execute(dsn, "DROP INDEX IF EXISTS contacts_unsubscribed_idx", *opt_out_sql(every))
        for indexed in (False, True):
            if indexed:
                await execute(dsn, INDEX)
            for state, count in (("steady", NEW_OPT_OUTS), ("mass", None)):
                await execute(dsn, *remailable(count), "VACUUM ANALYZE contacts, syncd.contacts")
                row = {
                    "rows": n,
                    "opted_out": n // every,
                    "index": indexed,
                    "state": state,
                    **await measure(cfg, dsn),
                }
                results.append(row)
                print(
                    f"  {n:>9,} rows, {row['opted_out']:>7,} opted out, index {indexed!s:5},"
                    f" {state:6}: pass {row['pass_s']:.3f} s, statement"
                    f" {row['statement_s']:.3f} s, {row['candidates']} candidates ({row['scan']})",
                    flush=True,
                )
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or OUT / f"optouts-query-{stamp}.json"
    meta = {
        "created": stamp,
        "load_average": load,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "repeats": REPEATS,
        "new_opt_outs": NEW_OPT_OUTS,
    }
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"results: {out}")
    print()
    print(
        "| local rows | opted out | index on the opt-out column | state"
        " | candidates | statement s | pass s | scan |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['opted_out']:,} | {'yes' if r['index'] else 'no'}"
            f" | {r['state']} | {r['candidates']} | {r['statement_s']:.3f} | {r['pass_s']:.3f}"
            f" | {r['scan']} |"
        )
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--fractions",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.01, 0.1],
        help="shares of the rows opted out (comma-separated)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help=f"keep the database {DATABASE} of an earlier run"
    )
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse(sys.argv[1:])))
