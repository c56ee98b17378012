"""The floor a reconciliation run is measured against: what PostgreSQL alone needs to take in the
list's export and meet it with the local keys — psql `\\copy` of the very export file into a
staging table, then one hash join of the local table's keys with it.

Runs psql as a child process and reads its `\\timing` lines; it never touches syncd's schema.
"""

from __future__ import annotations

import csv
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PSQL_TIMEOUT = 600.0  # seconds for one floor measurement
# The session settings syncd's own run gives itself today (sql/queries/plan.sql tune_session),
# so that the floor's join is not handicapped by the server's default work_mem.
SESSION = ("SET work_mem = '64MB';", "SET jit = off;")
_TIME = re.compile(r"^Time: ([0-9.]+) ms", re.MULTILINE)
_COLUMN = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Floor:
    copy_s: float  # \copy of the export file into a TEMP table
    join_s: float  # one hash join of lower(local email) with the staged emails
    matched: int  # rows the join found (every local row, when the export is complete)
    psql_s: float  # the whole psql process: connect, create, copy, join

    @property
    def seconds(self) -> float:
        return self.copy_s + self.join_s


def _columns(export: Path) -> list[str]:
    with export.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    for name in header:
        if not _COLUMN.fullmatch(name):
            raise ValueError(f"unexpected export column {name!r}")
    return header


def _script(export: Path, table: str, key_column: str) -> str:
    columns = ", ".join(f'"{name}" text' for name in _columns(export))
    join = (
        f"SELECT count(*) FROM {table} AS l JOIN bench_staging AS s"
        f" ON lower(l.{key_column}) = s.{key_column};"
    )
    path = str(export).replace("'", "''")
    return "\n".join(
        [
            *SESSION,
            f"CREATE TEMP TABLE bench_staging ({columns});",
            "\\timing on",
            f"\\copy bench_staging FROM '{path}' WITH (FORMAT csv, HEADER true)",
            "\\timing off",
            "SET enable_mergejoin = off;",
            "SET enable_nestloop = off;",
            "\\timing on",
            join,
            "\\timing off",
            f"EXPLAIN (COSTS OFF) {join}",
            "",
        ]
    )


def measure(dsn: str, export: Path, *, table: str = "contacts", key_column: str = "email") -> Floor:
    """One measurement in a fresh psql session (the local table is as warm as syncd found it)."""
    started = time.perf_counter()
    proc = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", dsn],
        input=_script(export, table, key_column),
        capture_output=True,
        text=True,
        timeout=PSQL_TIMEOUT,
        check=False,
    )
    psql_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"floor psql failed: {proc.stderr[-2000:]}")
    times = [float(ms) / 1000 for ms in _TIME.findall(proc.stdout)]
    if len(times) != 2:
        raise RuntimeError(f"expected two \\timing lines from psql, got: {proc.stdout[-2000:]}")
    if "Hash Join" not in proc.stdout:
        raise RuntimeError(f"the floor's join is not a hash join: {proc.stdout[-2000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip().isdigit()]
    return Floor(copy_s=times[0], join_s=times[1], matched=int(lines[0]), psql_s=psql_s)


def best(dsn: str, export: Path, repeats: int) -> tuple[Floor, list[Floor]]:
    """The fastest of `repeats` measurements (a floor is a lower bound) and all of them."""
    floors = [measure(dsn, export) for _ in range(max(1, repeats))]
    return min(floors, key=lambda f: f.seconds), floors
