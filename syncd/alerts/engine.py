"""The alerts' thin shell: after a run it reads the job's history from syncd.runs, asks the pure
model which alerts the run's state change gives, and hands them to the channels in the
background; it keeps the one piece of in-memory state (which jobs it has called stale).

Nothing here ever fails a run: a history that cannot be read is logged (`alert_check_failed`),
a channel that fails is logged by delivery.py. Alerts go out in order per channel; `aclose`
waits for those still going out, up to a deadline.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType

import structlog

from syncd.alerts.delivery import Channel, build_channels, deliver, retry_policy
from syncd.alerts.model import (
    REJECTED_MIN_ROWS,
    Alert,
    fold,
    fresh_alert,
    snapshot,
    stale,
    stale_alert,
    test_alert,
    transitions,
)
from syncd.api import RetryPolicy
from syncd.config import AlertsConfig
from syncd.db import Pool
from syncd.db.alerts import alert_history

log = structlog.get_logger(__name__)

HISTORY_TIMEOUT = 10.0  # seconds to read a run's history from syncd.runs
CLOSE_DEADLINE = 30.0  # seconds `aclose` waits for alerts still being delivered


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AlertEngine:
    """One per process (the daemon, `syncd sync`, `syncd alert-test`); owns its channels.

    `pool` is needed by `after_run` only. `retry` and `clock` are for tests."""

    def __init__(
        self,
        config: AlertsConfig,
        pool: Pool | None = None,
        *,
        channels: Sequence[Channel] | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.config = config
        self._pool = pool
        self.channels: list[Channel] = (
            list(channels) if channels is not None else build_channels(config)
        )
        self._policy = retry or retry_policy(config)
        self._clock = clock
        self._started = clock()
        self._stale: dict[str, bool] = {}
        self._tasks: set[asyncio.Task[bool]] = set()
        self._last: dict[str, asyncio.Task[bool]] = {}  # per channel: the alert going out last

    async def __aenter__(self) -> AlertEngine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def after_run(self, job: str, run_id: int) -> list[Alert]:
        """Alert on what finished run `run_id` of `job` changed (nothing for a dry, interrupted
        or unknown run); returns the alerts handed to the channels. Never raises."""
        try:
            alerts = await self._decide(job, run_id)
        except Exception as exc:  # the database, or a bug: never the run's problem
            log.error("alert_check_failed", job=job, run_id=run_id, error_type=type(exc).__name__)
            return []
        self.publish(alerts)
        return alerts

    async def _decide(self, job: str, run_id: int) -> list[Alert]:
        if self._pool is None:
            raise RuntimeError("AlertEngine.after_run needs the pool")
        async with asyncio.timeout(HISTORY_TIMEOUT):
            runs = await alert_history(self._pool, job, run_id, min_rows=REJECTED_MIN_ROWS)
        if not runs or runs[-1].id != run_id:
            return []
        current = snapshot(runs[-1])
        alerts = transitions(fold(runs[:-1]), current, self.config)
        if current.state == "ok" and self._stale.get(job):
            self._stale[job] = False
            if not any(alert.kind == "recovered" for alert in alerts):
                alerts.append(fresh_alert(job, current.at, run_id))
        return alerts

    async def check_stale(
        self, job: str, last_success_at: datetime | None, period: float | None
    ) -> Alert | None:
        """Alert once when `job` has had no success for STALE_PERIODS periods (seconds), once
        when it is fresh again. A job that never succeeded counts from this engine's start."""
        now = self._clock()
        is_stale = stale(last_success_at, period, now, since=self._started)
        was_stale = self._stale.get(job, False)
        self._stale[job] = is_stale
        alert: Alert | None = None
        if is_stale and not was_stale:
            alert = stale_alert(job, last_success_at, period or 0.0, now)
        elif was_stale and not is_stale:
            alert = fresh_alert(job, now)
        if alert is not None:
            self.publish([alert])
        return alert

    async def send_test(self) -> dict[str, bool]:
        """A sample alert to every channel, now (with retries); channel name -> taken."""
        alert = test_alert(self._clock(), socket.gethostname())
        results = await asyncio.gather(
            *(deliver(channel, alert, self._policy) for channel in self.channels)
        )
        return {channel.name: ok for channel, ok in zip(self.channels, results, strict=True)}

    def publish(self, alerts: Sequence[Alert]) -> None:
        """Hand `alerts` to every channel in the background, in order per channel."""
        for alert in alerts:
            log.info("alert_raised", job=alert.job, kind=alert.kind, run_id=alert.run_id)
            for channel in self.channels:
                after = self._last.get(channel.name)
                task = asyncio.create_task(
                    self._deliver_after(after, channel, alert),
                    name=f"alert-{channel.name}-{alert.kind}",
                )
                self._last[channel.name] = task
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver_after(
        self, after: asyncio.Task[bool] | None, channel: Channel, alert: Alert
    ) -> bool:
        if after is not None:
            await asyncio.wait([after])  # whatever it ended with: its own log line said so
        return await deliver(channel, alert, self._policy)

    async def aclose(self, deadline: float = CLOSE_DEADLINE) -> None:
        """Wait up to `deadline` seconds for the alerts still going out, then close the
        channels; alerts still undelivered then are abandoned (and logged)."""
        pending = set(self._tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=deadline)
        if pending:
            log.error("alerts_abandoned", alerts=len(pending), deadline_s=deadline)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)
        for channel in self.channels:
            await channel.aclose()
