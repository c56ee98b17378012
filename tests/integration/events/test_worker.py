"""Selzy-side changes reach the ledger and the writeback columns through the event webhook: the
sandbox delivers to our receiver over HTTP, the events are stored in PostgreSQL, and the worker
looks each contact up with getContact and applies what Selzy says — once, under the job's lock,
never over fresher knowledge, as one early run when the backlog is large (another once it ended,
if the backlog grew meanwhile), and never stalled on a spent rate limit."""

from __future__ import annotations

import dataclasses

import structlog.testing

from syncd.api import SelzyClient
from syncd.api.ratelimit import RateLimiter
from syncd.db import connect, ensure_job, try_lock_job
from syncd.db.events import EventStore
from syncd.events.worker import EventWorker
from tests.integration.events.conftest import Events, make_worker

ANN = "ann@example.com"


async def subscribed(events: Events, *emails: str) -> None:
    """Local contacts pushed by a real run and written back by the next, then the webhook
    registered."""
    harness = events.harness
    await harness.insert(*({"email": e, "first_name": "A"} for e in emails))
    for _ in range(2):
        outcome = await harness.run()
        assert outcome.status == "succeeded"
    assert await events.keeper.start()


async def unsubscribe(events: Events, *emails: str) -> None:
    for email in emails:
        await events.harness.sandbox.call(
            "unsubscribe", contact_type="email", contact=email, list_ids=events.harness.list_id
        )


async def test_an_unsubscribe_in_selzy_reaches_the_ledger_and_the_writeback_column(
    events: Events,
) -> None:
    await subscribed(events, ANN)
    assert (await events.harness.local())[ANN]["selzy_list_status"] == "subscribed"
    await unsubscribe(events, ANN)
    await events.delivered(1)
    assert await events.queue() == {}
    assert await events.store.pending() == 1

    [result] = await events.worker.apply_pending()
    assert (result.applied, result.changed) == (1, 1)

    ledger = await events.ledger(ANN)
    assert ledger is not None
    assert ledger["list_status"] == "unsubscribed"
    assert ledger["email_unsubscribed_list_ids"] == str(events.harness.list_id)
    assert ledger["suppressed_reason"] == "list_status=unsubscribed"
    assert (await events.harness.local())[ANN]["selzy_list_status"] == "unsubscribed"
    [event] = await events.history(ANN, "event")
    assert (event["action"], event["outcome"]) == ("unsubscribe", "applied")
    assert "list_status subscribed -> unsubscribed" in event["message"]
    assert "written back" in event["message"]
    assert await events.queue() == {}
    assert len(await events.harness.sandbox.calls("getContact")) == 1

    # the next export agrees: the run sees no Selzy-side change left and writes nothing back
    history = len(await events.history(ANN))
    outcome = await events.harness.run()
    assert outcome.counts["status_changes"] == 0
    assert outcome.counts["written_back"] == 0
    assert [h["kind"] for h in (await events.history(ANN))[history:]] == []


async def test_a_replayed_or_duplicated_event_changes_nothing_twice(events: Events) -> None:
    await subscribed(events, ANN)
    await events.harness.sandbox.fault(method="hook", kind="duplicate")
    await unsubscribe(events, ANN)
    [first, second] = await events.delivered(2)
    assert first["body"] == second["body"]
    assert events.receiver.stats.stored == 1  # the duplicate POST stored nothing
    await events.worker.apply_pending()
    before = (await events.history(ANN), await events.ledger(ANN), await events.harness.local())

    assert await events.post(first["body"].encode()) == 200  # a replay, later
    assert events.receiver.stats.stored == 1
    await events.worker.apply_pending()
    after = (await events.history(ANN), await events.ledger(ANN), await events.harness.local())
    assert after == before
    assert len(await events.harness.sandbox.calls("getContact")) == 1


