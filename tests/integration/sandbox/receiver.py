"""A real webhook receiver for the sandbox's delivery tests: an aiohttp server on 127.0.0.1 that
keeps every request's raw bytes and answers as a test tells it to. Plus the §11.4 auth check,
written from the spec (not from the sandbox's code) so that the two can disagree.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

_AUTH = re.compile(rb'"auth":"([0-9a-f]{32})"')


def auth_is_valid(raw: bytes, api_key: str) -> bool:
    """§11.4 on the raw bytes: the 32-hex auth value, occurring once, replaced by the API key;
    its MD5 must equal the value (compared in constant time)."""
    match = _AUTH.search(raw)
    if match is None:
        return False
    value = match.group(1)
    if raw.count(value) != 1:
        return False
    keyed = raw.replace(value, api_key.encode())
    digest = hashlib.md5(keyed, usedforsecurity=False).hexdigest().encode()
    return hmac.compare_digest(digest, value)


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    content_type: str
    raw: bytes


@dataclass
class Receiver:
    """Answers POSTs with `statuses` in order (the last repeats), each after `delays` in order."""

    root_url: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    delays: list[float] = field(default_factory=lambda: [0.0])
    get_status: int = 200
    posts: list[Received] = field(default_factory=list)
    gets: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def url(self, path: str = "hook") -> str:
        return f"{self.root_url}/{path}"

    async def handle_get(self, request: web.Request) -> web.Response:
        self.gets += 1
        return web.Response(status=self.get_status, text="hook endpoint")

    async def handle_post(self, request: web.Request) -> web.Response:
        index = len(self.posts)
        self.posts.append(
            Received(
                path=request.path.lstrip("/"),
                query=dict(request.query),
                content_type=request.content_type,
                raw=await request.read(),
            )
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delays[min(index, len(self.delays) - 1)])
        finally:
            self.in_flight -= 1
        return web.Response(status=self.statuses[min(index, len(self.statuses) - 1)], text="ok")

    def bodies(self, path: str = "hook") -> list[bytes]:
        return [p.raw for p in self.posts if p.path == path]


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_get("/{path:.*}", receiver.handle_get)
    app.router.add_post("/{path:.*}", receiver.handle_post)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.root_url = f"http://{host}:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
