"""The daemon with `[webhook] events = true`, in the test's event loop (real PostgreSQL, the real
sandbox delivering webhooks over HTTP): it registers its event URL, an unsubscribe in Selzy is
written back within seconds without a run, a forged event changes nothing, a replayed event
changes nothing twice, a handler Selzy stopped is re-activated, a backlog past event_backlog_run
becomes one early run (trigger `events`) — each also seen on /metrics — and with events off the
export alone still converges."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.config import Config, DatabaseConfig, JobConfig, Schedule, WebhookConfig
from syncd.daemon.lifecycle import Daemon
from syncd.db import Connection, connect
from syncd.events.address import event_address
from syncd.sandbox.payload import signed
from tests.e2e.test_daemon import wait_until
from tests.fixtures.sandbox import API_KEY, SandboxHandle, free_port
from tests.integration.sandbox.conftest import FAST_HOOKS

pytestmark = pytest.mark.timeout(60)

EMAILS = [f"user{i}@example.com" for i in range(3)]


@pytest.fixture
async def db(db_config: DatabaseConfig) -> Any:
    conn = await connect(db_config)
    await conn.execute(
        "CREATE TABLE public.contacts (id serial PRIMARY KEY, email text NOT NULL,"
        " selzy_list_status text)"
    )
    await conn.executemany(
        "INSERT INTO public.contacts (email) VALUES ($1)", [(e,) for e in EMAILS]
    )
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def config(db: Connection, db_config: DatabaseConfig, sandbox: SandboxHandle) -> Config:
    await sandbox.settings(**FAST_HOOKS)
    list_id = await sandbox.create_list("Newsletter")
    await sandbox.upsert_contacts([{"email": e, "email_list_ids": [list_id]} for e in EMAILS])
    port = free_port()
    job = JobConfig(
        name="news",
        list_id=list_id,
        table="public.contacts",
        match="email",
        schedule=Schedule("every 1h", interval_seconds=3600),  # only the start-up run
        fields={"email": "email"},
        writeback={"list_status": "selzy_list_status"},
        run_at_start=True,
        run_timeout=20,
    )
    webhook = WebhookConfig(
        listen=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{port}/selzy-callback",
        events=True,
    )
    return Config(selzy=sandbox.config, database=db_config, webhook=webhook, jobs=(job,))


async def list_statuses(db: Connection) -> dict[str, str | None]:
    rows = await db.fetch("SELECT email, selzy_list_status FROM public.contacts")
    return {r["email"]: r["selzy_list_status"] for r in rows}


async def runs(db: Connection) -> list[tuple[str, str]]:
    rows = await db.fetch("SELECT trigger, status FROM syncd.runs ORDER BY id")
    return [(r["trigger"], r["status"]) for r in rows]


async def started(config: Config, db: Connection, sandbox: SandboxHandle) -> tuple[Daemon, Any]:
    daemon = Daemon(config, None, environ={})
    task = asyncio.create_task(daemon.run())

    async def ready() -> bool:
        hooks = await sandbox.hooks()
        done = await runs(db) == [("startup", "succeeded")] and not daemon.runner.in_flight
        return done and [h["status"] for h in hooks] == ["active"]

    await wait_until(ready, within=20, what="the start-up run and the hook registration")
    assert set((await list_statuses(db)).values()) == {"subscribed"}
    return daemon, task


async def unsubscribed_and_written_back(
    sandbox: SandboxHandle, db: Connection, list_id: int, email: str, *, what: str
) -> None:
    """Unsubscribe `email` from the list in the sandbox; return once the daemon wrote it back."""
    await sandbox.call("unsubscribe", contact_type="email", contact=email, list_ids=list_id)

    async def written_back() -> bool:
        return (await list_statuses(db))[email] == "unsubscribed"

    await wait_until(written_back, within=5, what=what)


async def metrics(config: Config) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The daemon's /metrics (served on the webhook listener too), sample by name and labels."""
    assert config.webhook is not None
    url = f"http://{config.webhook.listen}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def stopped(daemon: Daemon, task: Any) -> int:
    daemon.request_stop("test")
    return int(await asyncio.wait_for(task, 30))


