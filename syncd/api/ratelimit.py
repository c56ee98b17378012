"""The client-side call limiter: at most N calls in any `period` (sliding window), per API key,
shared by every job and client in the process that uses that key. It makes callers wait; it
never fails a call.

Each call reserves the earliest instant at which it fits in the window, then sleeps until then.
Reserving is synchronous (no await between reading and writing the window), so there is no lock
to bind to an event loop and waiters go in arrival order. A caller cancelled while waiting
leaves its reserved slot unused — conservative, never over the limit.

async/exportContacts additionally passes a window of its own (20 a minute by default) before
taking a slot in the general window, so an export waiting for its turn holds no general slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import ClassVar

DEFAULT_PER_MINUTE = 1200  # selzy-api.md §8.2: calls per minute per key
DEFAULT_EXPORT_PER_MINUTE = 20  # selzy-api.md §8.2: async/exportContacts per 60 s
DEFAULT_PERIOD = 60.0  # seconds
EXPORT_METHODS = frozenset({"async/exportContacts"})

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class SlidingWindow:
    """At most `limit` reservations in any `period` seconds."""

    __slots__ = ("_reserved", "limit", "period")

    def __init__(self, limit: int, period: float) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._reserved: deque[float] = deque(maxlen=limit)  # the last `limit` slots, ascending

    def reserve(self, now: float) -> float:
        """Book the earliest slot at or after `now`; returns its time."""
        slot = now
        if len(self._reserved) == self.limit:
            slot = max(now, self._reserved[0] + self.period)
        self._reserved.append(slot)  # maxlen drops the oldest
        return slot


class RateLimiter:
    """Makes calls wait for a free slot. Use one instance per API key (`shared_for`)."""

    _registry: ClassVar[dict[tuple[str, str], RateLimiter]] = {}

    def __init__(
        self,
        per_minute: int = DEFAULT_PER_MINUTE,
        export_per_minute: int = DEFAULT_EXPORT_PER_MINUTE,
        *,
        period: float = DEFAULT_PERIOD,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._general = SlidingWindow(per_minute, period)
        self._export = SlidingWindow(export_per_minute, period)
        self._clock = clock
        self._sleep = sleep
        self.waited = 0.0  # total seconds callers were made to wait (for metrics and tests)

    def __repr__(self) -> str:
        return (
            f"RateLimiter(per_minute={self._general.limit},"
            f" export_per_minute={self._export.limit}, period={self._general.period})"
        )

    @classmethod
    def shared_for(
        cls,
        base_url: str,
        api_key: str,
        *,
        per_minute: int = DEFAULT_PER_MINUTE,
        export_per_minute: int = DEFAULT_EXPORT_PER_MINUTE,
    ) -> RateLimiter:
        """The process-wide limiter for this endpoint and key, created on first use (the limits
        of the first call win: every job of one config shares one SelzyConfig)."""
        digest = hashlib.sha256(api_key.encode("utf-8")).hexdigest()  # the registry holds no key
        registry_key = (base_url.rstrip("/"), digest)
        limiter = cls._registry.get(registry_key)
        if limiter is None:
            limiter = cls(per_minute, export_per_minute)
            cls._registry[registry_key] = limiter
        return limiter

    async def acquire(self, method: str) -> None:
        """Return when a call to `method` may be sent."""
        if method in EXPORT_METHODS:
            await self._wait_for(self._export)
        await self._wait_for(self._general)

    async def _wait_for(self, window: SlidingWindow) -> None:
        now = self._clock()
        delay = window.reserve(now) - now
        if delay > 0:
            self.waited += delay
            await self._sleep(delay)
