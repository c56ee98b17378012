"""Schedules -> APScheduler triggers: intervals, crontab semantics (Sunday = 0), grace, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.config import JobConfig, Schedule
from syncd.errors import ConfigError
from syncd.scheduler import (
    MAX_JITTER_SECONDS,
    crontab_day_of_week,
    jitter_for,
    misfire_grace_for,
    plan_trigger,
    plan_triggers,
)

NOW = datetime(2025, 1, 6, 12, 0, 30, tzinfo=UTC)  # a Monday


def test_interval_schedule_fires_every_period_with_grace_of_one_period() -> None:
    plan = plan_trigger(Schedule("every 15m", interval_seconds=900))
    assert plan.period_seconds == 900
    assert plan.misfire_grace_seconds == 900
    assert 0 < plan.jitter_seconds <= MAX_JITTER_SECONDS
    first = plan.trigger.get_next_fire_time(None, NOW)
    second = plan.trigger.get_next_fire_time(first, first)
    # jitter moves each fire time by at most jitter_seconds, never earlier
    assert timedelta(seconds=900 - plan.jitter_seconds) <= second - first
    assert second - first <= timedelta(seconds=900 + plan.jitter_seconds)


def test_grace_is_never_below_one_second_and_jitter_is_capped() -> None:
    assert misfire_grace_for(0.2) == 1
    assert misfire_grace_for(3600) == 3600
    assert jitter_for(1) == pytest.approx(0.05)
    assert jitter_for(86400) == MAX_JITTER_SECONDS


def test_cron_schedule_period_is_measured_from_the_expression() -> None:
    plan = plan_trigger(Schedule("*/15 * * * *", cron="*/15 * * * *"), now=NOW)
    assert plan.period_seconds == 900
    assert plan.misfire_grace_seconds == 900
    fire = plan.trigger.get_next_fire_time(None, NOW)
    assert fire.minute == 15
    assert fire.hour == 12
    assert fire - datetime(2025, 1, 6, 12, 15, tzinfo=UTC) <= timedelta(seconds=plan.jitter_seconds)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("5-7", "sun,fri,sat"),
        ("0,6", "sun,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("1/3", "mon,thu"),
        ("mon-wed", "mon,tue,wed"),
        ("SAT", "sat"),
    ],
)
def test_crontab_day_of_week_uses_crontab_numbering(field: str, expected: str) -> None:
    assert crontab_day_of_week(field) == expected


def test_cron_sunday_zero_fires_on_sunday_not_monday() -> None:
    """APScheduler 3.x's own from_crontab would treat 0 as Monday."""
    plan = plan_trigger(Schedule("0 3 * * 0", cron="0 3 * * 0"), now=NOW)
    fire = plan.trigger.get_next_fire_time(None, NOW)
    assert fire.strftime("%A") == "Sunday"
    assert plan.period_seconds == 7 * 86400


@pytest.mark.parametrize("field", ["8", "x", "5-1", "*/0"])
def test_bad_day_of_week_is_a_config_error(field: str) -> None:
    with pytest.raises(ConfigError):
        crontab_day_of_week(field)


def test_every_unschedulable_job_is_reported_at_once() -> None:
    def job(name: str, schedule: Schedule) -> JobConfig:
        return JobConfig(name, 1, "t", "email", schedule, {"email": "email"})

    with pytest.raises(ConfigError) as info:
        plan_triggers(
            [
                job("a", Schedule("every 0s", interval_seconds=0)),
                job("b", Schedule("1 2 3", cron="1 2 3")),
                job("c", Schedule("every 1m", interval_seconds=60)),
            ]
        )
    assert [p.split(":")[0] for p in info.value.problems] == [
        "jobs[0].schedule",
        "jobs[1].schedule",
    ]
