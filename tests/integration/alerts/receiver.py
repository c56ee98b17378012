"""A real incoming-webhook receiver for the alert tests: an aiohttp server on 127.0.0.1 (an
ephemeral port) that keeps every POST's body and answers with the statuses a test sets, in
order (the last one repeats), after an optional delay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

WAIT_LIMIT = 30.0  # seconds a test waits for POSTs to arrive


@dataclass
class Receiver:
    root_url: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    bodies: list[bytes] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    answered: int = 0
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str = "hooks/T0KEN-s3cret-webhook-path") -> str:
        return f"{self.root_url}/{path}"

    @property
    def texts(self) -> list[str]:
        return [json.loads(body)["text"] for body in self.bodies]

    def payloads(self) -> list[Any]:
        return [json.loads(body) for body in self.bodies]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        self.content_types.append(request.content_type)
        async with self._arrived:
            self._arrived.notify_all()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses[min(self.answered, len(self.statuses) - 1)]
        self.answered += 1
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def wait_for(self, count: int) -> None:
        """Until at least `count` POSTs have arrived."""
        async with asyncio.timeout(WAIT_LIMIT), self._arrived:
            await self._arrived.wait_for(lambda: len(self.bodies) >= count)


@asynccontextmanager
async def serving(receiver: Receiver | None = None) -> AsyncIterator[Receiver]:
    receiver = receiver or Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.root_url = f"http://{host}:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
