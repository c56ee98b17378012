"""The event webhook's registration with Selzy (selzy-api.md §11.1, §11.5): setHook at start
(idempotent: the URL is the handler's identity), then listHooks at start and every hour —
re-registering a handler that is gone, re-activating one Selzy `stopped` (it stops a handler
after 24 h of failed deliveries), removing this daemon's handlers left under an old API key.

`assess` is the pure decision over listHooks' answer; HookKeeper does the calls. A failure is
logged and retried at the next check, never fatal: the scheduled export stays the authority.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from syncd.api import HookInfo, SelzyClient
from syncd.errors import SyncdError
from syncd.events.address import EventAddress

log = structlog.get_logger(__name__)

HOOK_EVENTS = {"unsubscribe": "*", "subscribe": "*"}  # every list: the worker routes them
EVENT_FORMAT = "json_post"
CHECK_INTERVAL = 3600.0  # seconds between two listHooks checks
RETRY_INTERVAL = 60.0  # seconds before a failed registration or check is tried again
ACTIVE, STOPPED = "active", "stopped"
STOPPED_WHY = (
    "Selzy stops a handler after 24 h of failed deliveries (selzy-api.md §11.5); events of that "
    "time were not delivered and reach syncd through the scheduled export"
)


class Verdict(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # not registered (any more): setHook
    STOPPED = "stopped"  # setHook status=active
    CHANGED = "changed"  # registered with other events: setHook again
    UNKNOWN_STATUS = "unknown_status"  # a status nobody documented: left alone, logged


@dataclass(frozen=True, slots=True)
class Assessment:
    verdict: Verdict
    status: str | None  # ours, as listed
    stale: tuple[str, ...]  # our handlers under another secret (an old API key): removeHook


def assess(hooks: Sequence[HookInfo], address: EventAddress) -> Assessment:
    """What to do about our handler, given listHooks' answer."""
    stale = tuple(h.hook_url for h in hooks if address.is_ours_with_another_secret(h.hook_url))
    ours = next((h for h in hooks if h.hook_url == address.url), None)
    if ours is None:
        return Assessment(Verdict.MISSING, None, stale)
    if ours.status == STOPPED:
        verdict = Verdict.STOPPED
    elif ours.status != ACTIVE:
        verdict = Verdict.UNKNOWN_STATUS
    elif ours.events and dict(ours.events) != HOOK_EVENTS:
        verdict = Verdict.CHANGED
    else:
        verdict = Verdict.OK
    return Assessment(verdict, ours.status, stale)


@dataclass(slots=True)
class HookStats:
    """What the metrics can say of the handler."""

    registered: bool = False  # the last check saw it active
    status: str | None = None
    checks: int = 0
    failures: int = 0
    reactivations: int = 0
    registrations: int = 0
    last: Verdict | None = field(default=None)


class HookKeeper:
    """Registers the event URL and keeps it registered; `run_forever` is a supervised task."""

    def __init__(
        self,
        client: SelzyClient,
        address: EventAddress,
        *,
        interval: float = CHECK_INTERVAL,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self._client = client
        self.address = address
        self._interval = interval
        self._retry_interval = retry_interval
        self.stats = HookStats()

    async def register(self) -> None:
        """setHook for our URL (the web listener must answer GET on it already: Selzy checks)."""
        await self._client.set_hook(self.address.url, HOOK_EVENTS, event_format=EVENT_FORMAT)
        self.stats.registrations += 1
        log.info("event_hook_registered", hook_url=self.address.shown, events=list(HOOK_EVENTS))

    async def check(self) -> Assessment:
        """listHooks, then whatever the assessment asks for. SyncdError when a call fails."""
        self.stats.checks += 1
        found = assess(await self._client.list_hooks(), self.address)
        self.stats.last, self.stats.status = found.verdict, found.status
        if found.verdict is Verdict.MISSING:
            log.warning("event_hook_missing", hook_url=self.address.shown)
            await self.register()
        elif found.verdict is Verdict.CHANGED:
            log.warning("event_hook_changed", hook_url=self.address.shown)
            await self.register()
        elif found.verdict is Verdict.STOPPED:
            await self._client.set_hook(
                self.address.url, HOOK_EVENTS, event_format=EVENT_FORMAT, status=ACTIVE
            )
            self.stats.reactivations += 1
            log.warning(
                "event_hook_reactivated", hook_url=self.address.shown, was=STOPPED, why=STOPPED_WHY
            )
        elif found.verdict is Verdict.UNKNOWN_STATUS:
            log.warning(
                "event_hook_status_unknown", hook_url=self.address.shown, status=found.status
            )
        for url in found.stale:
            await self._client.remove_hook(url)
            log.info("event_hook_removed", reason="another_api_key")
        self.stats.registered = found.verdict is not Verdict.UNKNOWN_STATUS
        self.stats.status = ACTIVE if self.stats.registered else found.status
        return found

    async def start(self) -> bool:
        """setHook, then a check; False (logged) when Selzy could not be told."""
        try:
            await self.register()
            await self.check()
        except SyncdError as exc:
            self._failed(exc)
            return False
        return True

    async def run_forever(self) -> None:
        """start(), then a check every `interval` seconds, or after `retry_interval` while the
        last attempt failed (a check registers too)."""
        healthy = await self.start()
        while True:
            await asyncio.sleep(self._interval if healthy else self._retry_interval)
            try:
                await self.check()
            except SyncdError as exc:
                self._failed(exc)
                healthy = False
            else:
                healthy = True

    def _failed(self, exc: SyncdError) -> None:
        self.stats.failures += 1
        self.stats.registered = False
        log.error("event_hook_failed", hook_url=self.address.shown, error=str(exc))
