"""The PostgreSQL side of a benchmark: a shape's database with N rows, copies of a database (the
saved settled state), the 1% edit, and syncd's run log read back (syncd.runs). It writes none
of syncd's tables: what a run did is syncd's to record.

Synchronous functions over asyncpg (one short connection each): the benchmark itself is a
sequence of child processes, not an event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import asyncpg
from shapes import Shape

ADMIN_DSN = os.environ.get("SYNCD_TEST_DSN", "postgresql://root@127.0.0.1:5432/postgres")
Statement = tuple[str, tuple[Any, ...]]  # SQL and its $n arguments


def dsn_of(database: str) -> str:
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + database


async def _execute(dsn: str, statements: list[Statement]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql, args in statements:
            await conn.execute(sql, *args)
    finally:
        await conn.close()


async def _fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def execute(dsn: str, *statements: Statement) -> None:
    asyncio.run(_execute(dsn, list(statements)))


def database_exists(name: str) -> bool:
    found = asyncio.run(_fetchval(ADMIN_DSN, "SELECT 1 FROM pg_database WHERE datname = $1", name))
    return bool(found)


def create_database(database: str, shape: Shape, n: int) -> str:
    """A new database (dropped first if it exists) holding `shape`'s table with N rows."""
    execute(
        ADMIN_DSN,
        (f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', ()),
        (f'CREATE DATABASE "{database}"', ()),
    )
    dsn = dsn_of(database)
    execute(dsn, (shape.create, ()), (shape.seed, (n,)), ("ANALYZE contacts", ()))
    return dsn


def copy_database(source: str, target: str) -> None:
    """target := a copy of source (CREATE DATABASE ... TEMPLATE; nobody may be connected)."""
    execute(
        ADMIN_DSN,
        (f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)', ()),
        (f'CREATE DATABASE "{target}" TEMPLATE "{source}"', ()),
    )


def last_run_id(dsn: str) -> int:
    """The newest syncd.runs id (0 when there is none, or no syncd schema yet)."""
    try:
        return int(asyncio.run(_fetchval(dsn, "SELECT coalesce(max(id), 0) FROM syncd.runs")))
    except asyncpg.PostgresError:
        return 0


def run_row(dsn: str, run_id: int | None, after: int) -> dict[str, Any]:
    """The syncd.runs row of the run, as JSON: by its id, or else the newest one started after
    run `after` ({} when the process recorded no run at all)."""
    try:
        value = asyncio.run(
            _fetchval(
                dsn,
                "SELECT to_jsonb(r) FROM syncd.runs AS r"
                " WHERE CASE WHEN $1::bigint IS NULL THEN id > $2::bigint ELSE id = $1 END"
                " ORDER BY id DESC LIMIT 1",
                run_id,
                after,
            )
        )
    except asyncpg.PostgresError as exc:
        print(f"  cannot read syncd.runs: {exc}", file=sys.stderr)
        return {}
    return json.loads(value) if value else {}
