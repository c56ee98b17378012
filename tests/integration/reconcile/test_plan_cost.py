"""What keeps a run with nothing to change cheap at a million contacts, without changing what it
decides: the fingerprint is a pinned, inlined expression, list membership is parsed as before,
an unchanged contact costs no write anywhere, and the bookkeeping the plan now carries
(writeback, forgetting pushed rows) still covers every row it covered before."""

from __future__ import annotations

from syncd.db import Connection
from syncd.db.local import create_key_functions
from syncd.db.plan import dedupe_remote, find_local_duplicates, stage_remote
from tests.integration.reconcile.harness import Harness


async def test_fingerprint_is_a_pinned_64_bit_hash_of_names_and_values(db: Connection) -> None:
    """Changing this value changes every stored fingerprint: the next run would re-push the
    whole list as updates. Do it only on purpose, with a migration and a changelog line."""
    await create_key_functions(db)
    row = await db.fetchrow(
        "SELECT pg_temp.syncd_vals_fp('{Name,City}', '{Ann,\"Paris, FR\"}') AS plain,"
        " pg_temp.syncd_fp(pg_temp.syncd_vals_fp('{Name,City}', '{Ann,\"Paris, FR\"}'), true)"
        " AS opted_out"
    )
    assert row is not None
    expected = await db.fetchval("SELECT hashtextextended('{Name,City}{Ann,\"Paris, FR\"}', 0)")
    assert row["plain"] == expected
    assert row["opted_out"] == await db.fetchval(
        "SELECT hashtextextended($1::bigint::text || ':opt_out', 0)", expected
    )


async def test_fingerprint_functions_are_inlined_not_called_per_row(db: Connection) -> None:
    """A pg_temp SQL function that is not inlined runs as a function call per row: at a
    million rows that is seconds. EXPLAIN VERBOSE shows the expression, not the call."""
    await create_key_functions(db)
    plan = "\n".join(
        row[0]
        for row in await db.fetch(
            "EXPLAIN VERBOSE SELECT pg_temp.syncd_fp(pg_temp.syncd_vals_fp('{Name}', ARRAY[v]),"
            " v = 'x'), pg_temp.syncd_key_valid('email', pg_temp.syncd_email_key(v)),"
            " pg_temp.syncd_phone_key(v)"
            " FROM (VALUES ('a'), ('x')) AS t(v)"
        )
    )
    assert "hashtextextended" in plan
    assert "syncd_" not in plan


async def test_list_membership_reads_comma_separated_ids_exactly(db: Connection) -> None:
    await create_key_functions(db)
    await db.execute(
        "CREATE TEMP TABLE syncd_export (email text, email_status text, email_availability text,"
        " email_list_ids text, email_unsubscribed_list_ids text, phone text, phone_status text,"
        " phone_list_ids text, phone_unsubscribed_list_ids text)"
    )
    cases = {  # email -> (email_list_ids, email_unsubscribed_list_ids, expected list_status)
        "a@x.org": ("12", None, "subscribed"),
        "b@x.org": ("3, 12 ,7", None, "subscribed"),
        "c@x.org": ("112,121,1,2", None, "absent"),
        "d@x.org": ("", "", "absent"),
        "e@x.org": (None, None, "absent"),
        "f@x.org": ("12", "4, 12", "unsubscribed"),
        "g@x.org": ("1 2", None, "subscribed"),  # spaces are ignored, as before
    }
    await db.executemany(
        "INSERT INTO syncd_export (email, email_status, email_list_ids,"
        " email_unsubscribed_list_ids) VALUES ($1, 'active', $2, $3)",
        [(email, ids, unsub) for email, (ids, unsub, _) in cases.items()],
    )
    assert await stage_remote(db, channel="email", list_id=12) == len(cases)
    got = {r["key"]: r["list_status"] for r in await db.fetch("SELECT * FROM syncd_remote")}
    assert got == {email: expected for email, (_, _, expected) in cases.items()}


