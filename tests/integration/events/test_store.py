"""syncd.events and syncd.event_queue in PostgreSQL: which jobs a stored event is queued for, and
the rules that keep an apply from writing stale knowledge — a newer event of a contact keeps
it queued, and a run that started while the contacts were fetched wins."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.db import start_run
from syncd.db.events import ContactView, EventSession
from tests.integration.events.conftest import Events


@dataclass(frozen=True)
class FakeEvent:
    """An EventRow as the receiver would hand it in."""

    email: str
    list_ids: tuple[int, ...] | None
    name: str = "unsubscribe"
    time: datetime | None = None
    nonce: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(
            f"{self.email}{self.list_ids}{self.name}{self.nonce}".encode()
        ).digest()


def view(key: str, list_status: str = "unsubscribed") -> ContactView:
    return ContactView(key, key, "active", "available", None, "1", list_status)


async def test_an_event_is_queued_for_the_jobs_it_may_concern(events: Events) -> None:
    harness = events.harness
    job = harness.job.name
    await harness.db.execute(
        "INSERT INTO syncd.contacts (job, key) VALUES ($1, 'known@example.com')", job
    )
    stored = await events.store.store(
        [
            FakeEvent("in-list@example.com", (harness.list_id,)),
            FakeEvent("no-lists-named@example.com", None),
            FakeEvent("known@example.com", (999,)),  # another list, but in this job's ledger
            FakeEvent("elsewhere@example.com", (999,)),
            FakeEvent("In-List@Example.com ", (harness.list_id,), nonce="again"),
        ]
    )
    assert stored == 5
    routed = await events.store.route([(job, harness.list_id)], limit=100)
    assert (routed.events, routed.contacts) == (5, 3)
    assert await events.queue() == {
        "in-list@example.com": 2,
        "no-lists-named@example.com": 1,
        "known@example.com": 1,
    }
    assert await events.store.pending() == 0


async def test_a_newer_event_keeps_a_taken_contact_queued(events: Events) -> None:
    harness = events.harness
    job, key = harness.job.name, "ann@example.com"
    await events.store.store([FakeEvent(key, None)])
    await events.store.route([(job, harness.list_id)], limit=100)
    taken = await events.store.take(job, 10)
    since = await events.store.latest_run_id(job)
    await events.store.store([FakeEvent(key, None, nonce="later")])  # while getContact ran
    await events.store.route([(job, harness.list_id)], limit=100)
    async with EventSession.open(harness.db_config, harness.job) as session:
        assert session.locked
        applied = await session.apply(taken, {key: view(key)}, since_run=since)
    assert applied is not None
    assert applied.dequeued == 0
    assert applied.changed == ()
    assert await events.queue() == {key: 2}
    assert await events.ledger(key) is None  # the stale answer was not written


async def test_a_run_that_started_while_contacts_were_fetched_wins(events: Events) -> None:
    harness = events.harness
    job, key = harness.job.name, "ann@example.com"
    await events.store.store([FakeEvent(key, None)])
    await events.store.route([(job, harness.list_id)], limit=100)
    taken = await events.store.take(job, 10)
    since = await events.store.latest_run_id(job)
    run_id = await start_run(harness.db, job, dry_run=False, allow_mass_delete=False, trigger="cli")
    async with EventSession.open(harness.db_config, harness.job) as session:
        assert await session.apply(taken, {key: view(key)}, since_run=since) is None
    assert await events.ledger(key) is None
    assert list(await events.queue()) == [key]
    # once that run finished, it covers the events that arrived before it started
    await harness.db.execute(
        "UPDATE syncd.runs SET status = 'succeeded', finished_at = now() WHERE id = $1", run_id
    )
    assert await events.store.discard_covered(job) == 1
    assert await events.queue() == {}


async def test_a_failed_or_dry_run_covers_nothing(events: Events) -> None:
    harness = events.harness
    job = harness.job.name
    await events.store.store([FakeEvent("ann@example.com", None)])
    await events.store.route([(job, harness.list_id)], limit=100)
    for dry_run, status in ((True, "succeeded"), (False, "failed")):
        run_id = await start_run(
            harness.db, job, dry_run=dry_run, allow_mass_delete=False, trigger="cli"
        )
        await harness.db.execute("UPDATE syncd.runs SET status = $2 WHERE id = $1", run_id, status)
    assert await events.store.discard_covered(job) == 0


async def test_a_suppression_seen_in_an_event_is_kept_for_good(events: Events) -> None:
    harness = events.harness
    job, key = harness.job.name, "ann@example.com"
    for nonce, list_status in (("1", "unsubscribed"), ("2", "subscribed")):
        await events.store.store([FakeEvent(key, None, nonce=nonce)])
        await events.store.route([(job, harness.list_id)], limit=100)
        taken = await events.store.take(job, 10)
        since = await events.store.latest_run_id(job)
        async with EventSession.open(harness.db_config, harness.job) as session:
            assert await session.apply(taken, {key: view(key, list_status)}, since_run=since)
    ledger = await events.ledger(key)
    assert ledger is not None
    assert ledger["list_status"] == "subscribed"
    assert ledger["suppressed_reason"] == "list_status=unsubscribed"
    assert [h["message"] for h in await events.history(key, "event")] == [
        "seen in an event: list_status unsubscribed, email_status active",
        "list_status unsubscribed -> subscribed",
    ]
