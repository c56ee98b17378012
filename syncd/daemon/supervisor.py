"""Supervised background tasks: every task is named, and one that ends unexpectedly (raises, or
returns while the daemon is not stopping) is logged once and makes the daemon exit 1 so systemd
restarts it. It owns nothing else; what the tasks do is the caller's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)

CANCEL_TIMEOUT = 5.0  # seconds to wait for cancelled tasks on stop


class Supervisor:
    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], bool] = {}  # task -> may end by itself
        self.failed = asyncio.Event()
        self.failure: str | None = None  # name of the first task that died
        self._stopping = False

    def spawn(
        self, name: str, coro: Coroutine[Any, Any, Any], *, may_end: bool = False
    ) -> asyncio.Task[Any]:
        """Run `coro` as task `name`. `may_end`: returning is fine (raising is still a death)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks[task] = may_end
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        may_end = self._tasks.pop(task, False)
        if self._stopping or task.cancelled():
            return
        exc = task.exception()
        if exc is None and may_end:
            return
        if self.failure is None:  # log once: the first death is the cause, later ones follow it
            self.failure = task.get_name()
            log.error(
                "task_died",
                task=task.get_name(),
                error=repr(exc) if exc is not None else "returned unexpectedly",
                exc_info=exc,
            )
        self.failed.set()

    async def stop(self) -> None:
        """Cancel every task still running and wait for them (bounded)."""
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_TIMEOUT)
