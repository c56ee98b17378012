"""/metrics as a Prometheus server and Grafana see it: served over HTTP by a real daemon (real
PostgreSQL, the sandbox) after one run, read back with prometheus_client's own parsers in both
negotiated formats, and every metric deploy/grafana-dashboard.json queries is among them. With
`[webhook] events = true`, the event counters move as the sandbox delivers an unsubscribe and as
a forged POST is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from syncd.config import (
    Config,
    DatabaseConfig,
    JobConfig,
    MetricsConfig,
    Schedule,
    WebhookConfig,
)
from syncd.daemon.lifecycle import Daemon
from syncd.db import connect
from syncd.sandbox.payload import signed
from tests.fixtures.sandbox import SandboxHandle, free_port
from tests.integration.sandbox.conftest import FAST_HOOKS

pytestmark = pytest.mark.timeout(60)

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana-dashboard.json"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# What Prometheus 3 sends (OpenMetrics first); prometheus_client picks the first type it knows.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
CONTACTS = 5
# Labels Prometheus attaches at scrape time; syncd does not expose them.
TARGET_LABELS = frozenset({"instance"})


async def create_contacts(db_config: DatabaseConfig) -> None:
    conn = await connect(db_config)
    try:
        await conn.execute("CREATE TABLE public.contacts (id serial PRIMARY KEY, email text)")
        await conn.execute(
            "INSERT INTO public.contacts (email) "
            "SELECT 'user' || i || '@example.com' FROM generate_series(1, $1) AS i",
            CONTACTS,
        )
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def after_one_run(config: Config) -> AsyncIterator[Daemon]:
    """An in-process daemon whose one job has run once (succeeded); stopped on leaving."""
    daemon = Daemon(config, None, environ={})
    task = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(30):
            while daemon.runner.finished < 1:
                assert not task.done(), "the daemon exited before its first run"
                await asyncio.sleep(0.05)
        assert daemon.runner.last["news"].status == "succeeded"
        yield daemon
    finally:
        daemon.request_stop("test")
        assert await asyncio.wait_for(task, 30) == 0


def news_job(list_id: int, **changes: Any) -> JobConfig:
    return JobConfig(
        name="news",
        list_id=list_id,
        table="public.contacts",
        match="email",
        schedule=Schedule("every 1h", interval_seconds=3600),
        fields={"email": "email"},
        run_timeout=20,
        run_at_start=True,
        **changes,
    )


@pytest.fixture
async def metrics_url(db_config: DatabaseConfig, sandbox: SandboxHandle) -> AsyncIterator[str]:
    """/metrics of an in-process daemon whose one job has run once, with one retried 503."""
    await create_contacts(db_config)
    list_id = await sandbox.create_list("Newsletter")
    await sandbox.fault(method="*", kind="http_status", status=503, times=1)
    port = free_port()
    config = Config(
        selzy=sandbox.config,
        database=db_config,
        jobs=(news_job(list_id),),
        metrics=MetricsConfig(listen=f"127.0.0.1:{port}"),
    )
    async with after_one_run(config):
        yield f"http://127.0.0.1:{port}/metrics"


@dataclass
class EventsDaemon:
    daemon: Daemon
    metrics_url: str
    event_url: str
    list_id: int


@pytest.fixture
async def events_daemon(
    db_config: DatabaseConfig, sandbox: SandboxHandle
) -> AsyncIterator[EventsDaemon]:
    """The same daemon with `[webhook] events = true` (its /metrics on the webhook listener),
    the sandbox delivering webhooks fast, the contacts in the list already; its job ran once
    (one retried 503 on the export request: setHook must not take it), its handler is
    registered and active."""
    await create_contacts(db_config)
    conn = await connect(db_config)
    try:
        await conn.execute("ALTER TABLE public.contacts ADD COLUMN selzy_list_status text")
    finally:
        await conn.close()
    await sandbox.settings(**FAST_HOOKS)
    list_id = await sandbox.create_list("Newsletter")
    # in the list before any handler exists: no event comes before the test's own
    await sandbox.upsert_contacts(
        [
            {"email": f"user{i}@example.com", "email_list_ids": [list_id]}
            for i in range(1, CONTACTS + 1)
        ]
    )
    await sandbox.fault(method="async/exportContacts", kind="http_status", status=503, times=1)
    port = free_port()
    webhook = WebhookConfig(
        listen=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{port}/selzy-callback",
        events=True,
    )
    job = news_job(list_id, writeback={"list_status": "selzy_list_status"})
    config = Config(selzy=sandbox.config, database=db_config, webhook=webhook, jobs=(job,))
    async with after_one_run(config) as daemon:
        for _ in range(400):
            if [h["status"] for h in await sandbox.hooks()] == ["active"]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the daemon's event handler is not active in the sandbox")
        assert daemon.events is not None
        yield EventsDaemon(
            daemon, f"http://127.0.0.1:{port}/metrics", daemon.events.address.url, list_id
        )


async def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    headers = {"Accept": accept} if accept is not None else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        assert resp.status == 200
        return resp.headers["Content-Type"], await resp.text()


def samples(text: str) -> dict[str, list[Sample]]:
    """Sample name (syncd_runs_total, ..._bucket) -> its samples, via the classic-format parser."""
    by_name: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            by_name.setdefault(sample.name, []).append(sample)
    return by_name


def value(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    [match] = [s for s in found[name] if s.labels == labels]
    return match.value


async def test_classic_text_parses_and_carries_the_run_and_the_process(metrics_url: str) -> None:
    content_type, text = await scrape(metrics_url)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    found = samples(text)
    assert value(found, "syncd_up") == 1
    assert value(found, "syncd_runs_total", job="news", status="succeeded") == 1
    assert value(found, "syncd_contacts_total", job="news", action="added") == CONTACTS
    assert value(found, "syncd_api_errors_total", job="news", code="http_503") == 1
    assert value(found, "syncd_run_duration_seconds_count", job="news") == 1
    assert value(found, "syncd_run_duration_seconds_bucket", job="news", le="+Inf") == 1
    assert value(found, "syncd_last_success_timestamp_seconds", job="news") > 1.7e9
    assert value(found, "syncd_job_running", job="news") == 0
    assert value(found, "process_resident_memory_bytes") > 1024 * 1024
    assert value(found, "process_cpu_seconds_total") > 0
    assert 0 < value(found, "process_open_fds") < value(found, "process_max_fds")
    assert value(found, "process_start_time_seconds") > 1.7e9
    assert found["python_info"]
    assert not [name for name in found if name.startswith("syncd_event")]  # events are off


@pytest.mark.parametrize("accept", [OPENMETRICS, PROMETHEUS_ACCEPT])
async def test_openmetrics_is_negotiated_and_parses(metrics_url: str, accept: str) -> None:
    content_type, text = await scrape(metrics_url, accept)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in parse_openmetrics(text)}  # strict: # EOF, types, suffixes
    runs = families["syncd_runs"]
    assert runs.type == "counter"
    assert [(s.name, s.labels, s.value) for s in runs.samples] == [
        ("syncd_runs_total", {"job": "news", "status": "succeeded"}, 1)
    ]
    assert families["syncd_run_duration_seconds"].type == "histogram"
    assert families["process_resident_memory_bytes"].samples[0].value > 0


# -- the event webhook ------------------------------------------------------------------------


async def scraped(url: str) -> dict[str, list[Sample]]:
    return samples((await scrape(url))[1])


async def test_the_event_counters_move_as_the_sandbox_delivers_an_unsubscribe(
    events_daemon: EventsDaemon, sandbox: SandboxHandle
) -> None:
    url = events_daemon.metrics_url
    before = await scraped(url)
    assert value(before, "syncd_event_hook_active") == 1
    assert value(before, "syncd_event_hook_registrations_total") >= 1
    assert value(before, "syncd_event_requests_total", outcome="accepted") == 0
    assert value(before, "syncd_event_backlog_contacts", job="news") == 0
    assert value(before, "syncd_events_unrouted") == 0
    await sandbox.call(
        "unsubscribe",
        contact_type="email",
        contact="user1@example.com",
        list_ids=events_daemon.list_id,
    )
    found = before
    for _ in range(300):  # the delivery, the store, then getContact and the writeback
        found = await scraped(url)
        # the queue is read at the start of a scrape, the counters at its end: a scrape during
        # the writeback may count it and still see the contact queued
        written = value(found, "syncd_event_rows_written_back_total") >= 1
        if written and value(found, "syncd_event_backlog_contacts", job="news") == 0:
            break
        await asyncio.sleep(0.05)
    assert value(found, "syncd_event_rows_written_back_total") == 1
    assert value(found, "syncd_event_requests_total", outcome="accepted") >= 1
    assert value(found, "syncd_events_received_total", outcome="stored") == 1
    assert value(found, "syncd_events_routed_total") == 1
    assert value(found, "syncd_event_getcontact_calls_total", result="found") == 1
    assert value(found, "syncd_event_contacts_applied_total") == 1
    assert value(found, "syncd_event_contacts_changed_total") == 1
    assert value(found, "syncd_event_early_runs_total") == 0
    assert value(found, "syncd_event_worker_passes_total") >= 1
    assert value(found, "syncd_event_backlog_contacts", job="news") == 0
    assert "syncd_event_backlog_oldest_timestamp_seconds" not in found  # nothing queued


async def test_a_forged_post_moves_the_forged_counter_and_nothing_else(
    events_daemon: EventsDaemon,
) -> None:
    url = events_daemon.metrics_url
    before = await scraped(url)
    body = signed({"login": "x", "event_name": "unsubscribe", "email": "user2@example.com"}, "no")
    async with (
        aiohttp.ClientSession() as session,
        session.post(events_daemon.event_url, data=body) as response,
    ):
        assert response.status == 403
    after = await scraped(url)
    assert value(after, "syncd_event_requests_total", outcome="forged") == 1
    for outcome in ("accepted", "malformed", "too_large", "unknown_path", "store_failed"):
        assert value(after, "syncd_event_requests_total", outcome=outcome) == value(
            before, "syncd_event_requests_total", outcome=outcome
        )
    assert value(after, "syncd_events_received_total", outcome="stored") == 0


# -- the dashboard ---------------------------------------------------------------------------

PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    | {"and", "or", "unless", "inf", "nan"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(?![\w:])(\s*\()?")


def promql_uses(expr: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """(metric names, label names matched per metric, label names grouped by) of one PromQL
    expression. Metric names are as written (syncd_runs_total, ..._bucket): the names of the
    exposed samples, which is what a query selects. Functions are the identifiers before `(`."""
    text = _VARIABLE.sub("", expr)
    matchers: dict[str, set[str]] = {}

    def selector(match: re.Match[str]) -> str:
        labels = {
            m.group(1) for m in re.finditer(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", match.group(2))
        }
        matchers.setdefault(match.group(1) or "", set()).update(labels)
        return match.group(1) or ""

    text = _SELECTOR.sub(selector, _STRING.sub('""', text))
    grouped: set[str] = set()

    def grouping(match: re.Match[str]) -> str:
        grouped.update(label.strip() for label in match.group(2).split(",") if label.strip())
        return ""  # `sum by (job) (x)` -> `sum (x)`: the aggregation reads as the function it is

    text = _GROUPING.sub(grouping, _RANGE.sub("", text))
    names = {
        m.group(1)
        for m in _IDENTIFIER.finditer(text)
        if m.group(2) is None and m.group(1).lower() not in PROMQL_KEYWORDS
    }
    return names | (set(matchers) - {""}), matchers, grouped


def test_the_promql_reader_finds_metrics_not_functions_labels_or_variables() -> None:
    names, matchers, grouped = promql_uses(
        'histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{job=~"$job", x!="}"}'
        "[$__rate_interval]))) / on (job) group_left b_total offset 5m > bool 1e3"
    )
    assert names == {"a_bucket", "b_total"}
    assert matchers == {"a_bucket": {"job", "x"}}
    assert grouped == {"job", "le"}
    assert promql_uses("time() - max by (job) (c)")[0] == {"c"}


def dashboard_queries() -> Iterator[str]:
    """Every PromQL the dashboard runs: panel targets' `expr` and its variables' queries."""
    board = json.loads(DASHBOARD.read_text())

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                yield node["expr"]
            for child in node.values():
                yield from walk(child)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child)

    yield from walk(board["panels"])
    for variable in board["templating"]["list"]:
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, query
        yield f"group by ({match.group(2)}) ({match.group(1)})"


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["schemaVersion"] >= 36
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
    titles = " ".join(p["title"] for p in panels).lower()
    for topic in (
        "status",
        "success",
        "p95",
        "action",
        "api errors",
        "memory",
        "cpu",
        "file descriptors",
    ):
        assert topic in titles, topic


async def test_every_metric_and_label_the_dashboard_queries_is_served(
    events_daemon: EventsDaemon,
) -> None:
    """Against the daemon with events on: the dashboard's event panels query those too."""
    _, text = await scrape(events_daemon.metrics_url)
    found = samples(text)
    queries = list(dashboard_queries())
    used: set[str] = set()
    for expr in queries:
        names, matchers, grouped = promql_uses(expr)
        assert names, expr
        used |= names
        served_labels = set(TARGET_LABELS)
        for name in names:
            assert found.get(name), f"{name} (in {expr}) is not served with samples"
            served_labels |= {label for s in found[name] for label in s.labels}
            missing = matchers.get(name, set()) - TARGET_LABELS - set(found[name][0].labels)
            assert not missing, f"{name} has no label {missing} (in {expr})"
        assert grouped <= served_labels, f"grouping by {grouped - served_labels} in {expr}"
    assert {
        "syncd_runs_total",
        "syncd_last_success_timestamp_seconds",
        "syncd_run_duration_seconds_bucket",
        "syncd_contacts_total",
        "syncd_api_calls_total",
        "syncd_api_errors_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "syncd_events_received_total",
        "syncd_event_backlog_contacts",
    } <= used
