"""Connections to PostgreSQL and the translation of asyncpg's errors into syncd's DatabaseError.

Owns every asyncpg connect call, the pool (`Pool`: every acquire bounded by acquire_timeout), the
session settings every connection starts with (statement_timeout, lock_timeout, keepalives) and
the SQLSTATE -> retryable decision; it must not run queries of its own. Messages name host, port
and database only: never the DSN, which may carry a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, ParamSpec, TypeAlias, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import structlog
from asyncpg.exceptions import InternalClientError
from asyncpg.pool import PoolConnectionProxy

from syncd.config import DatabaseConfig
from syncd.errors import DatabaseError, SyncdError

log = structlog.get_logger(__name__)

# Any connection syncd's queries run on: a dedicated one (connect) or one acquired from a pool.
# asyncpg's types: they never leave syncd/db/ (ruff TID251 bans them elsewhere).
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
# A connection of its own (connect): what session state (the job lock, temp tables) needs.
DedicatedConnection: TypeAlias = asyncpg.Connection

APPLICATION_NAME = "syncd"
# A peer that vanished (kill -9 of the host, a cable pulled) is noticed after about
# IDLE + INTERVAL * COUNT seconds, on both sides: the server frees the dead session's advisory
# locks (the job lock), and syncd stops waiting on a server that will never answer.
KEEPALIVE_IDLE = 30
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 3
POOL_MIN_SIZE = 1
# Seconds Pool.close() waits for connections still in use before it terminates them.
POOL_CLOSE_TIMEOUT = 10.0

# SQLSTATEs worth retrying as is: the connection broke, a serialization failure or deadlock,
# the server is shutting down or starting up, or it has no connection slot free right now.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})


def is_retryable(sqlstate: str | None) -> bool:
    """Whether an error with this SQLSTATE may succeed if the same work is tried again."""
    if sqlstate is None:
        return False
    return sqlstate.startswith("08") or sqlstate in _RETRYABLE_SQLSTATES


def describe_target(cfg: DatabaseConfig) -> str:
    """`host:port/database` of the DSN, for messages; never the user's password."""
    if cfg.dsn is None:
        return "PostgreSQL (from the PG* environment variables)"
    try:
        parts = urlsplit(cfg.dsn.reveal())
        query = parse_qs(parts.query)
        host = parts.hostname or (query.get("host") or ["localhost"])[0]
        port = parts.port or int((query.get("port") or ["5432"])[0])
        database = unquote(parts.path.lstrip("/")) or (query.get("dbname") or ["?"])[0]
    except ValueError:
        return "PostgreSQL (unparsable DSN)"
    return f"{host}:{port}/{database}"


def _scrub(message: str, cfg: DatabaseConfig | None) -> str:
    """Remove the DSN and its password from a foreign message, in case a library quoted it."""
    if cfg is None or cfg.dsn is None:
        return message
    dsn = cfg.dsn.reveal()
    message = message.replace(dsn, "<dsn>")
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        message = message.replace(password, "**********").replace(unquote(password), "**********")
    return message


def _is_lost(conn: Connection) -> bool:
    """Whether `conn` is closed. A pooled connection that broke mid-call is detached from its
    proxy, which then refuses even is_closed(): that connection is gone too."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


def translate(
    exc: BaseException, *, cfg: DatabaseConfig | None = None, conn: Connection | None = None
) -> DatabaseError:
    """The DatabaseError for a foreign exception raised by asyncpg or the socket layer.

    `conn`, when given, is the connection the failed call used: if it is closed, the error is
    about the connection (08003, retryable with a new one) whatever asyncpg called it.
    """
    if isinstance(exc, DatabaseError):
        return exc
    where = f" ({describe_target(cfg)})" if cfg is not None else ""
    if conn is not None and _is_lost(conn) and not isinstance(exc, asyncpg.PostgresError):
        return DatabaseError(
            f"the connection to PostgreSQL was lost{where}", sqlstate="08003", retryable=True
        )
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = exc.sqlstate
        detail = _scrub(str(exc) or type(exc).__name__, cfg)
        return DatabaseError(
            f"PostgreSQL error {sqlstate}{where}: {detail}",
            sqlstate=sqlstate,
            retryable=is_retryable(sqlstate),
        )
    if isinstance(exc, TimeoutError):
        return DatabaseError(
            f"PostgreSQL did not answer in time{where}", sqlstate="08001", retryable=True
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return DatabaseError(
            f"cannot reach PostgreSQL{where}: {_scrub(reason, cfg)}",
            sqlstate="08001",
            retryable=True,
        )
    if isinstance(exc, asyncpg.InterfaceError | InternalClientError):
        return DatabaseError(f"PostgreSQL client error{where}: {_scrub(str(exc), cfg)}")
    return DatabaseError(f"unexpected database failure{where}: {type(exc).__name__}")


_CONNECTION_TYPES = (asyncpg.Connection, PoolConnectionProxy)
_TRANSLATED = (asyncpg.PostgresError, asyncpg.InterfaceError, InternalClientError, OSError)


@contextmanager
def translating(
    cfg: DatabaseConfig | None = None, conn: Connection | None = None
) -> Iterator[None]:
    """Re-raise asyncpg and socket errors raised inside the block as DatabaseError.

    Pass the connection the block uses as `conn` so a lost connection is told apart.
    """
    try:
        yield
    except SyncdError:
        raise
    except _TRANSLATED as exc:
        raise translate(exc, cfg=cfg, conn=conn) from exc


P = ParamSpec("P")
R = TypeVar("R")


def translated(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorator form of `translating()`; a Connection argument is the one watched for loss."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        conn = next((a for a in args if isinstance(a, _CONNECTION_TYPES)), None)
        with translating(conn=conn):
            return await func(*args, **kwargs)

    return wrapper


def _server_settings(cfg: DatabaseConfig) -> dict[str, str]:
    settings = {
        "application_name": APPLICATION_NAME,
        "tcp_keepalives_idle": str(KEEPALIVE_IDLE),
        "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL),
        "tcp_keepalives_count": str(KEEPALIVE_COUNT),
    }
    if cfg.statement_timeout > 0:
        settings["statement_timeout"] = str(int(cfg.statement_timeout * 1000))
    if cfg.lock_timeout > 0:
        settings["lock_timeout"] = str(int(cfg.lock_timeout * 1000))
    return settings


def _set_client_keepalive(conn: DedicatedConnection) -> None:
    """Turn on TCP keepalive on syncd's side of the socket (asyncpg has no option for it)."""
    transport = getattr(conn, "_transport", None)  # asyncpg keeps its transport private
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, option):  # Linux has all three; other systems some
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _connect_kwargs(cfg: DatabaseConfig) -> dict[str, Any]:
    return {
        "dsn": cfg.dsn.reveal() if cfg.dsn is not None else None,
        "timeout": cfg.connect_timeout,
        "server_settings": _server_settings(cfg),
    }


