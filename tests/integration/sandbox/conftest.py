"""Webhook fixtures: a real receiver on 127.0.0.1 and a sandbox whose hook timings suit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.integration.sandbox.receiver import Receiver, running_receiver

FAST_HOOKS = {
    "hook_batch_delay": 0.05,  # events gathered this long before a POST
    "hook_timeout": 1.0,
    "hook_retry_interval": 0.05,
    "hook_retry_window": 60.0,  # tests about stopping shrink it
}


@pytest.fixture
async def hook_receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as receiver:
        yield receiver


@pytest.fixture
async def hooked(sandbox: SandboxHandle) -> SandboxHandle:
    """The `sandbox` fixture with fast webhook timings and one list, id 1."""
    await sandbox.settings(**FAST_HOOKS)
    await sandbox.create_list("Newsletter", 1)
    return sandbox
