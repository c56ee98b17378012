"""A run that rewrote much of the ledger vacuums it before it ends (runner VACUUM_MIN and
VACUUM_SHARE): the next runs' reads need not prune the dead rows it left, whether or not the
server's autovacuum comes. A run that wrote little does not."""

from __future__ import annotations

import json

import pytest

from syncd.reconcile import runner
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture

VACUUMS = "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'syncd.contacts'::regclass"


async def test_a_run_that_rewrote_the_ledger_vacuums_it_and_one_that_did_not_does_not(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "VACUUM_MIN", 3)  # the share decides at this size
    await harness.insert(*({"email": f"u{i}@example.com"} for i in range(10)))
    before = await harness.db.fetchval(VACUUMS)
    first = await harness.run()  # ten adds: the whole ledger written
    assert first.status == "succeeded"
    assert first.counts["added"] == 10
    assert await harness.db.fetchval(VACUUMS) == before + 1
    timings = (await harness.run_row(first.run_id))["timings"]
    timings = json.loads(timings) if isinstance(timings, str) else timings
    assert timings["maintain"] >= 0

    await harness.run()  # the adds' answers settle: the ledger is written once more
    settled = await harness.db.fetchval(VACUUMS)
    await harness.db.execute(
        "UPDATE public.contacts SET first_name = 'Ann' WHERE email = 'u1@example.com'"
    )
    one = await harness.run()  # one update in ten: under the share
    assert one.counts["updated"] == 1
    assert await harness.db.fetchval(VACUUMS) == settled
