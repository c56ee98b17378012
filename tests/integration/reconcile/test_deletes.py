"""Deletes (each delete_mode) and remote-only contacts (each remote_only mode), with the consent
rule that unsubscribed/blocked contacts are excluded, never deleted."""

from __future__ import annotations

import dataclasses

import pytest

from tests.integration.reconcile.harness import Harness


async def _push_then_remove(harness: Harness, *emails: str, keep: str = "keep@example.com") -> None:
    await harness.insert(
        {"email": keep, "first_name": "Keep"},
        *({"email": e, "first_name": "Gone"} for e in emails),
    )
    first = await harness.run()
    assert first.counts["added"] == len(emails) + 1, first
    await harness.db.execute("DELETE FROM public.contacts WHERE email <> $1", keep)


async def test_delete_mode_delete_removes_the_contact_from_the_account(harness: Harness) -> None:
    await _push_then_remove(harness, "gone@example.com")
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["deleted"] == 1
    assert await harness.remote("gone@example.com") is None
    assert await harness.remote("keep@example.com") is not None
    assert "gone@example.com" not in await harness.pushed()
    calls = await harness.import_calls()
    assert calls[-1]["params"]["field_names"] == ["email", "delete"]


async def test_delete_mode_exclude_removes_from_the_list_only(harness: Harness) -> None:
    harness.job = dataclasses.replace(harness.job, delete_mode="exclude")
    await _push_then_remove(harness, "gone@example.com")
    outcome = await harness.run()
    assert outcome.counts["excluded"] == 1
    assert outcome.counts["deleted"] == 0
    contact = await harness.remote("gone@example.com")
    assert contact is not None
    assert harness.list_id not in contact["email_list_ids"]
    assert harness.list_id not in contact["email_unsubscribed_list_ids"]
    assert contact["email_status"] == "new"  # excluded, not unsubscribed


async def test_delete_mode_off_leaves_the_contact(harness: Harness) -> None:
    harness.job = dataclasses.replace(harness.job, delete_mode="off")
    await _push_then_remove(harness, "gone@example.com")
    await harness.sandbox.clear_calls()
    outcome = await harness.run()
    assert outcome.counts["deleted"] == outcome.counts["excluded"] == 0
    assert await harness.import_calls() == []
    assert "gone@example.com" in await harness.members()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"email_status": "unsubscribed"}, "unsubscribed"),
        ({"email_status": "blocked"}, "blocked"),
        ({"email_unsubscribed_list_ids": "LIST"}, "unsubscribed from the list"),
    ],
)
async def test_unsubscribed_or_blocked_contacts_are_excluded_never_deleted(
    harness: Harness, change: dict[str, object], why: str
) -> None:
    await _push_then_remove(harness, "gone@example.com")
    patch = {k: ([harness.list_id] if v == "LIST" else v) for k, v in change.items()}
    await harness.sandbox.upsert_contacts([{"email": "gone@example.com", **patch}])
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert (outcome.counts["deleted"], outcome.counts["excluded"]) == (0, 1), why
    contact = await harness.remote("gone@example.com")
    assert contact is not None, f"a {why} contact was deleted: its suppression record is lost"
    assert harness.list_id not in contact["email_list_ids"]
    deletes = [c for c in await harness.import_calls() if "delete" in c["params"]["field_names"]]
    assert deletes == []


async def test_remote_only_keep_counts_and_leaves_them(harness: Harness) -> None:
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": f"form{i}@example.com",
                "email_status": "active",
                "email_list_ids": [harness.list_id],
            }
            for i in range(3)
        ]
    )
    await harness.insert({"email": "local@example.com"})
    outcome = await harness.run()
    assert outcome.counts["remote_only"] == 3
    assert outcome.planned.get("keep") == 3
    assert len(await harness.members()) == 4
    again = await harness.run()
    assert again.counts["remote_only"] == 3


async def test_remote_only_delete_deletes_but_excludes_unsubscribed(harness: Harness) -> None:
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": "form@example.com",
                "email_status": "active",
                "email_list_ids": [harness.list_id],
            },
            {
                "email": "unsub@example.com",
                "email_status": "unsubscribed",
                "email_list_ids": [harness.list_id],
            },
        ]
    )
    await harness.insert({"email": "local@example.com"})
    outcome = await harness.run(remote_only="delete")
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["remote_only"] == 2
    assert (outcome.counts["deleted"], outcome.counts["excluded"]) == (1, 1)
    assert await harness.remote("form@example.com") is None
    unsub = await harness.remote("unsub@example.com")
    assert unsub is not None
    assert unsub["email_status"] == "unsubscribed"
    assert harness.list_id not in unsub["email_list_ids"]


async def test_remote_only_import_fills_the_table_and_keeps_selzy_fields(
    harness: Harness,
) -> None:
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
    await harness.insert({"email": "local@example.com", "first_name": "Local"})
    outcome = await harness.run(remote_only="import")
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["imported"] == 1
    local = await harness.local()
    assert local["form@example.com"]["selzy_email_status"] == "active"
    assert local["form@example.com"]["selzy_list_status"] == "subscribed"
    assert local["form@example.com"]["first_name"] is None

    await harness.sandbox.clear_calls()
    again = await harness.run(remote_only="import")
    assert again.status == "succeeded", again.error
    assert again.counts["imported"] == 0
    assert again.counts["remote_only"] == 0
    assert await harness.import_calls() == []  # the empty local Name is not pushed over Selzy's
    form = await harness.remote("form@example.com")
    assert form is not None
    assert form["fields"]["Name"] == "From The Form"

    # once the local row is edited, the local table owns the profile fields again
    await harness.db.execute(
        "UPDATE public.contacts SET first_name = 'Edited' WHERE email = 'form@example.com'"
    )
    third = await harness.run(remote_only="import")
    assert third.counts["updated"] == 1
    form = await harness.remote("form@example.com")
    assert form is not None
    assert form["fields"]["Name"] == "Edited"
