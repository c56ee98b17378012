"""The event webhook wired up in the test's event loop: the reconciliation harness (a user table,
real PostgreSQL, the sandbox over HTTP) plus our receiver on a real loopback listener, the
store, the worker and the hook keeper — what the daemon composes in syncd.events.service."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.config import Secret
from syncd.db.events import EventStore
from syncd.events.address import EventAddress, event_address
from syncd.events.hooks import HookKeeper
from syncd.events.worker import EventWorker
from syncd.web.events import EventReceiver
from tests.fixtures.sandbox import API_KEY, free_port
from tests.integration.reconcile.harness import Harness, harness_fixture
from tests.integration.sandbox.conftest import FAST_HOOKS

__all__ = ["harness_fixture"]

WAIT = 10.0  # seconds any condition polled for here may take


async def eventually(check: Callable[[], Awaitable[Any]], what: str, within: float = WAIT) -> Any:
    """Poll the coroutine function `check` until it returns something true (bounded)."""
    deadline = asyncio.get_running_loop().time() + within
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)
    return result


@dataclasses.dataclass
class Events:
    harness: Harness
    address: EventAddress
    store: EventStore
    receiver: EventReceiver
    worker: EventWorker
    keeper: HookKeeper
    session: aiohttp.ClientSession
    requested: list[str] = dataclasses.field(default_factory=list)  # request_run calls

    async def post(self, raw: bytes, *, segment: str | None = None) -> int:
        url = (
            self.address.url
            if segment is None
            else self.address.url.replace(self.address.segment, segment)
        )
        async with self.session.post(url, data=raw) as response:
            await response.read()
            return response.status

    async def delivered(self, count: int) -> list[dict[str, Any]]:
        """Wait until the sandbox made `count` POSTs to our URL that we answered 200."""

        async def ok() -> list[dict[str, Any]] | None:
            made = await self.harness.sandbox.deliveries(self.address.url)
            good = [d for d in made if d["status"] == 200]
            return good if len(good) >= count else None

        return list(await eventually(ok, f"{count} webhook deliveries answered 200"))

    async def queue(self) -> dict[str, int]:
        rows = await self.harness.db.fetch(
            "SELECT key, events FROM syncd.event_queue WHERE job = $1", self.harness.job.name
        )
        return {r["key"]: r["events"] for r in rows}

    async def ledger(self, key: str) -> dict[str, Any] | None:
        row = await self.harness.db.fetchrow(
            "SELECT * FROM syncd.contacts WHERE job = $1 AND key = $2", self.harness.job.name, key
        )
        return dict(row) if row is not None else None

    async def history(self, key: str, kind: str | None = None) -> list[dict[str, Any]]:
        rows = await self.harness.db.fetch(
            "SELECT * FROM syncd.history WHERE job = $1 AND key = $2"
            " AND ($3::text IS NULL OR kind = $3) ORDER BY id",
            self.harness.job.name,
            key,
            kind,
        )
        return [dict(r) for r in rows]


def make_worker(harness: Harness, store: EventStore, requested: list[str]) -> EventWorker:
    return EventWorker(
        store=store,
        database=harness.db_config,
        client=harness.client,
        jobs=lambda: [harness.job],
        request_run=requested.append,
        poll_interval=0.05,
    )


@pytest.fixture
async def events(harness: Harness) -> AsyncIterator[Events]:
    await harness.sandbox.settings(**FAST_HOOKS)
    port = free_port()
    address = event_address(f"http://127.0.0.1:{port}/selzy-callback", API_KEY)
    store = EventStore(harness.pool)
    requested: list[str] = []
    worker = make_worker(harness, store, requested)
    receiver = EventReceiver(
        address, Secret(API_KEY), store.store, max_body_bytes=1024 * 1024, on_stored=worker.wake
    )
    app = web.Application()
    receiver.add_routes(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    session = aiohttp.ClientSession()
    try:
        yield Events(
            harness=harness,
            address=address,
            store=store,
            receiver=receiver,
            worker=worker,
            keeper=HookKeeper(harness.client, address, retry_interval=0.05),
            session=session,
            requested=requested,
        )
    finally:
        await session.close()
        await runner.cleanup()
