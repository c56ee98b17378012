"""The fast opt-out passes' Prometheus families (jobs with `opt_out_latency`): what each job's
passes did since start, read at scrape time from the daemon's per-job stats. No I/O.

A collector of its own, registered by the daemon from the start: a job gets its series (from 0)
as soon as its passes start, and a daemon without `opt_out_latency` serves no samples of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class PassCounts(Protocol):
    """What syncd.daemon.optouts.PassStats counts (web imports nothing of the daemon)."""

    passes: int
    skipped: int
    runs: int
    opted_out: int
    failures: int


# name, help, PassCounts attribute
FAMILIES = (
    ("syncd_opt_out_passes", "Fast opt-out passes that held the job's lock and looked", "passes"),
    (
        "syncd_opt_out_passes_skipped",
        "Fast opt-out passes left out: a run of the job in flight or its lock held elsewhere",
        "skipped",
    ),
    ("syncd_opt_out_pass_runs", "Fast opt-out passes that pushed (each recorded as a run)", "runs"),
    (
        "syncd_opt_out_contacts",
        "Contacts a fast opt-out pass made unmailable in Selzy",
        "opted_out",
    ),
    (
        "syncd_opt_out_pass_failures",
        "Fast opt-out passes that failed (PostgreSQL or Selzy unreachable, the pass's run failed)",
        "failures",
    ),
)


def optout_families(stats: Mapping[str, PassCounts]) -> list[Metric]:
    metrics: list[Metric] = []
    for name, documentation, attribute in FAMILIES:
        family = CounterMetricFamily(name, documentation, labels=["job"])
        for job in sorted(stats):
            family.add_metric([job], getattr(stats[job], attribute))
        metrics.append(family)
    return metrics


class OptOutCollector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, PassCounts]]) -> None:
        self._stats = stats

    def describe(self) -> Iterable[Metric]:
        return optout_families({})

    def collect(self) -> Iterable[Metric]:
        return optout_families(self._stats())
