"""Mass-deletion guards: > max_deletes, > max_delete_fraction, empty source -> no deletions,
status blocked, until the cause goes away or --allow-mass-delete is given for one run."""

from __future__ import annotations

import dataclasses
import json

from tests.integration.reconcile.harness import Harness


async def _pushed_then_removed(harness: Harness, total: int, removed: int) -> None:
    await harness.insert(*({"email": f"u{i}@example.com", "first_name": "U"} for i in range(total)))
    first = await harness.run()
    assert first.counts["added"] == total
    await harness.db.execute(
        "DELETE FROM public.contacts"
        " WHERE id IN (SELECT id FROM public.contacts ORDER BY id LIMIT $1)",
        removed,
    )


async def test_more_than_max_deletes_blocks_deletions_until_overridden_once(
    harness: Harness,
) -> None:
    harness.job = dataclasses.replace(harness.job, max_deletes=2)
    await _pushed_then_removed(harness, total=10, removed=3)
    await harness.insert({"email": "fresh@example.com", "first_name": "Fresh"})

    blocked = await harness.run()
    assert blocked.status == "blocked"
    assert blocked.blocked_reason is not None
    assert "max_deletes=2" in blocked.blocked_reason
    assert "3 deletions" in blocked.blocked_reason
    assert blocked.counts["deleted"] == 0
    assert blocked.counts["added"] == 1  # adds still happen
    assert len(await harness.members()) == 11
    row = await harness.run_row(blocked.run_id)
    assert row["status"] == "blocked"
    assert row["blocked_reason"] == blocked.blocked_reason
    assert json.loads(row["planned"])["delete"] == 3

    again = await harness.run()  # stateless: keeps blocking
    assert again.status == "blocked"
    assert len(await harness.members()) == 11

    overridden = await harness.run(allow_mass_delete=True)
    assert overridden.status == "succeeded", overridden.error
    assert overridden.counts["deleted"] == 3
    assert len(await harness.members()) == 8

    after = await harness.run()
    assert after.status == "succeeded"


async def test_more_than_the_fraction_of_the_list_blocks_deletions(harness: Harness) -> None:
    harness.job = dataclasses.replace(harness.job, max_delete_fraction=0.2)
    await _pushed_then_removed(harness, total=10, removed=3)
    blocked = await harness.run()
    assert blocked.status == "blocked"
    assert blocked.blocked_reason is not None
    assert "max_delete_fraction=0.2" in blocked.blocked_reason
    assert len(await harness.members()) == 10
    # the cause goes away: two rows come back, one deletion is within 20% of 10
    await harness.insert({"email": "u0@example.com"}, {"email": "u1@example.com"})
    fine = await harness.run()
    assert fine.status == "succeeded", fine.blocked_reason
    assert fine.counts["deleted"] == 1


async def test_empty_local_source_blocks_even_without_deletions_planned(harness: Harness) -> None:
    await harness.sandbox.upsert_contacts(
        [
            {
                "email": "form@example.com",
                "email_status": "active",
                "email_list_ids": [harness.list_id],
            }
        ]
    )
    outcome = await harness.run(remote_only="delete")
    assert outcome.status == "blocked"
    assert outcome.blocked_reason is not None
    assert "no contact with a valid key" in outcome.blocked_reason
    assert await harness.remote("form@example.com") is not None
    assert await harness.import_calls() == []


async def test_excludes_count_as_deletions_for_the_guards(harness: Harness) -> None:
    harness.job = dataclasses.replace(harness.job, max_deletes=1, delete_mode="exclude")
    await _pushed_then_removed(harness, total=5, removed=2)
    outcome = await harness.run()
    assert outcome.status == "blocked"
    assert outcome.counts["excluded"] == 0
    assert len(await harness.members()) == 5
