"""Waiting for an export with an expected duration: where it comes from (the run log) and that
wait_for_export polls around it against the sandbox."""

from __future__ import annotations

import dataclasses
import json
import time

from syncd.db import Connection
from syncd.db.runs import expected_export_seconds
from syncd.reconcile.export import wait_for_export
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.api.conftest import MakeClient


async def _run(db: Connection, job: str, status: str, *, dry_run: bool = False, **t: float) -> None:
    await db.execute(
        "INSERT INTO syncd.runs (job, status, dry_run, timings) VALUES ($1, $2, $3, $4::jsonb)",
        job,
        status,
        dry_run,
        json.dumps(t),
    )


async def test_expected_export_seconds_is_the_median_of_the_last_five_real_successes(
    db: Connection,
) -> None:
    assert await expected_export_seconds(db, "newsletter") is None
    await _run(db, "newsletter", "succeeded", export=100.0)  # older than the last five
    for seconds in (20.0, 24.0, 90.0, 22.0, 21.0):
        await _run(db, "newsletter", "succeeded", export=seconds)
    await _run(db, "newsletter", "failed", export=500.0)
    await _run(db, "newsletter", "succeeded", dry_run=True, export=500.0)
    await _run(db, "newsletter", "succeeded", load=3.0)  # failed before timing its export
    await _run(db, "sms", "succeeded", export=1.0)
    assert await expected_export_seconds(db, "newsletter") == 22.0  # 90 s, once, does not count
    assert await expected_export_seconds(db, "sms") == 1.0
    assert await expected_export_seconds(db, "unknown") is None


async def test_with_an_expected_time_the_export_is_seen_soon_after_it_finishes(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    """poll_interval is 30 s, so growing delays would first poll after 30 s; expecting the
    export to take 0.5 s, the first polls come at 0.4 s and 0.9 s."""
    await sandbox.settings(export_delay=0.5)
    list_id = await sandbox.create_list("L")
    config = dataclasses.replace(sandbox.config, poll_interval=30.0, poll_interval_max=30.0)
    client = make_client()
    started = time.monotonic()
    url = await wait_for_export(client, config, list_id, expected=0.5)
    assert url
    assert time.monotonic() - started < 10.0  # far from 30 s, on however slow a machine
    assert 1 <= len(await sandbox.calls("async/getTaskResult")) <= 4
