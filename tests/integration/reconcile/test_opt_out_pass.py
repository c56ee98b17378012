"""The fast opt-out pass (a job's opt_out_latency) against real PostgreSQL and the sandbox over
HTTP: a local opt-out of a mailable contact is pushed between runs, under the job's lock, with
intents, history and a run row of its own; only what decide() sends as an opt-out goes out,
once, with the fingerprint the next full run computes, which then pushes nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

from syncd.db import connect, ensure_job, try_lock_job
from syncd.reconcile import RunServices
from syncd.reconcile.optouts import OptOutOutcome, run_opt_out_pass
from tests.integration.reconcile.harness import Harness

ANN = "ann@example.com"
BOB = "bob@example.com"


async def opt_out_pass(harness: Harness, **kwargs: Any) -> OptOutOutcome:
    services = RunServices(config=harness.config(), pool=harness.pool, client=harness.client)
    return await run_opt_out_pass(services, harness.job, **kwargs)


async def in_the_list(harness: Harness, *emails: str, status: str = "active") -> None:
    """Local contacts pushed by a full run, their Selzy status `status`, and the ledger's view of
    it learnt from the next run's export."""
    await harness.insert(*({"email": e, "first_name": "A", "city": "Riga"} for e in emails))
    assert (await harness.run()).status == "succeeded"
    if status != "new":
        await harness.sandbox.upsert_contacts(
            [{"email": e, "email_status": status} for e in emails]
        )
    assert (await harness.run()).status == "succeeded"
    await harness.sandbox.clear_calls()


async def opt_out(harness: Harness, *emails: str) -> None:
    await harness.db.execute(
        "UPDATE public.contacts SET opted_out = true WHERE email = ANY($1::text[])", list(emails)
    )


async def ledger(harness: Harness, key: str) -> dict[str, Any]:
    row = await harness.db.fetchrow(
        "SELECT * FROM syncd.contacts WHERE job = $1 AND key = $2", harness.job.name, key
    )
    assert row is not None
    return dict(row)


async def history(harness: Harness, key: str, run_id: int | None) -> list[tuple[Any, ...]]:
    rows = await harness.db.fetch(
        "SELECT kind, action, reason, outcome FROM syncd.history"
        " WHERE job = $1 AND key = $2 AND run_id = $3 ORDER BY id",
        harness.job.name,
        key,
        run_id,
    )
    return [tuple(r) for r in rows]


async def run_rows(harness: Harness) -> list[tuple[str, str]]:
    rows = await harness.db.fetch("SELECT trigger, status FROM syncd.runs ORDER BY id")
    return [(r["trigger"], r["status"]) for r in rows]


def unmailable(contact: dict[str, Any] | None, list_id: int) -> bool:
    assert contact is not None
    return contact["email_status"] in ("unsubscribed", "blocked") or (
        list_id not in contact["email_list_ids"]
    )


async def test_a_local_opt_out_is_pushed_by_a_pass_and_recorded_as_a_run(
    harness: Harness,
) -> None:
    await in_the_list(harness, ANN, BOB)
    await opt_out(harness, ANN)

    outcome = await opt_out_pass(harness)

    assert outcome.status == "succeeded", outcome.error
    assert outcome.counts == {"opted_out": 1, "api_calls": 1}
    contact = await harness.remote(ANN)
    assert contact is not None
    assert contact["email_status"] == "unsubscribed"
    assert unmailable(contact, harness.list_id)
    assert not unmailable(await harness.remote(BOB), harness.list_id)
    [call] = await harness.import_calls()
    assert call["params"]["field_names"] == ["email", "email_status"]  # no profile data
    assert call["params"]["data"] == [[ANN, "unsubscribed"]]

    run = await harness.run_row(outcome.run_id)
    assert (run["trigger"], run["status"], run["opted_out"], run["api_calls"]) == (
        "opt_out",
        "succeeded",
        1,
        1,
    )
    assert run["planned"] == '{"optout_status": 1}'
    row = await ledger(harness, ANN)
    assert row["decision"] == "optout_status:opted_out"
    assert (row["pushed_action"], row["pushed_run"]) == ("optout_status", outcome.run_id)
    assert row["email_status"] == "unsubscribed"
    assert row["intent_action"] is None
    assert await history(harness, ANN, outcome.run_id) == [
        ("decision", "optout_status", "optout_status:opted_out", None),
        ("push", "optout_status", None, "accepted"),
    ]


