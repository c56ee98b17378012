"""The event webhook, composed (`[webhook] events = true`): the receiver the web listener
mounts, the store behind it, the worker that applies stored events, and the keeper of the
setHook registration. The daemon builds one EventService after the pool and the Selzy client,
mounts `receiver` on the webhook listener, and calls `start` once that listener serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from syncd.api import SelzyClient
from syncd.config import Config, JobConfig
from syncd.db import Pool
from syncd.db.events import EventStore
from syncd.errors import ConfigError, SyncdError
from syncd.events.address import event_address
from syncd.events.hooks import HookKeeper
from syncd.events.worker import EventWorker, serves
from syncd.logs import register_secret
from syncd.web import health
from syncd.web.event_metrics import EventCounters, EventReading
from syncd.web.events import EventReceiver

Spawn = Callable[[str, Coroutine[Any, Any, Any]], object]  # Supervisor.spawn


class EventService:
    def __init__(
        self,
        config: Config,
        *,
        pool: Pool,
        client: SelzyClient,
        jobs: Callable[[], Sequence[JobConfig]],
        request_run: Callable[[str], None],
    ) -> None:
        webhook, key = config.webhook, config.selzy.api_key
        if webhook is None or not webhook.public_url or key is None:
            raise ConfigError("webhook.events needs [webhook] public_url and the API key")
        self.address = event_address(webhook.public_url, key.reveal())
        register_secret(self.address.segment)  # a credential: masked in every log line
        self.store = EventStore(pool)
        self.worker = EventWorker(
            store=self.store,
            database=config.database,
            client=client,
            jobs=jobs,
            request_run=request_run,
        )
        self.receiver = EventReceiver(
            self.address,
            key,
            self.store.store,
            max_body_bytes=webhook.max_event_body_bytes,
            on_stored=self.worker.wake,
        )
        self.keeper = HookKeeper(client, self.address, interval=webhook.hook_check_interval)

    def start(self, spawn: Spawn) -> None:
        """The supervised tasks: the registration (setHook, then listHooks hourly: the receiver
        must answer GET already, Selzy checks) and the worker, which first applies whatever a
        previous process stored and did not apply. Neither holds up the daemon's start."""
        spawn("event-hooks", self.keeper.run_forever())
        spawn("event-worker", self.worker.run_forever())

    @property
    def counters(self) -> EventCounters:
        """What the receiver, the worker and the keeper counted, for the metrics."""
        return EventCounters(self.receiver.stats, self.worker.stats, self.keeper.stats)

    async def reading(self, jobs: Sequence[JobConfig]) -> EventReading:
        """The queues for one scrape: contacts queued per served job, the oldest queued row and
        the events not routed yet; within HEALTH_TIMEOUT, like the scrape's read of the runs,
        and without them (the gauges left empty) when PostgreSQL does not answer."""
        served = tuple(job.name for job in jobs if serves(job))
        try:
            async with asyncio.timeout(health.HEALTH_TIMEOUT):
                backlogs = await self.store.backlogs()
                unrouted = await self.store.pending()
        except (SyncdError, TimeoutError):
            return EventReading(served)  # syncd_database_up says why
        return EventReading(
            served,
            backlog={b.job: b.contacts for b in backlogs},
            oldest={b.job: b.oldest.timestamp() for b in backlogs},
            unrouted=unrouted,
        )
