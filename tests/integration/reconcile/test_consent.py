"""Consent invariants (PRODUCT.md "Consent", RECONCILE.md): each test tries to break one."""

from __future__ import annotations

from typing import Any

from tests.integration.reconcile.harness import Harness

STATUS_COLUMNS = {"email_status", "phone_status"}


def _status_cells(calls: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(key, column, value) of every status cell ever sent."""
    cells = []
    for call in calls:
        names = call["params"]["field_names"]
        for row in call["params"]["data"]:
            cells += [
                (row[0], n, v) for n, v in zip(names, row, strict=True) if n in STATUS_COLUMNS
            ]
    return cells


async def test_opt_out_of_an_active_contact_sets_email_status_unsubscribed(
    harness: Harness,
) -> None:
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": "act@example.com",
                "email_status": "active",
                "email_list_ids": [harness.list_id],
            }
        ]
    )
    await harness.insert({"email": "act@example.com", "first_name": "A", "opted_out": True})
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["opted_out"] == 1
    contact = await harness.remote("act@example.com")
    assert contact is not None
    assert contact["email_status"] == "unsubscribed"
    assert _status_cells(await harness.import_calls()) == [
        ("act@example.com", "email_status", "unsubscribed")
    ]


async def test_opt_out_of_a_new_contact_unsubscribes_it_from_the_list(harness: Harness) -> None:
    await harness.insert({"email": "new@example.com", "first_name": "N"})
    await harness.run()  # added: status "new", which importContacts cannot change
    await harness.db.execute("UPDATE public.contacts SET opted_out = true")
    outcome = await harness.run()
    assert outcome.counts["opted_out"] == 1
    contact = await harness.remote("new@example.com")
    assert contact is not None
    assert harness.list_id in contact["email_unsubscribed_list_ids"]  # not mailable in the list
    assert _status_cells(await harness.import_calls()) == []
    again = await harness.run()
    assert again.counts["opted_out"] == 0, "an opt-out that took effect is not sent again"
    assert (await harness.local())["new@example.com"]["selzy_list_status"] == "unsubscribed"


async def test_opt_out_going_back_to_false_never_resubscribes(harness: Harness) -> None:
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": "flip@example.com",
                "email_status": "active",
                "email_list_ids": [harness.list_id],
            }
        ]
    )
    await harness.insert({"email": "flip@example.com", "first_name": "F", "opted_out": True})
    await harness.run()
    await harness.db.execute("UPDATE public.contacts SET opted_out = false, first_name = 'G'")
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    contact = await harness.remote("flip@example.com")
    assert contact is not None
    assert contact["email_status"] == "unsubscribed"
    assert contact["fields"]["Name"] == "G"  # profile fields still flow
    assert [c[2] for c in _status_cells(await harness.import_calls())] == ["unsubscribed"]


async def test_opted_out_local_contact_not_in_the_list_is_never_added(harness: Harness) -> None:
    await harness.insert({"email": "nope@example.com", "opted_out": True})
    outcome = await harness.run()
    assert outcome.counts["added"] == 0
    assert outcome.counts["suppressed"] == 1
    assert await harness.import_calls() == []
    assert await harness.remote("nope@example.com") is None


async def test_unsubscribed_address_excluded_on_selzy_is_never_re_added(harness: Harness) -> None:
    await harness.insert({"email": "sup@example.com", "first_name": "S"})
    await harness.run()
    await harness.run()  # the mirror now knows the contact
    # the person unsubscribes; syncd sees it once
    await harness.sandbox.upsert_contacts(
        [{"email": "sup@example.com", "email_unsubscribed_list_ids": [harness.list_id]}]
    )
    seen = await harness.run()
    assert seen.counts["status_changes"] == 1
    # then an admin removes the contact from the list altogether (no trace left in the export)
    await harness.sandbox.upsert_contacts(
        [{"email": "sup@example.com", "email_list_ids": [], "email_unsubscribed_list_ids": []}]
    )
    await harness.sandbox.clear_calls()
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["added"] == 0
    assert outcome.counts["suppressed"] == 1
    assert await harness.import_calls() == []
    contact = await harness.remote("sup@example.com")
    assert contact is not None
    assert harness.list_id not in contact["email_list_ids"]
    suppressions = await harness.db.fetch(
        "SELECT key, suppressed_reason AS reason FROM syncd.contacts"
        " WHERE suppressed_reason IS NOT NULL"
    )
    assert [(r["key"], r["reason"]) for r in suppressions] == [
        ("sup@example.com", "list_status=unsubscribed")
    ]


async def test_contact_unsubscribed_account_wide_and_deleted_is_not_re_added(
    harness: Harness,
) -> None:
    await harness.insert({"email": "gone@example.com"})
    await harness.run()
    await harness.sandbox.upsert_contacts(
        [{"email": "gone@example.com", "email_status": "unsubscribed"}]
    )
    await harness.run()
    # the account owner deletes it in Selzy; it reappears nowhere but in the local table
    await harness.sandbox.upsert_contacts(
        [{"email": "gone@example.com", "email_list_ids": [], "email_unsubscribed_list_ids": []}]
    )
    await harness.sandbox.clear_calls()
    outcome = await harness.run()
    assert outcome.counts["suppressed"] == 1
    assert await harness.import_calls() == []


async def test_status_writeback_and_mirror_follow_an_unsubscribe_in_selzy(harness: Harness) -> None:
    await harness.insert({"email": "w@example.com"}, {"email": "x@example.com"})
    await harness.run()
    await harness.run()  # first writeback: the contacts were added by the previous run
    local = await harness.local()
    assert local["w@example.com"]["selzy_email_status"] == "new"
    assert local["w@example.com"]["selzy_list_status"] == "subscribed"

    await harness.sandbox.upsert_contacts(
        [{"email": "w@example.com", "email_status": "unsubscribed"}]
    )
    outcome = await harness.run()
    assert outcome.counts["status_changes"] == 1
    assert outcome.counts["written_back"] == 1
    assert (await harness.local())["w@example.com"]["selzy_email_status"] == "unsubscribed"
    mirror = await harness.db.fetchrow(
        "SELECT email_status, list_status FROM syncd.remote_contacts WHERE key = 'w@example.com'"
    )
    assert mirror is not None
    assert mirror["email_status"] == "unsubscribed"
    quiet = await harness.run()
    assert quiet.counts["status_changes"] == quiet.counts["written_back"] == 0


async def test_writeback_restores_a_locally_edited_status_column(harness: Harness) -> None:
    """Writeback columns hold Selzy's current view of every matched contact, not only changes."""
    await harness.insert({"email": "w@example.com"})
    await harness.run()
    await harness.run()
    await harness.db.execute("UPDATE public.contacts SET selzy_email_status = 'tampered'")
    outcome = await harness.run()
    assert outcome.counts["written_back"] == 1
    assert (await harness.local())["w@example.com"]["selzy_email_status"] == "new"


async def test_no_row_for_an_existing_contact_carries_a_status_without_opt_out(
    harness: Harness,
) -> None:
    statuses = ["new", "active", "inactive", "unsubscribed", "blocked", "invited"]
    await harness.sandbox.upsert_contacts(
        [
            {"email": f"{s}@example.com", "email_status": s, "email_list_ids": [harness.list_id]}
            for s in statuses
        ]
    )
    await harness.insert(*({"email": f"{s}@example.com", "first_name": s} for s in statuses))
    await harness.run()
    await harness.db.execute("UPDATE public.contacts SET first_name = first_name || '!'")
    await harness.run()
    calls = await harness.import_calls()
    assert len(calls) == 2
    assert _status_cells(calls) == []
    for call in calls:
        assert not any(n.endswith("list_ids") for n in call["params"]["field_names"])
    for s in statuses:
        contact = await harness.remote(f"{s}@example.com")
        assert contact is not None
        assert contact["email_status"] == s
