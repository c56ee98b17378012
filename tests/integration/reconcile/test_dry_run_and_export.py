"""Dry runs change nothing anywhere; a malformed or late export fails the run before any push;
a stop request finishes the batches in flight and a later run converges."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.integration.reconcile.harness import Harness


async def test_dry_run_prints_the_plan_and_writes_nothing(harness: Harness) -> None:
    await harness.insert({"email": "gone@example.com"}, {"email": "stay@example.com"})
    await harness.run()
    await harness.run()  # writeback filled
    await harness.sandbox.upsert_contacts(
        [{"email": "stay@example.com", "email_status": "unsubscribed"}]
    )
    await harness.db.execute("DELETE FROM public.contacts WHERE email = 'gone@example.com'")
    await harness.insert(*({"email": f"new{i}@example.com"} for i in range(7)))
    before_local = await harness.local()
    before_pushed = await harness.pushed()
    before_mirror = await harness.db.fetch("SELECT * FROM syncd.remote_contacts ORDER BY key")
    await harness.sandbox.clear_calls()

    outcome = await harness.run(dry_run=True)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.dry_run
    assert outcome.planned == {"add": 7, "delete": 1}
    assert outcome.counts["added"] == 7
    assert outcome.counts["deleted"] == 1
    assert outcome.plan_sample["add"] == [f"new{i}@example.com" for i in range(5)]
    assert outcome.plan_sample["delete"] == ["gone@example.com"]
    assert await harness.import_calls() == []
    assert await harness.local() == before_local  # no writeback of the unsubscribe either
    assert await harness.pushed() == before_pushed
    assert (
        await harness.db.fetch("SELECT * FROM syncd.remote_contacts ORDER BY key") == before_mirror
    )
    assert (
        await harness.db.fetchval(
            "SELECT count(*) FROM syncd.contacts WHERE suppressed_reason IS NOT NULL"
        )
        == 0
    )
    assert await harness.remote("gone@example.com") is not None
    row = await harness.run_row(outcome.run_id)
    assert row["dry_run"] is True
    assert row["status"] == "succeeded"
    assert row["added"] == 7


async def test_dry_run_reports_a_blocked_plan(harness: Harness) -> None:
    harness.job = dataclasses.replace(harness.job, max_deletes=0)
    await harness.insert({"email": "gone@example.com"})
    await harness.run()
    await harness.db.execute("DELETE FROM public.contacts")
    outcome = await harness.run(dry_run=True)
    assert outcome.status == "blocked"
    assert outcome.counts["deleted"] == 0
    assert outcome.planned == {"delete": 1}


@pytest.mark.parametrize("kind", ["garbage", "truncate", "bad_encoding"])
async def test_malformed_export_fails_the_run_before_any_import_call(
    harness: Harness, kind: str
) -> None:
    await harness.insert({"email": "a@example.com"})
    await harness.run()
    await harness.insert({"email": "b@example.com"})
    await harness.sandbox.clear_calls()
    await harness.sandbox.fault(method="download", kind=kind, times=-1)
    outcome = await harness.run()
    assert outcome.status == "failed"
    assert outcome.error
    assert await harness.import_calls() == []
    assert set(await harness.pushed()) == {"a@example.com"}
    row = await harness.run_row(outcome.run_id)
    assert row["status"] == "failed"
    assert row["error"] == outcome.error


async def test_export_that_never_finishes_fails_at_the_deadline(harness: Harness) -> None:
    await harness.insert({"email": "a@example.com"})
    await harness.sandbox.fault(
        method="async/exportContacts", kind="export_never_finishes", times=1
    )
    harness.selzy = dataclasses.replace(harness.sandbox.config, export_deadline=0.3)
    outcome = await harness.run()
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "export_deadline" in outcome.error
    assert await harness.import_calls() == []


async def test_stop_request_finishes_batches_in_flight_and_next_run_converges(
    harness: Harness,
) -> None:
    harness.job = dataclasses.replace(harness.job, batch_size=2, max_in_flight=1)
    await harness.insert(*({"email": f"u{i}@example.com"} for i in range(10)))
    await harness.sandbox.fault(method="importContacts", kind="latency", delay=0.3, times=-1)
    stop = asyncio.Event()

    async def stop_soon() -> None:
        while not await harness.import_calls():  # noqa: ASYNC110 - polling the sandbox's log
            await asyncio.sleep(0.02)
        stop.set()

    stopper = asyncio.create_task(stop_soon())
    outcome = await harness.run(stop=stop)
    await stopper
    assert outcome.status == "interrupted"
    assert 0 < outcome.counts["added"] < 10
    pushed = await harness.pushed()
    assert len(pushed) == outcome.counts["added"]
    members = await harness.members()
    assert set(pushed) <= set(members)
    assert (await harness.run_row(outcome.run_id))["status"] == "interrupted"

    await harness.sandbox.clear_faults()
    final = await harness.run()
    assert final.status == "succeeded"
    assert len(await harness.members()) == 10
    assert len(await harness.pushed()) == 10