async def test_a_second_pass_pushes_nothing_and_writes_nothing(harness: Harness) -> None:
    await in_the_list(harness, ANN)
    await opt_out(harness, ANN)
    assert (await opt_out_pass(harness)).status == "succeeded"
    runs = await run_rows(harness)
    history_rows = await harness.db.fetchval("SELECT count(*) FROM syncd.history")

    again = await opt_out_pass(harness)

    assert (again.status, again.run_id, again.candidates) == ("idle", None, 0)
    assert len(await harness.import_calls()) == 1
    assert await run_rows(harness) == runs
    assert await harness.db.fetchval("SELECT count(*) FROM syncd.history") == history_rows


async def test_after_a_pass_the_next_full_run_finds_the_contact_in_step(harness: Harness) -> None:
    """The fingerprint a pass records is the one the full run computes: no push follows, and the
    ledger's local fingerprint equals the pushed one."""
    await in_the_list(harness, ANN)
    await opt_out(harness, ANN)
    passed = await opt_out_pass(harness)
    pushed_fp = (await ledger(harness, ANN))["pushed_fp"]
    await harness.sandbox.clear_calls()

    outcome = await harness.run()

    assert outcome.status == "succeeded", outcome.error
    assert await harness.import_calls() == []
    assert outcome.counts["opted_out"] == outcome.counts["updated"] == 0
    row = await ledger(harness, ANN)
    assert row["local_fp"] == row["pushed_fp"] == pushed_fp
    assert row["decision"] == "none:unmailable"
    assert row["pushed_run"] == passed.run_id
    assert (await harness.local())[ANN]["selzy_email_status"] == "unsubscribed"


async def test_a_new_contact_is_unsubscribed_from_the_list_not_its_status(
    harness: Harness,
) -> None:
    await in_the_list(harness, ANN, status="new")  # importContacts cannot change "new"
    await opt_out(harness, ANN)

    outcome = await opt_out_pass(harness)

    assert outcome.status == "succeeded", outcome.error
    [call] = await harness.import_calls()
    assert call["params"]["field_names"] == ["email", "email_unsubscribed_list_ids"]
    contact = await harness.remote(ANN)
    assert contact is not None
    assert harness.list_id in contact["email_unsubscribed_list_ids"]
    assert (await ledger(harness, ANN))["list_status"] == "unsubscribed"
    assert (await opt_out_pass(harness)).status == "idle"
    await harness.sandbox.clear_calls()
    assert (await harness.run()).counts["opted_out"] == 0
    assert await harness.import_calls() == []


async def test_a_contact_the_ledger_shows_unmailable_is_not_pushed(harness: Harness) -> None:
    await in_the_list(harness, ANN, BOB)
    await harness.sandbox.call(
        "unsubscribe", contact_type="email", contact=BOB, list_ids=harness.list_id
    )
    await harness.sandbox.upsert_contacts([{"email": ANN, "email_status": "unsubscribed"}])
    await harness.run()  # the export shows both unmailable; the ledger remembers it
    await harness.sandbox.clear_calls()
    await opt_out(harness, ANN, BOB)

    outcome = await opt_out_pass(harness)

    assert (outcome.status, outcome.candidates) == ("idle", 0)
    assert await harness.import_calls() == []
    assert [t for t, _ in await run_rows(harness)] == ["cli", "cli", "cli"]


async def test_a_contact_never_in_the_list_is_not_added(harness: Harness) -> None:
    await in_the_list(harness, ANN)
    await harness.insert({"email": "late@example.com", "first_name": "L", "opted_out": True})

    outcome = await opt_out_pass(harness)

    assert outcome.status == "idle"
    assert await harness.import_calls() == []
    assert await harness.remote("late@example.com") is None
    await harness.run()  # the full run decides it: suppressed, never added
    assert await harness.remote("late@example.com") is None


async def test_a_pass_skips_while_the_job_lock_is_held(harness: Harness) -> None:
    await in_the_list(harness, ANN)
    await opt_out(harness, ANN)
    holder = await connect(harness.db_config)  # a run of the job, in another session
    try:
        assert await try_lock_job(holder, await ensure_job(holder, harness.job.name))
        outcome = await opt_out_pass(harness)
        assert (outcome.status, outcome.reason) == ("skipped", "busy")
        assert await harness.import_calls() == []
    finally:
        await holder.close()
    assert (await opt_out_pass(harness)).counts["opted_out"] == 1


