"""Clients pointed at the in-process sandbox, with tiny retry delays so fault tests stay fast.

Each client gets its own RateLimiter: the process-wide registry is for production, where every
job shares one key; tests must not slow each other down through it. Its pause after a limit
error is as short as FAST_RETRY's rate-limit delay, not a minute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from syncd.api import RateLimiter, RetryPolicy, SelzyClient
from tests.fixtures.sandbox import SandboxHandle

FAST_RETRY = RetryPolicy(max_attempts=3, base=0.01, cap=0.02, rate_limit_base=0.2)
CALL_TIMEOUT = 0.5  # seconds; the sandbox answers in milliseconds

MakeClient = Callable[..., SelzyClient]


@pytest.fixture
async def make_client(sandbox: SandboxHandle) -> AsyncIterator[MakeClient]:
    """make_client(retry=..., limiter=..., **SelzyConfig overrides); closed after the test."""
    made: list[SelzyClient] = []

    def make(
        *, retry: RetryPolicy = FAST_RETRY, limiter: RateLimiter | None = None, **overrides: Any
    ) -> SelzyClient:
        config = dataclasses.replace(sandbox.config, **({"timeout": CALL_TIMEOUT} | overrides))
        limiter = limiter or RateLimiter(pause=FAST_RETRY.rate_limit_base)
        client = SelzyClient(config, retry=retry, limiter=limiter)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def client(make_client: MakeClient) -> SelzyClient:
    return make_client()
