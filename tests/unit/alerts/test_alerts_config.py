"""[alerts] in the config: optional, at least one channel, every problem named by its key and
none echoing the webhook URL (it holds a token); the example documents every setting."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from syncd.config import AlertsConfig, Secret, load_config, parse_config
from syncd.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
ENV = {"SELZY_API_KEY": "k" * 32}
TOKEN = "T0KEN-abcdef-123456"
URL = f"https://hooks.example.com/services/{TOKEN}"


def config(alerts: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "jobs": [{"name": "newsletter", "list_id": 7, "table": "t", "fields": {"email": "email"}}]
    }
    if alerts is not None:
        data["alerts"] = alerts
    return data


def problems_of(alerts: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(config(alerts), environ=ENV)
    return info.value.problems


def test_without_an_alerts_section_there_are_no_alerts() -> None:
    assert parse_config(config(None), environ=ENV).alerts is None


def test_a_webhook_alone_takes_every_default_and_the_url_is_a_secret() -> None:
    alerts = parse_config(config({"webhook_url": URL}), environ=ENV).alerts
    assert alerts == AlertsConfig(webhook_url=Secret(URL))
    assert alerts.command is None
    assert (alerts.quarantine_alert, alerts.rejected_alert_fraction) == (100, 0.05)
    assert (alerts.timeout, alerts.attempts) == (10.0, 5)
    assert TOKEN not in repr(alerts)


def test_a_command_alone_is_a_channel() -> None:
    alerts = parse_config(config({"command": "/bin/page 'on call'"}), environ=ENV).alerts
    assert alerts is not None
    assert alerts.webhook_url is None
    assert alerts.command == "/bin/page 'on call'"


@pytest.mark.parametrize(
    ("alerts", "problem"),
    [
        ({}, "alerts: no channel: set webhook_url, command or both"),
        ({"webhook_url": 1}, "alerts.webhook_url: expected a string, got integer"),
        ({"webhook_url": f"ftp://x/{TOKEN}"}, "alerts.webhook_url: expected an http:// or"),
        ({"webhook_url": f"hooks/{TOKEN}"}, "alerts.webhook_url: expected an http:// or"),
        ({"webhook_url": f"http://[{TOKEN}"}, "alerts.webhook_url: expected an http:// or"),
        ({"webhook_url": f"{URL}#x"}, "alerts.webhook_url: must not contain a fragment"),
        ({"command": "  "}, "alerts.command: is empty"),
        ({"command": "page 'oops"}, "alerts.command: cannot be split into words"),
        ({"command": "x", "quarantine_alert": 0}, "alerts.quarantine_alert: must be at least 1"),
        ({"command": "x", "rejected_alert_fraction": 0}, "alerts.rejected_alert_fraction: must"),
        ({"command": "x", "rejected_alert_fraction": 1.5}, "alerts.rejected_alert_fraction: mus"),
        ({"command": "x", "timeout": 0}, "alerts.timeout: must be greater than 0"),
        ({"command": "x", "attempts": 0}, "alerts.attempts: must be between 1 and 20"),
        ({"command": "x", "attempts": 2.5}, "alerts.attempts: expected an integer, got float"),
        ({"command": "x", "webhok_url": URL}, "alerts.webhok_url: unknown key (did you mean"),
    ],
)
def test_every_problem_is_named_by_its_key_and_never_shows_the_url(
    alerts: dict[str, Any], problem: str
) -> None:
    problems = problems_of(alerts)
    assert any(p.startswith(problem) for p in problems), problems
    assert not [p for p in problems if TOKEN in p]


def test_problems_of_several_keys_are_reported_at_once() -> None:
    problems = problems_of({"webhook_url": "nope", "command": "", "attempts": 0})
    assert len(problems) == 3


def test_the_example_documents_every_alerts_setting_with_its_default() -> None:
    with (REPO / "config.example.toml").open("rb") as fh:
        example = tomllib.load(fh)["alerts"]
    assert set(example) == {f.name for f in dataclasses.fields(AlertsConfig)}
    defaults = AlertsConfig()
    for key in ("quarantine_alert", "rejected_alert_fraction", "timeout", "attempts"):
        assert example[key] == getattr(defaults, key), key
    cfg = load_config(REPO / "config.example.toml", environ=ENV)
    assert cfg.alerts is not None
    assert cfg.alerts.webhook_url
    assert cfg.alerts.command
