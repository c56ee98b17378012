"""The client-side limiter: the window arithmetic as pure functions of the times given, and the
waiting shell on a fake clock. It delays calls, never fails them."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Coroutine
from typing import Any

import pytest

from syncd.api.ratelimit import PENALTY_FACTOR, RECOVERY_PERIODS, CallWindow, RateLimiter
from syncd.errors import RateLimited

LIMITED = RateLimited("slow down", code="api_call_limit_exceeded_for_api_key")


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
            for _ in range(20):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            while self._waiters and self._waiters[0][2].done():
                heapq.heappop(self._waiters)  # a sleeper that was cancelled
            if self._waiters:
                wake_at, _, future = heapq.heappop(self._waiters)
                self.now = max(self.now, wake_at)
                future.set_result(None)
            elif not all(t.done() for t in tasks):
                raise AssertionError("every task waits and no sleeper can wake them")
        await asyncio.gather(*tasks)


def _limiter(
    clock: FakeClock, per_minute: int = 3, export_per_minute: int = 2, **kwargs: Any
) -> RateLimiter:
    kwargs.setdefault("margin", 0.0)
    return RateLimiter(per_minute, export_per_minute, clock=clock, sleep=clock.sleep, **kwargs)


def _instant(window: CallWindow, at: float) -> None:
    """A call sent at `at` that finished at once."""
    window.take(at)
    window.release(at)


def _busiest_server_window(arrivals: list[float], period: float) -> int:
    """The most arrivals in any (t - period, t], as a server counting arrivals sees them."""
    arrivals = sorted(arrivals)
    busiest, first = 0, 0
    for last, t in enumerate(arrivals):
        while arrivals[first] <= t - period:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest


# --- the window arithmetic (pure) -------------------------------------------------------------


def test_window_allows_capacity_then_books_the_slot_a_period_after_the_oldest() -> None:
    window = CallWindow(limit=2, period=60.0)
    assert window.free_at(0.0) == 0.0
    _instant(window, 0.0)
    _instant(window, 10.0)
    assert window.free_at(11.0) == 60.0  # the call at 0.0 leaves the window at 60.0
    _instant(window, 60.0)
    assert window.free_at(61.0) == 70.0
    assert window.free_at(200.0) == 200.0  # an idle window is free again


@pytest.mark.parametrize(
    ("limit", "margin", "capacity"),
    [(1200, 0.1, 1080), (20, 0.1, 18), (10, 0.1, 9), (3, 0.1, 2), (1, 0.5, 1), (5, 0.0, 5)],
)
def test_margin_keeps_the_capacity_below_the_limit(
    limit: int, margin: float, capacity: int
) -> None:
    assert CallWindow(limit, 60.0, margin=margin).capacity == capacity


@pytest.mark.parametrize(
    ("limit", "period", "margin", "pause"),
    [
        (0, 60.0, 0.0, None),
        (1, 0.0, 0.0, None),
        (1, 60.0, 1.0, None),
        (1, 60.0, -0.1, None),
        (1, 60.0, 0.0, -1.0),
    ],
)
def test_window_rejects_nonsense(
    limit: int, period: float, margin: float, pause: float | None
) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        CallWindow(limit, period, margin=margin, pause=pause)


def test_a_call_holds_its_slot_until_a_period_after_it_finished() -> None:
    window = CallWindow(limit=2, period=60.0)
    window.take(0.0)
    window.take(0.0)
    assert window.free_at(1.0) is None  # only a call finishing can make room
    window.release(5.0)  # Selzy may have counted it as late as 5.0
    assert window.free_at(6.0) == 65.0, "not 60.0: that is a period after it was sent"
    window.release(30.0)
    assert window.free_at(6.0) == 65.0


def test_room_counts_the_calls_that_could_go_now_and_none_while_paused() -> None:
    window = CallWindow(limit=3, period=60.0)
    assert window.room_at(0.0) == 3
    window.take(0.0)
    window.take(0.0)
    assert window.room_at(1.0) == 1  # two in flight
    window.release(2.0)
    assert window.room_at(3.0) == 1  # finished, but in the window until 62.0
    assert window.room_at(62.0) == 2
    window.release(65.0)
    window.penalise(now=70.0, sent_at=69.0)
    assert window.room_at(100.0) == 0  # paused until 130.0
    assert window.room_at(130.0) == 1  # then the reduced rate: 1 of 3


async def test_the_limiters_room_is_none_while_callers_queue() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=2)
    assert limiter.room() == 2
    await limiter.acquire("getContact")
    assert limiter.room() == 1
    await limiter.acquire("getContact")
    assert limiter.room() == 0
    clock.now += 60.0
    assert limiter.room() == 2


def test_a_slot_taken_but_never_sent_is_free_at_once() -> None:
    window = CallWindow(limit=1, period=60.0)
    window.take(0.0)
    window.cancel()
    assert window.free_at(0.0) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_a_server_counting_arrivals_never_sees_more_than_the_limit_whatever_the_latency(
    seed: int,
) -> None:
    """Discrete-event simulation: 4 callers send 60 calls as fast as the window lets them; each
    reaches the server at a random point of its round trip (0..20 s, a third of the period)."""
    rng = random.Random(seed)
    period, limit = 60.0, 5
    window = CallWindow(limit, period)
    now, finishing, arrivals = 0.0, list[float](), list[float]()
    while len(arrivals) < 60:
        at = window.free_at(now)
        if finishing and (at is None or finishing[0] <= at):
            now = heapq.heappop(finishing)  # a call finishes before there is room
            window.release(now)
            continue
        assert at is not None
        if len(finishing) == 4:  # every caller is busy
            now = heapq.heappop(finishing)
            window.release(now)
            continue
        now = at
        window.take(now)
        trip = rng.uniform(0.0, 20.0)
        arrivals.append(now + rng.uniform(0.0, trip))
        heapq.heappush(finishing, now + trip)
    assert _busiest_server_window(arrivals, period) <= limit
    assert max(arrivals) < 12 * (period + 20.0)  # and it did not just stop sending


def test_a_limit_error_pauses_every_call_until_the_window_clears_then_halves_the_rate() -> None:
    window = CallWindow(limit=10, period=60.0)
    _instant(window, 99.0)
    assert window.penalise(now=100.0, sent_at=99.5)
    assert window.free_at(100.0) == 160.0
    reduced = int(10 * PENALTY_FACTOR)
    assert window.capacity_at(160.0) == reduced
    for _ in range(reduced):
        _instant(window, 160.0)
    assert window.free_at(160.0) == 220.0, "the reduced rate, not the full one"
    recovered = 160.0 + RECOVERY_PERIODS * 60.0
    assert window.capacity_at(recovered - 0.1) == reduced
    assert window.capacity_at(recovered) == 10


def test_refusals_of_calls_sent_before_the_pause_are_one_incident() -> None:
    window = CallWindow(limit=8, period=60.0)
    assert window.penalise(now=10.0, sent_at=9.9)
    assert not window.penalise(now=10.2, sent_at=9.95)  # was already on its way
    assert window.capacity_at(70.0) == 4
    assert window.free_at(10.2) == 70.2  # but the pause runs from the later refusal
    assert window.penalise(now=71.0, sent_at=70.5)  # sent after the pause: the rate is too high
    assert window.capacity_at(131.0) == 2


def test_an_incident_after_the_recovery_starts_again_from_the_full_rate() -> None:
    window = CallWindow(limit=8, period=60.0)
    window.penalise(now=0.0, sent_at=0.0)
    later = 60.0 + RECOVERY_PERIODS * 60.0 + 1.0
    window.penalise(now=later, sent_at=later)
    assert window.capacity_at(later + 60.0) == 4


def test_while_the_rate_is_reduced_calls_in_flight_defer_room_to_its_end() -> None:
    window = CallWindow(limit=4, period=60.0)
    window.penalise(now=0.0, sent_at=0.0)  # paused to 60, reduced (2 a period) to 360
    window.take(61.0)
    window.take(61.0)
    assert window.free_at(62.0) == 60.0 + RECOVERY_PERIODS * 60.0  # the full rate has room then
    window.release(62.0)
    assert window.free_at(63.0) == 122.0


# --- the waiting shell, on a fake clock --------------------------------------------------------


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


async def test_the_default_margin_leaves_a_tenth_of_the_limit_unused() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 2, clock=clock, sleep=clock.sleep)
    for _ in range(9):
        await limiter.acquire("getLists")
    assert clock.sleeps == []
    await limiter.acquire("getLists")
    assert clock.sleeps == [60.0]


async def test_a_slow_call_keeps_its_slot_until_a_period_after_its_answer() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=1)
    async with limiter.slot("importContacts"):
        clock.now += 10.0  # the call is on its way for 10 s
    await limiter.acquire("importContacts")
    assert clock.sleeps == [60.0]
    assert clock.now == 1000.0 + 10.0 + 60.0


async def test_concurrent_callers_never_exceed_the_limit_in_any_window() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=5)
    started: list[float] = []

    async def call() -> None:
        await limiter.acquire("importContacts")
        started.append(clock.now)

    await clock.run([call() for _ in range(23)])
    assert len(started) == 23
    assert _busiest_server_window(started, 60.0) <= 5
    assert max(started) == 1000.0 + 4 * 60.0  # and no slower than the limit requires


async def test_callers_waiting_on_calls_in_flight_go_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=2)
    order: list[int] = []

    async def call(number: int, seconds: float) -> None:
        async with limiter.slot("importContacts"):
            order.append(number)
            await clock.sleep(seconds)

    await clock.run([call(n, 30.0 - n) for n in range(6)])
    assert order == list(range(6))


async def test_a_limit_error_holds_back_every_caller_on_the_key() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=100)
    sent: list[float] = []

    async def refused_call() -> None:
        async with limiter.slot("importContacts"):
            await clock.sleep(1.0)
            raise LIMITED

    async def refused() -> None:
        with pytest.raises(RateLimited):
            await refused_call()  # the limiter lets the error through

    async def later() -> None:
        await clock.sleep(0.5)  # sent while the refused call is on its way
        async with limiter.slot("getLists"):
            pass
        await clock.sleep(1.0)  # sent after the refusal
        async with limiter.slot("importContacts"):
            sent.append(clock.now)

    await clock.run([refused(), later()])
    assert limiter.penalties == 1
    assert sent == [1001.0 + 60.0]  # the refusal came at 1001.0; the window cleared a period on
    assert limiter.capacity == int(100 * PENALTY_FACTOR)


async def test_a_caller_cancelled_while_waiting_takes_no_slot_and_passes_its_turn() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=1)
    await limiter.acquire("getLists")
    took: list[tuple[int, float]] = []

    async def caller(number: int) -> None:
        await limiter.acquire("getLists")
        took.append((number, clock.now))

    async def scenario() -> None:
        first = asyncio.create_task(caller(1))
        second = asyncio.create_task(caller(2))
        await asyncio.sleep(0)
        assert limiter.waiting == 2
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await second

    await clock.run([scenario()])
    assert took == [(2, 1060.0)]  # the second caller took the slot the first one left
    assert limiter.waiting == 0


async def test_exports_have_their_own_smaller_window() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=100, export_per_minute=2)
    await limiter.acquire("async/exportContacts")
    await limiter.acquire("async/exportContacts")
    await limiter.acquire("getLists")  # other methods are not held up by the export window
    assert clock.sleeps == []
    await limiter.acquire("async/exportContacts")
    assert clock.sleeps == [60.0]


async def test_an_export_waiting_for_its_window_does_not_hold_up_other_calls() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, per_minute=100, export_per_minute=1)
    await limiter.acquire("async/exportContacts")
    started: dict[str, float] = {}

    async def call(method: str) -> None:
        await limiter.acquire(method)
        started[method] = clock.now

    await clock.run([call("async/exportContacts"), call("getLists")])
    assert started == {"getLists": 1000.0, "async/exportContacts": 1060.0}


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
