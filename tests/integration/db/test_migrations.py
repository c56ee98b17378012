"""syncd's schema: migrations apply once, concurrently safe, and equal sql/schema.sql."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from syncd.config import DatabaseConfig
from syncd.db import (
    QUERIES,
    Connection,
    apply_migrations,
    connect,
    ensure_schema,
    latest_version,
    migrate,
    sql_dir,
)
from syncd.db.migrate import available_migrations
from syncd.errors import SchemaError

CATALOG_QUERIES = {
    "relations": """
        SELECT c.relname, c.relkind::text, c.relpersistence::text, c.reloptions::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'syncd' ORDER BY 1""",
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'syncd' AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'syncd'::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'syncd' ORDER BY 1""",
    "sequences": """
        SELECT s.seqrelid::regclass::text, format_type(s.seqtypid, NULL), s.seqstart,
               s.seqincrement, s.seqmax, s.seqmin, s.seqcycle,
               (SELECT d.refobjid::regclass::text || '.' || d.refobjsubid FROM pg_depend d
                WHERE d.objid = s.seqrelid AND d.deptype = 'a')
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
        WHERE c.relnamespace = 'syncd'::regnamespace ORDER BY 1""",
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
        WHERE p.pronamespace = 'syncd'::regnamespace ORDER BY 1""",
    "triggers": """
        SELECT tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = 'syncd'::regnamespace AND NOT t.tgisinternal ORDER BY 1""",
    "migrations": "SELECT version, name FROM syncd.migrations ORDER BY version",
}


async def catalog(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: [tuple(row) for row in await conn.fetch(query)]
        for name, query in CATALOG_QUERIES.items()
    }


async def test_schema_sql_and_all_migrations_give_the_same_catalog(
    db: Connection, empty_db_config: DatabaseConfig
) -> None:
    fresh = await connect(empty_db_config)
    try:
        await fresh.execute((sql_dir() / "schema.sql").read_text(encoding="utf-8"))
        from_schema = await catalog(fresh)
    finally:
        await fresh.close()
    from_migrations = await catalog(db)
    assert from_migrations["columns"], "the comparison must see syncd's tables"
    for part in CATALOG_QUERIES:
        assert from_schema[part] == from_migrations[part], part


async def test_migrate_applies_every_migration_once_and_then_nothing(
    empty_db_config: DatabaseConfig,
) -> None:
    labels = [m.label for m in available_migrations()]
    assert labels[0] == "0001_create_schema"
    assert await migrate(empty_db_config) == labels
    assert await migrate(empty_db_config) == []
    conn = await connect(empty_db_config)
    try:
        await ensure_schema(conn)
        assert await conn.fetchval("SELECT count(*) FROM syncd.migrations") == len(labels)
    finally:
        await conn.close()


async def test_concurrent_migrates_all_succeed_and_apply_each_migration_once(
    empty_db_config: DatabaseConfig,
) -> None:
    results = await asyncio.gather(*(migrate(empty_db_config) for _ in range(4)))
    applied = [label for result in results for label in result]
    # each migration once, by whichever process got to it first
    assert sorted(applied) == [m.label for m in available_migrations()]


async def test_ensure_schema_says_to_run_migrate_on_a_database_without_it(
    empty_db_config: DatabaseConfig,
) -> None:
    conn = await connect(empty_db_config)
    try:
        with pytest.raises(SchemaError, match=r"not installed: run `syncd migrate`"):
            await ensure_schema(conn)
    finally:
        await conn.close()


async def test_a_schema_newer_than_the_code_is_refused_by_ensure_schema_and_migrate(
    db: Connection, db_config: DatabaseConfig
) -> None:
    newer = latest_version() + 1
    await db.execute("INSERT INTO syncd.migrations (version, name) VALUES ($1, 'future')", newer)
    message = f"database schema version {newer} is newer than this syncd \\({latest_version()}\\)"
    with pytest.raises(SchemaError, match=message):
        await ensure_schema(db)
    with pytest.raises(SchemaError, match=message):
        await migrate(db_config)


async def test_the_ledger_migration_carries_every_pushed_fingerprint_mirror_row_and_suppression(
    empty_db_config: DatabaseConfig,
) -> None:
    """A database created by schema 0001 (syncd.pushed, the mirror table, syncd.suppressions)
    upgrades to the ledger without losing a fingerprint, a rejection or a suppression; keys are
    re-normalised (a phone stored without its `+` meets Selzy's `+...` from now on)."""
    conn = await connect(empty_db_config)
    try:
        first = available_migrations()[0]
        await conn.execute(QUERIES["bootstrap_schema"])
        await conn.execute(first.path.read_text(encoding="utf-8"))
        await conn.execute(
            "INSERT INTO syncd.migrations (version, name) VALUES (1, 'create_schema')"
        )
        await conn.execute(
            """
            INSERT INTO syncd.pushed (job, key, fingerprint, pushed_at, run_id, rejections,
                                      rejected_fingerprint, last_code, last_message,
                                      quarantined_at)
            VALUES ('news', 'a@example.com', 11, now(), 1, 0, NULL, NULL, NULL, NULL),
                   ('news', 'info@example.com', NULL, NULL, 2, 3, 22, 'role_address', 'no',
                    now()),
                   ('sms', '79000000002', 33, now(), 3, 0, NULL, NULL, NULL, NULL);
            INSERT INTO syncd.remote_contacts (job, key, email, email_status, list_status)
            VALUES ('news', 'a@example.com', 'a@example.com', 'active', 'subscribed'),
                   ('news', 'gone@example.com', 'gone@example.com', 'unsubscribed',
                    'unsubscribed');
            INSERT INTO syncd.suppressions (list_id, channel, key, reason)
            VALUES (7, 'email', 'gone@example.com', 'email_status=unsubscribed'),
                   (8, 'phone', '79000000009', 'phone_status=blocked');
            """
        )
        assert await apply_migrations(conn) == [m.label for m in available_migrations()[1:]]
        ledger = {
            (r["job"], r["key"]): dict(r)
            for r in await conn.fetch("SELECT * FROM syncd.contacts ORDER BY job, key")
        }
        assert set(ledger) == {
            ("news", "a@example.com"),
            ("news", "info@example.com"),
            ("news", "gone@example.com"),
            ("sms", "+79000000002"),
        }
        assert ledger["news", "a@example.com"]["pushed_fp"] == 11
        assert ledger["news", "a@example.com"]["email_status"] == "active"
        assert ledger["news", "a@example.com"]["remote_seen"] is True
        quarantined = ledger["news", "info@example.com"]
        assert (quarantined["rejections"], quarantined["rejected_fp"]) == (3, 22)
        assert quarantined["quarantined_at"] is not None
        assert ledger["sms", "+79000000002"]["pushed_fp"] == 33
        mirror = await conn.fetch("SELECT key, list_status FROM syncd.remote_contacts ORDER BY 1")
        assert [tuple(r) for r in mirror] == [
            ("a@example.com", "subscribed"),
            ("gone@example.com", "unsubscribed"),
        ]
        carried = await conn.fetch(
            "SELECT list_id, channel, key, reason FROM syncd.suppressions_carried ORDER BY 1"
        )
        assert [tuple(r) for r in carried] == [
            (7, "email", "gone@example.com", "email_status=unsubscribed"),
            (8, "phone", "+79000000009", "phone_status=blocked"),
        ]
        await ensure_schema(conn)
    finally:
        await conn.close()
