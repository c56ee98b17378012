"""The alert decision, table-driven and without I/O: one alert per change of a job's health,
quarantine or rejected share (up and back down), nothing for a run that changes nothing or
says nothing (interrupted), and never a word of an error's message in an alert."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from syncd.alerts.model import (
    Alert,
    error_type,
    fold,
    snapshot,
    stale,
    stale_alert,
    transitions,
)
from syncd.config import AlertsConfig
from syncd.db import COUNT_COLUMNS, RunRecord

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONFIG = AlertsConfig(command="true", quarantine_alert=100, rejected_alert_fraction=0.05)


def run(
    run_id: int, status: str, *, error: str | None = None, reason: str | None = None, **counts: int
) -> RunRecord:
    at = T0 + timedelta(minutes=15 * run_id)
    return RunRecord(
        id=run_id,
        job="newsletter",
        started_at=at - timedelta(seconds=30),
        finished_at=at,
        heartbeat_at=at,
        status=status,
        dry_run=False,
        allow_mass_delete=False,
        trigger="schedule",
        host="h",
        pid=1,
        counts={name: counts.get(name, 0) for name in COUNT_COLUMNS},
        blocked_reason=reason,
        error=error if error is not None else ("AuthError: nope" if status == "failed" else None),
    )


def kinds(alerts: Sequence[Alert]) -> list[str]:
    return [a.kind for a in alerts]


def sequence(runs: Sequence[RunRecord], config: AlertsConfig = CONFIG) -> list[list[str]]:
    """The alert kinds of each run of `runs`, as after_run would decide them one by one."""
    return [
        kinds(transitions(fold(runs[:i]), snapshot(current), config))
        for i, current in enumerate(runs)
    ]


STATUSES = [None, "succeeded", "failed", "blocked", "interrupted"]
HEALTH = {
    None: "ok",
    "interrupted": "ok",
    "succeeded": "ok",
    "failed": "failing",
    "blocked": "blocked",
}
EXPECTED = {
    ("ok", "ok"): [],
    ("ok", "failing"): ["failing"],
    ("ok", "blocked"): ["blocked"],
    ("failing", "ok"): ["recovered"],
    ("failing", "failing"): [],
    ("failing", "blocked"): ["blocked"],
    ("blocked", "ok"): ["recovered"],
    ("blocked", "failing"): ["failing"],
    ("blocked", "blocked"): [],
}


@pytest.mark.parametrize("before", STATUSES)
@pytest.mark.parametrize("after", STATUSES[1:])
def test_every_pair_of_states_gives_one_alert_exactly_when_the_state_changes(
    before: str | None, after: str
) -> None:
    history = [run(1, before)] if before else []
    current = run(2, after)
    got = kinds(transitions(fold(history), snapshot(current), CONFIG))
    expected = [] if after == "interrupted" else EXPECTED[HEALTH[before], HEALTH[after]]
    assert got == expected


def test_a_failing_then_recovering_sequence_alerts_once_per_change() -> None:
    runs = [
        run(1, "succeeded", added=3),
        run(2, "failed"),
        run(3, "failed", error="TransportError: boom"),
        run(4, "interrupted", error="the run was cancelled"),
        run(5, "failed"),
        run(6, "blocked", reason="2 deletions exceed max_deletes=1"),
        run(7, "blocked", reason="2 deletions exceed max_deletes=1"),
        run(8, "succeeded", deleted=2),
        run(9, "succeeded"),
    ]
    assert sequence(runs) == [[], ["failing"], [], [], [], ["blocked"], [], ["recovered"], []]


@pytest.mark.parametrize("between", ["interrupted", "failed"])
def test_a_run_that_knows_nothing_of_a_part_keeps_the_state_before_it(between: str) -> None:
    """An interrupted run says nothing; a failed one says nothing of the counts."""
    runs = [
        run(1, "succeeded", quarantined=150),
        run(2, between),
        run(3, "succeeded", quarantined=150),
    ]
    got = sequence(runs)
    assert got[0] == ["quarantine_high"]
    assert got[2] == ([] if between == "interrupted" else ["recovered"])


def test_an_interrupted_run_between_two_failures_is_no_recovery() -> None:
    assert sequence([run(1, "failed"), run(2, "interrupted"), run(3, "failed")]) == [
        ["failing"],
        [],
        [],
    ]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (
            [0, 99, 100, 150, 100, 99, 40, 100],
            [[], [], ["quarantine_high"], [], [], ["quarantine_resolved"], [], ["quarantine_high"]],
        ),
        ([250], [["quarantine_high"]]),  # the first run of a job can alert
    ],
)
def test_quarantine_alerts_when_it_reaches_the_threshold_and_once_back_below(
    counts: list[int], expected: list[list[str]]
) -> None:
    runs = [run(i, "succeeded", quarantined=n) for i, n in enumerate(counts, start=1)]
    assert sequence(runs) == expected


def test_a_failed_run_with_partial_counts_does_not_move_the_quarantine() -> None:
    runs = [
        run(1, "succeeded", quarantined=150),
        run(2, "failed", quarantined=0),  # stopped before its plan: its counts mean nothing
        run(3, "succeeded", quarantined=150),
    ]
    assert sequence(runs) == [["quarantine_high"], ["failing"], ["recovered"]]


def test_a_blocked_run_measures_the_quarantine_too() -> None:
    runs = [run(1, "blocked", quarantined=120), run(2, "succeeded", quarantined=0)]
    assert sequence(runs) == [["blocked", "quarantine_high"], ["recovered", "quarantine_resolved"]]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # (rejected, added): 1 of 2 is noise; 10 of 100 passes 5 %; exactly 5 % does not
        ([(1, 1)], [[]]),
        ([(10, 90)], [["rejected_high"]]),
        ([(5, 95)], [[]]),
        ([(10, 90), (20, 80), (5, 95)], [["rejected_high"], [], ["rejected_resolved"]]),
        # a small run that rejected some rows says nothing; one that rejected none resolves
        ([(10, 90), (2, 1), (0, 3)], [["rejected_high"], [], ["rejected_resolved"]]),
        ([(10, 90), (0, 0)], [["rejected_high"], ["rejected_resolved"]]),
        ([(19, 0)], [[]]),
        ([(20, 0)], [["rejected_high"]]),
    ],
)
def test_rejected_share_alerts_when_it_passes_the_fraction_and_once_back_below(
    rows: list[tuple[int, int]], expected: list[list[str]]
) -> None:
    runs = [run(i, "succeeded", rejected=r, added=a) for i, (r, a) in enumerate(rows, start=1)]
    assert sequence(runs) == expected


def test_the_rejected_share_counts_every_pushed_row() -> None:
    current = snapshot(
        run(
            1,
            "succeeded",
            rejected=6,
            added=20,
            updated=20,
            opted_out=20,
            deleted=20,
            excluded=10,
            imported=4,
        )
    )
    assert (current.rejected, current.pushed) == (6, 100)
    [alert] = transitions(None, current, CONFIG)
    assert "6 of 100 rows rejected" in alert.text
    assert "6.0%" in alert.text
    assert "alert above 5%" in alert.text


def test_fold_takes_each_part_from_the_newest_run_that_knew_it() -> None:
    state = fold(
        [
            run(1, "succeeded", rejected=30, added=70, quarantined=5),
            run(2, "succeeded", rejected=1, added=1, quarantined=120),
            run(3, "failed"),
            run(4, "interrupted"),
        ]
    )
    assert state is not None
    assert (state.state, state.quarantined, state.rejected, state.pushed) == (
        "failing",
        120,
        30,
        100,
    )


CONTACTS = ("alice@example.com", "+79001234567", "79001234567")


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ("AuthError: invalid api key for alice@example.com", "AuthError"),
        ("configuration: jobs[0].table: no table public.x", "configuration"),
        ("internal error ValueError: +79001234567 is odd", "internal error ValueError"),
        ("the run exceeded run_timeout=3600s", "the run exceeded run_timeout=3600s"),
        ("alice@example.com: refused", "error"),
        ("contact 79001234567 refused", "error"),
        ("(weird) text", "error"),
        ("", None),
        (None, None),
    ],
)
def test_only_the_type_of_an_error_is_kept(error: str | None, shown: str | None) -> None:
    assert error_type(error) == shown


def test_no_alert_carries_an_error_message() -> None:
    runs = [
        run(1, "failed", error="CallRefused: Selzy refused alice@example.com (+79001234567)"),
        run(2, "succeeded"),
    ]
    alerts = [
        a for i, r in enumerate(runs) for a in transitions(fold(runs[:i]), snapshot(r), CONFIG)
    ]
    assert kinds(alerts) == ["failing", "recovered"]
    assert "CallRefused" in alerts[0].text
    for alert in alerts:
        body = json.dumps(alert.as_json())
        assert not [c for c in CONTACTS if c in body]
        assert "Selzy refused" not in alert.text


def test_an_alert_is_one_plain_line_naming_the_job_its_state_and_where_to_look() -> None:
    [failing] = transitions(None, snapshot(run(7, "failed")), CONFIG)
    assert "\n" not in failing.text
    assert "newsletter" in failing.text
    assert "failing" in failing.text
    assert "syncd status --job newsletter" in failing.text
    reason = "1200 deletions exceed max_deletes=1000"
    [blocked] = transitions(None, snapshot(run(8, "blocked", reason=reason)), CONFIG)
    assert reason in blocked.text
    assert "--allow-mass-delete" in blocked.text
    [recovered] = transitions(
        fold([run(8, "blocked", reason=reason)]),
        snapshot(run(9, "succeeded", deleted=1200)),
        CONFIG,
    )
    assert "deleted 1200" in recovered.text
    assert "after blocked" in recovered.text


def test_the_json_form_has_the_documented_keys() -> None:
    [alert] = transitions(None, snapshot(run(3, "failed")), CONFIG)
    data: dict[str, Any] = alert.as_json()
    assert set(data) == {"job", "kind", "severity", "text", "run_id", "at"}
    assert (data["job"], data["kind"], data["severity"], data["run_id"]) == (
        "newsletter",
        "failing",
        "error",
        3,
    )
    assert datetime.fromisoformat(data["at"]) == T0 + timedelta(minutes=45)


PERIOD = 900.0


@pytest.mark.parametrize(
    ("last_success_ago", "since_ago", "period", "expected"),
    [
        (44 * 60, None, PERIOD, False),
        (45 * 60, None, PERIOD, False),
        (46 * 60, None, PERIOD, True),
        (None, None, PERIOD, False),  # never succeeded, no starting point: never stale
        (None, 46 * 60, PERIOD, True),  # never succeeded since the daemon started, 3 periods
        (None, 10 * 60, PERIOD, False),
        (10 * 3600, None, None, False),  # not scheduled
        (10 * 3600, None, 0.0, False),
    ],
)
def test_a_job_is_stale_after_three_periods_without_success(
    last_success_ago: int | None, since_ago: int | None, period: float | None, expected: bool
) -> None:
    now = T0
    last = now - timedelta(seconds=last_success_ago) if last_success_ago is not None else None
    since = now - timedelta(seconds=since_ago) if since_ago is not None else None
    assert stale(last, period, now, since=since) is expected


def test_a_stale_alert_says_how_long() -> None:
    alert = stale_alert("newsletter", T0 - timedelta(hours=3, minutes=5), PERIOD, T0)
    assert alert.kind == "stale"
    assert alert.severity == "error"
    assert "3 periods of 15m" in alert.text
    assert "3h05m ago" in alert.text