async def test_a_subscribe_through_a_form_enters_the_ledger_without_a_local_row(
    events: Events,
) -> None:
    assert await events.keeper.start()
    list_id = events.harness.list_id
    await events.harness.sandbox.call(
        "subscribe", list_ids=list_id, double_optin=3, **{"fields[email]": "new@example.com"}
    )
    await events.delivered(1)
    [result] = await events.worker.apply_pending()
    assert result.changed == 1
    ledger = await events.ledger("new@example.com")
    assert ledger is not None
    assert (ledger["list_status"], ledger["remote_seen"]) == ("subscribed", True)
    assert ledger["local_fp"] is None
    assert ledger["suppressed_reason"] is None
    assert (await events.history("new@example.com", "event"))[0]["action"] == "subscribe"


async def test_an_event_of_another_list_about_an_unknown_contact_is_not_queued(
    events: Events,
) -> None:
    assert await events.keeper.start()
    other = await events.harness.sandbox.create_list("Other")
    await events.harness.sandbox.call(
        "subscribe", list_ids=other, double_optin=3, **{"fields[email]": "else@example.com"}
    )
    await events.delivered(1)
    [result] = await events.worker.apply_pending()
    assert (result.applied, result.backlog) == (0, 0)
    assert await events.store.pending() == 0
    assert await events.harness.sandbox.calls("getContact") == []


async def test_a_job_whose_lock_is_held_keeps_its_events_until_the_lock_is_free(
    events: Events,
) -> None:
    await subscribed(events, ANN)
    await unsubscribe(events, ANN)
    await events.delivered(1)
    harness = events.harness
    holder = await connect(harness.db_config)  # a run of the job, in another session
    try:
        job_id = await ensure_job(holder, harness.job.name)
        assert await try_lock_job(holder, job_id)
        [result] = await events.worker.apply_pending()
        assert result.busy
        assert result.applied == 0
        assert list(await events.queue()) == [ANN]
        assert (await harness.local())[ANN]["selzy_list_status"] == "subscribed"
    finally:
        await holder.close()
    [result] = await events.worker.apply_pending()
    assert result.applied == 1
    assert (await harness.local())[ANN]["selzy_list_status"] == "unsubscribed"


async def test_a_backlog_larger_than_event_backlog_run_asks_for_one_early_run(
    events: Events,
) -> None:
    emails = [f"user{i}@example.com" for i in range(4)]
    await subscribed(events, *emails)
    harness = events.harness
    harness.job = dataclasses.replace(harness.job, event_backlog_run=2)
    await unsubscribe(events, *emails)
    await events.delivered(1)
    await eventually_queued(events, len(emails))
    await harness.sandbox.clear_calls()

    [result] = await events.worker.apply_pending()
    assert result.early_run
    assert result.backlog == 4
    [again] = await events.worker.apply_pending()  # within the cooldown: no second request
    assert not again.early_run
    assert events.requested == [harness.job.name]
    assert await harness.sandbox.calls("getContact") == []

    outcome = await harness.run()  # the early run the daemon starts
    assert outcome.status == "succeeded"
    [after] = await events.worker.apply_pending()
    assert after.backlog == 0
    assert await events.queue() == {}
    assert {e: r["selzy_list_status"] for e, r in (await harness.local()).items()} == dict.fromkeys(
        emails, "unsubscribed"
    )
    assert await harness.sandbox.calls("getContact") == []


async def eventually_queued(events: Events, count: int) -> None:
    from tests.integration.events.conftest import eventually

    async def queued() -> bool:
        await events.store.route([(events.harness.job.name, events.harness.list_id)], limit=100)
        return len(await events.queue()) >= count

    await eventually(queued, f"{count} contacts queued")


async def test_events_stored_but_not_applied_are_applied_by_the_next_process(
    events: Events,
) -> None:
    await subscribed(events, ANN)
    await unsubscribe(events, ANN)
    await events.delivered(1)  # stored; the worker never ran (the daemon was killed)
    harness = events.harness
    from syncd.db import create_pool

    pool = await create_pool(harness.db_config)  # the next process: its own pool and worker
    try:
        requested: list[str] = []
        worker = make_worker(harness, EventStore(pool), requested)
        [result] = await worker.apply_pending()
    finally:
        await pool.close()
    assert result.applied == 1
    assert (await harness.local())[ANN]["selzy_list_status"] == "unsubscribed"