async def test_an_unsubscribe_in_selzy_is_written_back_within_seconds_without_a_run(
    config: Config, db: Connection, sandbox: SandboxHandle
) -> None:
    daemon, task = await started(config, db, sandbox)
    try:
        job = config.jobs[0]
        await unsubscribed_and_written_back(
            sandbox, db, job.list_id, EMAILS[0], what="the writeback of the unsubscribe"
        )
        assert await runs(db) == [("startup", "succeeded")]
        kinds = await db.fetch("SELECT kind, action FROM syncd.history WHERE kind = 'event'")
        assert [(k["kind"], k["action"]) for k in kinds] == [("event", "unsubscribe")]

        async def written_back() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
            # the worker counts what it wrote back once its transaction committed
            seen = await metrics(config)
            return seen if seen.get(sample("syncd_event_rows_written_back_total")) == 1 else None

        seen = await wait_until(written_back, within=15, what="the writeback counted")
        assert seen[sample("syncd_events_received_total", outcome="stored")] == 1
        assert seen[sample("syncd_event_getcontact_calls_total", result="found")] == 1
        assert seen[sample("syncd_event_backlog_contacts", job="news")] == 0
        assert seen[sample("syncd_event_hook_active")] == 1
        assert seen[sample("syncd_event_requests_total", outcome="forged")] == 0

        # a forged event about another contact is refused and changes nothing
        assert config.webhook is not None
        address = event_address(config.webhook.public_url, API_KEY)
        forged = signed(
            {
                "login": "x",
                "event_name": "unsubscribe",
                "event_time": "2026-01-01 00:00:00",
                "email": EMAILS[1],
                "unsubscribed_list_ids": [job.list_id],
            },
            "not-the-key",
        )
        async with (
            aiohttp.ClientSession() as session,
            session.post(address.url, data=forged) as response,
        ):
            assert response.status == 403
        assert daemon.events is not None
        assert daemon.events.receiver.stats.rejected == {"forged": 1}
        await asyncio.sleep(0.3)
        assert (await list_statuses(db))[EMAILS[1]] == "subscribed"
        seen = await metrics(config)
        assert seen[sample("syncd_event_requests_total", outcome="forged")] == 1
        assert seen[sample("syncd_events_received_total", outcome="stored")] == 1
    finally:
        assert await stopped(daemon, task) == 0


async def test_a_backlog_past_event_backlog_run_becomes_one_early_run(
    config: Config, db: Connection, sandbox: SandboxHandle
) -> None:
    config = replace(config, jobs=(replace(config.jobs[0], event_backlog_run=1),))
    daemon, task = await started(config, db, sandbox)
    try:
        list_id = config.jobs[0].list_id
        await sandbox.clear_calls()
        await sandbox.upsert_contacts(
            [{"email": e, "email_unsubscribed_list_ids": [list_id]} for e in EMAILS]
        )

        async def early_run() -> bool:
            return ("events", "succeeded") in await runs(db)

        await wait_until(early_run, within=15, what="the early run")
        assert set((await list_statuses(db)).values()) == {"unsubscribed"}
        assert await sandbox.calls("getContact") == []
        assert [t for t, _ in await runs(db)] == ["startup", "events"]

        async def counted() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
            # the daemon counts a run once run_job returned, after its row is recorded: wait
            # for the count too, not for the row alone
            seen = await metrics(config)
            succeeded = seen.get(sample("syncd_runs_total", job="news", status="succeeded"))
            return seen if succeeded == 2 else None

        seen = await wait_until(counted, within=15, what="the early run counted")
        assert seen[sample("syncd_event_early_runs_total")] == 1
        assert seen[sample("syncd_event_contacts_applied_total")] == 0
    finally:
        assert await stopped(daemon, task) == 0


