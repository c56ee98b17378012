"""/healthz's rule and the Prometheus text rendering (pure parts of syncd.web)."""

from __future__ import annotations

import math
import re

from syncd.web.health import JobRuns, evaluate, max_success_age
from syncd.web.metrics import Family, RunStats, escape_label, families, format_value, render


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


def test_label_values_and_numbers_follow_the_exposition_format() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert format_value(3.0) == "3"
    assert format_value(0.25) == "0.25"
    assert format_value(math.inf) == "+Inf"
    assert format_value(math.nan) == "NaN"
    text = render([Family("x_total", "counter", "Help.", [("", (("job", 'we"ird'),), 2)])])
    assert text == '# HELP x_total Help.\n# TYPE x_total counter\nx_total{job="we\\"ird"} 2\n'


def test_runs_feed_counters_histogram_and_last_success() -> None:
    stats = RunStats()
    stats.record("news", "succeeded", {"added": 3, "updated": 2, "api_calls": 7}, 2.5)
    stats.record("news", "failed", {"api_calls": 1}, 0.5, {"retry_later": 2, "http_503": 1})
    stats.record("news", "succeeded", {}, 0.5, {"retry_later": 1})
    stats.record("news", "busy", {}, 0.0)
    text = render(families(stats, ["news"], {"news": 1700000000.0}, healthy=True))
    assert 'syncd_runs_total{job="news",status="succeeded"} 2' in text
    assert 'syncd_runs_total{job="news",status="busy"} 1' in text
    assert 'syncd_contacts_total{job="news",action="added"} 3' in text
    assert 'syncd_api_calls_total{job="news"} 8' in text
    assert 'syncd_api_errors_total{job="news",code="retry_later"} 3' in text
    assert 'syncd_api_errors_total{job="news",code="http_503"} 1' in text
    assert 'syncd_run_duration_seconds_bucket{job="news",le="1"} 2' in text
    assert 'syncd_run_duration_seconds_bucket{job="news",le="5"} 3' in text
    assert 'syncd_run_duration_seconds_bucket{job="news",le="+Inf"} 3' in text
    assert 'syncd_run_duration_seconds_count{job="news"} 3' in text
    assert 'syncd_run_duration_seconds_sum{job="news"} 3.5' in text
    assert 'syncd_last_success_timestamp_seconds{job="news"} 1700000000' in text
    assert "syncd_up 1" in text
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"\\]*(\\.[^"\\]*)*",?)*\})? [-+0-9.eInfNa]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line
