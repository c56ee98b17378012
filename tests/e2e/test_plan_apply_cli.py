"""`syncd plan` and `syncd apply` as an operator uses them: a stored, reviewable plan executed
exactly; what changed since (locally or in Selzy) is drift, skipped and reported; a stale, a
foreign-config or an already applied plan is refused; reviewed mass deletions pass."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.e2e.cli_harness import Cli
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture


def plan_id_of(out: str) -> int:
    [line] = [line for line in out.splitlines() if line.strip().startswith("plan ")]
    return int(line.split()[1])


async def test_apply_executes_exactly_the_plan_and_reports_drift(
    harness: Harness, tmp_path: Path
) -> None:
    emails = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    await harness.insert(*({"email": e, "first_name": e[0]} for e in emails))
    cli = Cli.write(harness, tmp_path)
    out = tmp_path / "plan.jsonl.gz"
    made = await cli.run("plan", "--out", str(out))
    assert made.code == 0, made
    plan_id = plan_id_of(made.out)
    assert await harness.import_calls() == []  # a plan is a dry run
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh]
    assert lines[0]["plan"] == plan_id
    assert lines[0]["counts"] == {"add": 4}
    assert sorted(row["key"] for row in lines[1:]) == emails
    assert {row["reason"] for row in lines[1:]} == {"add:new"}

    # after the review: one contact changes locally, one in Selzy, one is new
    await harness.db.execute(
        "UPDATE public.contacts SET first_name = 'A2' WHERE email = 'a@example.com'"
    )
    await harness.sandbox.upsert_contacts(
        [{"email": "b@example.com", "email_list_ids": [harness.list_id]}]
    )
    await harness.insert({"email": "e@example.com"})
    applied = await cli.run("apply", str(plan_id))
    assert applied.code == 0, applied
    assert "drift: 3 contact(s)" in applied.out
    members = await harness.members()
    assert set(members) == {"b@example.com", "c@example.com", "d@example.com"}
    assert members["b@example.com"]["fields"] == {}  # its drifted update was not improvised
    runs = await cli.runs()
    assert runs[0]["trigger"] == "apply"
    assert (runs[0]["added"], runs[0]["drift"], runs[0]["plan_id"]) == (2, 3, plan_id)
    assert (runs[1]["trigger"], runs[1]["dry_run"], runs[1]["plan_id"]) == ("plan", True, plan_id)

    again = await cli.run("apply", str(plan_id))
    assert again.code == 2
    assert "already applied" in again.err


async def test_a_failed_apply_can_be_applied_again(harness: Harness, tmp_path: Path) -> None:
    emails = ["a@example.com", "b@example.com"]
    await harness.insert(*({"email": e} for e in emails))
    cli = Cli.write(harness, tmp_path)
    plan_id = plan_id_of((await cli.run("plan")).out)
    await harness.sandbox.fault(
        method="importContacts", kind="error", code="invalid_api_key", times=-1
    )
    failed = await cli.run("apply", str(plan_id))
    assert failed.code == 1, failed
    assert (await cli.runs())[0]["status"] == "failed"
    await harness.sandbox.clear_faults()

    retried = await cli.run("apply", str(plan_id))
    assert retried.code == 0, retried
    assert set(await harness.members()) == set(emails)
    runs = await cli.runs()
    assert (runs[0]["trigger"], runs[0]["added"], runs[0]["plan_id"]) == ("apply", 2, plan_id)
    once_more = await cli.run("apply", str(plan_id))
    assert once_more.code == 2
    assert f"already applied by run {runs[0]['id']}" in once_more.err


async def test_a_stale_or_foreign_plan_is_refused(harness: Harness, tmp_path: Path) -> None:
    await harness.insert({"email": "a@example.com"})
    cli = Cli.write(harness, tmp_path)
    plan_id = plan_id_of((await cli.run("plan")).out)
    (tmp_path / "other").mkdir()
    other = Cli.write(harness, tmp_path / "other", delete_mode="exclude")
    foreign = await other.run("apply", str(plan_id))
    assert foreign.code == 2
    assert "another configuration" in foreign.err
    await harness.db.execute(
        "UPDATE syncd.plans SET created_at = now() - interval '2 days' WHERE id = $1", plan_id
    )
    stale = await cli.run("apply", str(plan_id))
    assert stale.code == 2
    assert "older than plan_max_age" in stale.err
    missing = await cli.run("apply", "999")
    assert missing.code == 2
    assert await harness.import_calls() == []


async def test_reviewed_mass_deletions_pass_only_with_a_plan_made_to_allow_them(
    harness: Harness, tmp_path: Path
) -> None:
    emails = [f"u{i}@example.com" for i in range(5)]
    await harness.insert(*({"email": e} for e in emails))
    cli = Cli.write(harness, tmp_path, max_deletes=1)
    assert (await cli.sync()).code == 0
    await harness.db.execute("DELETE FROM public.contacts")
    blocked = await cli.run("plan")
    assert blocked.code == 3, blocked
    unreviewed = await cli.run("apply", str(plan_id_of(blocked.out)))
    assert unreviewed.code == 3  # the guards still hold for a plan made without the override
    assert len(await harness.members()) == 5
    reviewed = await cli.run("plan", "--allow-mass-delete")
    assert reviewed.code == 0, reviewed
    done = await cli.run("apply", str(plan_id_of(reviewed.out)))
    assert done.code == 0, done
    assert await harness.members() == {}
