"""The SQL templates against PostgreSQL: every block is one the product renders, and hostile
configured names stay quoted identifiers all the way through the real local scan."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping

import pytest

import syncd.db.templates as templates_module
from syncd import demo
from syncd.config import JobConfig, Schedule
from syncd.db import Connection, describe_source, load_export, quote_ident
from syncd.db.events import event_writeback_sql
from syncd.db.local import (
    build_local,
    create_key_functions,
    explain_sql,
    import_sql,
    local_table_sql,
    writeback_sql,
)
from syncd.db.optouts import candidates_sql
from syncd.db.source import SourceInfo
from syncd.db.templates import Template, templates
from tests.fixtures.database import ADMIN_DSN, PREFIX, drop_database

# Names that would break out of a naively built statement: quotes of both kinds, comment and
# statement markers, a newline, dollar quoting, a backslash and the template's own braces.
SCHEMA = 'we"ird; DROP SCHEMA public --'
TABLE = "t'\n{{table}} /*"
EMAIL = 'e-mail"; --\nDROP TABLE canary'
NAME = "Name) $1 $$ {{key}}"
CITY = "city\\' */"
STATUS = 'st""'
OPT_OUT = "out'; --"


def _job(**overrides: object) -> JobConfig:
    values: dict[str, object] = {
        "name": "j",
        "list_id": 1,
        "table": f"{SCHEMA}.{TABLE}",
        "match": "email",
        "schedule": Schedule(text="every 15m", interval_seconds=900),
        "fields": {"email": EMAIL, "Name": NAME, "City": CITY},
        "writeback": {"email_status": STATUS},
        "opt_out_column": OPT_OUT,
    }
    values.update(overrides)
    return JobConfig(**values)  # type: ignore[arg-type]


async def test_hostile_names_stay_quoted_identifiers_through_the_real_local_scan(
    db: Connection,
) -> None:
    await db.execute("CREATE TABLE public.canary (id int)")
    await db.execute(f"CREATE SCHEMA {quote_ident(SCHEMA)}")
    table = f"{quote_ident(SCHEMA)}.{quote_ident(TABLE)}"
    columns = ", ".join(f"{quote_ident(c)} text" for c in (EMAIL, NAME, CITY, STATUS))
    await db.execute(f"CREATE TABLE {table} ({columns}, {quote_ident(OPT_OUT)} boolean)")
    await db.execute(
        f"INSERT INTO {table} VALUES ($1, $2, NULL, 'new', true), ($3, NULL, $4, NULL, NULL)",
        "  Ann@Example.com ",
        "Ann",
        "bob@example.com",
        "Paris",
    )
    job = _job()
    source = await describe_source(db, job)
    profile = ["Name", "City"]
    sql = local_table_sql(job, source, profile)
    for name in (SCHEMA, TABLE, EMAIL, NAME, CITY, STATUS, OPT_OUT):
        assert quote_ident(name) in sql
    await create_key_functions(db)
    assert await build_local(db, job, source, profile) == 2
    rows = await db.fetch(
        "SELECT key_raw, key, key_valid, opt_out, vals, wb_email_status, wb_list_status"
        " FROM syncd_local ORDER BY key"
    )
    assert [tuple(r) for r in rows] == [
        ("  Ann@Example.com ", "ann@example.com", True, True, ["Ann", ""], "new", None),
        ("bob@example.com", "bob@example.com", True, False, ["", "Paris"], None, None),
    ]
    assert await db.fetchval("SELECT to_regclass('public.canary') IS NOT NULL")
    assert await db.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'") == 1


class _Recording(dict[str, Template]):
    """The loaded templates, noting each name render() looks up."""

    def __init__(self, blocks: Mapping[str, Template], seen: set[str]) -> None:
        super().__init__(blocks)
        self.seen = seen

    def __getitem__(self, name: str) -> Template:
        self.seen.add(name)
        return super().__getitem__(name)


async def _export() -> AsyncIterator[bytes]:
    yield b"email,email_status\na@example.com,active\n"


async def test_every_template_block_is_rendered_by_the_product(
    db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No block of sql/templates is dead: the local SQL of every configuration shape, the
    event writeback, the fast opt-out pass's candidates, the export staging table and the demo
    database use each of them at least once."""
    seen: set[str] = set()
    recording = _Recording(templates(), seen)
    monkeypatch.setattr(templates_module, "templates", lambda: recording)
    source = SourceInfo(
        kind="table",
        schema="public",
        name="contacts",
        columns={"email": "text", "phone": "text"},
        writable=True,
        insertable=True,
    )
    for match in ("email", "phone"):
        for opt_out in (None, "out"):
            job = _job(
                match=match,
                fields={"email": "email", "phone": "phone", "Name": "name"},
                opt_out_column=opt_out,
            )
            profile = ["email", "phone", "Name"]
            local_table_sql(job, source, profile)
            writeback_sql(job, source)
            import_sql(job, source, profile)
            explain_sql(job, source, profile)
            event_writeback_sql(job, source)
            if opt_out is not None:
                candidates_sql(job, source, profile)
    assert await load_export(db, _export(), required=("email",)) == 1
    database = f"{PREFIX}{os.getpid()}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_demo"
    monkeypatch.setattr(demo, "DEMO_DB", database)
    try:
        await demo._prepare_database(ADMIN_DSN)
    finally:
        drop_database(database)
    assert seen == set(templates())


async def test_hostile_export_header_names_become_quoted_staging_columns(db: Connection) -> None:
    await db.execute("CREATE TABLE public.canary (id int)")

    async def export() -> AsyncIterator[bytes]:
        yield b'email,"a""b","x); DROP TABLE canary; --","{{table}} $$"\nq@example.com,1,2,3\n'

    assert await load_export(db, export(), required=("email",), table="t'; --") == 1
    row = await db.fetchrow("""SELECT * FROM pg_temp."t'; --" """)
    assert row is not None
    assert dict(row) == {
        "email": "q@example.com",
        'a"b': "1",
        "x); DROP TABLE canary; --": "2",
        "{{table}} $$": "3",
    }
    assert await db.fetchval("SELECT to_regclass('public.canary') IS NOT NULL")
