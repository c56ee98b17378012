"""The daemon's HTTP side over real loopback HTTP: notify_url callbacks reach the right slot and
nothing else does; /healthz and /metrics answer with their status codes and content types."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import structlog.testing

from syncd.web import CallbackRegistry, Listener, WebServer
from syncd.web.metrics import CONTENT_TYPE

MAX_BODY = 2048


class Health:
    def __init__(self) -> None:
        self.healthy = True
        self.fail = False

    async def __call__(self) -> tuple[bool, dict[str, Any]]:
        if self.fail:
            raise OSError("database down")
        return self.healthy, {"status": "ok" if self.healthy else "unhealthy", "jobs": {}}


async def metrics(accept: str) -> tuple[bytes, str]:
    return b"# HELP syncd_up x\n# TYPE syncd_up gauge\nsyncd_up 1\n", CONTENT_TYPE


@pytest.fixture
async def web() -> AsyncIterator[tuple[WebServer, CallbackRegistry, Health, str]]:
    registry = CallbackRegistry("https://sync.example.com/selzy-callback/")
    health = Health()
    server = WebServer(
        [Listener("127.0.0.1", 0, callbacks=True, name="webhook")],
        health=health,
        metrics=metrics,
        callbacks=registry,
        public_url="https://sync.example.com/selzy-callback/",
        max_body_bytes=MAX_BODY,
    )
    await server.start()
    host, port = server.bound["webhook"]
    try:
        yield server, registry, health, f"http://{host}:{port}"
    finally:
        await server.stop()


def body(
    task_uuid: str, status: str = "completed", url: str = "https://files/x.csv"
) -> dict[str, Any]:
    return {
        "result": {
            "task_uuid": task_uuid,
            "task_type": "exportContacts",
            "status": status,
            "file_to_download": url,
        }
    }


async def post(base: str, path: str, payload: Any = None, data: bytes | None = None) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + path, json=payload if data is None else None, data=data) as resp,
    ):
        return resp.status


def local_path(url: str) -> str:
    return url.removeprefix("https://sync.example.com")


async def test_callback_for_the_bound_task_wakes_the_waiting_run(web: Any) -> None:
    _, registry, _, base = web
    slot = registry.open_slot()
    assert slot.url.startswith("https://sync.example.com/selzy-callback/")
    assert len(slot.url.rsplit("/", 1)[1]) >= 43  # 32 random bytes
    slot.bind("task-1")
    waiter = asyncio.create_task(slot.wait(5))
    assert await post(base, local_path(slot.url), body("task-1")) == 200
    assert await asyncio.wait_for(waiter, 1) == "https://files/x.csv"
    # replayed: answered and ignored
    assert await post(base, local_path(slot.url), body("task-1")) == 409
    slot.close()
    assert await post(base, local_path(slot.url), body("task-1")) == 409
    assert len(registry) == 0


async def test_forged_callbacks_are_rejected_and_do_not_wake_the_run(web: Any) -> None:
    _, registry, _, base = web
    slot = registry.open_slot()
    slot.bind("task-1")
    token = slot.url.rsplit("/", 1)[1]
    with structlog.testing.capture_logs() as logs:
        assert await post(base, "/selzy-callback/" + "A" * len(token), body("task-1")) == 404
        assert await post(base, local_path(slot.url), body("task-2")) == 403
        assert await post(base, local_path(slot.url), {"hello": "world"}) == 400
        assert await post(base, local_path(slot.url), data=b"not json") == 400
        assert await post(base, "/elsewhere/" + token, body("task-1")) == 404
    assert await slot.wait(0.05) is None
    assert not slot.fired
    reasons = [e.get("reason") for e in logs if e["event"] == "callback_rejected"]
    assert reasons == ["unknown_token", "task_mismatch", "malformed", "malformed"]
    assert token not in repr(logs)
    assert token not in repr(slot)
    # the genuine callback still works afterwards
    assert await post(base, local_path(slot.url), body("task-1")) == 200
    assert await slot.wait(1) == "https://files/x.csv"


async def test_an_oversized_body_is_refused_with_413(web: Any) -> None:
    _, registry, _, base = web
    slot = registry.open_slot()
    slot.bind("task-1")
    big = body("task-1", url="https://files/" + "x" * MAX_BODY)
    assert await post(base, local_path(slot.url), big) == 413
    assert not slot.fired


async def test_a_callback_before_bind_counts_once_the_task_is_known(web: Any) -> None:
    _, registry, _, base = web
    early = registry.open_slot()
    assert await post(base, local_path(early.url), body("task-9")) == 200
    early.bind("task-9")
    assert await early.wait(0.5) == "https://files/x.csv"

    wrong = registry.open_slot()
    assert await post(base, local_path(wrong.url), body("task-other")) == 200
    wrong.bind("task-10")
    assert await wrong.wait(0.05) is None


async def test_a_not_completed_status_is_acknowledged_but_does_not_wake_the_run(web: Any) -> None:
    _, registry, _, base = web
    slot = registry.open_slot()
    slot.bind("task-1")
    assert await post(base, local_path(slot.url), body("task-1", status="processing")) == 200
    assert await slot.wait(0.05) is None


async def test_healthz_says_200_or_503_and_metrics_are_prometheus_text(web: Any) -> None:
    _, _, health, base = web
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"
        health.healthy = False
        async with session.get(base + "/healthz") as resp:
            assert resp.status == 503
        health.fail = True
        async with session.get(base + "/healthz") as resp:
            assert resp.status == 503
            assert (await resp.json())["error"] == "OSError"
        async with session.get(base + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == CONTENT_TYPE
            assert "syncd_up 1" in await resp.text()


async def test_a_metrics_only_listener_has_no_callback_route() -> None:
    registry = CallbackRegistry("http://127.0.0.1/cb")
    server = WebServer(
        [Listener("127.0.0.1", 0, callbacks=False, name="metrics")],
        health=Health(),
        metrics=metrics,
        callbacks=registry,
        public_url="http://127.0.0.1/cb",
    )
    await server.start()
    try:
        host, port = server.bound["metrics"]
        slot = registry.open_slot()
        slot.bind("t")
        assert await post(
            f"http://{host}:{port}", "/cb/" + slot.url.rsplit("/", 1)[1], body("t")
        ) in (404, 405)
        assert not slot.fired
    finally:
        await server.stop()