async def connect(cfg: DatabaseConfig) -> DedicatedConnection:
    """A dedicated connection (not from a pool): the run's lock and temp tables live on it."""
    with translating(cfg):
        conn: DedicatedConnection = await asyncpg.connect(**_connect_kwargs(cfg))
    _set_client_keepalive(conn)
    return conn


DEDICATED_CLOSE_TIMEOUT = 5.0  # seconds to close a dedicated connection before aborting it


async def close_dedicated(conn: DedicatedConnection) -> None:
    """Close a dedicated connection politely within DEDICATED_CLOSE_TIMEOUT, else abort it: the
    server frees its session locks and TEMP tables either way."""
    with contextlib.suppress(Exception):
        await conn.close(timeout=DEDICATED_CLOSE_TIMEOUT)
    if not conn.is_closed():
        conn.terminate()


@asynccontextmanager
async def bounded_lock_call(limit: float, what: str) -> AsyncIterator[None]:
    """A job lock call (non-waiting) bounded by lock_timeout (`limit`; 0: unbounded): a server
    that does not answer fails the call (DatabaseError, retryable) instead of holding the run,
    the event worker or the opt-out pass forever."""
    if limit <= 0:
        yield
        return
    try:
        async with asyncio.timeout(limit):
            yield
    except TimeoutError as exc:
        raise DatabaseError(
            f"PostgreSQL did not answer {what} within lock_timeout={limit:g}s", retryable=True
        ) from exc


async def _init_pooled(conn: DedicatedConnection) -> None:
    _set_client_keepalive(conn)


class Pool:
    """syncd's connection pool: asyncpg's, with every acquire bounded by the configured
    `acquire_timeout` and translated into DatabaseError, and a close that cannot hang.

    `acquire()` hands out asyncpg connections, so only syncd/db/ uses it; other packages pass
    the pool to syncd.db's operations (Database) and never touch a connection themselves.
    """

    def __init__(self, pool: asyncpg.Pool, cfg: DatabaseConfig) -> None:
        self._pool = pool
        self.cfg = cfg
        self._releasing: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """A connection of the pool for the block; DatabaseError (retryable) when none is free
        within acquire_timeout or a new one cannot be opened."""
        timeout = self.cfg.acquire_timeout
        try:
            conn: PoolConnectionProxy = await self._pool.acquire(timeout=timeout)
        except TimeoutError as exc:
            raise DatabaseError(
                f"no PostgreSQL connection within acquire_timeout={timeout:g}s "
                f"({describe_target(self.cfg)})",
                sqlstate="08001",
                retryable=True,
            ) from exc
        except _TRANSLATED as exc:
            raise translate(exc, cfg=self.cfg) from exc
        try:
            yield conn
        except asyncio.CancelledError:
            # A block cancelled mid-query (a caller's timeout): the release waits for the server
            # to confirm the cancel, which a server that went silent never does. It goes on in
            # the background, so the caller's timeout holds.
            self._release_later(conn)
            raise
        except BaseException:
            with contextlib.suppress(DatabaseError):  # the block's own error is the one to see
                await self._release(conn)
            raise
        await self._release(conn)

    async def _release(self, conn: PoolConnectionProxy) -> None:
        # bounded by the acquire's timeout; a connection that cannot be reset is terminated
        with translating(self.cfg):
            await self._pool.release(conn)

    def _release_later(self, conn: PoolConnectionProxy) -> None:
        task = asyncio.get_running_loop().create_task(self._release(conn), name="pool-release")
        self._releasing.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Task[None]) -> None:
        self._releasing.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("pool_release_failed", error=str(exc))

    async def close(self) -> None:
        """Close every connection; those still in use after POOL_CLOSE_TIMEOUT are terminated."""
        try:
            async with asyncio.timeout(POOL_CLOSE_TIMEOUT):
                await self._pool.close()
        except TimeoutError:  # asyncpg terminates the pool when its close() is cancelled
            log.warning("pool_close_timed_out", timeout_s=POOL_CLOSE_TIMEOUT)


async def create_pool(cfg: DatabaseConfig) -> Pool:
    """A pool of at most `cfg.pool_size` connections; its first connection is opened now."""
    with translating(cfg):
        pool: asyncpg.Pool = await asyncpg.create_pool(
            min_size=min(POOL_MIN_SIZE, cfg.pool_size),
            max_size=cfg.pool_size,
            init=_init_pooled,
            **_connect_kwargs(cfg),
        )
    return Pool(pool, cfg)
