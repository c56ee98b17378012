"""The client-side rate limiter and the per-run call counter, on real calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from syncd.api import RateLimiter, RetryPolicy, SelzyClient
from syncd.sandbox import journal
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.api.conftest import MakeClient


async def test_calls_over_the_client_limit_wait_instead_of_failing(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    limiter = RateLimiter(per_minute=3, export_per_minute=1, period=0.4, margin=0.0)
    client = make_client(limiter=limiter)
    started = time.monotonic()
    results = await asyncio.gather(*(client.get_lists() for _ in range(7)))
    elapsed = time.monotonic() - started
    assert results == [[]] * 7
    assert 0.8 <= elapsed < 2.5  # 7 calls at 3 per 0.4 s need two extra windows
    assert len(await sandbox.calls("getLists")) == 7


async def test_two_clients_on_one_limiter_share_its_budget(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    limiter = RateLimiter(per_minute=2, export_per_minute=1, period=0.3, margin=0.0)
    first, second = make_client(limiter=limiter), make_client(limiter=limiter)
    started = time.monotonic()
    await asyncio.gather(first.get_lists(), second.get_lists(), first.get_fields())
    assert time.monotonic() - started >= 0.3
    assert limiter.waited > 0


async def test_export_limit_holds_exports_back_but_not_other_calls(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    list_id = await sandbox.create_list("L")
    limiter = RateLimiter(per_minute=100, export_per_minute=1, period=0.6, margin=0.0)
    client = make_client(limiter=limiter)
    await client.export_contacts(list_id, ["email"])
    started = time.monotonic()
    waited = limiter.waited
    await client.get_lists()
    # not held back: held, it would wait out the export window (0.6 s). The limiter's own count
    # of waiting, not the wall clock, which on a loaded machine includes the call itself
    assert limiter.waited - waited < 0.3
    await client.export_contacts(list_id, ["email"])
    assert time.monotonic() - started >= 0.45


def test_default_limiter_is_shared_per_key_and_endpoint(sandbox: SandboxHandle) -> None:
    first = SelzyClient(sandbox.config)
    second = SelzyClient(sandbox.config)
    assert first.limiter is second.limiter
    assert first.limiter is RateLimiter.shared_for(sandbox.base_url, sandbox.api_key)


async def test_counting_separates_concurrent_jobs_sharing_one_client(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    await sandbox.fault(method="getFields", kind="error", code="retry_later", times=1)

    async def job_a() -> dict[str, int]:
        with client.counting() as counter:
            await client.get_lists()
            await client.import_contacts(["email"], [["a@example.com"]])
        return counter.by_method

    async def job_b() -> dict[str, int]:
        with client.counting() as counter:
            await asyncio.gather(client.get_fields(), client.get_lists())  # child tasks count too
        return counter.by_method

    a, b = await asyncio.gather(job_a(), job_b())
    assert a == {"getLists": 1, "importContacts": 1}
    assert b == {"getFields": 2, "getLists": 1}  # the retried attempt is counted
    assert len(await sandbox.calls()) == 5


# --- the server's limit as the server counts it -----------------------------------------------

WAIT_TIMEOUT = 10.0  # seconds a test waits for a state it is sure to reach
SHORT_WINDOW = 1.0  # seconds: the sandbox's window in tests that need several of them


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "the expected state was not reached"
        await asyncio.sleep(0.01)


@pytest.fixture
def short_window(monkeypatch: pytest.MonkeyPatch) -> float:
    """The sandbox counts calls in a window of SHORT_WINDOW seconds instead of 60."""
    monkeypatch.setattr(journal.SlidingWindow, "WINDOW", SHORT_WINDOW)
    return SHORT_WINDOW


async def test_a_burst_over_the_servers_limit_sends_what_fits_and_is_never_refused(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    """Client set to the sandbox's 10 a minute (default margin): of 15 calls at once, 9 are sent
    and answered, 6 wait for the window to move; the sandbox refuses none."""
    await sandbox.settings(rate_limit_per_minute=10)
    limiter = RateLimiter(per_minute=10)
    client = make_client(limiter=limiter)
    with client.counting() as counter:
        calls = [asyncio.create_task(client.get_lists()) for _ in range(15)]
        try:
            await _until(lambda: sum(c.done() for c in calls) == 9 and limiter.waiting == 6)
            assert [c.result() for c in calls if c.done()] == [[]] * 9
        finally:
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
    assert counter.errors == {}
    assert len(await sandbox.calls("getLists")) == 9


async def test_calls_slowed_on_their_way_still_never_exceed_the_servers_window(
    make_client: MakeClient, sandbox: SandboxHandle, short_window: float
) -> None:
    """Three windows' worth of calls, client at exactly the sandbox's limit (no margin), the first
    two held up 0.3 s before the sandbox counts them: all are answered, none is refused. (A slot
    freed a period after the call was *sent* would let the next window's calls in too early.)"""
    await sandbox.settings(rate_limit_per_minute=4)
    await sandbox.fault(method="getLists", kind="latency", delay=0.3, times=2)
    limiter = RateLimiter(per_minute=4, period=short_window, margin=0.0)
    client = make_client(limiter=limiter, retry=RetryPolicy(max_attempts=1))
    started = time.monotonic()
    with client.counting() as counter:
        results = await asyncio.gather(*(client.get_lists() for _ in range(12)))
    assert results == [[]] * 12
    assert counter.errors == {}
    assert time.monotonic() - started >= 2 * short_window  # 12 calls at 4 a window
    assert len(await sandbox.calls("getLists")) == 12


async def test_after_a_limit_error_every_call_on_the_key_waits_for_the_window_to_clear(
    make_client: MakeClient, sandbox: SandboxHandle, short_window: float
) -> None:
    """Another client used up the key's window: our first call is refused, and neither its retry
    nor calls made meanwhile reach the sandbox before the window has cleared; all then succeed."""
    await sandbox.settings(rate_limit_per_minute=3)
    for _ in range(3):
        assert await sandbox.call("getLists") == {"result": []}
    limiter = RateLimiter(per_minute=100, period=short_window, margin=0.0)  # only a refusal slows
    no_own_delay = RetryPolicy(max_attempts=2, base=0.0, cap=0.0, rate_limit_base=0.0)
    client = make_client(limiter=limiter, retry=no_own_delay)
    started = time.monotonic()
    with client.counting() as counter:
        refused = asyncio.create_task(client.get_lists())
        await _until(lambda: limiter.penalties == 1)
        later = [asyncio.create_task(client.get_fields()) for _ in range(2)]
        assert await asyncio.gather(refused, *later) == [[], [], []]
    assert counter.errors == {"api_call_limit_exceeded_for_api_key": 1}
    assert counter.by_method == {"getLists": 2, "getFields": 2}
    assert time.monotonic() - started > short_window
