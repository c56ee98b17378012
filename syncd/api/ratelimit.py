"""The client-side call limiter: keeps the calls on one API key under Selzy's limit *as Selzy
counts them* (on arrival, in any 60 s), shared by every job and client in the process that uses
that key. It makes callers wait; it never fails a call.

Selzy sees a call some unknown time after we send it (connection pool, network, a busy server),
so a call holds its slot from the moment it is sent until `period` after it finished (answer in,
or failed): Selzy counted it somewhere in between, hence any `period` of Selzy's clock holds at
most `capacity` of our calls whatever the latencies were. `capacity` is `margin` (default 10 %)
below the configured limit, for other processes on the key and for the per-IP limit.

When Selzy answers api_call_limit_exceeded_* all the same, every call on the key is held until
Selzy's window has cleared (`pause`, default `period`), then runs at PENALTY_FACTOR of the rate
for RECOVERY_PERIODS periods (reduced again if a call sent after the pause is refused too).

Pure core, thin shell: CallWindow is arithmetic over the times it is given (no clock, no sleep);
RateLimiter waits on it. Waiters queue in arrival order and only the head of a queue sleeps. No
asyncio primitive outlives a call, so a process-wide limiter binds to no event loop (it serves
one loop at a time). A caller cancelled while waiting takes no slot.

async/exportContacts additionally passes a window of its own (20 a minute by default) before
queueing for the general window, so an export waiting for its turn holds no general slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from bisect import bisect_right
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import ClassVar

import structlog

from syncd.errors import RateLimited

log = structlog.get_logger(__name__)

DEFAULT_PER_MINUTE = 1200  # selzy-api.md §8.2: calls per minute per key
DEFAULT_EXPORT_PER_MINUTE = 20  # selzy-api.md §8.2: async/exportContacts per 60 s
DEFAULT_PERIOD = 60.0  # seconds; Selzy's window
DEFAULT_MARGIN = 0.1  # fraction of each limit left unused
PENALTY_FACTOR = 0.5  # rate kept after a limit error, per incident
RECOVERY_PERIODS = 5  # periods at the reduced rate after a pause
EXPORT_METHODS = frozenset({"async/exportContacts"})

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class CallWindow:
    """At most `capacity` calls in any `period`, a call occupying the window from the instant it
    is sent (`take`) until `period` after it finished (`release`). Times are given, never read."""

    __slots__ = (
        "_factor",
        "_in_flight",
        "_paused_until",
        "_penalised_at",
        "_reduced_until",
        "_releases",
        "capacity",
        "limit",
        "pause",
        "period",
    )

    def __init__(
        self, limit: int, period: float, *, margin: float = 0.0, pause: float | None = None
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs limit >= 1 and period > 0")
        if not 0.0 <= margin < 1.0:
            raise ValueError("a rate limit margin is a fraction in [0, 1)")
        if pause is not None and pause < 0:
            raise ValueError("a rate limit pause must not be negative")
        self.limit = limit
        self.period = period
        self.capacity = max(1, math.floor(limit * (1.0 - margin) + 1e-9))  # 1e-9: 10 x 0.9 is 9
        self.pause = period if pause is None else pause
        self._in_flight = 0  # calls taken and not yet released
        self._releases: deque[float] = deque()  # when finished calls leave the window, ascending
        self._paused_until = -math.inf
        self._reduced_until = -math.inf
        self._penalised_at = -math.inf
        self._factor = 1.0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def capacity_at(self, now: float) -> int:
        """Calls allowed in a window at `now`: fewer while a reduced rate applies."""
        if now < self._reduced_until:
            return max(1, math.floor(self.capacity * self._factor))
        return self.capacity

    def free_at(self, now: float) -> float | None:
        """The earliest instant >= `now` at which a call may be sent if no call in flight finishes
        first; None when only a call finishing can make room."""
        start = max(now, self._paused_until)
        full = self._room_at(start, self.capacity)
        if start >= self._reduced_until:
            return full
        reduced = self._room_at(start, self.capacity_at(start))
        if reduced is not None and reduced < self._reduced_until:
            return reduced
        # Not before the reduced rate ends. (A call finishing meanwhile could make room
        # sooner; waiting that little longer while the rate is reduced is harmless.)
        return None if full is None else max(full, self._reduced_until)

    def room_at(self, now: float) -> int:
        """Calls that may be sent at `now` without waiting (none while paused)."""
        if now < self._paused_until:
            return 0
        pending = len(self._releases) - bisect_right(self._releases, now)
        return max(0, self.capacity_at(now) - self._in_flight - pending)

    def _room_at(self, start: float, capacity: int) -> float | None:
        gone = bisect_right(self._releases, start)  # slots free again by `start`
        pending = len(self._releases) - gone
        excess = self._in_flight + pending - capacity + 1  # slots that must still come free
        if excess <= 0:
            return start
        if excess > pending:
            return None
        return self._releases[gone + excess - 1]

    def take(self, now: float) -> None:
        """A call is sent at `now` (where free_at allowed it); it holds a slot until `release`."""
        while self._releases and self._releases[0] <= now:
            self._releases.popleft()
        self._in_flight += 1

    def release(self, now: float) -> None:
        """The call taken earlier finished at `now`: its slot comes free `period` later."""
        self._in_flight = max(0, self._in_flight - 1)
        last = self._releases[-1] if self._releases else -math.inf
        self._releases.append(max(now + self.period, last))  # stays sorted, even on a clock step

    def cancel(self) -> None:
        """A slot was taken but its call never sent: it is free at once."""
        self._in_flight = max(0, self._in_flight - 1)

    def penalise(self, now: float, sent_at: float) -> bool:
        """Selzy refused, at `now`, a call sent at `sent_at` for its rate limit: no call until
        `pause` from now, then a reduced rate for RECOVERY_PERIODS periods. A refused call sent
        before the previous penalty belongs to that incident and reduces nothing further.
        Returns whether this was a new incident (the rate was reduced)."""
        if now >= self._reduced_until:
            self._factor = 1.0  # the last incident has run its course
        new_incident = sent_at >= self._penalised_at
        if new_incident:
            self._factor *= PENALTY_FACTOR
            self._penalised_at = now
        self._paused_until = max(self._paused_until, now + self.pause)
        self._reduced_until = self._paused_until + RECOVERY_PERIODS * self.period
        return new_incident


class _Gate:
    """A window and the callers queued for it, first come first served."""

    __slots__ = ("queue", "window")

    def __init__(self, window: CallWindow) -> None:
        self.window = window
        self.queue: deque[asyncio.Future[None]] = deque()


class RateLimiter:
    """Makes calls wait for a free slot. Use one instance per API key (`shared_for`)."""

    _registry: ClassVar[dict[tuple[str, str], RateLimiter]] = {}

    def __init__(
        self,
        per_minute: int = DEFAULT_PER_MINUTE,
        export_per_minute: int = DEFAULT_EXPORT_PER_MINUTE,
        *,
        period: float = DEFAULT_PERIOD,
        margin: float = DEFAULT_MARGIN,
        pause: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._general = _Gate(CallWindow(per_minute, period, margin=margin, pause=pause))
        self._export = _Gate(CallWindow(export_per_minute, period, margin=margin, pause=pause))
        self._changed: list[asyncio.Future[None]] = []  # heads waiting for a call to finish
        self._clock = clock
        self._sleep = sleep
        self.waited = 0.0  # total seconds callers were made to wait (for metrics and tests)
        self.penalties = 0  # calls Selzy refused for its rate limit

    def __repr__(self) -> str:
        general, export = self._general.window, self._export.window
        return (
            f"RateLimiter(per_minute={general.limit}, export_per_minute={export.limit},"
            f" period={general.period}, capacity={general.capacity})"
        )

    @classmethod
    def shared_for(
        cls,
        base_url: str,
        api_key: str,
        *,
        per_minute: int = DEFAULT_PER_MINUTE,
        export_per_minute: int = DEFAULT_EXPORT_PER_MINUTE,
        margin: float = DEFAULT_MARGIN,
    ) -> RateLimiter:
        """The process-wide limiter for this endpoint and key, created on first use (the limits
        of the first call win: every job of one config shares one SelzyConfig)."""
        digest = hashlib.sha256(api_key.encode("utf-8")).hexdigest()  # the registry holds no key
        registry_key = (base_url.rstrip("/"), digest)
        limiter = cls._registry.get(registry_key)
        if limiter is None:
            limiter = cls(per_minute, export_per_minute, margin=margin)
            cls._registry[registry_key] = limiter
        return limiter

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot right now."""
        return len(self._general.queue) + len(self._export.queue)

    @property
    def capacity(self) -> int:
        """Calls allowed in the general window now (reduced after a limit error)."""
        return self._general.window.capacity_at(self._clock())

    def room(self) -> int:
        """Calls that could be sent now without waiting: none while callers queue. A hint for a
        caller that would rather do something else than wait (the event worker)."""
        if self._general.queue:
            return 0
        return self._general.window.room_at(self._clock())

    async def acquire(self, method: str) -> None:
        """Return when a call to `method` may be sent, for a call that takes no time."""
        async with self.slot(method):
            pass

    @asynccontextmanager
    async def slot(self, method: str) -> AsyncIterator[None]:
        """Wait until a call to `method` may be sent; the body sends it, holding the slot until
        it finishes. RateLimited raised in the body holds back every call on the key."""
        gates = (self._export, self._general) if method in EXPORT_METHODS else (self._general,)
        windows = tuple(gate.window for gate in gates)
        taken: list[CallWindow] = []
        try:
            for gate in gates:
                await self._take(gate)
                taken.append(gate.window)
        except BaseException:
            for window in taken:
                window.cancel()
            self._notify()
            raise
        sent_at = self._clock()
        try:
            yield
        except RateLimited:
            self._penalise(windows, method, sent_at)
            raise
        finally:
            now = self._clock()
            for window in windows:
                window.release(now)
            self._notify()

    async def _take(self, gate: _Gate) -> None:
        """Queue at `gate` in arrival order; at the head, wait for room and take a slot."""
        queue, window = gate.queue, gate.window
        for stale in [f for f in queue if f.get_loop().is_closed()]:
            queue.remove(stale)  # a waiter of an event loop that is gone
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        started = self._clock()
        try:
            if queue[0] is turn:
                turn.set_result(None)
            else:
                await turn  # the waiter ahead hands over when it has its slot
            await self._wait_for_room(window)
            window.take(self._clock())
        finally:
            self.waited += self._clock() - started
            queue.remove(turn)
            if queue and not queue[0].done():
                queue[0].set_result(None)

    async def _wait_for_room(self, window: CallWindow) -> None:
        while True:
            now = self._clock()
            at = window.free_at(now)
            if at is not None and at <= now:
                return
            if at is not None:
                await self._sleep(at - now)  # then look again: a limit error may have come
                continue
            changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._changed.append(changed)
            try:
                await changed
            finally:
                if changed in self._changed:
                    self._changed.remove(changed)

    def _notify(self) -> None:
        """Wake the heads waiting for a call to finish: room may have come."""
        changed, self._changed = self._changed, []
        for future in changed:
            if not future.done() and not future.get_loop().is_closed():
                future.set_result(None)

    def _penalise(self, windows: tuple[CallWindow, ...], method: str, sent_at: float) -> None:
        now = self._clock()
        self.penalties += 1
        incidents = [window.penalise(now, sent_at) for window in windows]
        if any(incidents):
            general = self._general.window
            log.warning(
                "api_rate_limit_pause",
                method=method,
                pause=round(general.pause, 3),
                capacity=general.capacity_at(now + general.pause),
                period=general.period,
            )
        self._notify()
