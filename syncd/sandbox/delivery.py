"""Webhook delivery (§11.5): gathers contact events for `hook_batch_delay`, then POSTs them to
every active handler that wants them, at most `max_parallel` POSTs at once per handler.

A POST succeeds on HTTP 200 within `hook_timeout`; otherwise it is repeated every
`hook_retry_interval` with `?retry_count=N` (N = 1, 2, ...) until the next try would fall beyond
`hook_retry_window` of the first; then the handler is stopped and its pending bodies and future
events are dropped (Selzy emails the owner). Acts out the `hook` faults; keeps the deliveries log.
One named dispatcher task plus one task per pending body, all cancelled on close; a task that
fails unexpectedly is logged once (the dispatcher carries on with the next round).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog

from syncd.sandbox import payload
from syncd.sandbox.envelope import invalid_arg
from syncd.sandbox.events import OFF, ContactEvent, EventRecorder
from syncd.sandbox.faults import HOOK, FaultBook
from syncd.sandbox.hooks import Hook, HookBook
from syncd.sandbox.options import Settings

log = structlog.get_logger(__name__)

MAX_DELIVERIES_LOGGED = 10_000
JSON_CONTENT_TYPE = "application/json"
DISPATCHER = "sandbox-hook-dispatcher"  # the one long-lived task; bodies are "sandbox-hook-post"


def with_retry_count(url: str, retry_count: int) -> str:
    """The URL of a retry: `retry_count` as a query parameter (where Selzy puts it is unknown)."""
    if retry_count == 0:
        return url
    base, hash_, fragment = url.partition("#")
    return f"{base}{'&' if '?' in base else '?'}retry_count={retry_count}{hash_}{fragment}"


class DeliveryLog:
    """Every webhook POST made (bounded, newest kept), for the admin API."""

    def __init__(self) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=MAX_DELIVERIES_LOGGED)

    def record(self, entry: dict[str, Any]) -> None:
        self._entries.append(entry)

    def listing(self, hook_url: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self._entries if hook_url is None or e["hook_url"] == hook_url]

    def clear(self) -> None:
        self._entries.clear()


class HookDelivery:
    def __init__(self, book: HookBook, settings: Settings, faults: FaultBook) -> None:
        self.book = book
        self.settings = settings
        self.faults = faults
        self.log = DeliveryLog()
        self.session: aiohttp.ClientSession | None = None
        self._pending: list[ContactEvent] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- the API side -------------------------------------------------------------------------

    def recorder(self) -> EventRecorder:
        """A recorder for one operation; the free `OFF` one while no handler is active."""
        return EventRecorder() if self.book.active() else OFF

    def publish(self, events: Sequence[ContactEvent]) -> None:
        """Queue committed events; the dispatcher sends them after `hook_batch_delay`."""
        if events:
            self._pending += events
            self._wake.set()

    async def check_url(self, url: str) -> None:
        """setHook's check: the URL must answer GET with 200 (§11.1), else invalid_arg."""
        timeout = aiohttp.ClientTimeout(total=self.settings.hook_timeout)
        try:
            async with self._client().get(url, timeout=timeout) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise invalid_arg(
                f"'hook_url' - the URL could not be reached: {type(exc).__name__}"
            ) from None
        if status != 200:
            raise invalid_arg(f"'hook_url' - the URL answered GET with HTTP {status}, not 200")

    # ---- life cycle ---------------------------------------------------------------------------

    def start(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self._spawn(self._dispatch_forever(), DISPATCHER)

    def forget(self) -> None:
        """Drop queued events and pending bodies (reset); the dispatcher keeps running."""
        self._pending.clear()
        for task in list(self._tasks):
            if task.get_name() != DISPATCHER:
                task.cancel()
        self.log.clear()

    async def aclose(self) -> None:
        pending = len(self._tasks) - 1
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("sandbox_hooks_closed", pending_bodies=max(0, pending), queued=len(self._pending))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("sandbox_hook_task_failed", task=task.get_name(), exc_info=exc)

    def _client(self) -> aiohttp.ClientSession:
        assert self.session is not None  # noqa: S101 - set by start(), with the app's startup
        return self.session

    # ---- dispatching ---------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.settings.hook_batch_delay)
            self._wake.clear()
            events, self._pending = self._pending, []
            try:
                self._dispatch(events)
            except Exception:
                log.exception("sandbox_hook_dispatch_failed", events=len(events))

    def _dispatch(self, events: list[ContactEvent]) -> None:
        wanted = [(h, [e for e in events if h.wants(e)]) for h in self.book.active()]
        wanted = [(h, chosen) for h, chosen in wanted if chosen]
        if not wanted:
            return
        reverse = self.faults.take(HOOK, "out_of_order") is not None
        for hook, chosen in wanted:
            ordered = (
                chosen[::-1] if reverse else chosen
            )  # so bodies and their events go newest first
            bodies = payload.bodies(
                ordered,
                login=self.settings.login,
                api_key=hook.api_key,
                single_event=hook.single_event,
            )
            for body, count in bodies:
                self._spawn(self._deliver(hook, body, count, hook.epoch), "sandbox-hook-post")

    # ---- one body, with its retries --------------------------------------------------------------

    def _current(self, hook: Hook, epoch: int) -> bool:
        return self.book.get(hook.url) is hook and hook.epoch == epoch

    async def _deliver(self, hook: Hook, body: bytes, events: int, epoch: int) -> None:
        loop = asyncio.get_running_loop()
        first = loop.time()
        retry_count = 0
        while self._current(hook, epoch):
            if await self._attempt(hook, body, events, retry_count):
                return
            if not self._current(hook, epoch):
                break
            interval = self.settings.hook_retry_interval
            if loop.time() - first + interval > self.settings.hook_retry_window:
                if self.book.stop(hook):
                    log.warning("sandbox_hook_stopped", hook_url=hook.url, attempts=retry_count + 1)
                return
            await asyncio.sleep(interval)
            retry_count += 1
        log.info("sandbox_hook_body_dropped", hook_url=hook.url, status=hook.status)

    async def _attempt(self, hook: Hook, body: bytes, events: int, retry_count: int) -> bool:
        async with self._slot(hook):
            slow = self.faults.take(HOOK, "slow")
            if slow is not None:
                await asyncio.sleep(slow.delay)
            delivered = await self._post(hook, body, events, retry_count, duplicate=False)
            if self.faults.take(HOOK, "duplicate") is not None:
                await self._post(hook, body, events, retry_count, duplicate=True)
        return delivered

    @contextlib.asynccontextmanager
    async def _slot(self, hook: Hook) -> AsyncIterator[None]:
        """At most hook.max_parallel POSTs at once (re-read: setHook may change it)."""
        async with self._slots:
            await self._slots.wait_for(lambda: hook.in_flight < hook.max_parallel)
            hook.in_flight += 1
        try:
            yield
        finally:
            hook.in_flight -= 1
            async with self._slots:
                self._slots.notify_all()

    async def _post(
        self, hook: Hook, body: bytes, events: int, retry_count: int, *, duplicate: bool
    ) -> bool:
        url = with_retry_count(hook.url, retry_count)
        entry: dict[str, Any] = {
            "hook_url": hook.url,
            "url": url,
            "attempt": retry_count + 1,
            "retry_count": retry_count,
            "duplicate": duplicate,
            "events": events,
            "body": body.decode("ascii"),
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "status": None,
            "error": None,
        }
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeout = aiohttp.ClientTimeout(total=self.settings.hook_timeout)
        try:
            async with self._client().post(
                url, data=body, headers={"Content-Type": JSON_CONTENT_TYPE}, timeout=timeout
            ) as response:
                await response.read()
                entry["status"] = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            entry["error"] = type(exc).__name__
        entry["seconds"] = round(loop.time() - started, 3)
        self.log.record(entry)
        return bool(entry["status"] == 200)
