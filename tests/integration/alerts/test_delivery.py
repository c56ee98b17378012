"""Alert delivery against a real local webhook receiver and a real command: the POST body, retries
with back-off until the channel takes the alert, a channel that keeps failing logged once per
alert and never raising, the URL (a token) never logged, and the engine sending in the
background, in order, up to its close deadline."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from syncd.alerts import AlertEngine, CommandChannel, WebhookChannel, deliver
from syncd.alerts.model import Alert
from syncd.api import RetryPolicy
from syncd.config import AlertsConfig, Secret
from tests.integration.alerts.receiver import Receiver, serving

FAST = RetryPolicy(max_attempts=3, base=0.01, cap=0.05)
ALERT = Alert(
    job="newsletter",
    kind="failing",
    text="syncd: job newsletter is failing: run 7 failed (AuthError)",
    at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    run_id=7,
)

# Writes its stdin to OUT (appending one line per call) and whether SELZY_API_KEY reached it;
# exits with the codes listed after OUT in turn (the last repeats), then 0.
SCRIPT = """
import os, sys
out, codes = sys.argv[1], [int(c) for c in sys.argv[2:]] or [0]
data = sys.stdin.read()
with open(out, "a", encoding="utf-8") as fh:
    fh.write(data.strip() + "\\n")
with open(out, encoding="utf-8") as fh:
    calls = len(fh.readlines())
with open(out + ".env", "w", encoding="utf-8") as fh:
    fh.write("key" if "SELZY_API_KEY" in os.environ else "no key")
