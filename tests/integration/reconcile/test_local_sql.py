"""The SQL that reads the user's table: key normalisation rules in PostgreSQL, and hostile
identifiers that stay harmless quoted names."""

from __future__ import annotations

import dataclasses

import pytest

from syncd.db import Connection
from syncd.db.local import create_key_functions, writeback_sql
from syncd.db.source import describe_source
from syncd.db.sql import QUERIES
from syncd.reconcile.keys import canonical_key, email_key, key_valid
from tests.integration.reconcile.harness import Harness


@pytest.mark.parametrize(
    ("channel", "raw", "key", "valid"),
    [
        ("email", "  Ann@Example.COM\t", "ann@example.com", True),
        ("email", "ann@example", "ann@example", False),
        ("email", "ann example@x.org", "ann example@x.org", False),
        ("email", "", "", False),
        ("email", None, "", False),
        ("phone", "+7 (926) 123-45-67", "+79261234567", True),
        ("email", "\u00a0\u200bAnn@Example.COM\ufeff\u2009", "ann@example.com", True),
        ("email", "\u3000b@x.org\u2060\r\n", "b@x.org", True),
        ("phone", "8 926 123 45 67", "+89261234567", True),
        ("phone", "79000000002", "+79000000002", True),
        ("phone", "7 900 000 00 03", "+79000000003", True),
        ("phone", " +1-555-000-1111 ", "+15550001111", True),
        ("phone", "12+34", "+1234", False),
        ("phone", "12345", "+12345", False),
        ("phone", "no digits", "", False),
        ("phone", None, "", False),
    ],
)
async def test_key_normalisation_and_validity(
    db: Connection, channel: str, raw: str | None, key: str, valid: bool
) -> None:
    await create_key_functions(db)
    got = await db.fetchrow(
        f"SELECT pg_temp.syncd_{channel}_key($1) AS key,"
        f" pg_temp.syncd_key_valid($2, pg_temp.syncd_{channel}_key($1)) AS valid",
        raw,
        channel,
    )
    assert got is not None
    assert (got["key"], got["valid"]) == (key, valid)
    # the Python form (what `syncd explain` looks a key up with) agrees
    assert canonical_key(channel, raw) == key  # type: ignore[arg-type]
    assert key_valid(channel, key) == valid  # type: ignore[arg-type]


async def test_sql_and_python_trim_exactly_the_same_characters(db: Connection) -> None:
    """Every character either side trims at the ends of an email, the other does too."""
    await create_key_functions(db)
    candidates = [chr(c) for c in range(0x3100) if chr(c).isspace() or c in (0x200B, 0xFEFF)]
    candidates += ["\u200c", "\u200d", "\u2060", "\u180e", "x", "-"]
    for char in candidates:
        raw = f"{char}a@x.org{char}"
        sql = await db.fetchval("SELECT pg_temp.syncd_email_key($1)", raw)
        assert sql == email_key(raw), repr(char)


async def test_fingerprint_is_the_values_unless_opted_out(db: Connection) -> None:
    await create_key_functions(db)
    row = await db.fetchrow(
        "SELECT pg_temp.syncd_vals_fp('{Name}', '{a,b}') AS ab,"
        " pg_temp.syncd_vals_fp('{Name}', '{\"a,b\"}') AS a_comma_b,"
        " pg_temp.syncd_vals_fp('{Other}', '{a,b}') AS renamed"
    )
    assert row is not None
    assert len({row["ab"], row["a_comma_b"], row["renamed"]}) == 3
    same = await db.fetchval("SELECT pg_temp.syncd_fp($1, false) = $1", row["ab"])
    differs = await db.fetchval("SELECT pg_temp.syncd_fp($1, true) <> $1", row["ab"])
    assert same
    assert differs


async def test_hostile_table_and_column_names_are_quoted_identifiers(harness: Harness) -> None:
    await harness.db.execute(
        'CREATE SCHEMA "we""ird"; CREATE TABLE "we""ird"."t; DROP TABLE x" ('
        ' "e-mail""; --" text, "Name)" text, "st" text)'
    )
    await harness.db.execute(
        'INSERT INTO "we""ird"."t; DROP TABLE x" VALUES ($1, $2, NULL)', "q@example.com", "Q"
    )
    job = dataclasses.replace(
        harness.job,
        table='we"ird.t; DROP TABLE x',
        fields={"email": 'e-mail"; --', "Name": "Name)"},
        writeback={"email_status": "st"},
        opt_out_column=None,
    )
    harness.job = job
    first = await harness.run()
    assert first.status == "succeeded", first.error
    assert (await harness.members())["q@example.com"]["fields"] == {"Name": "Q"}
    await harness.run()
    status = await harness.db.fetchval('SELECT st FROM "we""ird"."t; DROP TABLE x"')
    assert status == "new"


async def test_the_writeback_joins_by_hash_whatever_the_ledger_statistics_say(
    harness: Harness,
) -> None:
    """After a first sync, statistics of the ledger say no contact is in Selzy (the export was
    empty); the next run's writeback then flags every contact. Planned from those estimates
    alone it becomes a nested loop over the whole flagged set once per contact: the writeback
    allows hash joins only (sql/queries/local.sql writeback_hash_joins)."""
    await harness.insert(*({"email": f"u{i}@example.com"} for i in range(3)))
    assert (await harness.run()).status == "succeeded"
    await harness.db.execute("ANALYZE syncd.contacts")  # as autovacuum would, right then
    source = await describe_source(harness.db, harness.job)
    statement = writeback_sql(harness.job, source)
    await create_key_functions(harness.db)
    async with harness.db.transaction():
        await harness.db.execute(
            "CREATE TEMP TABLE syncd_plan ON COMMIT DROP AS"
            " SELECT 'u' || i || '@example.com' AS key, true AS writeback"
            " FROM generate_series(1, 100000) AS i"
        )
        await harness.db.execute("ANALYZE syncd_plan")
        unguarded = "\n".join(
            r[0] for r in await harness.db.fetch(f"EXPLAIN {statement}", harness.job.name)
        )
        await harness.db.execute(QUERIES["writeback_hash_joins"])
        guarded = "\n".join(
            r[0] for r in await harness.db.fetch(f"EXPLAIN {statement}", harness.job.name)
        )
    assert "Nested Loop" in unguarded  # the trap is real on this server
    assert "Nested Loop" not in guarded
