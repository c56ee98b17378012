"""The sandbox's state in SQLite: schema, the one writer thread, and small row helpers.

Every statement runs on a single worker thread (`Database.run`) so the event loop never blocks
and writes are serialised; readers of finished export files open their own connection. The
database is a temporary file unless `state_file` asks for a persistent one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

EMAIL, PHONE = 0, 1  # memberships.channel
CHANNELS = {"email": EMAIL, "phone": PHONE}

SCHEMA = """
CREATE TABLE IF NOT EXISTS lists (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL UNIQUE,
    before_subscribe_url TEXT NOT NULL DEFAULT '',
    after_subscribe_url TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS fields (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    public_name TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY,
    email TEXT UNIQUE,
    email_status TEXT,
    email_availability TEXT,
    email_add_time TEXT,
    phone TEXT UNIQUE,
    phone_status TEXT,
    phone_availability TEXT,
    phone_add_time TEXT,
    tags TEXT NOT NULL DEFAULT '',
    fields TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS memberships (
    contact_id INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    list_id INTEGER NOT NULL,
    unsubscribed INTEGER NOT NULL DEFAULT 0,
    subscribed_at TEXT NOT NULL,
    PRIMARY KEY (contact_id, channel, list_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_by_list ON memberships (list_id, contact_id);
CREATE TABLE IF NOT EXISTS export_chunks (
    file_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (file_id, seq)
);
"""

WIPE = """
DELETE FROM memberships; DELETE FROM contacts; DELETE FROM fields; DELETE FROM lists;
DELETE FROM export_chunks;
"""


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def connect(path: Path, *, durable: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'NORMAL' if durable else 'OFF'}")
    conn.execute("PRAGMA cache_size=-16000")  # 16 MB page cache: fast and bounded
    return conn


class Database:
    """Owns the SQLite file and the single thread that writes it."""

    def __init__(self, state_file: Path | None) -> None:
        self.durable = state_file is not None
        if state_file is None:
            fd, name = tempfile.mkstemp(prefix="syncd-sandbox-", suffix=".sqlite")
            os.close(fd)
            self.path = Path(name)
        else:
            self.path = state_file
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-db")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        await self.run(self._open)

    def _open(self, _: sqlite3.Connection | None) -> None:
        self._conn = connect(self.path, durable=self.durable)
        self._conn.executescript(SCHEMA)
        self._conn.execute("DELETE FROM export_chunks")  # tasks do not survive a restart

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._conn))  # type: ignore[arg-type]

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in one transaction on the writer thread; any exception rolls it back."""
        return await self.submit_transaction(fn)

    def submit_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue `fn(conn)` as one transaction now (the queue order is the order of calls)."""

        def wrapped(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, lambda: wrapped(self._conn))  # type: ignore[arg-type]

    def reader(self) -> sqlite3.Connection:
        """A separate read-only connection for streaming a finished export file.

        No pragmas that need a lock: it must not wait behind a long seed on the writer thread.
        """
        return sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=60
        )

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection | None) -> None:
            if conn is not None:
                conn.close()

        await self.run(_close)
        self._executor.shutdown(wait=True)
        if not self.durable:
            await asyncio.to_thread(self._remove_files)

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()


# ---- small helpers used by the method modules (all run on the writer thread) ----


def list_exists(conn: sqlite3.Connection, list_id: int) -> bool:
    return conn.execute("SELECT 1 FROM lists WHERE id = ?", (list_id,)).fetchone() is not None


def field_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM fields ORDER BY id")]


def field_types(conn: sqlite3.Connection) -> dict[str, str]:
    """User field name -> its createField type."""
    return {r[0]: r[1] for r in conn.execute("SELECT name, type FROM fields ORDER BY id")}


def find_contact(conn: sqlite3.Connection, column: str, value: str) -> int | None:
    assert column in ("email", "phone")  # noqa: S101 - internal invariant, never user input
    row = conn.execute(f"SELECT id FROM contacts WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else int(row[0])


def contact_email(conn: sqlite3.Connection, contact_id: int) -> str | None:
    """The email address the contact holds, or None (a phone-only contact)."""
    row = conn.execute("SELECT email FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    return None if row is None or not row[0] else str(row[0])


def memberships(conn: sqlite3.Connection, contact_id: int, channel: int) -> dict[int, bool]:
    """list_id -> unsubscribed flag."""
    rows = conn.execute(
        "SELECT list_id, unsubscribed FROM memberships WHERE contact_id = ? AND channel = ?",
        (contact_id, channel),
    )
    return {int(r[0]): bool(r[1]) for r in rows}


def set_membership(
    conn: sqlite3.Connection,
    contact_id: int,
    channel: int,
    list_id: int,
    *,
    unsubscribed: bool | None,
    at: str | None = None,
) -> None:
    """Add the membership; `unsubscribed` None keeps an existing mark, True/False sets it."""
    at = at or now_text()
    if unsubscribed is None:
        conn.execute(
            "INSERT OR IGNORE INTO memberships VALUES (?, ?, ?, 0, ?)",
            (contact_id, channel, list_id, at),
        )
    else:
        conn.execute(
            "INSERT INTO memberships VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " unsubscribed = excluded.unsubscribed",
            (contact_id, channel, list_id, int(unsubscribed), at),
        )


def remove_membership(
    conn: sqlite3.Connection, contact_id: int, channel: int, list_id: int | None = None
) -> int:
    if list_id is None:
        cur = conn.execute(
            "DELETE FROM memberships WHERE contact_id = ? AND channel = ?", (contact_id, channel)
        )
    else:
        cur = conn.execute(
            "DELETE FROM memberships WHERE contact_id = ? AND channel = ? AND list_id = ?",
            (contact_id, channel, list_id),
        )
    return cur.rowcount


def delete_contact(conn: sqlite3.Connection, contact_id: int) -> None:
    conn.execute("DELETE FROM memberships WHERE contact_id = ?", (contact_id,))
    conn.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))


def load_json(text: str) -> dict[str, str]:
    value: Any = json.loads(text or "{}")
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def contact_view(conn: sqlite3.Connection, contact_id: int) -> dict[str, Any]:
    """The admin API's Contact shape (TEAM.md)."""
    row = conn.execute(
        "SELECT email, email_status, email_availability, phone, phone_status, tags, fields"
        " FROM contacts WHERE id = ?",
        (contact_id,),
    ).fetchone()
    email_lists = memberships(conn, contact_id, EMAIL)
    phone_lists = memberships(conn, contact_id, PHONE)
    return {
        "id": contact_id,
        "email": row[0],
        "email_status": row[1],
        "email_availability": row[2],
        "email_list_ids": sorted(k for k, u in email_lists.items() if not u),
        "email_unsubscribed_list_ids": sorted(k for k, u in email_lists.items() if u),
        "phone": row[3],
        "phone_status": row[4],
        "phone_list_ids": sorted(k for k, u in phone_lists.items() if not u),
        "phone_unsubscribed_list_ids": sorted(k for k, u in phone_lists.items() if u),
        "fields": load_json(row[6]),
        "tags": [t for t in row[5].split(",") if t],
    }
