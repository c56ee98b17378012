"""`[[jobs]] opt_out_latency`: a duration of at least a second, only beside an opt-out column;
every problem named by its key; omitted, nothing changes (None)."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.config import parse_config
from syncd.errors import ConfigError


def config(**job: Any) -> dict[str, Any]:
    return {
        "database": {"dsn": "postgresql://syncd@db.example/crm"},
        "jobs": [
            {
                "name": "newsletter",
                "list_id": 7,
                "table": "public.contacts",
                "fields": {"email": "email"},
                **job,
            }
        ],
    }


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ={})
    return info.value.problems


@pytest.mark.parametrize(
    ("value", "seconds"), [("30s", 30.0), ("1s", 1.0), ("2m", 120.0), (5, 5.0), (1.5, 1.5)]
)
def test_a_duration_is_read_as_seconds(value: Any, seconds: float) -> None:
    [job] = parse_config(config(opt_out_column="opted_out", opt_out_latency=value), environ={}).jobs
    assert job.opt_out_latency == seconds


def test_omitted_it_is_off() -> None:
    [job] = parse_config(config(opt_out_column="opted_out"), environ={}).jobs
    assert job.opt_out_latency is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "must be longer than 0 seconds, got 0"),
        (-5, "must be longer than 0 seconds, got -5"),
        ("0s", "must be longer than 0 seconds, got 0"),
        (0.5, "must be at least 1 second, got 0.5"),
        ("soon", 'expected a duration (seconds, or "30s", "15m", "24h", "7d"), got string'),
        (True, 'expected a duration (seconds, or "30s", "15m", "24h", "7d"), got boolean'),
    ],
)
def test_a_bad_value_is_named_by_its_key(value: Any, message: str) -> None:
    data = config(opt_out_column="opted_out", opt_out_latency=value)
    assert problems(data) == [f"jobs[0].opt_out_latency: {message}"]


def test_it_needs_an_opt_out_column() -> None:
    assert problems(config(opt_out_latency="30s")) == [
        "jobs[0].opt_out_latency: needs opt_out_column: it pushes that column's opt-outs"
        " between runs"
    ]


def test_a_bad_opt_out_column_is_reported_once() -> None:
    assert problems(config(opt_out_column="", opt_out_latency="30s")) == [
        "jobs[0].opt_out_column: the column name is empty"
    ]
