"""`syncd status` as an operator runs it: per job, from PostgreSQL only."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli_harness import Cli
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture


async def test_status_shows_last_run_success_and_ledger_counts(
    harness: Harness, tmp_path: Path
) -> None:
    cli = Cli.write(harness, tmp_path, quarantine_after=1, max_deletes=0)
    before = await cli.run("status", "--json")
    assert before.code == 0, before
    [fresh] = json.loads(before.out)
    assert fresh["last_run"] is None
    assert fresh["last_success_at"] is None
    await harness.sandbox.upsert_contacts(
        [{"email": "gone@example.com", "email_status": "unsubscribed"}]
    )
    await harness.insert(
        {"email": "ann@example.com"},
        {"email": "info@example.com"},  # a role address: rejected, then quarantined
        {"email": "gone@example.com"},  # unsubscribed account-wide: suppressed
        {"email": "bob@example.com"},
    )
    assert (await cli.sync()).code == 0
    await harness.db.execute("DELETE FROM public.contacts WHERE email = 'bob@example.com'")
    blocked = await cli.sync()
    assert blocked.code == 3, blocked  # max_deletes = 0: the deletion waits
    result = await cli.run("status", "--json")
    assert result.code == 0, result
    [status] = json.loads(result.out)
    assert status["job"] == "newsletter"
    assert status["schedule"] == "every 15m"
    assert status["last_run"]["status"] == "blocked"
    assert "max_deletes" in status["last_run"]["blocked_reason"]
    assert status["last_success_at"] is not None
    assert status["last_success_age_s"] >= 0
    assert (status["quarantined"], status["suppressed"], status["pending"]) == (1, 1, 1)
    assert status["next_run_at"] is None  # no daemon holds the job
    text = await cli.run("status")
    assert text.code == 0
    assert "newsletter (list" in text.out
    assert "1 quarantined, 1 suppressed, 1 pending" in text.out
