"""Logging: JSON lines with the agreed keys, stdlib loggers routed through the same pipeline,
contextvars merged, and no secret in any line — raw, in a URL, in an exception, or in a DSN."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from syncd.logs import configure_logging, redact, register_secret, reset_logging

KEY = "sk-live-9f8e7d6c5b4a"
DSN = "postgresql://syncd:pg-Pa55word-xyz@db.internal:5432/crm"
log = structlog.get_logger("syncd.test")


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Logging configured as JSON into a buffer, with the key and DSN registered as the CLI does."""
    stream = io.StringIO()
    register_secret(KEY)
    register_secret(DSN)
    configure_logging("debug", "json", stream=stream)
    try:
        yield stream
    finally:
        structlog.contextvars.clear_contextvars()
        reset_logging()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def assert_clean(stream: io.StringIO) -> None:
    text = stream.getvalue()
    assert text, "nothing was logged"
    assert KEY not in text
    assert "pg-Pa55word-xyz" not in text


def test_each_line_is_one_json_object_with_the_agreed_keys(output: io.StringIO) -> None:
    log.info("batch_pushed", rows=500, batch=3)
    log.warning("export_slow", waited_s=12.5)
    first, second = lines(output)
    assert list(first)[:4] == ["timestamp", "level", "event", "logger"]
    assert first["event"] == "batch_pushed"
    assert (first["level"], first["logger"], first["rows"], first["batch"]) == (
        "info",
        "syncd.test",
        500,
        3,
    )
    assert first["timestamp"].endswith("Z")  # ISO 8601, UTC
    assert second["level"] == "warning"


def test_bound_context_appears_in_every_line(output: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(job="newsletter", run_id=42)
    log.info("run_started")
    logging.getLogger("asyncpg").warning("connection lost")
    for line in lines(output):
        assert (line["job"], line["run_id"]) == ("newsletter", 42)


def test_raw_key_in_an_event_value_is_redacted(output: io.StringIO) -> None:
    log.info("oops", key=KEY, nested={"deep": [f"x{KEY}y", {"k": KEY}]}, text=f"the key is {KEY}")
    assert_clean(output)
    [line] = lines(output)
    assert line["nested"] == {"deep": ["x***y", {"k": "***"}]}


def test_key_in_a_url_query_string_is_redacted_even_when_unregistered(
    output: io.StringIO,
) -> None:
    log.info("calling", url="https://api.selzy.com/en/api/getLists?format=json&api_key=OTHERKEY1")
    [line] = lines(output)
    assert line["url"] == "https://api.selzy.com/en/api/getLists?format=json&api_key=***"


def test_dsn_passwords_are_redacted(output: io.StringIO) -> None:
    log.info(
        "connecting",
        target=DSN,
        other="postgresql://bob:unregistered-pw@h/db",
        keywords="host=db user=syncd password='s p a c e' dbname=crm",
    )
    [line] = lines(output)
    assert line["target"] == "postgresql://syncd:***@db.internal:5432/crm"
    assert line["other"] == "postgresql://bob:***@h/db"
    assert line["keywords"] == "host=db user=syncd password=*** dbname=crm"


def test_exception_message_and_traceback_are_redacted(output: io.StringIO) -> None:
    def call_selzy() -> None:
        url = f"https://api.selzy.com/en/api/importContacts?api_key={KEY}"
        raise RuntimeError(f"request to {url} failed")

    try:
        call_selzy()
    except RuntimeError:
        log.exception("import_failed")
    assert_clean(output)
    [line] = lines(output)
    assert "Traceback" in line["exception"]
    assert (
        "RuntimeError: request to https://api.selzy.com/en/api/importContacts?api_key=***"
        in (line["exception"])
    )


def test_exception_as_a_value_is_redacted(output: io.StringIO) -> None:
    log.error("failed", error=ValueError(f"bad key {KEY}"))
    assert_clean(output)
    assert lines(output)[0]["error"] == "ValueError: bad key ***"


def test_stdlib_logger_from_aiohttp_goes_through_redaction(output: io.StringIO) -> None:
    client = logging.getLogger("aiohttp.client")
    client.warning("GET %s failed: %s", f"http://h/api?api_key={KEY}", DSN)
    try:
        raise ConnectionResetError(f"reset while talking about {KEY}")
    except ConnectionResetError:
        client.error("connection error", exc_info=True)
    assert_clean(output)
    first, second = lines(output)
    assert first["logger"] == "aiohttp.client"
    assert (
        first["event"]
        == "GET http://h/api?api_key=*** failed: postgresql://syncd:***@db.internal:5432/crm"
    )
    assert "ConnectionResetError: reset while talking about ***" in second["exception"]


async def test_real_http_failure_with_the_key_in_the_url_is_logged_without_it(
    output: io.StringIO,
) -> None:
    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=500, text="upstream exploded")

    app = web.Application()
    app.router.add_get("/en/api/getLists", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/en/api/getLists?format=json&api_key={KEY}"
            try:
                async with session.get(url) as response:
                    response.raise_for_status()
            except aiohttp.ClientResponseError as exc:
                log.exception("get_lists_failed", error=exc, url=str(exc.request_info.real_url))
    finally:
        await runner.cleanup()
    assert_clean(output)
    failure = next(line for line in lines(output) if line["event"] == "get_lists_failed")
    assert "api_key=***" in failure["url"]
    assert "500" in failure["exception"]


def test_sensitive_keys_are_masked_whatever_their_value(output: io.StringIO) -> None:
    log.info("settings", api_key="unregistered-k", password="pw", dsn="host=x", list_id=3)
    [line] = lines(output)
    assert (line["api_key"], line["password"], line["dsn"], line["list_id"]) == (
        "***",
        "***",
        "***",
        3,
    )


def test_console_format_is_readable_and_redacted() -> None:
    stream = io.StringIO()
    register_secret(KEY)
    configure_logging("info", "console", stream=stream)
    try:
        try:
            raise RuntimeError(f"boom {KEY}")
        except RuntimeError:
            log.exception("crashed", job="newsletter")
    finally:
        reset_logging()
    text = stream.getvalue()
    assert "crashed" in text
    assert "job=newsletter" in text
    assert "RuntimeError: boom ***" in text
    assert KEY not in text


def test_auto_format_is_json_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream=stream)
    try:
        log.info("hello")
        log.debug("hidden_below_the_level")
    finally:
        reset_logging()
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "hello"


def test_short_registered_values_do_not_shred_the_log() -> None:
    register_secret("ab")
    assert redact("a table about abc") == "a table about abc"
