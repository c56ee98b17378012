"""Rejections: per-row refusals are recorded and retried, quarantined after N runs (lifted when
the row changes); a whole-call refusal is bisected so the good rows still land."""

from __future__ import annotations

import dataclasses

from tests.integration.reconcile.harness import Harness


def _sent_keys(calls: list[dict[str, object]]) -> list[str]:
    return [row[0] for call in calls for row in call["params"]["data"]]  # type: ignore[index]


async def test_role_address_is_rejected_then_quarantined_then_lifted_by_a_change(
    harness: Harness,
) -> None:
    harness.job = dataclasses.replace(harness.job, quarantine_after=2)
    await harness.insert(
        {"email": "info@example.com", "first_name": "Role"},
        {"email": "ok@example.com", "first_name": "Ok"},
    )
    first = await harness.run()
    assert first.status == "succeeded", first.error
    assert (first.counts["added"], first.counts["rejected"]) == (1, 1)
    [outcome] = await harness.outcomes(first.run_id)
    assert (outcome["key"], outcome["action"], outcome["outcome"]) == (
        "info@example.com",
        "add",
        "rejected",
    )
    assert outcome["code"] == "role_address"
    assert outcome["message"]
    pushed = (await harness.pushed())["info@example.com"]
    assert pushed["fingerprint"] is None
    assert pushed["rejections"] == 1

    second = await harness.run()  # retried: rejected a second time -> quarantined
    assert second.counts["rejected"] == 1
    assert (await harness.pushed())["info@example.com"]["quarantined_at"] is not None

    await harness.sandbox.clear_calls()
    third = await harness.run()
    assert third.counts["quarantined"] == 1
    assert third.counts["rejected"] == 0
    assert await harness.import_calls() == []  # not retried forever
    [reported] = await harness.outcomes(third.run_id)
    assert (reported["outcome"], reported["code"]) == ("quarantined", "role_address")

    await harness.db.execute(
        "UPDATE public.contacts SET first_name = 'Changed' WHERE email = 'info@example.com'"
    )
    fourth = await harness.run()
    assert fourth.counts["quarantined"] == 0
    assert fourth.counts["rejected"] == 1
    assert _sent_keys(await harness.import_calls()) == ["info@example.com"]
    assert (await harness.pushed())["info@example.com"][
        "rejections"
    ] == 1  # new values: count restarts


async def test_whole_call_refusal_is_bisected_so_good_rows_land(harness: Harness) -> None:
    # two different Selzy contacts own the email and the phone of one local row
    await harness.sandbox.upsert_contacts(
        [{"email": "owner@example.com"}, {"phone": "+15550001111", "phone_status": "active"}]
    )
    rows = [{"email": f"good{i}@example.com", "phone": "", "first_name": "G"} for i in range(9)]
    rows.insert(4, {"email": "owner@example.com", "phone": "+15550001111", "first_name": "Bad"})
    await harness.insert(*rows)
    fields = {"email": "email", "Name": "first_name", "phone": "phone"}
    outcome = await harness.run(fields=fields)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["added"] == 9
    assert outcome.counts["rejected"] == 1
    [bad] = await harness.outcomes(outcome.run_id)
    assert bad["key"] == "owner@example.com"
    assert bad["code"] == "unspecified"
    assert "different subscribers" in bad["message"]
    members = await harness.members()
    assert {f"good{i}@example.com" for i in range(9)} <= set(members)
    assert "owner@example.com" not in members
    assert len(await harness.import_calls()) > 1


async def test_injected_invalid_arg_on_a_batch_is_bisected_and_every_row_lands(
    harness: Harness,
) -> None:
    await harness.sandbox.fault(method="importContacts", kind="error", code="invalid_arg", times=1)
    await harness.insert(*({"email": f"u{i}@example.com"} for i in range(6)))
    outcome = await harness.run()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts["added"] == 6
    assert outcome.counts["rejected"] == 0
    assert len(await harness.members()) == 6


async def test_exhausted_retries_fail_the_run_and_record_only_accepted_batches(
    harness: Harness,
) -> None:
    harness.job = dataclasses.replace(harness.job, batch_size=2, max_in_flight=1)
    await harness.insert(*({"email": f"u{i}@example.com"} for i in range(6)))
    await harness.sandbox.fault(method="importContacts", kind="http_status", status=503, times=-1)
    outcome = await harness.run()
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "503" in outcome.error
    assert await harness.pushed() == {}
    # the batch whose answer never came may have been applied: its rows are known in flight
    assert await harness.in_flight() == {"u0@example.com": "add", "u1@example.com": "add"}
    await harness.sandbox.clear_faults()
    recovered = await harness.run()
    assert recovered.status == "succeeded"
    assert recovered.counts["added"] == 6
    assert len(await harness.pushed()) == 6
    assert await harness.in_flight() == {}