async def test_a_replayed_event_changes_nothing_twice(
    config: Config, db: Connection, sandbox: SandboxHandle
) -> None:
    daemon, task = await started(config, db, sandbox)
    try:
        job = config.jobs[0]
        await unsubscribed_and_written_back(
            sandbox, db, job.list_id, EMAILS[0], what="the writeback of the unsubscribe"
        )
        [delivered] = [d for d in await sandbox.deliveries() if d["status"] == 200]
        # the local column is put back by hand: applying the event again would undo that
        await db.execute(
            "UPDATE public.contacts SET selzy_list_status = 'edited' WHERE email = $1", EMAILS[0]
        )
        assert daemon.events is not None
        address = daemon.events.address
        async with aiohttp.ClientSession() as session:
            for _ in range(2):  # Selzy retries, a proxy replays: the very same body
                async with session.post(address.url, data=delivered["body"]) as response:
                    assert response.status == 200

        async def both_seen() -> bool:
            seen = await metrics(config)
            return seen[sample("syncd_events_received_total", outcome="duplicate")] == 2

        await wait_until(both_seen, within=5, what="the replays counted as duplicates")
        daemon.events.worker.wake()
        await asyncio.sleep(0.5)  # a pass that would apply a stored replay has had its chance
        assert (await list_statuses(db))[EMAILS[0]] == "edited"
        assert await db.fetchval("SELECT count(*) FROM syncd.events") == 1
        history = await db.fetchval("SELECT count(*) FROM syncd.history WHERE kind = 'event'")
        assert history == 1
        assert len(await sandbox.calls("getContact")) == 1
    finally:
        assert await stopped(daemon, task) == 0


async def test_a_hook_selzy_stopped_is_reactivated_and_events_flow_again(
    config: Config, db: Connection, sandbox: SandboxHandle
) -> None:
    assert config.webhook is not None
    config = replace(config, webhook=replace(config.webhook, hook_check_interval=1.0))
    daemon, task = await started(config, db, sandbox)
    try:
        assert daemon.events is not None
        url = daemon.events.address.url
        # what Selzy does after failed deliveries (the sandbox's own path to it is tested in
        # tests/integration/sandbox/test_hook_delivery.py), set directly
        await sandbox.set_hook(url, status="stopped")

        async def active_again() -> bool:
            return [h["status"] for h in await sandbox.hooks()] == ["active"]

        await wait_until(active_again, within=10, what="the hook re-activated")
        assert daemon.events.keeper.stats.reactivations >= 1
        seen = await metrics(config)
        assert seen[sample("syncd_event_hook_reactivations_total")] >= 1

        await unsubscribed_and_written_back(
            sandbox,
            db,
            config.jobs[0].list_id,
            EMAILS[1],
            what="the writeback after the re-activation",
        )
    finally:
        assert await stopped(daemon, task) == 0


async def test_with_events_off_the_export_still_converges(
    config: Config, db: Connection, sandbox: SandboxHandle
) -> None:
    assert config.webhook is not None
    config = replace(config, webhook=replace(config.webhook, events=False))
    daemon = Daemon(config, None, environ={})
    task = asyncio.create_task(daemon.run())
    try:

        async def started_up() -> bool:  # recorded, and over in the daemon (its after-run work)
            return await runs(db) == [("startup", "succeeded")] and not daemon.runner.in_flight

        await wait_until(started_up, within=20, what="the start-up run")
        await sandbox.call(
            "unsubscribe", contact_type="email", contact=EMAILS[2], list_ids=config.jobs[0].list_id
        )
        await sandbox.upsert_contacts(
            [{"email": EMAILS[0], "email_unsubscribed_list_ids": [config.jobs[0].list_id]}]
        )
        assert await sandbox.hooks() == []  # nothing registered, nothing delivered
        daemon.request_run(config.jobs[0].name)

        async def converged() -> bool:
            statuses = await list_statuses(db)
            return statuses[EMAILS[2]] == statuses[EMAILS[0]] == "unsubscribed"

        await wait_until(converged, within=20, what="the next run's writeback")
        assert await sandbox.calls("getContact") == []
        assert (await list_statuses(db))[EMAILS[1]] == "subscribed"
        assert daemon.events is None
    finally:
        assert await stopped(daemon, task) == 0
