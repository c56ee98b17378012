"""/healthz and /metrics while PostgreSQL is away: the daemon (in the test's event loop, real
sandbox, real PostgreSQL behind a TCP proxy the test cuts) keeps answering — /healthz 503 saying
the database is unreachable, with what it knows of each job, /metrics 200 with
`syncd_database_up 0` (and, with events on, the event counters but no queue gauges) — never a
hang, never a 500, and both recover when PostgreSQL is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import structlog.testing
from prometheus_client.parser import text_string_to_metric_families

from syncd.config import (
    Config,
    DatabaseConfig,
    JobConfig,
    MetricsConfig,
    Schedule,
    WebhookConfig,
)
from syncd.daemon.lifecycle import Daemon
from syncd.web import health
from tests.e2e.test_daemon import create_contacts, wait_until
from tests.fixtures.pg_proxy import PgProxy
from tests.fixtures.sandbox import SandboxHandle, free_port

pytestmark = pytest.mark.timeout(90)

# generous: the daemon must answer within its HEALTH_TIMEOUT; this only keeps a hang from
# looking like a pass
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=30)


@pytest.fixture
async def proxy(db_config: DatabaseConfig) -> AsyncIterator[PgProxy]:
    async with PgProxy.serving(db_config) as proxy:
        yield proxy


@pytest.fixture(params=["events_off"])
async def daemon(
    request: pytest.FixtureRequest,
    db_config: DatabaseConfig,
    sandbox: SandboxHandle,
    proxy: PgProxy,
) -> AsyncIterator[Daemon]:
    """A daemon whose every PostgreSQL connection goes through `proxy`; its job ran once.
    Parametrized `events_on`: with `[webhook] events = true` too (its handler registered)."""
    await create_contacts(db_config, 3)
    list_id = await sandbox.create_list("Newsletter")
    job = JobConfig(
        name="news",
        list_id=list_id,
        table="public.contacts",
        match="email",
        schedule=Schedule("every 1h", interval_seconds=3600),
        fields={"email": "email"},
        run_at_start=True,
    )
    webhook = None
    if request.param == "events_on":
        port = free_port()
        webhook = WebhookConfig(
            listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}/cb", events=True
        )
    config = Config(
        selzy=sandbox.config,
        database=proxy.config(db_config, acquire_timeout=2.0),
        jobs=(job,),
        metrics=MetricsConfig(listen=f"127.0.0.1:{free_port()}"),
        webhook=webhook,
    )
    daemon = Daemon(config, None, environ={})
    task = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: _ran(daemon), within=30, what="the first run")
        yield daemon
    finally:
        daemon.request_stop("test")
        assert await asyncio.wait_for(task, 60) == 0


async def _ran(daemon: Daemon) -> bool:
    hooked = daemon.events is None or daemon.events.keeper.stats.registered
    return "news" in daemon.runner.last and hooked


class Probe:
    def __init__(self, session: aiohttp.ClientSession, daemon: Daemon) -> None:
        assert daemon.config.metrics is not None
        self.base = f"http://{daemon.config.metrics.listen}"
        self.session = session

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.session.get(self.base + "/healthz", timeout=CLIENT_TIMEOUT) as resp:
            return resp.status, await resp.json()

    async def metrics(self) -> tuple[int, dict[str, float]]:
        status, samples = await self.all_metrics()
        return status, {k: v for k, v in samples.items() if k in ("syncd_up", "syncd_database_up")}

    async def all_metrics(self) -> tuple[int, dict[str, float]]:
        """Every unlabelled sample, and labelled ones as `name{value,...}` (label values only)."""
        async with self.session.get(self.base + "/metrics", timeout=CLIENT_TIMEOUT) as resp:
            text = await resp.text()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(s.labels.values())
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return resp.status, samples

    async def recovered(self) -> bool:
        status, body = await self.health()
        _, samples = await self.metrics()
        return status == 200 and body["database"] == "ok" and samples["syncd_database_up"] == 1


@pytest.fixture
async def probe(daemon: Daemon) -> AsyncIterator[Probe]:
    async with aiohttp.ClientSession() as session:
        yield Probe(session, daemon)


async def test_postgresql_down_is_a_503_naming_the_database_and_metrics_still_answer(
    daemon: Daemon, proxy: PgProxy, probe: Probe
) -> None:
    status, body = await probe.health()
    assert (status, body["database"]) == (200, "ok")
    assert await probe.metrics() == (200, {"syncd_up": 1, "syncd_database_up": 1})
    with structlog.testing.capture_logs() as logs:
        await proxy.cut()
        status, body = await probe.health()
        assert status == 503
        assert body["status"] == "unhealthy"
        assert body["database"] == "unreachable"
        assert "PostgreSQL" in body["error"]
        assert body["jobs"]["news"]["state"] == "unknown"
        assert body["jobs"]["news"]["last_status"] == "succeeded"  # this process's own run
        assert body["jobs"]["news"]["running"] is False
        assert await probe.metrics() == (200, {"syncd_up": 0, "syncd_database_up": 0})
        status, _ = await probe.health()
        assert status == 503
        await proxy.restore()
        await wait_until(probe.recovered, within=20, what="health once PostgreSQL is back")
    changes = [e["event"] for e in logs if e["event"].startswith("database_")]
    assert changes == ["database_unreachable", "database_reachable"]  # once per change


@pytest.mark.parametrize("daemon", ["events_off", "events_on"], indirect=True)
@pytest.mark.parametrize("silence", ["freeze", "blackhole"])
async def test_a_silent_database_is_a_503_within_the_health_timeout_not_a_hang(
    daemon: Daemon,
    proxy: PgProxy,
    probe: Probe,
    monkeypatch: pytest.MonkeyPatch,
    silence: str,
) -> None:
    """freeze: the pooled connection's query never gets an answer (a network gone silent);
    blackhole: new connections are never answered (a host gone). With events on, the scrape's
    read of the event queues is bounded by the same timeout."""
    monkeypatch.setattr(health, "HEALTH_TIMEOUT", 0.5)
    await getattr(proxy, silence)()
    for _ in range(2):  # the second read finds whatever the first one left behind
        status, body = await probe.health()
        assert status == 503
        assert body["database"] == "unreachable"
        assert body["jobs"]["news"]["state"] == "unknown"
        assert await probe.metrics() == (200, {"syncd_up": 0, "syncd_database_up": 0})
    await proxy.restore()
    await wait_until(probe.recovered, within=20, what="health once PostgreSQL answers again")


async def test_a_run_while_postgresql_is_down_fails_without_stopping_the_daemon(
    daemon: Daemon, proxy: PgProxy, probe: Probe
) -> None:
    await proxy.cut()
    with structlog.testing.capture_logs() as logs:
        daemon.scheduler.run_now("news")
        await wait_until(lambda: _crashed(logs), within=30, what="the run that cannot start")
    status, body = await probe.health()
    assert status == 503
    assert body["jobs"]["news"]["last_status"] == "failed"
    assert not daemon.supervisor.failed.is_set()
    await proxy.restore()
    await wait_until(probe.recovered, within=20, what="health once PostgreSQL is back")
    daemon.scheduler.run_now("news")
    await wait_until(lambda: _succeeded_again(daemon), within=30, what="a run after recovery")


async def _crashed(logs: list[dict[str, Any]]) -> bool:
    return any(e["event"] == "run_crashed" for e in logs)


async def _succeeded_again(daemon: Daemon) -> bool:
    return daemon.runner.last["news"].status == "succeeded"


@pytest.mark.parametrize("daemon", ["events_on"], indirect=True)
async def test_with_events_on_metrics_keep_answering_and_only_the_queue_gauges_go(
    daemon: Daemon, proxy: PgProxy, probe: Probe
) -> None:
    """The event queues are read at scrape time from PostgreSQL; the counters are in memory."""
    status, samples = await probe.all_metrics()
    assert status == 200
    assert samples["syncd_event_backlog_contacts{news}"] == 0
    assert samples["syncd_events_unrouted"] == 0
    assert samples["syncd_event_hook_active"] == 1
    await proxy.cut()
    status, samples = await probe.all_metrics()
    assert status == 200
    assert (samples["syncd_up"], samples["syncd_database_up"]) == (0, 0)
    assert "syncd_event_backlog_contacts{news}" not in samples
    assert "syncd_events_unrouted" not in samples
    assert samples["syncd_event_requests_total{accepted}"] == 0
    assert samples["syncd_event_hook_active"] == 1  # what Selzy last said; PostgreSQL is apart
    await proxy.restore()
    await wait_until(probe.recovered, within=20, what="health once PostgreSQL is back")
    _, samples = await probe.all_metrics()
    assert samples["syncd_event_backlog_contacts{news}"] == 0
