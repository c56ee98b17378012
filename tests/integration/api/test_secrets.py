"""The API key never leaves the request body: not in the request line, not in any exception
message or repr, not in log events — even when Selzy echoes it back.

The sandbox here is the real one, started with a distinctive key and a middleware that records
each request line as the server saw it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import structlog
from aiohttp import web

from syncd.api import RateLimiter, SelzyClient
from syncd.config import Secret
from syncd.errors import ApiError, AuthError
from syncd.sandbox import build_app
from tests.fixtures.sandbox import SandboxHandle, sandbox_options
from tests.integration.api.conftest import FAST_RETRY

KEY = "sk-live-Zq81bX3-private"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class Recorded:
    handle: SandboxHandle
    request_lines: list[str]


@pytest.fixture
async def recorded() -> AsyncIterator[Recorded]:
    lines: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        lines.append(f"{request.method} {request.path_qs}")
        return await handler(request)

    app = build_app(sandbox_options(api_keys=(KEY,)))
    app.middlewares.append(record)
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    handle = SandboxHandle(
        root_url=f"http://{host}:{port}", api_key=KEY, session=aiohttp.ClientSession()
    )
    try:
        yield Recorded(handle, lines)
    finally:
        await handle.session.close()
        await runner.cleanup()


@pytest.fixture
async def keyed_client(recorded: Recorded) -> AsyncIterator[SelzyClient]:
    config = dataclasses.replace(recorded.handle.config, timeout=0.3)
    async with SelzyClient(config, retry=FAST_RETRY, limiter=RateLimiter()) as client:
        yield client


def _assert_clean(exc: BaseException) -> None:
    """Neither the error nor anything in its cause chain shows the key."""
    seen: BaseException | None = exc
    while seen is not None:
        assert KEY not in str(seen)
        assert KEY not in repr(seen)
        assert all(KEY not in note for note in getattr(seen, "__notes__", []))
        seen = seen.__cause__ or seen.__context__


async def test_key_is_never_in_the_request_line(
    keyed_client: SelzyClient, recorded: Recorded
) -> None:
    list_id = await keyed_client.create_list("L")
    await keyed_client.get_lists()
    await keyed_client.import_contacts(["email"], [["a@example.com"]])
    task = await keyed_client.export_contacts(list_id, ["email"])
    await keyed_client.get_task_result(task.task_uuid)
    api_lines = [line for line in recorded.request_lines if "/_sandbox/" not in line]
    assert len(api_lines) == 5
    for line in api_lines:
        assert line.startswith("POST /en/api/")
        assert "?" not in line  # nothing at all in the query string
        assert KEY not in line
        assert "api_key" not in line


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "error", "code": "invalid_arg", "message": f"bad request api_key={KEY}"},
        {"kind": "error", "code": "retry_later", "message": f"busy for {KEY}"},
        {"kind": "http_status", "status": 503},
        {"kind": "bad_json"},
        {"kind": "drop"},
        {"kind": "hang", "delay": 5.0},
    ],
)
async def test_errors_and_retry_logs_never_show_the_key(
    keyed_client: SelzyClient, recorded: Recorded, fault: dict[str, object]
) -> None:
    await recorded.handle.fault(method="getLists", times=-1, **fault)
    with structlog.testing.capture_logs() as logs, pytest.raises(ApiError) as caught:
        await keyed_client.get_lists()
    _assert_clean(caught.value)
    assert KEY not in repr(logs)


async def test_wrong_key_is_auth_error_not_retried_and_not_shown(recorded: Recorded) -> None:
    wrong = "sk-live-WRONG-77"
    config = dataclasses.replace(recorded.handle.config, api_key=Secret(wrong))
    async with SelzyClient(config, retry=FAST_RETRY, limiter=RateLimiter()) as client:
        with client.counting() as counter, pytest.raises(AuthError) as caught:
            await client.get_lists()
    assert caught.value.code == "invalid_api_key"
    assert counter.total == 1
    assert wrong not in str(caught.value)
    assert wrong not in repr(client)


def test_client_repr_hides_the_key(recorded: Recorded) -> None:
    client = SelzyClient(recorded.handle.config, limiter=RateLimiter())
    assert KEY not in repr(client)
    assert "SelzyClient(" in repr(client)
