"""The sandbox as one object: options, runtime settings, storage, faults, calls log, limiters,
export tasks and webhooks. build_app() creates one per aiohttp application; handlers reach it via
SANDBOX.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from syncd.sandbox.delivery import HookDelivery
from syncd.sandbox.faults import FaultBook
from syncd.sandbox.hooks import HookBook
from syncd.sandbox.journal import CallLog, SlidingWindow
from syncd.sandbox.options import SandboxOptions, Settings
from syncd.sandbox.store import WIPE, Database
from syncd.sandbox.tasks import TaskEngine


class Sandbox:
    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.settings = Settings.from_options(options)
        self.db = Database(options.state_file)
        self.faults = FaultBook()
        self.calls = CallLog()
        self.limiter = SlidingWindow()
        self.export_limiter = SlidingWindow()
        self.engine = TaskEngine(self.db, options, self.settings, self.calls)
        self.hooks = HookBook()
        self.delivery = HookDelivery(self.hooks, self.settings, self.faults)
        self.closing = asyncio.Event()  # set on shutdown: hanging handlers give up

    async def reset(self) -> None:
        """Forget everything: contacts, lists, fields, faults, calls, tasks, rate windows, hooks
        and their pending deliveries."""
        await self.db.run(lambda conn: conn.executescript(WIPE))
        self.faults.clear()
        self.calls.clear()
        self.limiter.clear()
        self.export_limiter.clear()
        self.engine.forget()
        self.hooks.clear()
        self.delivery.forget()


SANDBOX = web.AppKey("sandbox", Sandbox)
CALLER_KEY = web.RequestKey("api_key", str)  # the caller's API key, once checked
NEVER_FINISHES = web.RequestKey("never_finishes", bool)  # set by that fault for this call
