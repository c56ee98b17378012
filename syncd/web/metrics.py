"""Prometheus text exposition (format 0.0.4), written by hand: the in-process run counters the
daemon feeds, and their rendering. Pure: no I/O, no clock, no knowledge of HTTP.

Counters are per process (Prometheus' usual model: `rate()` copes with restarts);
`syncd_last_success_timestamp_seconds` comes from syncd.runs and so covers every process.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from syncd.db import COUNT_COLUMNS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# syncd.runs count columns that describe what happened to contacts (the `action` label).
CONTACT_COUNTS = tuple(
    name for name in COUNT_COLUMNS if name not in ("local_count", "remote_count", "api_calls")
)
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    samples: Sequence[tuple[str, Labels, float]]  # (suffix, labels, value)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in family.samples:
            label_text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
            name = family.name + suffix
            lines.append(
                f"{name}{{{label_text}}} {format_value(value)}"
                if labels
                else f"{name} {format_value(value)}"
            )
    return "\n".join(lines) + "\n"


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
    )  # job -> bucket counts (+Inf last)
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


def families(
    stats: RunStats, jobs: Sequence[str], last_success: Mapping[str, float | None], *, healthy: bool
) -> list[Family]:
    """Every metric family; `last_success` maps job -> epoch seconds of its last success."""
    duration_samples: list[tuple[str, Labels, float]] = []
    for job in jobs:
        buckets = stats.durations.get(job, [0] * (len(DURATION_BUCKETS) + 1))
        for bound, count in zip((*DURATION_BUCKETS, math.inf), buckets, strict=True):
            le = "+Inf" if math.isinf(bound) else format_value(bound)
            duration_samples.append(("_bucket", (("job", job), ("le", le)), count))
        duration_samples.append(("_sum", (("job", job),), stats.duration_sum.get(job, 0.0)))
        duration_samples.append(("_count", (("job", job),), buckets[-1]))
    return [
        Family(
            "syncd_up",
            "gauge",
            "1 while the daemon runs; 0 when /healthz would say unhealthy.",
            [("", (), 1.0 if healthy else 0.0)],
        ),
        Family(
            "syncd_runs_total",
            "counter",
            "Runs finished by this process, by job and status.",
            [("", (("job", j), ("status", s)), n) for (j, s), n in sorted(stats.runs.items())],
        ),
        Family(
            "syncd_contacts_total",
            "counter",
            "Contacts per action over the runs of this process.",
            [("", (("job", j), ("action", a)), n) for (j, a), n in sorted(stats.contacts.items())],
        ),
        Family(
            "syncd_api_calls_total",
            "counter",
            "Selzy API calls (HTTP attempts) made by runs.",
            [("", (("job", j),), stats.api_calls[j]) for j in jobs],
        ),
        Family(
            "syncd_api_errors_total",
            "counter",
            "Failed Selzy API attempts (retried ones included) by Selzy's error code, http_NNN,"
            " transport or protocol.",
            [("", (("job", j), ("code", c)), n) for (j, c), n in sorted(stats.api_errors.items())],
        ),
        Family(
            "syncd_run_duration_seconds",
            "histogram",
            "Duration of runs by this process.",
            duration_samples,
        ),
        Family(
            "syncd_last_run_duration_seconds",
            "gauge",
            "Duration of the job's last run here.",
            [("", (("job", j),), stats.last_duration[j]) for j in jobs if j in stats.last_duration],
        ),
        Family(
            "syncd_job_running",
            "gauge",
            "1 while this process runs the job.",
            [("", (("job", j),), 1.0 if stats.running.get(j) else 0.0) for j in jobs],
        ),
        Family(
            "syncd_last_success_timestamp_seconds",
            "gauge",
            "End of the job's last successful run (any process), Unix time.",
            [("", (("job", j),), v) for j in jobs if (v := last_success.get(j)) is not None],
        ),
    ]
