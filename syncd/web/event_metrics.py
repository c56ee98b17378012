"""The event webhook's Prometheus families (`[webhook] events = true`): what the receiver, the
worker and the hook keeper counted since start (their Stats objects, read at scrape time), and
what a scrape read of the store (the queues per job). No I/O: the daemon hands in the reading.

A collector of its own, registered by `DaemonMetrics.watch_events` only when events are on, so a
daemon without them serves none of these names. Every outcome the code knows gets its series
from the start (at 0), so that `rate()` and alerts see a counter before its first increment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # types only: syncd.web imports nothing of syncd.api, which the worker uses
    from syncd.events.hooks import HookStats
    from syncd.events.worker import WorkerStats
    from syncd.web.events import ReceiverStats

# The receiver's outcomes of a request (ReceiverStats: accepted POSTs and `rejected` reasons).
REQUEST_OUTCOMES = ("accepted", "forged", "malformed", "too_large", "unknown_path", "store_failed")


@dataclass(frozen=True, slots=True)
class EventCounters:
    """The live Stats objects of one daemon's event service."""

    receiver: ReceiverStats
    worker: WorkerStats
    hooks: HookStats


@dataclass(frozen=True, slots=True)
class EventReading:
    """What the daemon read of syncd.event_queue and syncd.events for one scrape. `backlog` and
    `unrouted` are None when PostgreSQL did not answer in time: those gauges then have no
    samples (the counters are in memory and still served)."""

    jobs: Sequence[str] = ()  # the jobs the worker serves now (email-matched)
    backlog: Mapping[str, int] | None = None  # job -> contacts queued
    oldest: Mapping[str, float] = field(default_factory=dict)  # job -> oldest queued, Unix time
    unrouted: int | None = None  # stored events not routed to the jobs yet


def event_families(counters: EventCounters, reading: EventReading) -> list[Metric]:
    return [
        *_receiver_families(counters.receiver),
        *_worker_families(counters.worker),
        *_hook_families(counters.hooks),
        *_store_families(reading),
    ]


def _receiver_families(stats: ReceiverStats) -> list[Metric]:
    requests = CounterMetricFamily(
        "syncd_event_requests_total",
        "Requests to the event webhook URL by outcome: accepted (a POST answered 200), forged"
        " (403: auth wrong), malformed (400), too_large (413), unknown_path (404: wrong secret"
        " path), store_failed (503: PostgreSQL did not take the events in time; Selzy retries).",
        labels=["outcome"],
    )
    outcomes = dict.fromkeys(REQUEST_OUTCOMES, 0) | dict(stats.rejected)
    outcomes["accepted"] = stats.posts
    for outcome, n in outcomes.items():
        requests.add_metric([outcome], n)
    received = CounterMetricFamily(
        "syncd_events_received_total",
        "Events in accepted POSTs by outcome: stored (new), duplicate (stored before: a replay or"
        " a repeated delivery), ignored (another event name, or no email).",
        labels=["outcome"],
    )
    received.add_metric(["stored"], stats.stored)
    received.add_metric(["duplicate"], stats.events - stats.stored)
    received.add_metric(["ignored"], stats.ignored)
    return [requests, received]


