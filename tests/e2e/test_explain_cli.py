"""`syncd explain` as an operator runs it, for a contact in each interesting state: added,
updated, opted out, unsubscribed in Selzy, duplicate, rejected, quarantined, deleted,
suppressed, imported — and an unknown one. Its reason codes are the decision table's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from syncd.reconcile.decision import REASONS
from tests.e2e.cli_harness import Cli
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture


async def explain(cli: Cli, contact: str) -> dict[str, Any]:
    result = await cli.run("explain", contact, "--json")
    assert result.code == 0, result
    [record] = json.loads(result.out)
    for entry in record["history"]:
        if entry["kind"] == "decision":
            assert entry["reason"] in REASONS, entry
    if record["decision"]["code"] is not None:
        assert record["decision"]["code"] in REASONS
    return record


def reasons(record: dict[str, Any]) -> list[str]:
    return [h["reason"] for h in record["history"] if h["kind"] == "decision"]


async def test_explain_tells_the_story_of_a_contact_in_every_state(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.sandbox.upsert_contacts(
        [
            # unsubscribed account-wide, in the list by its phone only: the export shows it
            {
                "email": "sup@example.com",
                "email_status": "unsubscribed",
                "phone": "+79000000001",
                "phone_list_ids": [harness.list_id],
            },
            {"email": "imp@example.com", "email_list_ids": [harness.list_id]},
        ]
    )
    await harness.insert(
        {"email": "added@example.com", "first_name": "Ann"},
        {"email": "upd@example.com", "first_name": "Old"},
        {"email": "opt@example.com"},
        {"email": "unsub@example.com"},
        {"email": "dup@example.com", "first_name": "One"},
        {"email": " DUP@example.com", "first_name": "Two"},
        {"email": "info@example.com"},
        {"email": "del@example.com"},
        {"email": "\u00a0Sup@Example.com"},
    )
    cli = Cli.write(harness, tmp_path, remote_only="import", quarantine_after=2)
    assert (await cli.sync()).code == 0
    await harness.db.execute(
        "UPDATE public.contacts SET first_name = 'New' WHERE email = 'upd@example.com'"
    )
    await harness.db.execute(
        "UPDATE public.contacts SET opted_out = true WHERE email = 'opt@example.com'"
    )
    await harness.db.execute("DELETE FROM public.contacts WHERE email = 'del@example.com'")
    await harness.sandbox.upsert_contacts(
        [{"email": "unsub@example.com", "email_unsubscribed_list_ids": [harness.list_id]}]
    )
    assert (await cli.sync("--allow-mass-delete")).code == 0
    assert (await cli.sync()).code == 0

    added = await explain(cli, "Added@Example.com ")
    assert added["key"] == "added@example.com"
    assert reasons(added)[0] == "add:new"
    assert any(h["kind"] == "push" and h["outcome"] == "accepted" for h in added["history"])
    assert added["decision"]["code"] == "none:in_step"
    assert added["local_rows"][0]["columns"]["first_name"] == "Ann"

    upd = await explain(cli, "upd@example.com")
    assert "update:changed" in reasons(upd)
    opt = await explain(cli, "opt@example.com")
    assert "optout_status:opted_out" in reasons(opt) or "optout_list:opted_out" in reasons(opt)
    assert opt["local_rows"][0]["opt_out"] is True

    unsub = await explain(cli, "unsub@example.com")
    assert unsub["selzy"]["list_status"] == "unsubscribed"
    changes = [h["message"] for h in unsub["history"] if h["kind"] == "selzy_change"]
    assert any("list_status unsubscribed" in m or "-> unsubscribed" in m for m in changes), changes
    assert unsub["ledger"]["suppressed"]["reason"] == "list_status=unsubscribed"

    dup = await explain(cli, "dup@example.com")
    assert len(dup["local_rows"]) == 2
    assert sum(row["wins"] for row in dup["local_rows"]) == 1
    assert "Selzy last accepted" in dup["winner_reason"]

    info = await explain(cli, "info@example.com")
    assert info["ledger"]["rejections"] == 2
    assert info["ledger"]["last_code"] == "role_address"
    assert info["ledger"]["quarantined_at"] is not None
    assert info["decision"]["code"] == "quarantined:rejected"
    rejected = [h for h in info["history"] if h["kind"] == "push"]
    assert {h["outcome"] for h in rejected} == {"rejected"}
    assert all(h["code"] == "role_address" for h in rejected)

    deleted = await explain(cli, "del@example.com")
    assert "delete:gone_locally" in reasons(deleted)
    assert deleted["local_rows"] == []

    sup = await explain(cli, "sup@example.com")
    assert sup["decision"]["code"] == "suppressed:status"
    assert sup["local_rows"][0]["key_raw"] == "\u00a0Sup@Example.com"

    imp = await explain(cli, "imp@example.com")
    assert "import:remote_only" in reasons(imp)
    assert imp["ledger"]["pushed"]["action"] == "import"

    text = await cli.run("explain", "info@example.com")
    assert text.code == 0
    assert "quarantined:rejected" in text.out
    assert "role_address" in text.out
    unknown = await cli.run("explain", "nobody@example.com")
    assert unknown.code == 1
    assert "unknown contact" in unknown.out
