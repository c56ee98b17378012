"""Prometheus metrics on prometheus_client: the in-process run counters the daemon feeds
(`RunStats`), the collector that turns them and a scrape's reading of syncd.runs into metric
families, and the exposition the scraper negotiates. It does no network or database I/O and
knows nothing of HTTP: the daemon hands in what it read, the web server the Accept header.

Each daemon has its own CollectorRegistry (never prometheus_client's global one: tests run several
daemons in one process) holding syncd's collector and the process, platform and GC collectors.
A collector rather than Counter/Histogram objects: which jobs get series is decided per scrape
(the jobs configured now), and no `_created` series double what a scraper stores.
Counters are per process (Prometheus' usual model: `rate()` copes with restarts);
`syncd_last_success_timestamp_seconds` comes from syncd.runs and so covers every process.
With `[webhook] events = true` the daemon also registers the event families (event_metrics.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from syncd.db import COUNT_COLUMNS
from syncd.web.event_metrics import EventCollector, EventCounters, EventReading

# The classic text format, which a scraper that does not ask for OpenMetrics gets.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# syncd.runs count columns that describe what happened to contacts (the `action` label).
CONTACT_COUNTS = tuple(
    name for name in COUNT_COLUMNS if name not in ("local_count", "remote_count", "api_calls")
)
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass
class RunStats:
    """What this process has seen of its runs; the daemon calls `record` after each run."""

    runs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (job, status)
    contacts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (job, action)
    api_calls: Counter[str] = field(default_factory=Counter)  # job
    api_errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (job, code)
    last_duration: dict[str, float] = field(default_factory=dict)
    durations: dict[str, list[int]] = field(
        default_factory=dict
    )  # job -> cumulative bucket counts (+Inf last)
    duration_sum: dict[str, float] = field(default_factory=dict)
    last_status: dict[str, str] = field(default_factory=dict)
    running: dict[str, bool] = field(default_factory=dict)

    def record(
        self,
        job: str,
        status: str,
        counts: Mapping[str, int],
        duration_s: float,
        api_errors: Mapping[str, int] | None = None,
    ) -> None:
        self.runs[(job, status)] += 1
        self.last_status[job] = status
        if status == "busy":  # nothing ran here
            return
        for action in CONTACT_COUNTS:
            self.contacts[(job, action)] += int(counts.get(action, 0) or 0)
        self.api_calls[job] += int(counts.get("api_calls", 0) or 0)
        for code, n in (api_errors or {}).items():
            self.api_errors[(job, code)] += n
        self.last_duration[job] = duration_s
        buckets = self.durations.setdefault(job, [0] * (len(DURATION_BUCKETS) + 1))
        for index, bound in enumerate((*DURATION_BUCKETS, math.inf)):
            if duration_s <= bound:
                buckets[index] += 1
        self.duration_sum[job] = self.duration_sum.get(job, 0.0) + duration_s


@dataclass(frozen=True, slots=True)
class Scrape:
    """What the daemon read for one scrape: its jobs now, each one's last success (epoch seconds,
    any process) from syncd.runs, whether /healthz would say healthy, and the event queues."""

    jobs: Sequence[str] = ()
    last_success: Mapping[str, float | None] = field(default_factory=dict)
    healthy: bool = False
    events: EventReading | None = None  # the event queues, when events are on


def families(stats: RunStats, scrape: Scrape) -> list[Metric]:
    """Every syncd metric family. Jobs no longer configured keep their counters (runs, contacts,
    API errors); the per-job gauges and the histogram cover the configured jobs only."""
    jobs = scrape.jobs
    up = GaugeMetricFamily(
        "syncd_up", "1 while the daemon runs; 0 when /healthz would say unhealthy."
    )
    up.add_metric([], 1.0 if scrape.healthy else 0.0)
    runs = CounterMetricFamily(
        "syncd_runs_total",
        "Runs finished by this process, by job and status.",
        labels=["job", "status"],
    )
    for (job, status), n in sorted(stats.runs.items()):
        runs.add_metric([job, status], n)
    contacts = CounterMetricFamily(
        "syncd_contacts_total",
        "Contacts per action over the runs of this process.",
        labels=["job", "action"],
    )
    for (job, action), n in sorted(stats.contacts.items()):
        contacts.add_metric([job, action], n)
    api_calls = CounterMetricFamily(
        "syncd_api_calls_total", "Selzy API calls (HTTP attempts) made by runs.", labels=["job"]
    )
    for job in jobs:
        api_calls.add_metric([job], stats.api_calls[job])
    api_errors = CounterMetricFamily(
        "syncd_api_errors_total",
        "Failed Selzy API attempts (retried ones included) by Selzy's error code, http_NNN,"
        " transport or protocol.",
        labels=["job", "code"],
    )
    for (job, code), n in sorted(stats.api_errors.items()):
        api_errors.add_metric([job, code], n)
    last_duration = GaugeMetricFamily(
        "syncd_last_run_duration_seconds", "Duration of the job's last run here.", labels=["job"]
    )
    running = GaugeMetricFamily(
        "syncd_job_running", "1 while this process runs the job.", labels=["job"]
    )
    last_success = GaugeMetricFamily(
        "syncd_last_success_timestamp_seconds",
        "End of the job's last successful run (any process), Unix time.",
        labels=["job"],
    )
    for job in jobs:
        if job in stats.last_duration:
            last_duration.add_metric([job], stats.last_duration[job])
        running.add_metric([job], 1.0 if stats.running.get(job) else 0.0)
        if (at := scrape.last_success.get(job)) is not None:
            last_success.add_metric([job], at)
    return [
        up,
        runs,
        contacts,
        api_calls,
        api_errors,
        _duration_histogram(stats, jobs),
        last_duration,
        running,
        last_success,
    ]


def _duration_histogram(stats: RunStats, jobs: Sequence[str]) -> HistogramMetricFamily:
    histogram = HistogramMetricFamily(
        "syncd_run_duration_seconds", "Duration of runs by this process.", labels=["job"]
    )
    bounds = [*(repr(b) for b in DURATION_BUCKETS), "+Inf"]  # "1.0", as prometheus_client writes
    for job in jobs:
        counts = stats.durations.get(job, [0] * (len(DURATION_BUCKETS) + 1))
        histogram.add_metric(
            [job], list(zip(bounds, counts, strict=True)), stats.duration_sum.get(job, 0.0)
        )
    return histogram


class SyncdCollector(Collector):
    """syncd's families for the registry; `scrape` is set by `DaemonMetrics.expose`."""

    def __init__(self, stats: RunStats) -> None:
        self.stats = stats
        self.scrape = Scrape()

    def describe(self) -> Iterable[Metric]:
        # names for the registry's duplicate check, without reading the stats
        return families(RunStats(), Scrape())

    def collect(self) -> Iterable[Metric]:
        return families(self.stats, self.scrape)


class DaemonMetrics:
    """One daemon's registry: syncd's collector plus the process (resident memory, CPU, open fds;
    Linux /proc only), platform and GC collectors that prometheus_client's default registry has."""

    def __init__(self, stats: RunStats | None = None) -> None:
        self.stats = RunStats() if stats is None else stats
        self.registry = CollectorRegistry()
        self._syncd = SyncdCollector(self.stats)
        self.registry.register(self._syncd)
        self._events: EventCollector | None = None
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def watch_events(self, counters: EventCounters) -> None:
        """Serve the event webhook's families too (once, when the daemon builds its events)."""
        self._events = EventCollector(counters)
        self.registry.register(self._events)

    def expose(self, scrape: Scrape, accept: str = "") -> tuple[bytes, str]:
        """(body, Content-Type) for one scrape. Synchronous from setting `scrape` to the bytes,
        so concurrent scrapes on one event loop cannot see each other's reading."""
        self._syncd.scrape = scrape
        if self._events is not None:
            self._events.reading = scrape.events or EventReading()
        return render(self.registry, accept)


def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The registry in the format the Accept header negotiates (prometheus_client's own
    choice): OpenMetrics for application/openmetrics-text, else the classic text format."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
