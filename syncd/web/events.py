"""The event webhook receiver (selzy-api.md §11): the routes `GET`/`POST <prefix>/<secret>` an
aiohttp app mounts with `add_routes`. It owns the order of checks and their status codes —
secret path (404), body cap (413), `auth` on the raw bytes (403), shape (400), durable store
(503 when PostgreSQL does not take the events in time, so that Selzy retries) — and the
counters; what the bytes mean is syncd.events.payload's, where they go is the sink's.

Rejections are counted every time and logged at most once a minute per kind. The URL's secret
never reaches a log: aiohttp's access log is off (server.py) and lines show `address.shown`.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from syncd.config import Secret
from syncd.errors import SyncdError
from syncd.events.address import EventAddress
from syncd.events.payload import Event, Malformed, auth_is_valid, parse_body
from syncd.events.throttle import LogThrottle

log = structlog.get_logger(__name__)

EventSink = Callable[[Sequence[Event]], Awaitable[int]]  # events -> how many were new
STORE_TIMEOUT = 2.0  # seconds the store may take: Selzy wants its 200 within 3 s (§11.5)
READ_CHUNK = 64 * 1024


@dataclass(slots=True)
class ReceiverStats:
    """Counts since start, for the metrics (`rejected` by reason: forged, malformed, ...)."""

    posts: int = 0  # POSTs answered 200
    events: int = 0  # events in them that syncd keeps (subscribe, unsubscribe)
    stored: int = 0  # of those, new (not a replay or duplicate)
    ignored: int = 0  # events of other names, or without an email
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


class EventReceiver:
    """Verifies, parses and stores event POSTs; `on_stored` is called when new events are in
    (the worker's wake-up)."""

    def __init__(
        self,
        address: EventAddress,
        api_key: Secret,
        sink: EventSink,
        *,
        max_body_bytes: int,
        on_stored: Callable[[], None] = lambda: None,
        store_timeout: float = STORE_TIMEOUT,
        throttle: LogThrottle | None = None,
    ) -> None:
        self.address = address
        self._key = api_key
        self._sink = sink
        self._max_body = max_body_bytes
        self._on_stored = on_stored
        self._store_timeout = store_timeout
        self._throttle = throttle or LogThrottle()
        self.stats = ReceiverStats()

    def __repr__(self) -> str:
        return f"EventReceiver({self.address!r})"

    def add_routes(self, app: web.Application) -> None:
        path = self.address.prefix + "/{segment}"
        app.router.add_get(path, self._get)
        app.router.add_post(path, self._post)

    def _ours(self, request: web.Request) -> bool:
        segment = request.match_info.get("segment", "")
        return hmac.compare_digest(segment.encode(), self.address.segment.encode())

    async def _get(self, request: web.Request) -> web.Response:
        """setHook checks that the URL answers GET with 200 (§11.1)."""
        if not self._ours(request):
            return self._rejected("unknown_path", 404)
        return web.json_response({"result": "ok"})

    async def _post(self, request: web.Request) -> web.Response:
        if not self._ours(request):
            return self._rejected("unknown_path", 404)
        raw = await self._read(request)
        if raw is None:
            return self._rejected("too_large", 413)
        if not auth_is_valid(raw, self._key.reveal()):
            return self._rejected("forged", 403)
        parsed = parse_body(raw)
        if isinstance(parsed, Malformed):
            return self._rejected("malformed", 400, detail=parsed.reason)
        for name, count in parsed.ignored.items():
            self.stats.ignored += count
            self._note("event_ignored", f"ignored:{name}", event_name=name, events=count)
        for path in sorted(parsed.unknown_fields):
            self._note("event_field_unknown", f"field:{path}", field=path)
        try:
            async with asyncio.timeout(self._store_timeout):
                stored = await self._sink(parsed.events)
        except (SyncdError, TimeoutError) as exc:
            error = "timeout" if isinstance(exc, TimeoutError) else str(exc)
            return self._rejected("store_failed", 503, error=error)
        self.stats.posts += 1
        self.stats.events += len(parsed.events)
        self.stats.stored += stored
        log.debug("events_received", events=len(parsed.events), stored=stored)
        if stored:
            self._on_stored()
        return web.json_response({"result": "ok"})

    async def _read(self, request: web.Request) -> bytes | None:
        """The raw body, or None past the cap (the read stops there: memory stays bounded)."""
        if request.content_length is not None and request.content_length > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _rejected(self, reason: str, status: int, **values: object) -> web.Response:
        self.stats.reject(reason)
        self._note("event_post_rejected", reason, reason=reason, status=status, **values)
        return web.json_response({"result": reason}, status=status)

    def _note(self, event: str, kind: str, **values: object) -> None:
        held = self._throttle.allow(kind)
        if held is not None:
            log.warning(event, path=self.address.shown, held_back=held, **values)
