"""PRODUCT.md: a run interrupted by a database restart loses nothing. Every syncd connection is
terminated mid-push (what a PostgreSQL restart does to its clients); the run fails, nothing is
recorded that Selzy did not accept, and the next run converges."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.e2e.test_sync_cli import finish, start, sync, wait_for
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture

TERMINATE_SYNCD = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'syncd' AND pid <> pg_backend_pid()
"""


async def test_database_connections_lost_mid_push_then_a_normal_run_converges(
    harness: Harness, tmp_path: Path
) -> None:
    job = dataclasses.replace(harness.job, batch_size=2, max_in_flight=1)
    config = harness.write_config(tmp_path / "syncd.toml", job)
    emails = [f"u{i:02}@example.com" for i in range(20)]
    await harness.insert(*({"email": e, "first_name": e[:3]} for e in emails))
    await harness.sandbox.fault(method="importContacts", kind="latency", delay=0.25, times=-1)
    proc = await start(harness, config)

    async def some_batches_recorded() -> bool:
        return bool(
            await harness.db.fetchval(
                "SELECT count(*) >= 4 FROM syncd.pushed WHERE fingerprint IS NOT NULL"
            )
        )

    await wait_for(some_batches_recorded)
    assert await harness.db.fetchval(TERMINATE_SYNCD) >= 1
    result = await finish(proc)
    assert result.code == 1, result  # the run failed; it did not hang or claim success

    pushed = await harness.pushed()
    members = await harness.members()
    assert 4 <= len(pushed) < 20
    assert set(pushed) <= set(members)  # nothing recorded as pushed that Selzy did not accept
    for key in pushed:
        assert members[key]["fields"] == {"Name": key[:3]}

    await harness.sandbox.clear_faults()
    result = await sync(harness, config)
    assert result.code == 0, result
    members = await harness.members()
    assert set(members) == set(emails)
    assert all(members[e]["fields"] == {"Name": e[:3]} for e in emails)
    assert set(await harness.pushed()) == set(emails)
    statuses = [
        r["status"] for r in await harness.db.fetch("SELECT status FROM syncd.runs ORDER BY id")
    ]
    assert statuses[-1] == "succeeded"
    assert "running" not in statuses  # the lost run was closed, by itself or by the next run