async def test_a_stopped_hook_is_reactivated_and_says_why(events: Events) -> None:
    assert await events.keeper.start()
    sandbox = events.harness.sandbox
    await sandbox.set_hook(events.address.url, status="stopped")
    assert [h["status"] for h in await sandbox.hooks()] == ["stopped"]
    with structlog.testing.capture_logs() as logs:
        found = await events.keeper.check()
    assert found.verdict.value == "stopped"
    assert [h["status"] for h in await sandbox.hooks()] == ["active"]
    [line] = [e for e in logs if e["event"] == "event_hook_reactivated"]
    assert "24 h" in line["why"]
    assert events.address.segment not in repr(logs)
    assert events.keeper.stats.reactivations == 1


async def test_registration_is_idempotent_and_a_lost_handler_is_registered_again(
    events: Events,
) -> None:
    assert await events.keeper.start()
    assert await events.keeper.start()
    sandbox = events.harness.sandbox
    [hook] = await sandbox.hooks()
    assert hook["hook_url"] == events.address.url
    assert hook["events"] == {"unsubscribe": "*", "subscribe": "*"}
    assert hook["event_format"] == "json_post"
    await sandbox.call("removeHook", hook_url=events.address.url)
    found = await events.keeper.check()
    assert found.verdict.value == "missing"
    assert [h["status"] for h in await sandbox.hooks()] == ["active"]


async def test_a_spent_rate_limit_leaves_the_batch_queued_instead_of_waiting_for_the_window(
    events: Events,
) -> None:
    """getContact counts against the key's limit: with no room now (less the runs' reserve)
    the pass ends at once with the rest still queued, rather than stalling in the limiter for
    the rest of Selzy's minute while the backlog could pass event_backlog_run unnoticed."""
    emails = [f"user{i}@example.com" for i in range(5)]
    await subscribed(events, *emails)
    await unsubscribe(events, *emails)
    await events.delivered(1)
    await eventually_queued(events, len(emails))
    harness = events.harness
    await harness.sandbox.clear_calls()
    # 4 calls a minute, one of them left to runs: room for 3 getContact calls now
    limiter = RateLimiter(4, 2, margin=0.0)
    async with SelzyClient(harness.sandbox.config, limiter=limiter) as client:
        worker = EventWorker(
            store=events.store,
            database=harness.db_config,
            client=client,
            jobs=lambda: [harness.job],
            request_run=events.requested.append,
        )
        [first] = await worker.apply_pending()
        assert (first.applied, first.backlog, first.throttled) == (3, 2, True)
        [second] = await worker.apply_pending()
        assert (second.applied, second.throttled) == (0, True)
    assert len(await harness.sandbox.calls("getContact")) == 3
    assert worker.stats.throttled == 2
    assert len(await events.queue()) == 2
    assert events.requested == []


async def test_a_backlog_that_grew_during_its_early_run_asks_for_another_once_it_ended(
    events: Events,
) -> None:
    """Events keep coming while the early run runs: those it did not cover ask for the next
    one as soon as it has ended — not before, and not sooner than a minute after the last."""
    emails = [f"user{i}@example.com" for i in range(7)]
    await subscribed(events, *emails)
    harness = events.harness
    harness.job = dataclasses.replace(harness.job, event_backlog_run=2)
    now = [1000.0]
    worker = EventWorker(
        store=events.store,
        database=harness.db_config,
        client=harness.client,
        jobs=lambda: [harness.job],
        request_run=events.requested.append,
        clock=lambda: now[0],
    )
    await unsubscribe(events, *emails[:4])
    await events.delivered(1)
    await eventually_queued(events, 4)
    [asked] = await worker.apply_pending()
    assert asked.early_run
    now[0] += 61
    [waiting] = await worker.apply_pending()  # that run has not happened yet
    assert not waiting.early_run

    assert (await harness.run()).status == "succeeded"  # the early run: covers the four
    await unsubscribe(events, *emails[4:])
    await events.delivered(2)
    await eventually_queued(events, 3)
    now[0] = 1030.0
    [spaced] = await worker.apply_pending()
    assert (spaced.early_run, spaced.backlog) == (False, 3)
    now[0] = 1061.0
    [again] = await worker.apply_pending()
    assert again.early_run
    assert events.requested == [harness.job.name, harness.job.name]
    assert worker.stats.early_runs == 2
