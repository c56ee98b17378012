"""Every database wait has a named timeout: a pooled connection (acquire_timeout), a lock held by
another session (lock_timeout), the job lock's call on a server gone silent, closing a pool whose
connection hangs; and failures on the way are DatabaseErrors, never asyncpg's own exceptions.
Timeouts are made short; nothing asserts how long anything took."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from syncd.config import DatabaseConfig
from syncd.db import Connection, Database, RunSession, connect, create_pool, translating
from syncd.db import pool as db_pool
from syncd.errors import DatabaseError
from tests.fixtures.pg_proxy import PgProxy
from tests.integration.reconcile.harness import make_job

JOB = make_job(1, fields={"email": "email"}, writeback={}, opt_out_column=None)


@pytest.fixture
async def contacts(db: Connection) -> None:
    await db.execute("CREATE TABLE public.contacts (id serial PRIMARY KEY, email text)")


async def test_a_pool_with_no_free_connection_fails_within_acquire_timeout(
    db_config: DatabaseConfig,
) -> None:
    pool = await create_pool(dataclasses.replace(db_config, pool_size=1, acquire_timeout=0.2))
    try:
        async with pool.acquire():
            with pytest.raises(DatabaseError) as caught:
                async with pool.acquire():
                    pass
        assert caught.value.retryable
        assert "acquire_timeout=0.2s" in str(caught.value)
        async with pool.acquire() as conn:  # the pool is fine afterwards
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_a_closed_pool_is_a_database_error(db_config: DatabaseConfig) -> None:
    pool = await create_pool(db_config)
    await pool.close()
    with pytest.raises(DatabaseError):
        await Database(pool).heartbeat(1)


async def test_every_connection_waits_for_a_lock_at_most_lock_timeout(
    db: Connection, db_config: DatabaseConfig
) -> None:
    await db.execute("CREATE TABLE public.t (id int PRIMARY KEY)")
    await db.execute("INSERT INTO public.t VALUES (1)")
    assert await db.fetchval("SHOW lock_timeout") == "30s"  # the default
    cfg = dataclasses.replace(db_config, lock_timeout=0.2)
    blocked = await connect(cfg)
    try:
        async with db.transaction():
            await db.execute("UPDATE public.t SET id = 1 WHERE id = 1")
            with pytest.raises(DatabaseError) as caught, translating(conn=blocked):
                await blocked.execute("UPDATE public.t SET id = 1 WHERE id = 1")
        assert caught.value.sqlstate == "55P03"  # lock_not_available
    finally:
        await blocked.close()


async def test_a_pooled_connection_lost_mid_query_is_a_retryable_database_error(
    db: Connection, db_config: DatabaseConfig
) -> None:
    """asyncpg detaches a broken pooled connection from its proxy, which then refuses even
    is_closed(): the translation must not trip over that."""
    pool = await create_pool(db_config)
    try:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            sleeping = asyncio.create_task(_sleep_on(conn))
            await _until_active(db, pid)
            await db.execute("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(DatabaseError) as caught:
                await sleeping
        assert caught.value.retryable
    finally:
        await pool.close()


async def _until_active(db: Connection, pid: int) -> None:
    for _ in range(3000):
        query = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
        if await db.fetchval(query, pid):
            return
        await asyncio.sleep(0.01)


async def _sleep_on(conn: Connection) -> None:
    with translating(conn=conn):
        await conn.execute("SELECT pg_sleep(30)")


@pytest.mark.usefixtures("contacts")
async def test_only_one_run_session_holds_the_job_lock_and_closing_frees_it(
    db_config: DatabaseConfig,
) -> None:
    async with RunSession.open(db_config, JOB) as first:
        assert await first.try_lock()
        async with RunSession.open(db_config, JOB) as second:
            assert not await second.try_lock()
    async with RunSession.open(db_config, JOB) as third:
        assert await third.try_lock()
        await third.unlock()


@pytest.fixture
async def silent_session(db_config: DatabaseConfig) -> AsyncIterator[RunSession]:
    async with (
        PgProxy.serving(db_config) as proxy,
        RunSession.open(proxy.config(db_config, lock_timeout=0.2), JOB) as session,
    ):
        await proxy.freeze()
        yield session
        await proxy.restore()


@pytest.mark.usefixtures("contacts")
async def test_the_job_lock_call_on_a_silent_server_fails_within_lock_timeout(
    silent_session: RunSession,
) -> None:
    with pytest.raises(DatabaseError) as caught:
        await silent_session.try_lock()
    assert "lock_timeout=0.2s" in str(caught.value)
    await silent_session.unlock()  # best effort: logged, never raised


async def test_closing_a_pool_whose_connection_hangs_terminates_it(
    db_config: DatabaseConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_pool, "POOL_CLOSE_TIMEOUT", 0.2)
    pool = await create_pool(db_config)
    held = asyncio.Event()

    async def hold() -> None:
        async with pool.acquire():
            held.set()
            await asyncio.Event().wait()  # never released by its user

    holder = asyncio.create_task(hold())
    await held.wait()
    await pool.close()
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)