async def test_a_key_exported_twice_keeps_the_member_row(db: Connection) -> None:
    """The export is proved duplicate-free by a unique index; when that fails, the rows of a
    key held twice are ranked unsubscribed, subscribed, absent and only the first stays."""
    await create_key_functions(db)
    await db.execute(
        "CREATE TEMP TABLE syncd_export (email text, email_status text, email_availability text,"
        " email_list_ids text, email_unsubscribed_list_ids text, phone text, phone_status text,"
        " phone_list_ids text, phone_unsubscribed_list_ids text)"
    )
    await db.executemany(
        "INSERT INTO syncd_export (email, email_status, email_list_ids,"
        " email_unsubscribed_list_ids) VALUES ($1, 'active', $2, $3)",
        [
            ("a@x.org", None, None),
            ("A@x.org", "12", None),
            ("b@x.org", "12", None),
            (" B@x.org", None, "12"),
            ("c@x.org", "12", None),
        ],
    )
    await db.execute(
        "CREATE TEMP TABLE syncd_local (key text, key_valid boolean, opt_out boolean);"
        "INSERT INTO syncd_local VALUES ('l@x.org', true, false), ('l@x.org', true, true),"
        " ('m@x.org', true, false), ('', false, false)"
    )
    assert await stage_remote(db, channel="email", list_id=12) == 5
    assert await dedupe_remote(db) == 3
    await find_local_duplicates(db)
    kept = await db.fetch("SELECT key, email, list_status FROM syncd_remote ORDER BY key")
    assert [tuple(r) for r in kept] == [
        ("a@x.org", "A@x.org", "subscribed"),
        ("b@x.org", " B@x.org", "unsubscribed"),
        ("c@x.org", "c@x.org", "subscribed"),
    ]
    dupkeys = await db.fetch("SELECT key, opt_out FROM syncd_dupkey")
    assert [tuple(r) for r in dupkeys] == [("l@x.org", True)]
    odd = await db.fetch("SELECT key, key_valid FROM syncd_local_odd ORDER BY key, opt_out")
    assert [tuple(r) for r in odd] == [("", False), ("l@x.org", True), ("l@x.org", True)]


async def _row_versions(harness: Harness) -> dict[str, list[tuple[str, str]]]:
    """(ctid, xmin) of every row: both stay the same for a row nobody wrote."""
    tables = ("syncd.contacts", "syncd.suppressions_carried", "syncd.history", "public.contacts")
    return {
        table: [
            (str(r["ctid"]), str(r["xmin"]))
            for r in await harness.db.fetch(f"SELECT ctid, xmin FROM {table} ORDER BY ctid")
        ]
        for table in tables
    }


async def test_a_run_with_nothing_to_change_writes_no_row(harness: Harness) -> None:
    await harness.insert(
        {"email": "a@example.com", "first_name": "A"},
        {"email": "b@example.com", "first_name": "B", "opted_out": True},
        {"email": "dup@example.com", "first_name": "D1"},
        {"email": "DUP@example.com", "first_name": "D2"},
        {"email": "not-an-email", "first_name": "X"},
    )
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": "gone@example.com",
                "email_status": "unsubscribed",
                "email_list_ids": [harness.list_id],
            }
        ]
    )
    await harness.run()
    await harness.run()  # writeback of the first run's adds
    before = await _row_versions(harness)
    quiet = await harness.run()
    assert quiet.status == "succeeded", quiet.error
    assert quiet.counts["written_back"] == quiet.counts["status_changes"] == 0
    assert await _row_versions(harness) == before


async def test_writeback_restores_an_edited_status_on_a_duplicate_row(harness: Harness) -> None:
    await harness.insert(
        {"email": "dup@example.com", "first_name": "First"},
        {"email": "Dup@example.com", "first_name": "Second"},
    )
    await harness.run()
    await harness.run()
    await harness.db.execute(
        "UPDATE public.contacts SET selzy_email_status = 'tampered' WHERE first_name = 'Second'"
    )
    outcome = await harness.run()
    assert outcome.counts["written_back"] == 1
    statuses = await harness.db.fetch("SELECT selzy_email_status FROM public.contacts")
    assert [r["selzy_email_status"] for r in statuses] == ["new", "new"]


async def test_pushed_rows_are_forgotten_once_gone_from_both_sides(harness: Harness) -> None:
    await harness.insert({"email": "a@example.com"}, {"email": "b@example.com"})
    await harness.run()
    assert set(await harness.pushed()) == {"a@example.com", "b@example.com"}
    # b leaves the local table and, on Selzy's side, the list (an admin removed it)
    await harness.db.execute("DELETE FROM public.contacts WHERE email = 'b@example.com'")
    await harness.sandbox.upsert_contacts([{"email": "b@example.com", "email_list_ids": []}])
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.planned == {}
    assert set(await harness.pushed()) == {"a@example.com"}


async def test_mirror_follows_a_change_in_any_exported_column_not_only_the_statuses(
    harness: Harness,
) -> None:
    await harness.insert({"email": "a@example.com", "first_name": "A"})
    await harness.run()
    await harness.run()
    other = await harness.sandbox.create_list("Other")
    await harness.sandbox.upsert_contacts(
        [{"email": "a@example.com", "email_list_ids": [harness.list_id, other]}]
    )
    seen = await harness.run()
    assert seen.status == "succeeded", seen.error
    assert seen.counts["status_changes"] == 0
    ids = await harness.db.fetchval(
        "SELECT email_list_ids FROM syncd.remote_contacts WHERE key = 'a@example.com'"
    )
    assert str(other) in ids.replace(" ", "").split(",")
    before = await _row_versions(harness)
    assert (await harness.run()).counts["status_changes"] == 0
    assert await _row_versions(harness) == before
