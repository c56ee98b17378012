"""The client-side rate limiter and the per-run call counter, on real calls."""

from __future__ import annotations

import asyncio
import time

from syncd.api import RateLimiter, SelzyClient
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.api.conftest import MakeClient


async def test_calls_over_the_client_limit_wait_instead_of_failing(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    limiter = RateLimiter(per_minute=3, export_per_minute=1, period=0.4)
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
    limiter = RateLimiter(per_minute=2, export_per_minute=1, period=0.3)
    first, second = make_client(limiter=limiter), make_client(limiter=limiter)
    started = time.monotonic()
    await asyncio.gather(first.get_lists(), second.get_lists(), first.get_fields())
    assert time.monotonic() - started >= 0.3
    assert limiter.waited > 0


async def test_export_limit_holds_exports_back_but_not_other_calls(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    list_id = await sandbox.create_list("L")
    client = make_client(limiter=RateLimiter(per_minute=100, export_per_minute=1, period=0.6))
    await client.export_contacts(list_id, ["email"])
    started = time.monotonic()
    await client.get_lists()
    assert time.monotonic() - started < 0.3
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
