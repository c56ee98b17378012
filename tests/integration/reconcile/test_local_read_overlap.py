"""The local half of the plan (the scan of the user's table and its duplicate check) runs while
Selzy prepares the export, on the run's otherwise idle connection; a failure of it ends the run
without waiting for the export."""

from __future__ import annotations

import asyncio
import json

from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture

TEMP_TABLES = (
    "SELECT relname FROM pg_class WHERE relpersistence = 't'"
    " AND relname IN ('syncd_local_odd', 'syncd_export')"
)


async def test_the_local_table_is_read_while_the_export_is_prepared(harness: Harness) -> None:
    await harness.insert({"email": "a@example.com"}, {"email": "b@example.com"})
    # the export request itself is held: until it returns, no export can be staged
    await harness.sandbox.fault(method="async/exportContacts", kind="latency", delay=1.5)
    run = asyncio.create_task(harness.run())
    seen: set[str] = set()
    while not run.done():
        names = {r["relname"] for r in await harness.db.fetch(TEMP_TABLES)}
        if "syncd_local_odd" in names and "syncd_export" not in names:
            seen = names
            break
        await asyncio.sleep(0.02)
    outcome = await asyncio.wait_for(run, 60)
    assert seen == {"syncd_local_odd"}, "the local half was not read before the export came"
    assert outcome.status == "succeeded"
    assert outcome.counts["added"] == 2
    timings = (await harness.run_row(outcome.run_id))["timings"]
    timings = json.loads(timings) if isinstance(timings, str) else timings
    assert set(timings) >= {"local", "export", "load", "plan"}


async def test_a_failing_local_read_ends_the_run_without_waiting_for_the_export(
    harness: Harness,
) -> None:
    await harness.insert({"email": "a@example.com"}, {"email": "boom@example.com"})
    await harness.db.execute(
        "CREATE VIEW public.contacts_boom AS SELECT id, email, phone, first_name,"
        " CASE WHEN email LIKE 'boom%' THEN (1 / (id - id))::text ELSE city END AS city,"
        " opted_out, selzy_email_status, selzy_list_status FROM public.contacts"
    )
    # an export that would keep the run waiting far longer than the bound below
    await harness.sandbox.fault(method="async/exportContacts", kind="latency", delay=120.0)
    outcome = await asyncio.wait_for(harness.run(table="public.contacts_boom", writeback={}), 60)
    assert outcome.status == "failed"
    row = await harness.run_row(outcome.run_id)
    assert "division by zero" in row["error"]
    assert await harness.import_calls() == []


async def test_an_export_failure_during_the_local_read_leaves_the_job_runnable(
    harness: Harness,
) -> None:
    # a table big enough that its read is still going when the export request is refused
    await harness.db.execute(
        "INSERT INTO public.contacts (email, first_name)"
        " SELECT 'user' || i || '@example.com', 'n' || i FROM generate_series(1, 200000) AS i"
    )
    await harness.sandbox.fault(
        method="async/exportContacts", kind="error", code="invalid_arg", message="no such list"
    )
    failed = await asyncio.wait_for(harness.run(), 60)
    assert failed.status == "failed"
    assert "no such list" in (await harness.run_row(failed.run_id))["error"]
    # the session's cancelled read left nothing behind: the lock is free, the next run whole
    again = await asyncio.wait_for(harness.run(dry_run=True), 120)
    assert again.status == "succeeded"
    assert again.counts["local_count"] == 200000
