"""A whole run (scan, push, writeback, import) over a table whose configured names would break a
statement built from strings: they reach PostgreSQL only as quoted identifiers."""

from __future__ import annotations

import dataclasses

from syncd.db import quote_ident
from tests.integration.reconcile.harness import Harness

SCHEMA = 'we"ird\n; --'
TABLE = "t'); DROP TABLE contacts; --"
EMAIL = 'e-mail"\n/* {{table}}'
NAME = "Name $1 $$"
EMAIL_STATUS = "st\\'"
LIST_STATUS = 'ls"'


async def test_a_run_with_import_and_writeback_over_hostile_names(harness: Harness) -> None:
    table = f"{quote_ident(SCHEMA)}.{quote_ident(TABLE)}"
    columns = ", ".join(f"{quote_ident(c)} text" for c in (EMAIL, NAME, EMAIL_STATUS, LIST_STATUS))
    await harness.db.execute(f"CREATE SCHEMA {quote_ident(SCHEMA)}")
    await harness.db.execute(f"CREATE TABLE {table} ({columns})")
    await harness.db.execute(f"INSERT INTO {table} VALUES ('local@example.com', 'Local')")
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": "form@example.com",
                "email_status": "active",
                "email_list_ids": [harness.list_id],
                "fields": {"Name": "From The Form"},
            }
        ]
    )
    harness.job = dataclasses.replace(
        harness.job,
        table=f"{SCHEMA}.{TABLE}",
        fields={"email": EMAIL, "Name": NAME},
        writeback={"email_status": EMAIL_STATUS, "list_status": LIST_STATUS},
        opt_out_column=None,
        remote_only="import",
    )
    first = await harness.run()
    assert first.status == "succeeded", first.error
    assert first.counts["imported"] == 1
    assert (await harness.members())["local@example.com"]["fields"]["Name"] == "Local"
    second = await harness.run()
    assert second.status == "succeeded", second.error
    assert second.counts["imported"] == 0
    rows = await harness.db.fetch(
        f"SELECT {quote_ident(EMAIL)} AS email, {quote_ident(NAME)} AS name,"
        f" {quote_ident(EMAIL_STATUS)} AS status, {quote_ident(LIST_STATUS)} AS list"
        f" FROM {table} ORDER BY 1"
    )
    assert [tuple(r) for r in rows] == [
        ("form@example.com", None, "active", "subscribed"),
        ("local@example.com", "Local", "new", "subscribed"),
    ]
    assert await harness.db.fetchval("SELECT to_regclass('public.contacts') IS NOT NULL")
