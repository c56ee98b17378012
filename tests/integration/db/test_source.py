"""The user's table: identifiers quoted, never executed; every problem reported at once."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from syncd.config import JobConfig, Schedule
from syncd.db import Connection, describe_source, quote_ident, quote_table
from syncd.errors import ConfigError

_roles = itertools.count(1)


def job(**overrides: Any) -> JobConfig:
    settings: dict[str, Any] = {
        "name": "newsletter",
        "list_id": 1,
        "table": "public.contacts",
        "match": "email",
        "schedule": Schedule(text="every 15m", interval_seconds=900),
        "fields": {"email": "email", "Name": "first_name"},
    }
    settings.update(overrides)
    return JobConfig(**settings)


async def problems_of(conn: Connection, config: JobConfig) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        await describe_source(conn, config)
    return caught.value.problems


async def table_names(conn: Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
    )
    return {row["relname"] for row in rows}


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("contacts", '"contacts"'),
        ('x"; drop table t; --', '"x""; drop table t; --"'),
        ('""', '""""""'),
        ("first name", '"first name"'),
        ("Имя", '"Имя"'),
    ],
)
def test_quote_ident_doubles_quotes_and_wraps_the_name(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * 64, "é" * 32])
def test_quote_ident_rejects_empty_nul_and_over_long_names(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        quote_ident(name)


def test_quote_table_quotes_schema_and_table_separately() -> None:
    assert quote_table("public.contacts") == '"public"."contacts"'
    assert quote_table("contacts") == '"contacts"'
    assert quote_table('we"ird.t t') == '"we""ird"."t t"'
    with pytest.raises(ValueError, match="at most one dot"):
        quote_table("a.b.c")


async def test_a_hostile_table_name_is_just_a_table_that_does_not_exist(db: Connection) -> None:
    await db.execute("CREATE TABLE x (id int); CREATE TABLE contacts (email text)")
    for hostile in ("contacts; drop table x", "contacts; drop table x --", "x); drop table x; --"):
        assert await problems_of(db, job(table=hostile)) == [
            f'jobs[newsletter].table: relation "{hostile}" does not exist'
        ]
    assert {"x", "contacts"} <= await table_names(db)


async def test_tables_and_columns_with_quotes_spaces_and_unicode_are_found(db: Connection) -> None:
    await db.execute(
        'CREATE SCHEMA "CRM ""main"""; CREATE TABLE t (id int);'
        'CREATE TABLE "CRM ""main"""."x""; drop table t; --" ('
        ' "e-mail ""primary""" text, "Имя клиента" varchar(80), "opted out" boolean)'
    )
    config = job(
        table='CRM "main".x"; drop table t; --',
        fields={"email": 'e-mail "primary"', "Name": "Имя клиента"},
        opt_out_column="opted out",
    )
    info = await describe_source(db, config)
    assert (info.kind, info.schema, info.name) == ("table", 'CRM "main"', 'x"; drop table t; --')
    assert info.columns == {
        'e-mail "primary"': "text",
        "Имя клиента": "character varying(80)",
        "opted out": "boolean",
    }
    assert info.qualified == '"CRM ""main"""."x""; drop table t; --"'
    assert await db.fetchval(f"SELECT count(*) FROM {info.qualified}") == 0
    assert "t" in await table_names(db)


async def test_an_unqualified_table_is_resolved_through_the_search_path(db: Connection) -> None:
    await db.execute("CREATE TABLE contacts (email text, first_name text)")
    info = await describe_source(db, job(table="contacts"))
    assert (info.schema, info.name, info.writable, info.insertable) == (
        "public",
        "contacts",
        True,
        True,
    )


async def test_every_missing_column_and_wrong_type_is_reported_at_once(db: Connection) -> None:
    await db.execute(
        "CREATE TABLE contacts (email text, opted_out text, status integer, phone_status text)"
    )
    config = job(
        fields={"email": "email", "Name": "first_name", "City": "city"},
        opt_out_column="opted_out",
        writeback={
            "email_status": "status",
            "phone_status": "phone_status",
            "list_status": "list_state",
        },
    )
    assert await problems_of(db, config) == [
        'jobs[newsletter].fields.Name: column "first_name" does not exist in public.contacts',
        'jobs[newsletter].fields.City: column "city" does not exist in public.contacts',
        'jobs[newsletter].opt_out_column: column "opted_out" must be boolean, it is text',
        'jobs[newsletter].writeback.email_status: column "status" must be text, varchar, '
        "char or citext, it is integer",
        'jobs[newsletter].writeback.list_status: column "list_state" does not exist in '
        "public.contacts",
    ]


