"""Alerts as an operator sees them, through the real CLI against the sandbox, a fresh database
and a real local webhook receiver plus a command: `syncd sync` runs that fail, fail again, get
blocked by a guard and recover give exactly one alert per state change on each channel, none
carrying a contact, the API key, the DSN or Selzy's error text; `syncd alert-test` reaches every
channel and says which did not take it."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.cli_harness import Cli
from tests.integration.alerts.receiver import Receiver, serving
from tests.integration.reconcile.harness import Harness, harness_fixture  # noqa: F401 - fixture

CONTACTS = [
    {"email": "alice.alert@example.com", "phone": "+79001234567", "first_name": "Alice"},
    {"email": "bob.alert@example.com", "phone": "+79007654321", "first_name": "Bobby"},
    {"email": "carol.alert@example.com", "phone": "+79005550000", "first_name": "Carol"},
]
TOKEN = "T0KEN-s3cret-webhook-path"
# Writes each alert it gets on stdin as one line to the file named by its argument.
PAGER = "import sys\nwith open(sys.argv[1], 'a') as fh:\n    fh.write(sys.stdin.read())\n"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as found:
        yield found


def with_alerts(cli: Cli, receiver: Receiver, command: str) -> Cli:
    alerts = (
        "\n[alerts]\n"
        f'webhook_url = "{receiver.url(f"hooks/{TOKEN}")}"\n'
        f"command = {json.dumps(command)}\n"
        "timeout = 5\n"
        "attempts = 2\n"
    )
    with cli.config.open("a", encoding="utf-8") as fh:
        fh.write(alerts)
    return cli


def pager(tmp_path: Path) -> tuple[str, Path]:
    script, out = tmp_path / "pager.py", tmp_path / "paged.jsonl"
    script.write_text(PAGER, encoding="utf-8")
    return " ".join(map(shlex.quote, (sys.executable, str(script), str(out)))), out


def forbidden(harness: Harness) -> list[str]:
    """What no alert may contain: the test's contacts, the API key, the DSN, Selzy's text."""
    assert harness.db_config.dsn is not None
    values = [harness.sandbox.api_key, harness.db_config.dsn.reveal(), "denied for"]
    for contact in CONTACTS:
        values += [contact["email"], contact["phone"], contact["phone"][1:], contact["first_name"]]
    return values


async def test_a_failing_blocked_recovering_sequence_gives_one_alert_per_state_change(
    harness: Harness, receiver: Receiver, tmp_path: Path
) -> None:
    command, paged = pager(tmp_path)
    cli = with_alerts(Cli.write(harness, tmp_path, max_deletes=1), receiver, command)
    await harness.insert(*CONTACTS)

    outputs = []
    first = await cli.sync()
    assert first.code == 0, first
    assert receiver.bodies == []

    await harness.sandbox.fault(
        method="async/exportContacts",
        kind="error",
        code="invalid_api_key",
        message=f"access denied for {CONTACTS[0]['email']} ({CONTACTS[0]['phone']})",
        times=-1,
    )
    for _ in range(2):  # failing, then failing again: one alert
        failed = await cli.sync()
        assert failed.code == 1, failed
        outputs.append(failed)
    assert len(receiver.bodies) == 1, outputs
    last = await cli.last_run()
    assert CONTACTS[0]["email"] in last["error"], "the run's error names a contact: no alert may"

    await harness.sandbox.clear_faults()
    await harness.db.execute("DELETE FROM public.contacts WHERE first_name <> 'Alice'")
    for _ in range(2):  # blocked by max_deletes, twice: one alert
        blocked = await cli.sync()
        assert blocked.code == 3, blocked
        outputs.append(blocked)
    assert len(receiver.bodies) == 2

    recovered = await cli.sync("--allow-mass-delete")
    assert recovered.code == 0, recovered
    steady = await cli.sync()
    assert steady.code == 0, steady
    outputs += [recovered, steady]

    texts = receiver.texts
    assert len(texts) == 3, texts
    assert "is failing" in texts[0]
    assert "AuthError" in texts[0]
    assert "blocked by a safety guard" in texts[1]
    assert "max_deletes=1" in texts[1]
    assert "recovered" in texts[2]
    assert "deleted 2" in texts[2]
    commanded = [json.loads(line) for line in paged.read_text(encoding="utf-8").splitlines()]
    assert [a["kind"] for a in commanded] == ["failing", "blocked", "recovered"]
    assert [a["text"] for a in commanded] == texts
    assert all(a["job"] == harness.job.name and a["run_id"] for a in commanded)

    everything = json.dumps(receiver.payloads()) + paged.read_text(encoding="utf-8")
    assert [value for value in forbidden(harness) if value in everything] == []
    for result in outputs:
        assert TOKEN not in result.out + result.err, "the webhook URL holds a token"
        assert [e["kind"] for e in result.events("alert_sent")] in (
            [],
            ["failing"] * 2,
            ["blocked"] * 2,
            ["recovered"] * 2,
        )


async def test_alert_test_sends_a_sample_to_every_channel(
    harness: Harness, receiver: Receiver, tmp_path: Path
) -> None:
    command, paged = pager(tmp_path)
    cli = with_alerts(Cli.write(harness, tmp_path), receiver, command)
    result = await cli.run("alert-test")
    assert result.code == 0, result
    assert "ok   webhook" in result.out
    assert "ok   command" in result.out
    [text] = receiver.texts
    assert text.startswith("syncd: test alert from ")
    [line] = paged.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["kind"] == "test"
    assert TOKEN not in result.out + result.err


async def test_alert_test_fails_when_a_channel_does_not_take_the_alert(
    harness: Harness, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.statuses = [404]
    cli = with_alerts(Cli.write(harness, tmp_path), receiver, str(tmp_path / "no-such-pager"))
    result = await cli.run("alert-test")
    assert result.code == 1, result
    assert "FAIL webhook" in result.out
    assert "FAIL command" in result.out
    failed = result.events("alert_delivery_failed")
    assert sorted((e["channel"], e["error_type"]) for e in failed) == [
        ("command", "FileNotFoundError"),
        ("webhook", "http_404"),
    ]
    assert TOKEN not in result.out + result.err


async def test_alert_test_without_an_alerts_section_is_a_configuration_error(
    harness: Harness, tmp_path: Path
) -> None:
    result = await Cli.write(harness, tmp_path).run("alert-test")
    assert result.code == 78, result
    assert "no [alerts] section" in result.err