def _worker_families(stats: WorkerStats) -> list[Metric]:
    def counter(name: str, text: str, value: int) -> CounterMetricFamily:
        return CounterMetricFamily(name, text, value=value)

    lookups = CounterMetricFamily(
        "syncd_event_getcontact_calls_total",
        "getContact look-ups of queued contacts by result: found, not_found (Selzy does not know"
        " the address), unreadable (a status nobody documented: left to the export), refused (an"
        " error about that one contact). Failed calls fail the pass instead.",
        labels=["result"],
    )
    found = stats.fetched - stats.not_found - stats.unreadable
    for result, n in (
        ("found", found),
        ("not_found", stats.not_found),
        ("unreadable", stats.unreadable),
        ("refused", stats.refused),
    ):
        lookups.add_metric([result], n)
    deferred = CounterMetricFamily(
        "syncd_event_batches_deferred_total",
        "Batches of queued contacts left for a later pass: busy (a run held the job's lock),"
        " superseded (a run started while they were looked up), rate_limit (the API key's rate"
        " limit had no room for getContact).",
        labels=["reason"],
    )
    deferred.add_metric(["busy"], stats.busy)
    deferred.add_metric(["superseded"], stats.superseded)
    deferred.add_metric(["rate_limit"], stats.throttled)
    return [
        counter(
            "syncd_events_routed_total",
            "Stored events the event worker routed to the jobs they concern.",
            stats.routed,
        ),
        counter(
            "syncd_event_contacts_applied_total",
            "Queued contacts the event worker applied: getContact's answer written into the"
            " ledger and the writeback columns under the job's lock.",
            stats.applied,
        ),
        counter(
            "syncd_event_contacts_changed_total",
            "Applied contacts whose ledger view or local row changed.",
            stats.changed,
        ),
        counter(
            "syncd_event_rows_written_back_total",
            "Local rows whose writeback columns the event worker changed.",
            stats.written_back,
        ),
        lookups,
        deferred,
        counter(
            "syncd_event_early_runs_total",
            "Early runs asked for because a job's event backlog passed event_backlog_run.",
            stats.early_runs,
        ),
        counter("syncd_event_worker_passes_total", "Passes of the event worker.", stats.passes),
        counter(
            "syncd_event_worker_failures_total",
            "Passes of the event worker that failed (PostgreSQL or Selzy unreachable); the"
            " events stay stored and queued.",
            stats.failures,
        ),
    ]


def _hook_families(stats: HookStats) -> list[Metric]:
    active = GaugeMetricFamily(
        "syncd_event_hook_active",
        "1 when the last setHook or listHooks check left the event handler registered and active"
        " in Selzy; 0 before the first, after a failed one, or for a status nobody documented.",
    )
    active.add_metric([], 1.0 if stats.registered else 0.0)
    return [
        active,
        CounterMetricFamily(
            "syncd_event_hook_checks_total",
            "listHooks checks of the event handler (at start, then hourly).",
            value=stats.checks,
        ),
        CounterMetricFamily(
            "syncd_event_hook_registrations_total",
            "setHook registrations of the event URL (at start; again when listHooks no longer"
            " showed it, or showed other events).",
            value=stats.registrations,
        ),
        CounterMetricFamily(
            "syncd_event_hook_reactivations_total",
            "Event handlers Selzy had stopped (after 24 h of failed deliveries), re-activated.",
            value=stats.reactivations,
        ),
        CounterMetricFamily(
            "syncd_event_hook_failures_total",
            "Registrations or checks of the event handler that failed (retried a minute later).",
            value=stats.failures,
        ),
    ]


def _store_families(reading: EventReading) -> list[Metric]:
    backlog = GaugeMetricFamily(
        "syncd_event_backlog_contacts",
        "Contacts queued with events not applied yet, per job the worker serves (read from"
        " syncd.event_queue at scrape time; no samples when PostgreSQL did not answer).",
        labels=["job"],
    )
    oldest = GaugeMetricFamily(
        "syncd_event_backlog_oldest_timestamp_seconds",
        "When the oldest contact of the job's event queue was queued, Unix time (while the"
        " queue is not empty).",
        labels=["job"],
    )
    if reading.backlog is not None:
        for job in reading.jobs:
            backlog.add_metric([job], reading.backlog.get(job, 0))
            if reading.backlog.get(job) and job in reading.oldest:
                oldest.add_metric([job], reading.oldest[job])
    unrouted = GaugeMetricFamily(
        "syncd_events_unrouted",
        "Stored events the worker has not routed to the jobs yet (read at scrape time).",
    )
    if reading.unrouted is not None:
        unrouted.add_metric([], reading.unrouted)
    return [backlog, oldest, unrouted]


class EventCollector(Collector):
    """The event families for the registry; `reading` is set by `DaemonMetrics.expose`."""

    def __init__(self, counters: EventCounters) -> None:
        self.counters = counters
        self.reading = EventReading()

    def describe(self) -> Iterable[Metric]:
        # names for the registry's duplicate check (the stats are plain counters: cheap to read)
        return event_families(self.counters, EventReading())

    def collect(self) -> Iterable[Metric]:
        return event_families(self.counters, self.reading)
