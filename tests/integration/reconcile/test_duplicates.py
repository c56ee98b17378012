"""Duplicates: two local rows with the same normalised key are pushed once, deterministically,
reported every run, and never flip-flop; an opt-out in any of them wins."""

from __future__ import annotations

from tests.integration.reconcile.harness import Harness


async def test_duplicate_rows_are_pushed_once_and_reported_every_run(harness: Harness) -> None:
    await harness.insert(
        {"email": "dup@example.com", "first_name": "First"},
        {"email": "DUP@example.com ", "first_name": "Second"},
        {"email": "solo@example.com", "first_name": "Solo"},
    )
    first = await harness.run()
    assert first.status == "succeeded", first.error
    assert first.counts["duplicates"] == 1
    assert first.counts["added"] == 2
    sent = [row for call in await harness.import_calls() for row in call["params"]["data"]]
    assert [row[0] for row in sent].count("dup@example.com") == 1
    winner = (await harness.members())["dup@example.com"]["fields"]["Name"]
    assert winner in {"First", "Second"}
    outcomes = await harness.outcomes(first.run_id)
    assert [(o["key"], o["outcome"]) for o in outcomes] == [("dup@example.com", "duplicate")]

    for _ in range(2):  # no flip-flop: nothing is pushed again, the duplicate is still reported
        await harness.sandbox.clear_calls()
        again = await harness.run()
        assert again.counts["duplicates"] == 1
        assert await harness.import_calls() == []
        assert [o["outcome"] for o in await harness.outcomes(again.run_id)] == ["duplicate"]
        assert (await harness.members())["dup@example.com"]["fields"]["Name"] == winner


async def test_duplicate_winner_stays_the_pushed_row_when_another_appears(harness: Harness) -> None:
    await harness.insert({"email": "dup@example.com", "first_name": "Zed"})
    await harness.run()
    # a second row with a key that would sort first shows up: the pushed one keeps winning
    await harness.insert({"email": "Dup@Example.com", "first_name": "Aaron"})
    await harness.sandbox.clear_calls()
    outcome = await harness.run()
    assert outcome.counts["duplicates"] == 1
    assert await harness.import_calls() == []
    assert (await harness.members())["dup@example.com"]["fields"]["Name"] == "Zed"


async def test_opt_out_in_any_duplicate_wins(harness: Harness) -> None:
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": "dup@example.com",
                "email_status": "active",
                "email_list_ids": [harness.list_id],
            }
        ]
    )
    await harness.insert(
        {"email": "dup@example.com", "first_name": "A", "opted_out": False},
        {"email": "dup@example.com", "first_name": "B", "opted_out": True},
        {"email": "dup@example.com", "first_name": "C", "opted_out": False},
    )
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["opted_out"] == 1
    assert outcome.counts["duplicates"] == 2
    contact = await harness.remote("dup@example.com")
    assert contact is not None
    assert contact["email_status"] == "unsubscribed"
