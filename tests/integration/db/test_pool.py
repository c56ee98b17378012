"""Connections: session settings, and asyncpg/socket failures translated to DatabaseError."""

from __future__ import annotations

import asyncio
import socket

import pytest

from syncd.config import DatabaseConfig, Secret
from syncd.db import Connection, connect, create_pool, translate, translating
from syncd.db.pool import translated
from syncd.errors import DatabaseError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_connection_names_itself_and_asks_the_server_for_keepalives(
    db_config: DatabaseConfig,
) -> None:
    conn = await connect(db_config)
    try:
        row = await conn.fetchrow(
            "SELECT current_setting('application_name') AS app,"
            " current_setting('tcp_keepalives_idle') AS idle,"
            " current_setting('tcp_keepalives_count') AS count"
        )
        assert row is not None
        assert (row["app"], row["idle"], row["count"]) == ("syncd", "30", "3")
        sock = conn._transport.get_extra_info("socket")  # type: ignore[attr-defined]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    finally:
        await conn.close()


async def test_statement_timeout_applies_and_its_cancel_is_not_retryable(
    db_config: DatabaseConfig,
) -> None:
    cfg = DatabaseConfig(dsn=db_config.dsn, statement_timeout=0.2)
    conn = await connect(cfg)
    try:
        assert await conn.fetchval("SHOW statement_timeout") == "200ms"
        with pytest.raises(DatabaseError) as caught, translating():
            await conn.execute("SELECT pg_sleep(2)")
        assert (caught.value.sqlstate, caught.value.retryable) == ("57014", False)
    finally:
        await conn.close()


async def test_a_pool_hands_out_connections_with_the_same_settings(
    db_config: DatabaseConfig,
) -> None:
    pool = await create_pool(DatabaseConfig(dsn=db_config.dsn, pool_size=2))
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_setting('application_name')") == "syncd"
    finally:
        await pool.close()


async def test_an_unreachable_server_is_retryable_and_the_password_never_shows() -> None:
    port = _closed_port()
    cfg = DatabaseConfig(
        dsn=Secret(f"postgresql://syncd:hunter2-secret@127.0.0.1:{port}/crm"), connect_timeout=2
    )
    with pytest.raises(DatabaseError) as caught:
        await connect(cfg)
    error = caught.value
    assert (error.sqlstate, error.retryable) == ("08001", True)
    assert f"127.0.0.1:{port}/crm" in str(error)
    assert "hunter2" not in str(error)
    assert "hunter2" not in repr(error)


async def test_a_missing_database_is_not_retryable(db_config: DatabaseConfig) -> None:
    assert db_config.dsn is not None
    dsn = db_config.dsn.reveal().rsplit("/", 1)[0] + "/syncd_no_such_database"
    with pytest.raises(DatabaseError) as caught:
        await connect(DatabaseConfig(dsn=Secret(dsn)))
    assert (caught.value.sqlstate, caught.value.retryable) == ("3D000", False)
    assert "syncd_no_such_database" in str(caught.value)


@pytest.mark.parametrize(
    ("sqlstate", "retryable"),
    [
        ("40001", True),  # serialization_failure
        ("40P01", True),  # deadlock_detected
        ("57P01", True),  # admin_shutdown
        ("57P03", True),  # cannot_connect_now
        ("08006", True),  # connection_failure
        ("23505", False),  # unique_violation
        ("42P01", False),  # undefined_table
    ],
)
async def test_server_errors_are_classified_by_sqlstate(
    db: Connection, sqlstate: str, retryable: bool
) -> None:
    with pytest.raises(DatabaseError) as caught, translating():
        await db.execute(f"DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '{sqlstate}'; END $$")
    assert (caught.value.sqlstate, caught.value.retryable) == (sqlstate, retryable)
    assert "boom" in str(caught.value)


async def test_a_connection_killed_by_the_server_becomes_a_retryable_error(
    db: Connection, db_config: DatabaseConfig
) -> None:
    victim = await connect(db_config)
    try:
        await db.execute("SELECT pg_terminate_backend($1)", victim.get_server_pid())
        await asyncio.sleep(0.1)
        with pytest.raises(DatabaseError) as caught, translating(conn=victim):
            await victim.fetchval("SELECT 1")
        assert (caught.value.sqlstate, caught.value.retryable) == ("08003", True)
    finally:
        await victim.close()


def test_translate_passes_a_database_error_through_unchanged() -> None:
    error = DatabaseError("already translated", sqlstate="08006", retryable=True)
    assert translate(error) is error


async def test_the_translated_decorator_turns_asyncpg_errors_into_database_errors(
    db: Connection,
) -> None:
    @translated
    async def query(conn: Connection) -> object:
        return await conn.fetchval("SELECT * FROM no_such_table")

    with pytest.raises(DatabaseError) as caught:
        await query(db)
    assert (caught.value.sqlstate, caught.value.retryable) == ("42P01", False)
