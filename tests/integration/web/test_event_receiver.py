"""The event receiver over real loopback HTTP, storing into real PostgreSQL: a body signed with
the API key is stored (once, however often it comes) and answered 200; a forged body 403, a
malformed one 400, an oversize one 413, a wrong secret path 404 — each counted, logged at most
once a minute, and nothing stored. PostgreSQL not taking the events in time is a 503, so that
Selzy delivers them again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import structlog.testing
from aiohttp import web

from syncd.config import DatabaseConfig, Secret
from syncd.db import Connection, Pool, create_pool
from syncd.db.events import EventStore
from syncd.errors import DatabaseError
from syncd.events.address import EventAddress, event_address
from syncd.events.payload import Event
from syncd.sandbox.payload import signed
from syncd.web.events import EventReceiver

KEY = "receiver-test-key"
MAX_BODY = 64 * 1024


@dataclass
class Served:
    receiver: EventReceiver
    address: EventAddress
    root: str
    session: aiohttp.ClientSession
    woken: list[int]

    def url(self, segment: str | None = None) -> str:
        return f"{self.root}{self.address.prefix}/{segment or self.address.segment}"

    async def post(self, body: bytes, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.post(
            self.url(kwargs.pop("segment", None)), data=body, **kwargs
        ) as r:
            return r.status, await r.json()


async def serve(receiver: EventReceiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    receiver.add_routes(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def pool(db_config: DatabaseConfig) -> AsyncIterator[Pool]:
    pool = await create_pool(db_config)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def served(pool: Pool) -> AsyncIterator[Served]:
    address = event_address("https://sync.example.com/selzy-callback", KEY)
    woken: list[int] = []
    receiver = EventReceiver(
        address,
        Secret(KEY),
        EventStore(pool).store,
        max_body_bytes=MAX_BODY,
        on_stored=lambda: woken.append(1),
    )
    runner, root = await serve(receiver)
    session = aiohttp.ClientSession()
    try:
        yield Served(receiver, address, root, session, woken)
    finally:
        await session.close()
        await runner.cleanup()


def unsubscribe(email: str = "Ann@Example.com", lists: Sequence[int] = (12,)) -> dict[str, Any]:
    return {
        "event_name": "unsubscribe",
        "event_time": "2026-11-30 10:38:22",
        "event_data": {"email": email, "unsubscribed_list_ids": list(lists)},
    }


def batched(*events: dict[str, Any], key: str = KEY) -> bytes:
    return signed({"events_by_user": [{"login": "acme", "events": list(events)}]}, key)


async def stored(db: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch("SELECT * FROM syncd.events ORDER BY id")]


async def test_get_on_the_event_url_answers_200_and_any_other_secret_404(served: Served) -> None:
    async with served.session.get(served.url()) as response:
        assert response.status == 200
    async with served.session.get(served.url("0" * 32)) as response:
        assert response.status == 404
    assert await served.post(batched(unsubscribe()), segment="0" * 32) == (
        404,
        {"result": "unknown_path"},
    )


async def test_a_signed_body_is_stored_in_postgresql_and_answered_200(
    served: Served, db: Connection
) -> None:
    flat = signed(
        {
            "login": "acme",
            "event_name": "subscribe",
            "event_time": "2026-11-30 10:40:00",
            "email": "bob@example.com",
            "subscribed_list_ids": [12, 13],
        },
        KEY,
    )
    assert await served.post(batched(unsubscribe())) == (200, {"result": "ok"})
    assert await served.post(flat) == (200, {"result": "ok"})
    rows = await stored(db)
    assert [(r["event_name"], r["email"], r["key"], r["list_ids"]) for r in rows] == [
        ("unsubscribe", "Ann@Example.com", "ann@example.com", [12]),
        ("subscribe", "bob@example.com", "bob@example.com", [12, 13]),
    ]
    assert all(r["routed_at"] is None for r in rows)
    assert served.receiver.stats.stored == 2
    assert served.woken == [1, 1]


async def test_a_replayed_body_is_answered_200_and_stored_once(
    served: Served, db: Connection
) -> None:
    body = batched(unsubscribe(), unsubscribe("bob@example.com"))
    for _ in range(3):
        assert (await served.post(body))[0] == 200
    assert len(await stored(db)) == 2
    stats = served.receiver.stats
    assert (stats.posts, stats.events, stats.stored) == (3, 6, 2)
    assert served.woken == [1]  # only the first brought anything new


async def test_forged_bodies_are_403_counted_logged_once_and_not_stored(
    served: Served, db: Connection
) -> None:
    good = batched(unsubscribe())
    forged = [
        batched(unsubscribe(), key="another-key"),
        good.replace(b"Ann@", b"Eve@"),
        b'{"events_by_user":[]}',  # no auth at all
    ]
    with structlog.testing.capture_logs() as logs:
        for body in forged:
            assert await served.post(body) == (403, {"result": "forged"})
    assert await stored(db) == []
    assert served.receiver.stats.rejected == {"forged": 3}
    lines = [e for e in logs if e["event"] == "event_post_rejected"]
    assert len(lines) == 1
    assert lines[0]["reason"] == "forged"
    assert served.address.segment not in repr(logs)


async def test_a_signed_body_of_no_documented_shape_is_400(served: Served, db: Connection) -> None:
    assert await served.post(signed({"hello": "world"}, KEY)) == (400, {"result": "malformed"})
    assert await served.post(signed({"events_by_user": "x"}, KEY)) == (400, {"result": "malformed"})
    assert await stored(db) == []
    assert served.receiver.stats.rejected == {"malformed": 2}


async def test_an_oversize_body_is_413_whether_or_not_it_says_its_length(
    served: Served, db: Connection
) -> None:
    big = batched(*(unsubscribe(f"user{i}@example.com") for i in range(1000)))
    assert len(big) > MAX_BODY
    assert (await served.post(big))[0] == 413

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    assert (await served.post(chunks()))[0] == 413  # type: ignore[arg-type]
    assert await stored(db) == []
    assert served.receiver.stats.rejected == {"too_large": 2}


async def test_unknown_event_names_and_fields_are_logged_and_ignored(
    served: Served, db: Connection
) -> None:
    other = {
        "event_name": "campaign_status",
        "event_time": "2026-11-30 10:00:00",
        "event_data": {"campaign_id": 1, "status": "completed"},
    }
    odd = unsubscribe()
    odd["event_data"]["reason"] = "link"
    with structlog.testing.capture_logs() as logs:
        assert await served.post(batched(other, odd)) == (200, {"result": "ok"})
    assert [r["event_name"] for r in await stored(db)] == ["unsubscribe"]
    assert served.receiver.stats.ignored == 1
    events = {e["event"]: e for e in logs}
    assert events["event_ignored"]["event_name"] == "campaign_status"
    assert events["event_field_unknown"]["field"] == "event_data.reason"


async def test_postgresql_failing_or_too_slow_is_503_so_selzy_delivers_again(pool: Pool) -> None:
    async def failing(events: Sequence[Event]) -> int:
        raise DatabaseError("PostgreSQL error 57P01: terminating connection", retryable=True)

    async def slow(events: Sequence[Event]) -> int:
        await asyncio.sleep(5)
        return 0

    address = event_address("https://sync.example.com/selzy-callback", KEY)
    for sink, error in ((failing, "terminating connection"), (slow, "timeout")):
        receiver = EventReceiver(
            address, Secret(KEY), sink, max_body_bytes=MAX_BODY, store_timeout=0.2
        )
        runner, root = await serve(receiver)
        try:
            async with aiohttp.ClientSession() as session:
                with structlog.testing.capture_logs() as logs:
                    async with session.post(
                        f"{root}{address.prefix}/{address.segment}", data=batched(unsubscribe())
                    ) as response:
                        assert response.status == 503
        finally:
            await runner.cleanup()
        [line] = [e for e in logs if e["event"] == "event_post_rejected"]
        assert error in line["error"]


async def test_a_burst_of_concurrent_posts_is_all_stored_each_answered_well_within_3s(
    served: Served, db: Connection
) -> None:
    bodies = [
        batched(*(unsubscribe(f"u{p}-{i}@example.com") for i in range(100))) for p in range(40)
    ]

    async def timed(body: bytes) -> tuple[int, float]:
        started = time.monotonic()
        status, _ = await served.post(body)
        return status, time.monotonic() - started

    answers = await asyncio.gather(*(timed(b) for b in bodies))
    assert {status for status, _ in answers} == {200}
    assert max(seconds for _, seconds in answers) < 3.0
    assert await db.fetchval("SELECT count(*) FROM syncd.events") == 4000
