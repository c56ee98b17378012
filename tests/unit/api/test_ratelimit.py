"""The client-side limiter with a fake clock: it delays calls, never fails them."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine
from typing import Any

import pytest

from syncd.api.ratelimit import RateLimiter, SlidingWindow


class FakeClock:
    """Virtual time. Sequential use: a sleep simply moves time forward. Concurrent use
    (`run`): sleepers wait until every task is blocked, then time jumps to the earliest wake-up."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._concurrent = False
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self._concurrent:
            self.now += seconds
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self.now + seconds, next(self._seq), future))
        await future

    async def run(self, coroutines: list[Coroutine[Any, Any, None]]) -> None:
        self._concurrent = True
        tasks = [asyncio.create_task(c) for c in coroutines]
        while not all(t.done() for t in tasks):
            for _ in range(5):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self._waiters:
                wake_at, _, future = heapq.heappop(self._waiters)
                self.now = max(self.now, wake_at)
                future.set_result(None)
        await asyncio.gather(*tasks)


def _limiter(clock: FakeClock, per_minute: int = 3, export_per_minute: int = 2) -> RateLimiter:
    return RateLimiter(per_minute, export_per_minute, clock=clock, sleep=clock.sleep)


def test_window_allows_limit_then_books_the_slot_a_period_after_the_oldest() -> None:
    window = SlidingWindow(limit=2, period=60.0)
    assert window.reserve(0.0) == 0.0
    assert window.reserve(10.0) == 10.0
    assert window.reserve(11.0) == 60.0  # the slot at 0.0 leaves the window at 60.0
    assert window.reserve(12.0) == 70.0
    assert window.reserve(200.0) == 200.0  # an idle window is free again


@pytest.mark.parametrize(("limit", "period"), [(0, 60.0), (1, 0.0)])
def test_window_rejects_nonsense(limit: int, period: float) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        SlidingWindow(limit, period)


async def test_calls_under_the_limit_do_not_wait() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    for _ in range(3):
        await limiter.acquire("importContacts")
    assert clock.sleeps == []


async def test_call_over_the_limit_waits_for_the_window_then_proceeds() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    for _ in range(3):
        await limiter.acquire("getLists")
    clock.now += 5.0
    await limiter.acquire("getLists")
    assert clock.sleeps == [55.0]
    assert limiter.waited == 55.0


async def test_concurrent_callers_never_exceed_the_limit_in_any_window() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=5)
    started: list[float] = []

    async def call() -> None:
        await limiter.acquire("importContacts")
        started.append(clock.now)

    await clock.run([call() for _ in range(23)])
    assert len(started) == 23
    started.sort()
    for i, t in enumerate(started):
        in_window = [s for s in started[i:] if s < t + 60.0]
        assert len(in_window) <= 5
    assert started[-1] == 1000.0 + 4 * 60.0  # and no slower than the limit requires


async def test_exports_have_their_own_smaller_window() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=100, export_per_minute=2)
    await limiter.acquire("async/exportContacts")
    await limiter.acquire("async/exportContacts")
    await limiter.acquire("getLists")  # other methods are not held up by the export window
    assert clock.sleeps == []
    await limiter.acquire("async/exportContacts")
    assert clock.sleeps == [60.0]


async def test_exports_also_count_against_the_general_window() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=2, export_per_minute=10)
    await limiter.acquire("async/exportContacts")
    await limiter.acquire("async/exportContacts")
    await limiter.acquire("getTaskResult")
    assert clock.sleeps == [60.0]


def test_shared_for_returns_one_limiter_per_endpoint_and_key() -> None:
    a = RateLimiter.shared_for("http://h/en/api/", "unit-key-a")
    assert RateLimiter.shared_for("http://h/en/api", "unit-key-a") is a
    assert RateLimiter.shared_for("http://h/en/api", "unit-key-b") is not a
    assert RateLimiter.shared_for("http://other/en/api", "unit-key-a") is not a


def test_repr_and_registry_hold_no_key() -> None:
    limiter = RateLimiter.shared_for("http://h/en/api", "unit-key-never-shown")
    assert "unit-key-never-shown" not in repr(limiter)
    assert all("unit-key-never-shown" not in key for key, _ in RateLimiter._registry)
