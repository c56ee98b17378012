"""The fast opt-out pass's read of the user's table (the optout_candidates template) against
PostgreSQL: hostile configured names stay quoted identifiers, and the fingerprint of each
candidate is the one the full run's local scan computes for the same row."""

from __future__ import annotations

from syncd.config import JobConfig, Schedule
from syncd.db import Connection, describe_source, quote_ident
from syncd.db.local import build_local, create_key_functions
from syncd.db.optouts import candidates_sql

SCHEMA = 'we"ird; DROP SCHEMA public --'
TABLE = "t'\n{{table}} /*"
EMAIL = 'e-mail"; --\nDROP TABLE canary'
NAME = "Name) $1 $$ {{key}}"
OPT_OUT = "out'; --"


async def test_hostile_names_stay_quoted_and_fingerprints_match_the_local_scan(
    db: Connection,
) -> None:
    await db.execute("CREATE TABLE public.canary (id int)")
    await db.execute(f"CREATE SCHEMA {quote_ident(SCHEMA)}")
    table = f"{quote_ident(SCHEMA)}.{quote_ident(TABLE)}"
    await db.execute(
        f"CREATE TABLE {table} ({quote_ident(EMAIL)} text, {quote_ident(NAME)} text,"
        f" {quote_ident(OPT_OUT)} boolean)"
    )
    await db.execute(
        f"INSERT INTO {table} VALUES ($1, 'Ann', true), ('bob@example.com', NULL, NULL),"
        " ('cy@example.com', 'Cy', false), ('not-an-address', 'X', true)",
        "  Ann@Example.com ",
    )
    job = JobConfig(
        name="j",
        list_id=1,
        table=f"{SCHEMA}.{TABLE}",
        match="email",
        schedule=Schedule(text="every 15m", interval_seconds=900),
        fields={"email": EMAIL, "Name": NAME},
        opt_out_column=OPT_OUT,
        opt_out_latency=30.0,
    )
    source = await describe_source(db, job)
    profile = ["Name"]
    sql = candidates_sql(job, source, profile)
    for name in (SCHEMA, TABLE, EMAIL, NAME, OPT_OUT):
        assert quote_ident(name) in sql
    await create_key_functions(db)
    await build_local(db, job, source, profile)
    scanned = {
        r["key"]: r["fingerprint"]
        for r in await db.fetch("SELECT key, fingerprint FROM syncd_local WHERE opt_out")
    }
    # every key the ledger remembers as mailable: the candidates are the opted-out, usable ones
    await db.execute(
        "INSERT INTO syncd.contacts (job, key, list_status, email_status)"
        " SELECT 'j', key, 'subscribed', 'active' FROM syncd_local"
    )
    rows = await db.fetch(sql, "j", "email", profile, 500)
    assert {r["key"]: r["fingerprint"] for r in rows} == {
        "ann@example.com": scanned["ann@example.com"]
    }
    assert await db.fetchval("SELECT to_regclass('public.canary') IS NOT NULL")