async def test_a_job_that_never_ran_is_skipped_without_writing(harness: Harness) -> None:
    await harness.insert({"email": ANN, "opted_out": True})
    outcome = await opt_out_pass(harness)
    assert (outcome.status, outcome.reason) == ("skipped", "never_run")
    assert await harness.db.fetchval("SELECT count(*) FROM syncd.jobs") == 0


async def test_a_pass_takes_at_most_its_limit_and_says_there_is_more(harness: Harness) -> None:
    emails = [f"user{i}@example.com" for i in range(3)]
    await in_the_list(harness, *emails)
    await opt_out(harness, *emails)

    first = await opt_out_pass(harness, limit=2)
    second = await opt_out_pass(harness, limit=2)

    assert (first.counts["opted_out"], first.more) == (2, True)
    assert (second.counts["opted_out"], second.more) == (1, False)
    for email in emails:
        assert unmailable(await harness.remote(email), harness.list_id)


async def test_duplicates_push_one_opt_out_and_the_full_run_keeps_that_row(
    harness: Harness,
) -> None:
    await in_the_list(harness, ANN)
    await harness.insert({"email": " ANN@example.com", "first_name": "Z", "opted_out": True})

    outcome = await opt_out_pass(harness)

    assert outcome.counts["opted_out"] == 1
    [call] = await harness.import_calls()
    assert call["params"]["data"] == [[ANN, "unsubscribed"]]
    await harness.sandbox.clear_calls()
    full = await harness.run()
    assert await harness.import_calls() == []
    assert full.counts["duplicates"] == 1
    row = await ledger(harness, ANN)
    assert row["local_fp"] == row["pushed_fp"]


async def test_selzy_down_fails_the_pass_and_the_next_one_pushes(harness: Harness) -> None:
    await in_the_list(harness, ANN)
    await opt_out(harness, ANN)
    await harness.sandbox.fault(method="importContacts", kind="http_status", status=503, times=-1)

    failed = await opt_out_pass(harness)

    assert failed.status == "failed"
    assert failed.error is not None
    run = await harness.run_row(failed.run_id)
    assert (run["trigger"], run["status"]) == ("opt_out", "failed")
    assert await harness.in_flight() == {ANN: "optout_status"}  # it may have been applied
    await harness.sandbox.clear_faults()
    passed = await opt_out_pass(harness)
    assert passed.counts["opted_out"] == 1
    assert await harness.in_flight() == {}
    assert unmailable(await harness.remote(ANN), harness.list_id)


async def test_a_rejected_opt_out_waits_for_the_next_full_run(harness: Harness) -> None:
    await in_the_list(harness, ANN)
    await opt_out(harness, ANN)
    await harness.sandbox.fault(method="importContacts", kind="error", code="invalid_arg", times=1)

    rejected = await opt_out_pass(harness)

    assert rejected.counts["rejected"] == 1
    assert (await opt_out_pass(harness)).status == "idle"  # not retried every pass
    full = await harness.run()  # the full run sends it again
    assert full.counts["opted_out"] == 1
    assert unmailable(await harness.remote(ANN), harness.list_id)


async def test_a_phone_matched_job_pushes_by_phone(harness: Harness) -> None:
    harness.job = dataclasses.replace(
        harness.job, match="phone", fields={"phone": "phone", "Name": "first_name"}, writeback={}
    )
    await harness.insert({"phone": "+7 (900) 111-22-33", "first_name": "P"})
    assert (await harness.run()).status == "succeeded"
    assert (await harness.run()).status == "succeeded"
    await harness.sandbox.clear_calls()
    await harness.db.execute("UPDATE public.contacts SET opted_out = true")

    outcome = await opt_out_pass(harness)

    assert outcome.counts["opted_out"] == 1, outcome
    [call] = await harness.import_calls()
    assert call["params"]["data"][0][0] == "+79001112233"
    assert call["params"]["field_names"][0] == "phone"
    [contact] = await harness.sandbox.contacts(phone="+79001112233")
    assert contact["phone_status"] in ("unsubscribed", "blocked") or (
        harness.list_id in contact["phone_unsubscribed_list_ids"]
    )
    assert (await opt_out_pass(harness)).status == "idle"
    await harness.sandbox.clear_calls()
    assert (await harness.run()).counts["opted_out"] == 0
    assert await harness.import_calls() == []