async def test_column_names_are_compared_exactly_not_case_folded(db: Connection) -> None:
    await db.execute('CREATE TABLE contacts (email text, "First_Name" text)')
    assert await problems_of(db, job()) == [
        'jobs[newsletter].fields.Name: column "first_name" does not exist in public.contacts'
    ]


async def test_writeback_accepts_text_like_types_and_domains_over_them(db: Connection) -> None:
    await db.execute(
        "CREATE DOMAIN status_text AS varchar(40);"
        "CREATE TABLE contacts (email text, first_name text, a char(20), b status_text,"
        " c varchar, d text)"
    )
    config = job(
        writeback={
            "email_status": "a",
            "phone_status": "b",
            "list_status": "c",
            "email_availability": "d",
        }
    )
    assert (await describe_source(db, config)).writable


async def test_writeback_and_import_into_a_view_are_refused(db: Connection) -> None:
    await db.execute(
        "CREATE TABLE contacts (email text, first_name text, s text);"
        "CREATE TABLE extra (email text);"
        "CREATE VIEW joined AS SELECT c.email, c.first_name, c.s FROM contacts c"
        " JOIN extra e USING (email)"
    )
    view = job(table="joined")
    info = await describe_source(db, view)
    assert (info.kind, info.writable, info.insertable) == ("view", False, False)
    assert await problems_of(
        db, job(table="joined", writeback={"email_status": "s"}, remote_only="import")
    ) == [
        "jobs[newsletter].writeback: public.joined is a view that cannot be updated; use a table",
        'jobs[newsletter].remote_only: "import" needs a table, public.joined is a view',
    ]


async def test_writeback_into_a_simple_updatable_view_is_accepted(db: Connection) -> None:
    await db.execute(
        "CREATE TABLE contacts (email text, first_name text, s text);"
        "CREATE VIEW active AS SELECT email, first_name, s FROM contacts"
    )
    info = await describe_source(db, job(table="active", writeback={"email_status": "s"}))
    assert (info.kind, info.writable) == ("view", True)


async def test_import_needs_every_not_null_column_to_be_fillable(db: Connection) -> None:
    await db.execute(
        "CREATE TABLE contacts (id bigint GENERATED ALWAYS AS IDENTITY, email text NOT NULL,"
        " first_name text, created timestamptz NOT NULL DEFAULT now(), tenant int NOT NULL)"
    )
    assert await problems_of(db, job(remote_only="import")) == [
        'jobs[newsletter].remote_only: "import" cannot fill column "tenant" of public.contacts: '
        "it is NOT NULL without a default and not a mapped field"
    ]


async def test_a_sequence_is_not_a_source(db: Connection) -> None:
    await db.execute("CREATE SEQUENCE contacts")
    assert await problems_of(db, job()) == [
        "jobs[newsletter].table: public.contacts is not a table or a view"
    ]


@pytest.fixture
async def limited_role(db: Connection) -> AsyncIterator[str]:
    """A role without privileges on anything, dropped after the test (roles are cluster-wide)."""
    role = f"syncd_test_role_{os.getpid()}_{next(_roles)}"
    await db.execute(f'CREATE ROLE "{role}"')
    try:
        yield role
    finally:
        await db.execute("RESET ROLE")
        await db.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


async def test_missing_privileges_are_reported(db: Connection, limited_role: str) -> None:
    await db.execute(
        "CREATE TABLE contacts (email text, first_name text, secret text, s text);"
        f'GRANT SELECT (email, s) ON contacts TO "{limited_role}";'
        f'GRANT UPDATE (secret) ON contacts TO "{limited_role}";'
        f'SET ROLE "{limited_role}"'
    )
    config: Mapping[str, Any] = {"writeback": {"email_status": "s"}, "remote_only": "import"}
    assert await problems_of(db, job(**config)) == [
        'jobs[newsletter].fields.Name: no SELECT privilege on column "first_name"',
        'jobs[newsletter].writeback.email_status: no UPDATE privilege on column "s"',
        """jobs[newsletter].remote_only: "import" needs the INSERT privilege on public.contacts""",
    ]


async def test_a_schema_the_role_may_not_use_is_a_configuration_problem(
    db: Connection, limited_role: str
) -> None:
    await db.execute(
        f'CREATE SCHEMA crm; CREATE TABLE crm.contacts (email text); SET ROLE "{limited_role}"'
    )
    assert await problems_of(db, job(table="crm.contacts")) == [
        "jobs[newsletter].table: permission denied for schema crm"
    ]
