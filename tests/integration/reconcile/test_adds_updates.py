"""Adds and updates: local contacts reach the list with their profile fields, and only changes
are pushed again."""

from __future__ import annotations

from tests.integration.reconcile.harness import Harness


async def test_first_run_adds_local_contacts_with_fields_and_no_status(harness: Harness) -> None:
    await harness.insert(
        {"email": "Ann@Example.com ", "first_name": "Ann", "city": "Oslo"},
        {"email": "bob@example.com", "first_name": "Bob"},
    )
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["added"] == 2
    members = await harness.members()
    assert set(members) == {"ann@example.com", "bob@example.com"}
    assert members["ann@example.com"]["fields"] == {"Name": "Ann", "City": "Oslo"}
    assert members["ann@example.com"]["email_status"] == "new"
    calls = await harness.import_calls()
    assert len(calls) == 1
    assert "email_status" not in calls[0]["params"]["field_names"]


async def test_changed_fields_are_pushed_as_update_without_status_or_list_columns(
    harness: Harness,
) -> None:
    await harness.insert(
        {"email": "ann@example.com", "first_name": "Ann"},
        {"email": "bob@example.com", "first_name": "Bob"},
    )
    await harness.run()
    await harness.sandbox.clear_calls()
    await harness.db.execute(
        "UPDATE public.contacts SET first_name = 'Annie', city = 'Bergen'"
        " WHERE email = 'ann@example.com'"
    )
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert (outcome.counts["added"], outcome.counts["updated"]) == (0, 1)
    calls = await harness.import_calls()
    assert len(calls) == 1
    assert calls[0]["params"]["field_names"] == ["email", "Name", "City"]
    assert calls[0]["params"]["data"] == [["ann@example.com", "Annie", "Bergen"]]
    members = await harness.members()
    assert members["ann@example.com"]["fields"] == {"Name": "Annie", "City": "Bergen"}
    assert members["bob@example.com"]["fields"] == {"Name": "Bob"}


async def test_second_run_without_changes_makes_no_import_call(harness: Harness) -> None:
    await harness.insert(
        *({"email": f"user{i}@example.com", "first_name": f"User {i}"} for i in range(30))
    )
    first = await harness.run()
    assert first.counts["added"] == 30
    await harness.sandbox.clear_calls()
    second = await harness.run()
    assert second.status == "succeeded", second.error
    assert await harness.import_calls() == []
    assert second.planned == {}
    assert second.counts["remote_count"] == 30
    assert second.counts["added"] == second.counts["updated"] == 0
    row = await harness.run_row(second.run_id)
    assert row["status"] == "succeeded"
    assert row["api_calls"] == second.counts["api_calls"] > 0


async def test_existing_list_member_matches_despite_case_and_spaces(harness: Harness) -> None:
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": "carol@example.com",
                "email_status": "active",
                "email_list_ids": [harness.list_id],
                "fields": {"Name": "Carol"},
            }
        ]
    )
    await harness.insert({"email": "  CAROL@Example.COM ", "first_name": "Carol"})
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    # never pushed by syncd: its fields are pushed once as an update, never an add
    assert (outcome.counts["added"], outcome.counts["updated"]) == (0, 1)
    assert outcome.counts["remote_only"] == 0
    assert list(await harness.members()) == ["carol@example.com"]


async def test_rows_without_a_usable_key_are_rejected_by_syncd_and_never_sent(
    harness: Harness,
) -> None:
    await harness.insert(
        {"email": "not-an-email", "first_name": "X"},
        {"email": "", "first_name": "Y"},
        {"email": None, "first_name": "Z"},
        {"email": "ok@example.com", "first_name": "Ok"},
    )
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["rejected"] == 3
    assert outcome.counts["added"] == 1
    outcomes = await harness.outcomes(outcome.run_id)
    assert sorted((o["key"], o["outcome"], o["code"]) for o in outcomes) == [
        ("", "invalid_key", "invalid_email"),
        ("", "invalid_key", "invalid_email"),
        ("not-an-email", "invalid_key", "invalid_email"),
    ]
    sent = [row[0] for call in await harness.import_calls() for row in call["params"]["data"]]
    assert sent == ["ok@example.com"]
    assert (await harness.run_row(outcome.run_id))["rejected"] == 3


async def test_phone_jobs_normalise_keys_to_plus_and_digits(harness: Harness) -> None:
    await harness.insert(
        {"email": "p1@example.com", "phone": "+7 (926) 123-45-67", "first_name": "P"},
        {"email": "p2@example.com", "phone": "12", "first_name": "Short"},
    )
    job = {
        "match": "phone",
        "fields": {"phone": "phone", "Name": "first_name"},
        "writeback": {"phone_status": "selzy_email_status"},
    }
    outcome = await harness.run(**job)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["added"] == 1
    assert outcome.counts["rejected"] == 1
    found = await harness.sandbox.contacts(phone="+79261234567")
    assert len(found) == 1
    assert harness.list_id in found[0]["phone_list_ids"]
    again = await harness.run(**job)
    assert again.planned == {"invalid_key": 1}  # reported every run, nothing to push
    assert (await harness.local())["p1@example.com"]["selzy_email_status"] == "active"
