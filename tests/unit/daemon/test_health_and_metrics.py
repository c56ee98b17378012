"""/healthz's rule and the metric families syncd puts on its registry, the event webhook's too
(pure parts of syncd.web)."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from syncd.events.hooks import HookStats
from syncd.events.worker import WorkerStats
from syncd.web.event_metrics import EventCounters, EventReading, event_families
from syncd.web.events import ReceiverStats
from syncd.web.health import JobRuns, evaluate, max_success_age
from syncd.web.metrics import CONTENT_TYPE, DaemonMetrics, RunStats, Scrape, families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def test_success_age_allows_three_periods_plus_a_whole_run() -> None:
    assert max_success_age(900, 3600) == 3 * 900 + 3600


def test_jobs_are_healthy_only_with_a_recent_success_once_the_grace_is_over() -> None:
    runs = [
        JobRuns("fresh", last_status="succeeded", success_age_s=10),
        JobRuns("stale", last_status="failed", success_age_s=500),
        JobRuns("never", last_status="blocked"),
    ]
    limits = {"fresh": 100.0, "stale": 100.0, "never": 100.0}
    healthy, body = evaluate(runs, limits, uptime_s=1000)
    assert not healthy
    assert body["status"] == "unhealthy"
    assert body["jobs"]["fresh"]["state"] == "ok"
    assert body["jobs"]["stale"] == {
        "state": "stale",
        "last_status": "failed",
        "last_success_at": None,
        "seconds_since_success": 500,
        "max_age_s": 100.0,
    }
    assert body["jobs"]["never"]["state"] == "never_succeeded"


def test_a_freshly_started_daemon_is_healthy_until_its_jobs_had_their_chance() -> None:
    healthy, body = evaluate([JobRuns("new")], {"new": 100.0}, uptime_s=5)
    assert healthy
    assert body["jobs"]["new"]["state"] == "starting"
    healthy, _ = evaluate([JobRuns("new")], {"new": 100.0}, uptime_s=101)
    assert not healthy


# Every syncd metric: (type, label names), as the hand-written renderer had them. Dashboards and
# alerts are built on these; changing one is a breaking change for operators.
CONTRACT = {
    "syncd_up": ("gauge", ()),
    "syncd_runs_total": ("counter", ("job", "status")),
    "syncd_contacts_total": ("counter", ("job", "action")),
    "syncd_api_calls_total": ("counter", ("job",)),
    "syncd_api_errors_total": ("counter", ("job", "code")),
    "syncd_run_duration_seconds": ("histogram", ("job",)),
    "syncd_last_run_duration_seconds": ("gauge", ("job",)),
    "syncd_job_running": ("gauge", ("job",)),
    "syncd_last_success_timestamp_seconds": ("gauge", ("job",)),
}


def served(metrics: DaemonMetrics, scrape: Scrape) -> Series:
    body, content_type = metrics.expose(scrape)
    assert content_type == CONTENT_TYPE
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_every_family_keeps_its_name_type_and_labels() -> None:
    stats = RunStats()
    stats.record("news", "succeeded", {"added": 1, "api_calls": 2}, 1.0, {"retry_later": 1})
    stats.running["news"] = True
    got = families(stats, Scrape(("news",), {"news": 1.0}, healthy=True))
    exposed = {f.name + ("_total" if f.type == "counter" else ""): (f.type, f) for f in got}
    assert set(exposed) == set(CONTRACT)
    for name, (kind, labels) in CONTRACT.items():
        family_kind, family = exposed[name]
        assert family_kind == kind, name
        assert family.samples, name
        for sample in family.samples:
            assert tuple(k for k in sample.labels if k != "le") == labels, (name, sample)


def test_runs_feed_counters_histogram_and_last_success() -> None:
    stats = RunStats()
    stats.record("news", "succeeded", {"added": 3, "updated": 2, "api_calls": 7}, 2.5)
    stats.record("news", "failed", {"api_calls": 1}, 0.5, {"retry_later": 2, "http_503": 1})
    stats.record("news", "succeeded", {}, 0.5, {"retry_later": 1})
    stats.record("news", "busy", {}, 0.0)
    series = served(DaemonMetrics(stats), Scrape(("news",), {"news": 1700000000.0}, healthy=True))
    assert series[key("syncd_runs_total", job="news", status="succeeded")] == 2
    assert series[key("syncd_runs_total", job="news", status="busy")] == 1
    assert series[key("syncd_contacts_total", job="news", action="added")] == 3
    assert series[key("syncd_contacts_total", job="news", action="quarantined")] == 0
    assert series[key("syncd_api_calls_total", job="news")] == 8
    assert series[key("syncd_api_errors_total", job="news", code="retry_later")] == 3
    assert series[key("syncd_api_errors_total", job="news", code="http_503")] == 1
    bucket = "syncd_run_duration_seconds_bucket"
    assert series[key(bucket, job="news", le="1.0")] == 2
    assert series[key(bucket, job="news", le="5.0")] == 3
    assert series[key(bucket, job="news", le="+Inf")] == 3
    assert series[key("syncd_run_duration_seconds_count", job="news")] == 3
    assert series[key("syncd_run_duration_seconds_sum", job="news")] == 3.5
    assert series[key("syncd_last_run_duration_seconds", job="news")] == 0.5
    assert series[key("syncd_job_running", job="news")] == 0
    assert series[key("syncd_last_success_timestamp_seconds", job="news")] == 1700000000
    assert series[key("syncd_up")] == 1
    assert not any(name.endswith("_created") for name, _ in series)  # no per-series timestamps


def test_configured_jobs_get_zero_series_and_removed_jobs_keep_their_counters() -> None:
    stats = RunStats()
    stats.record("gone", "succeeded", {"api_calls": 4}, 1.0)
    series = served(DaemonMetrics(stats), Scrape(("new",), {"new": None}, healthy=False))
    assert series[key("syncd_up")] == 0
    assert series[key("syncd_api_calls_total", job="new")] == 0
    assert series[key("syncd_run_duration_seconds_count", job="new")] == 0
    assert series[key("syncd_job_running", job="new")] == 0
    assert key("syncd_api_calls_total", job="gone") not in series  # per configured job
    assert series[key("syncd_runs_total", job="gone", status="succeeded")] == 1
    assert not any(name == "syncd_last_success_timestamp_seconds" for name, _ in series)
    assert not any(name == "syncd_last_run_duration_seconds" for name, _ in series)


def test_label_values_are_escaped_by_the_library_and_read_back_intact() -> None:
    odd = 'we"ird\\job\nname'
    stats = RunStats()
    stats.record(odd, "succeeded", {}, 1.0)
    series = served(DaemonMetrics(stats), Scrape((odd,), {}, healthy=True))
    assert series[key("syncd_runs_total", job=odd, status="succeeded")] == 1


def test_openmetrics_is_served_when_the_scraper_asks_for_it() -> None:
    stats = RunStats()
    stats.record("news", "succeeded", {"added": 1}, 1.0)
    metrics = DaemonMetrics(stats)
    body, content_type = metrics.expose(
        Scrape(("news",), {}, healthy=True), "application/openmetrics-text; version=1.0.0"
    )
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    runs = {f.name: f for f in parse_openmetrics(text)}["syncd_runs"]
    assert runs.type == "counter"
    assert [(s.name, s.value) for s in runs.samples] == [("syncd_runs_total", 1)]


def test_each_daemon_has_its_own_registry_with_the_process_collectors() -> None:
    first, second = DaemonMetrics(), DaemonMetrics()
    first.stats.record("news", "succeeded", {}, 1.0)
    a = served(first, Scrape(("news",), {}, healthy=True))
    b = served(second, Scrape(("news",), {}, healthy=True))
    assert key("syncd_runs_total", job="news", status="succeeded") in a
    assert not any(name == "syncd_runs_total" for name, _ in b)
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"):
        assert any(n == name for n, _ in a), name
    assert any(n == "python_info" for n, _ in a)
    assert REGISTRY.get_sample_value("syncd_up") is None  # nothing leaks into the global one


# -- the event webhook's families ([webhook] events = true) ----------------------------------

# Every event metric: (type, label names). The same rule as CONTRACT: dashboards and alerts.
EVENT_CONTRACT = {
    "syncd_event_requests_total": ("counter", ("outcome",)),
    "syncd_events_received_total": ("counter", ("outcome",)),
    "syncd_events_routed_total": ("counter", ()),
    "syncd_event_contacts_applied_total": ("counter", ()),
    "syncd_event_contacts_changed_total": ("counter", ()),
    "syncd_event_rows_written_back_total": ("counter", ()),
    "syncd_event_getcontact_calls_total": ("counter", ("result",)),
    "syncd_event_batches_deferred_total": ("counter", ("reason",)),
    "syncd_event_early_runs_total": ("counter", ()),
    "syncd_event_worker_passes_total": ("counter", ()),
    "syncd_event_worker_failures_total": ("counter", ()),
    "syncd_event_hook_active": ("gauge", ()),
    "syncd_event_hook_checks_total": ("counter", ()),
    "syncd_event_hook_registrations_total": ("counter", ()),
    "syncd_event_hook_reactivations_total": ("counter", ()),
    "syncd_event_hook_failures_total": ("counter", ()),
    "syncd_event_backlog_contacts": ("gauge", ("job",)),
    "syncd_event_backlog_oldest_timestamp_seconds": ("gauge", ("job",)),
    "syncd_events_unrouted": ("gauge", ()),
}


def event_counters() -> EventCounters:
    return EventCounters(ReceiverStats(), WorkerStats(), HookStats())


def test_a_daemon_without_events_serves_no_event_metric() -> None:
    series = served(DaemonMetrics(), Scrape(("news",), {}, healthy=True))
    assert not [name for name, _ in series if name.startswith(("syncd_event", "syncd_events"))]


def test_every_event_family_keeps_its_name_type_and_labels() -> None:
    counters = event_counters()
    reading = EventReading(("news",), backlog={"news": 2}, oldest={"news": 1.7e9}, unrouted=0)
    got = event_families(counters, reading)
    exposed = {f.name + ("_total" if f.type == "counter" else ""): (f.type, f) for f in got}
    assert set(exposed) == set(EVENT_CONTRACT)
    for name, (kind, labels) in EVENT_CONTRACT.items():
        family_kind, family = exposed[name]
        assert family_kind == kind, name
        assert family.samples, name
        for sample in family.samples:
            assert tuple(sample.labels) == labels, (name, sample)


def test_the_event_counters_are_served_with_every_known_outcome_from_zero() -> None:
    counters = event_counters()
    metrics = DaemonMetrics()
    metrics.watch_events(counters)
    scrape = Scrape(("news", "sms"), {}, True, EventReading(("news",), {}, {}, 0))
    series = served(metrics, scrape)
    for outcome in ("accepted", "forged", "malformed", "too_large", "unknown_path"):
        assert series[key("syncd_event_requests_total", outcome=outcome)] == 0
    assert series[key("syncd_events_received_total", outcome="duplicate")] == 0
    assert series[key("syncd_event_backlog_contacts", job="news")] == 0  # served jobs only
    assert key("syncd_event_backlog_contacts", job="sms") not in series
    assert not any(n == "syncd_event_backlog_oldest_timestamp_seconds" for n, _ in series)
    assert series[key("syncd_event_hook_active")] == 0

    counters.receiver.posts, counters.receiver.events, counters.receiver.stored = 3, 5, 4
    counters.receiver.ignored = 1
    counters.receiver.reject("forged")
    counters.receiver.reject("forged")
    counters.worker.fetched, counters.worker.not_found, counters.worker.refused = 6, 1, 1
    counters.worker.applied, counters.worker.written_back, counters.worker.early_runs = 6, 2, 1
    counters.worker.busy, counters.worker.throttled = 1, 2
    counters.hooks.registered, counters.hooks.reactivations = True, 1
    reading = EventReading(("news",), {"news": 7}, {"news": 1700000000.5}, unrouted=3)
    series = served(metrics, replace(scrape, events=reading))
    assert series[key("syncd_event_requests_total", outcome="accepted")] == 3
    assert series[key("syncd_event_requests_total", outcome="forged")] == 2
    assert series[key("syncd_events_received_total", outcome="stored")] == 4
    assert series[key("syncd_events_received_total", outcome="duplicate")] == 1
    assert series[key("syncd_events_received_total", outcome="ignored")] == 1
    assert series[key("syncd_event_getcontact_calls_total", result="found")] == 5
    assert series[key("syncd_event_getcontact_calls_total", result="not_found")] == 1
    assert series[key("syncd_event_getcontact_calls_total", result="refused")] == 1
    assert series[key("syncd_event_contacts_applied_total")] == 6
    assert series[key("syncd_event_rows_written_back_total")] == 2
    assert series[key("syncd_event_batches_deferred_total", reason="busy")] == 1
    assert series[key("syncd_event_batches_deferred_total", reason="rate_limit")] == 2
    assert series[key("syncd_event_early_runs_total")] == 1
    assert series[key("syncd_event_hook_active")] == 1
    assert series[key("syncd_event_hook_reactivations_total")] == 1
    assert series[key("syncd_event_backlog_contacts", job="news")] == 7
    assert series[key("syncd_event_backlog_oldest_timestamp_seconds", job="news")] == 1700000000.5
    assert series[key("syncd_events_unrouted")] == 3


def test_an_unanswered_store_leaves_the_queue_gauges_empty_and_the_counters_served() -> None:
    counters = event_counters()
    counters.receiver.reject("store_failed")
    metrics = DaemonMetrics()
    metrics.watch_events(counters)
    series = served(metrics, Scrape(("news",), {}, False, EventReading(("news",))))
    assert series[key("syncd_event_requests_total", outcome="store_failed")] == 1
    assert not [
        n for n, _ in series if n in ("syncd_event_backlog_contacts", "syncd_events_unrouted")
    ]
    body, _ = metrics.expose(Scrape(("news",)), "application/openmetrics-text; version=1.0.0")
    names = {f.name for f in parse_openmetrics(body.decode())}  # strict: types and suffixes
    assert {"syncd_event_requests", "syncd_event_backlog_contacts", "syncd_up"} <= names


def test_the_opt_out_passes_are_served_per_job_from_zero() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from syncd.daemon.optouts import PassStats
    from syncd.web.optout_metrics import FAMILIES, OptOutCollector

    stats: dict[str, PassStats] = {}
    registry = CollectorRegistry()
    registry.register(OptOutCollector(lambda: stats))
    assert "job=" not in generate_latest(registry).decode()  # no job with opt_out_latency
    stats["news"] = PassStats()
    stats["promo"] = PassStats(passes=3, skipped=1, runs=2, opted_out=7, failures=1)
    text = generate_latest(registry).decode()
    for name, _, attribute in FAMILIES:
        assert f'{name}_total{{job="news"}} 0.0' in text
        assert f'{name}_total{{job="promo"}} {float(getattr(stats["promo"], attribute))}' in text
