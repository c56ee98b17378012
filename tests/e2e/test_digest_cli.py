"""The contact digest through the CLI: a settled job's run plans nobody, and what changed on any
side since — a Selzy-side unsubscribe, a local edit, a ledger row written behind syncd's back —
is planned and acted on in the next run; a config change, or a digest deleted by hand, makes a
run plan every contact (docs/rules.md, step 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.cli_harness import Cli, Result
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture


async def _sync(cli: Cli) -> tuple[Result, dict[str, Any]]:
    result = await cli.sync()
    assert result.code == 0, result
    (built,) = result.events("plan_built")
    return result, built


async def test_a_settled_job_plans_nobody_and_then_exactly_what_changed(
    harness: Harness, tmp_path: Path
) -> None:
    cli = Cli.write(harness, tmp_path)
    await harness.insert(
        {"email": "ann@example.com", "first_name": "Ann"},
        {"email": "bob@example.com", "first_name": "Bob"},
        {"email": "cid@example.com", "first_name": "Cid"},
        {"email": "dan@example.com", "first_name": "Dan"},
    )
    _, first = await _sync(cli)
    assert first["narrowed"] is False  # no digest yet
    for _ in range(3):  # the adds' answers and the writeback are planned once more, then settled
        result, built = await _sync(cli)
        if built["candidates"] == 0:
            break
    assert built["narrowed"] is True
    assert built["candidates"] == 0
    assert result.events("digest_written") == []  # a run with nothing to change writes nothing
    calls_before = len(await harness.import_calls())

    # Selzy: ann unsubscribes; locally: bob's name is edited; behind syncd's back: cid's
    # ledger row forgets what syncd pushed (so the plan adopts cid again)
    await harness.sandbox.upsert_contacts(
        [{"email": "ann@example.com", "email_status": "unsubscribed"}]
    )
    await harness.db.execute(
        "UPDATE public.contacts SET first_name = 'Robert' WHERE email = 'bob@example.com'"
    )
    await harness.db.execute(
        "UPDATE syncd.contacts SET pushed_fp = NULL WHERE key = 'cid@example.com'"
    )
    _, built = await _sync(cli)
    assert built["narrowed"] is True
    assert built["candidates"] == 3  # dan is not planned
    assert built.get("update") == 2  # bob changed, cid adopted
    local = await harness.local()
    assert local["ann@example.com"]["selzy_email_status"] == "unsubscribed"
    sent = [
        row
        for call in (await harness.import_calls())[calls_before:]
        for row in call["params"]["data"]
    ]
    assert sorted(row[0] for row in sent) == ["bob@example.com", "cid@example.com"]
    run = await cli.last_run()
    assert (run["status_changes"], run["written_back"]) == (1, 1)

    # the digest is derived data: deleted by hand, the next run plans everyone, alike, and
    # counts the list right (the member count follows the rows: the guards divide by it)
    await harness.db.execute("DELETE FROM syncd.contact_digest")
    _, built = await _sync(cli)
    assert built["candidates"] == 4
    assert not any(built.get(a) for a in ("add", "update", "delete", "optout_status"))
    assert (await cli.last_run())["remote_count"] == 4

    # a server crash empties the digest's UNLOGGED tables, together: no version is left, so the
    # next run plans every contact without narrowing, and writes the digest anew
    await harness.db.execute(
        "TRUNCATE syncd.contact_digest, syncd.contacts_touched, syncd.job_digests"
    )
    _, built = await _sync(cli)
    assert built["narrowed"] is False
    assert (await cli.last_run())["remote_count"] == 4
    _, built = await _sync(cli)
    assert (built["narrowed"], built["candidates"]) == (True, 0)
    assert (await cli.last_run())["remote_count"] == 4

    # a changed plan setting: every contact is planned, whatever the digest says
    cli = Cli.write(harness, tmp_path, delete_mode="exclude")
    result, built = await _sync(cli)
    assert built["narrowed"] is False
    (why,) = result.events("plan_not_narrowed")
    assert why["reason"] == "digest_version"
