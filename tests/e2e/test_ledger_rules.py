"""The cells the hand-written scenarios missed before the contact ledger, each through the real
CLI (`syncd sync` in a subprocess, the sandbox over HTTP, a fresh PostgreSQL): phone keys
without a `+`, suppressions on the other channel or another list, `delete_mode = "off"`, a
user field Selzy lacks, an opt-out whose profile data Selzy would refuse, a push whose answer
was lost, a sign-up the local table cannot hold, status changes of contacts syncd just added,
and an edited email on a contact with a phone."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tests.e2e.cli_harness import Cli
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture


async def sync_ok(cli: Cli, *args: str) -> dict[str, Any]:
    result = await cli.sync(*args)
    assert result.code == 0, result
    return await cli.last_run()


def sent_rows(calls: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        dict(zip(call["params"]["field_names"], row, strict=True))
        for call in calls
        for row in call["params"]["data"]
    ]


async def member_phones(harness: Harness) -> dict[str, dict[str, Any]]:
    found = await harness.sandbox.contacts(list_id=harness.list_id)
    return {c["phone"]: c for c in found if c.get("phone")}


# --- 1. phone keys --------------------------------------------------------------------------


async def test_phone_keys_without_a_plus_match_selzy_and_spellings_are_duplicates(
    harness: Harness, tmp_path: Path
) -> None:
    """A local 79000000002 is Selzy's +79000000002: never added again, written back, never
    deleted by remote_only = delete, never imported twice; two spellings are one duplicate."""
    await harness.sandbox.upsert_contacts(
        [{"phone": "+79000000002", "phone_status": "active", "phone_list_ids": [harness.list_id]}]
    )
    await harness.insert(
        {"phone": "79000000002", "first_name": "Ann"},
        {"phone": "7 900 000 00 03", "first_name": "Bob"},
        {"phone": "+7 (900) 000-00-03", "first_name": "Bob"},
    )
    cli = Cli.write(
        harness,
        tmp_path,
        match="phone",
        fields={"phone": "phone", "Name": "first_name"},
        writeback={"list_status": "selzy_list_status"},
        remote_only="delete",
    )
    first = await sync_ok(cli)
    assert first["added"] == 1  # only +79000000003
    assert first["duplicates"] == 1
    assert first["deleted"] == 0
    assert set(await member_phones(harness)) == {"+79000000002", "+79000000003"}
    await harness.sandbox.clear_calls()
    second = await sync_ok(cli)
    assert (second["added"], second["deleted"], second["excluded"]) == (0, 0, 0)
    assert await harness.import_calls() == []
    statuses = await harness.db.fetch(
        "SELECT phone, selzy_list_status FROM public.contacts ORDER BY id"
    )
    assert [r["selzy_list_status"] for r in statuses] == ["subscribed"] * 3
    imported = Cli.write(
        harness,
        tmp_path,
        match="phone",
        fields={"phone": "phone", "Name": "first_name"},
        writeback={"list_status": "selzy_list_status"},
        remote_only="import",
    )
    third = await sync_ok(imported)
    assert third["imported"] == 0
    assert await harness.db.fetchval("SELECT count(*) FROM public.contacts") == 3


# --- 2. suppressions on the other channel or another list -----------------------------------


async def test_deleting_a_contact_never_erases_a_suppression_held_elsewhere(
    harness: Harness, tmp_path: Path
) -> None:
    """Gone locally: unsubscribed from another list, or a phone that texted STOP (blocked):
    excluded from the list, never `delete=1`, so the suppression stays in the account."""
    other_list = await harness.sandbox.create_list("Other")
    emails = ("elsewhere@example.com", "stop@example.com", "plain@example.com")
    await harness.insert(*({"email": e, "first_name": e[:4]} for e in emails))
    cli = Cli.write(harness, tmp_path)
    await sync_ok(cli)
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": "elsewhere@example.com",
                "email_list_ids": [harness.list_id],
                "email_unsubscribed_list_ids": [other_list],
            },
            {"email": "stop@example.com", "phone": "+79990000001", "phone_status": "blocked"},
        ]
    )
    await sync_ok(cli)
    await harness.db.execute("DELETE FROM public.contacts")
    await harness.sandbox.clear_calls()
    run = await sync_ok(cli, "--allow-mass-delete")
    assert (run["deleted"], run["excluded"]) == (1, 2)
    deletes = [r for r in sent_rows(await harness.import_calls()) if r.get("delete") == "1"]
    assert [r["email"] for r in deletes] == ["plain@example.com"]
    kept = await harness.remote("elsewhere@example.com")
    assert kept is not None
    assert other_list in kept["email_unsubscribed_list_ids"]
    stopped = await harness.remote("stop@example.com")
    assert stopped is not None
    assert stopped["phone_status"] == "blocked"
    assert await harness.remote("plain@example.com") is None


# --- 3. delete_mode = "off" -----------------------------------------------------------------


async def test_delete_mode_off_deletes_nobody_and_cannot_be_combined_with_remote_only_delete(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.sandbox.upsert_contacts(
        [{"email": "signup@example.com", "email_list_ids": [harness.list_id]}]
    )
    await harness.insert({"email": "mine@example.com", "first_name": "M"})
    refused = await Cli.write(harness, tmp_path, delete_mode="off", remote_only="delete").sync()
    assert refused.code == 78, refused
    assert "remote_only" in refused.err + refused.out
    assert await harness.import_calls() == []
    cli = Cli.write(harness, tmp_path, delete_mode="off", remote_only="keep")
    await sync_ok(cli)
    await harness.db.execute("DELETE FROM public.contacts")
    run = await sync_ok(cli, "--allow-mass-delete")
    assert (run["deleted"], run["excluded"]) == (0, 0)
    assert set(await harness.members()) == {"signup@example.com", "mine@example.com"}


# --- 4. a user field Selzy does not have ----------------------------------------------------


async def test_a_missing_user_field_fails_the_run_without_rejecting_anyone(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.insert(*({"email": f"u{i}@example.com", "first_name": "U"} for i in range(30)))
    job = dataclasses.replace(
        harness.job, fields={"email": "email", "Name": "first_name", "Missing": "city"}
    )
    cli = Cli.write(harness, tmp_path, fields=job.fields)
    for _ in range(3):
        result = await cli.sync()
        assert result.code == 1, result
        assert "fields.Missing" in result.out + result.err
    assert await harness.import_calls() == []
    run = await cli.last_run()
    assert (run["status"], run["rejected"], run["quarantined"]) == ("failed", 0, 0)
    assert await harness.db.fetchval("SELECT count(*) FROM syncd.row_outcomes") == 0
    assert (
        await harness.db.fetchval("SELECT count(*) FROM syncd.contacts WHERE rejections > 0") == 0
    )
    await harness.sandbox.create_field("Missing")
    fixed = await sync_ok(cli)
    assert fixed["added"] == 30
    assert fixed["rejected"] == 0


async def test_a_refusal_of_every_part_of_a_batch_alike_is_the_calls_not_the_rows(
    harness: Harness, tmp_path: Path
) -> None:
    """Selzy refuses every importContacts call with the same error (as it does for an unknown
    field): the run fails after a few calls, and nobody is counted rejected or quarantined."""
    await harness.insert(*({"email": f"u{i}@example.com"} for i in range(40)))
    await harness.sandbox.fault(
        method="importContacts", kind="error", code="invalid_arg", message="Bad call", times=-1
    )
    cli = Cli.write(harness, tmp_path)
    result = await cli.sync()
    assert result.code == 1, result
    assert len(await harness.import_calls()) <= 7
    run = await cli.last_run()
    assert (run["rejected"], run["quarantined"]) == (0, 0)
    assert await harness.db.fetchval("SELECT count(*) FROM syncd.row_outcomes") == 0
    assert (
        await harness.db.fetchval("SELECT count(*) FROM syncd.contacts WHERE rejections > 0") == 0
    )


# --- 5. an opt-out whose profile data Selzy would refuse ------------------------------------


async def test_an_opt_out_takes_effect_even_when_its_profile_data_would_be_refused(
    harness: Harness, tmp_path: Path
) -> None:
    """The contact's new phone belongs to another Selzy contact, so a row carrying it is refused
    ("owned by different subscribers"); the opt-out carries no profile data and lands."""
    await harness.sandbox.upsert_contacts(
        [{"email": "owner@example.com", "phone": "+15550002222", "email_list_ids": []}]
    )
    await harness.insert({"email": "ann@example.com", "phone": "+15550001111", "first_name": "A"})
    fields = {"email": "email", "phone": "phone", "Name": "first_name"}
    cli = Cli.write(harness, tmp_path, fields=fields)
    await sync_ok(cli)
    await harness.sandbox.upsert_contacts([{"email": "ann@example.com", "email_status": "active"}])
    await harness.db.execute(
        "UPDATE public.contacts SET phone = '+15550002222', opted_out = true"
        " WHERE email = 'ann@example.com'"
    )
    run = await sync_ok(cli)
    assert run["opted_out"] == 1
    ann = await harness.remote("ann@example.com")
    assert ann is not None
    assert ann["email_status"] == "unsubscribed"


# --- 6. a push whose answer was lost --------------------------------------------------------


async def test_contacts_of_a_push_whose_answer_was_lost_are_deleted_like_any_other(
    harness: Harness, tmp_path: Path
) -> None:
    """Selzy applies a batch of adds but the answer never arrives (the same state a kill -9
    right after the call leaves): the contacts are in flight, not remote-only; deleted locally,
    they are deleted from Selzy as an uninterrupted run would have done."""
    emails = [f"lost{i}@example.com" for i in range(4)]
    await harness.insert(*({"email": e} for e in emails))
    cli = Cli.write(harness, tmp_path)
    await harness.sandbox.fault(method="importContacts", kind="drop_after", times=-1)
    failed = await cli.sync()
    assert failed.code == 1, failed
    assert set(await harness.members()) == set(emails)  # applied, though syncd never heard
    await harness.sandbox.clear_faults()
    await harness.db.execute("DELETE FROM public.contacts")
    run = await sync_ok(cli, "--allow-mass-delete")
    assert run["deleted"] == 4
    assert run["remote_only"] == 0
    assert await harness.members() == {}


# --- 7. a sign-up the local table cannot hold -----------------------------------------------


async def test_one_sign_up_the_table_cannot_hold_is_a_rejection_not_a_stuck_job(
    harness: Harness, tmp_path: Path
) -> None:
    """remote_only = import with `email` NOT NULL: a phone-only sign-up is refused by the table
    with its reason (no contact data in the log), the other sign-ups are imported, writeback
    goes on, and the next run is not stuck."""
    await harness.db.execute("DELETE FROM public.contacts")
    await harness.db.execute("ALTER TABLE public.contacts ALTER COLUMN email SET NOT NULL")
    await harness.sandbox.upsert_contacts(
        [
            {"phone": "+79000000777", "phone_list_ids": [harness.list_id]},
            {"phone": "+79000000778", "email": "withmail@example.com",
             "phone_list_ids": [harness.list_id]},
        ]
    )  # fmt: skip
    await harness.insert({"email": "local@example.com", "phone": "+79000000779"})
    cli = Cli.write(
        harness,
        tmp_path,
        match="phone",
        fields={"phone": "phone", "email": "email", "Name": "first_name"},
        writeback={"list_status": "selzy_list_status"},
        remote_only="import",
    )
    for attempt in range(2):
        result = await cli.sync()
        assert result.code == 0, result
        assert "Failing row" not in result.out + result.err  # PostgreSQL's DETAIL: row data
        run = await cli.last_run()
        assert run["rejected"] == 1, run
        assert run["imported"] == (1 if attempt == 0 else 0)
    rows = await harness.db.fetch("SELECT email, phone, selzy_list_status FROM public.contacts")
    assert {r["email"] for r in rows} == {"local@example.com", "withmail@example.com"}
    assert all(r["selzy_list_status"] == "subscribed" for r in rows)
    outcome = await harness.db.fetchrow(
        "SELECT key, action, code, message FROM syncd.row_outcomes ORDER BY id DESC LIMIT 1"
    )
    assert outcome is not None
    assert (outcome["key"], outcome["action"], outcome["code"]) == (
        "+79000000777", "import", "import_23502",
    )  # fmt: skip
    assert '"email"' in outcome["message"]


# --- 8. status changes of contacts syncd just added -----------------------------------------


async def test_status_changes_count_contacts_added_in_the_previous_run(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.insert({"email": "fresh@example.com"}, {"email": "calm@example.com"})
    cli = Cli.write(harness, tmp_path)
    first = await sync_ok(cli)
    assert first["added"] == 2
    await harness.sandbox.upsert_contacts(
        [{"email": "fresh@example.com", "email_unsubscribed_list_ids": [harness.list_id]}]
    )
    second = await sync_ok(cli)
    assert second["status_changes"] == 1
    third = await sync_ok(cli)
    assert third["status_changes"] == 0


# --- 9. an edited email on a contact with a phone -------------------------------------------


async def test_an_edited_email_on_a_contact_with_a_phone_lands_in_one_run(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.insert({"email": "old@example.com", "phone": "+15550003333", "first_name": "O"})
    fields = {"email": "email", "phone": "phone", "Name": "first_name"}
    cli = Cli.write(harness, tmp_path, fields=fields)
    await sync_ok(cli)
    await harness.db.execute("UPDATE public.contacts SET email = 'new@example.com'")
    run = await sync_ok(cli, "--allow-mass-delete")
    assert (run["added"], run["deleted"], run["rejected"]) == (1, 1, 0)
    new = await harness.remote("new@example.com")
    assert new is not None
    assert new["phone"] == "+15550003333"
    assert await harness.remote("old@example.com") is None


# --- the 0001 suppressions reach the job of their list --------------------------------------


async def test_a_suppression_carried_over_from_schema_0001_blocks_the_add(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.db.execute(
        "INSERT INTO syncd.suppressions_carried (list_id, channel, key, reason, first_seen_at)"
        " VALUES ($1, 'email', 'left@example.com', 'email_status=unsubscribed', now())",
        harness.list_id,
    )
    await harness.insert({"email": "LEFT@example.com"})
    run = await sync_ok(Cli.write(harness, tmp_path))
    assert (run["added"], run["suppressed"]) == (0, 1)
    assert await harness.import_calls() == []
    assert await harness.db.fetchval("SELECT count(*) FROM syncd.suppressions_carried") == 0