sys.exit(codes[min(calls - 1, len(codes) - 1)])
"""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as found:
        yield found


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def script_command(tmp_path: Path, *codes: int) -> tuple[str, Path]:
    script = tmp_path / "page.py"
    script.write_text(SCRIPT, encoding="utf-8")
    out = tmp_path / "alerts.jsonl"
    words = [sys.executable, str(script), str(out), *map(str, codes)]
    return " ".join(map(shlex.quote, words)), out


async def send(channel: WebhookChannel | CommandChannel, alert: Alert = ALERT) -> bool:
    try:
        return await deliver(channel, alert, FAST)
    finally:
        await channel.aclose()


async def test_the_webhook_gets_one_post_with_the_text_as_json(
    receiver: Receiver, logs: list[dict[str, Any]]
) -> None:
    assert await send(WebhookChannel(Secret(receiver.url()), timeout=5))
    assert receiver.payloads() == [{"text": ALERT.text}]
    assert receiver.content_types == ["application/json"]
    [sent] = events(logs, "alert_sent")
    assert (sent["channel"], sent["kind"], sent["attempts"]) == ("webhook", "failing", 1)


async def test_a_webhook_that_fails_twice_is_retried_until_it_takes_the_alert(
    receiver: Receiver, logs: list[dict[str, Any]]
) -> None:
    receiver.statuses = [500, 502, 200]
    assert await send(WebhookChannel(Secret(receiver.url()), timeout=5))
    assert receiver.texts == [ALERT.text] * 3
    assert [e["attempts"] for e in events(logs, "alert_sent")] == [3]
    assert events(logs, "alert_delivery_failed") == []


async def test_a_webhook_that_always_fails_is_logged_once_and_never_raises(
    receiver: Receiver, logs: list[dict[str, Any]]
) -> None:
    receiver.statuses = [503]
    url = receiver.url()
    assert not await send(WebhookChannel(Secret(url), timeout=5))
    assert len(receiver.bodies) == FAST.max_attempts
    [failed] = events(logs, "alert_delivery_failed")
    assert failed["channel"] == "webhook"
    assert (failed["attempts"], failed["error_type"]) == (3, "http_503")
    assert "T0KEN" not in json.dumps(logs, default=str), "the URL holds a token: never logged"


async def test_a_refusal_of_the_webhook_is_not_retried(
    receiver: Receiver, logs: list[dict[str, Any]]
) -> None:
    receiver.statuses = [404]
    assert not await send(WebhookChannel(Secret(receiver.url()), timeout=5))
    assert len(receiver.bodies) == 1
    [failed] = events(logs, "alert_delivery_failed")
    assert (failed["attempts"], failed["error_type"]) == (1, "http_404")


async def test_a_silent_webhook_times_out_and_is_retried(
    receiver: Receiver, logs: list[dict[str, Any]]
) -> None:
    receiver.delay = 2.0
    assert not await send(WebhookChannel(Secret(receiver.url()), timeout=0.2))
    assert len(receiver.bodies) == FAST.max_attempts
    [failed] = events(logs, "alert_delivery_failed")
    assert failed["error_type"] == "timeout"


async def test_an_unreachable_webhook_is_logged_and_never_raises(
    logs: list[dict[str, Any]],
) -> None:
    async with serving() as gone:
        url = gone.url()
    assert not await send(WebhookChannel(Secret(url), timeout=2))
    [failed] = events(logs, "alert_delivery_failed")
    assert failed["attempts"] == FAST.max_attempts
    assert "T0KEN" not in json.dumps(logs, default=str)


async def test_the_command_gets_the_alert_as_json_on_stdin_without_syncd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELZY_API_KEY", "a-key-the-command-must-not-see")
    command, out = script_command(tmp_path)
    assert await send(CommandChannel(command, timeout=10))
    [line] = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(line) == {
        "job": "newsletter",
        "kind": "failing",
        "severity": "error",
        "text": ALERT.text,
        "run_id": 7,
        "at": "2024-05-01T12:00:00+00:00",
    }
    assert (tmp_path / "alerts.jsonl.env").read_text(encoding="utf-8") == "no key"


async def test_a_command_that_fails_twice_is_retried_until_it_succeeds(
    tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    command, out = script_command(tmp_path, 1, 2, 0)
    assert await send(CommandChannel(command, timeout=10))
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    assert [e["attempts"] for e in events(logs, "alert_sent")] == [3]


async def test_a_command_that_always_fails_is_logged_with_its_exit_status(
    tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    command, _out = script_command(tmp_path, 4)
    assert not await send(CommandChannel(command, timeout=10))
    [failed] = events(logs, "alert_delivery_failed")
    assert (failed["channel"], failed["attempts"], failed["error_type"]) == ("command", 3, "exit_4")


async def test_a_missing_command_is_logged_and_not_retried(
    tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    assert not await send(CommandChannel(str(tmp_path / "no-such-pager"), timeout=10))
    [failed] = events(logs, "alert_delivery_failed")
    assert (failed["attempts"], failed["error_type"]) == (1, "FileNotFoundError")


async def test_a_command_that_hangs_is_killed_at_the_timeout(
    logs: list[dict[str, Any]],
) -> None:
    command = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)'"
    assert not await send(CommandChannel(command, timeout=0.3))
    [failed] = events(logs, "alert_delivery_failed")
    assert (failed["attempts"], failed["error_type"]) == (3, "timeout")


async def test_the_engine_sends_every_alert_to_every_channel_in_order(
    receiver: Receiver, tmp_path: Path
) -> None:
    command, out = script_command(tmp_path)
    config = AlertsConfig(webhook_url=Secret(receiver.url()), command=command, timeout=10)
    receiver.statuses = [500, 200]  # the first alert is retried: the second must still be second
    kinds = ("failing", "blocked", "recovered")
    alerts = [
        Alert("newsletter", kind, f"{kind} text", ALERT.at, i) for i, kind in enumerate(kinds)
    ]
    engine = AlertEngine(config, retry=FAST)
    engine.publish(alerts)
    await engine.aclose()
    assert receiver.texts == ["failing text", "failing text", "blocked text", "recovered text"]
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["kind"] for line in lines] == list(kinds)


async def test_closing_the_engine_abandons_what_is_not_delivered_by_its_deadline(
    receiver: Receiver, logs: list[dict[str, Any]]
) -> None:
    receiver.delay = 5.0
    engine = AlertEngine(AlertsConfig(webhook_url=Secret(receiver.url()), timeout=10), retry=FAST)
    engine.publish([ALERT])
    await receiver.wait_for(1)
    await engine.aclose(deadline=0.2)
    [abandoned] = events(logs, "alerts_abandoned")
    assert abandoned["alerts"] == 1


async def test_send_test_reports_each_channel(receiver: Receiver, tmp_path: Path) -> None:
    config = AlertsConfig(
        webhook_url=Secret(receiver.url()), command=str(tmp_path / "missing"), timeout=5
    )
    async with AlertEngine(config, retry=FAST) as engine:
        assert await engine.send_test() == {"webhook": True, "command": False}
    [text] = receiver.texts
    assert text.startswith("syncd: test alert from ")
