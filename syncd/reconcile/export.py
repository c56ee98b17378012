"""Obtaining the list export: request the task, wait for it (notify_url callback when the daemon
offers one, polling getTaskResult always), within `export_deadline`.

Polls follow `poll_schedule`: growing intervals; or, when earlier runs say how long the export
takes, sparse polls up to shortly before that, dense ones around it, growing ones after.
It returns the file's URL and does not read the file: the runner streams it into PostgreSQL.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import structlog

from syncd.api import SelzyClient
from syncd.config import SelzyConfig
from syncd.errors import ExportError
from syncd.reconcile.actions import EXPORT_FIELDS
from syncd.reconcile.outcome import CallbackSlot, ExportCallbacks

log = structlog.get_logger(__name__)

POLL_GROWTH = 1.5  # each wait is this much longer than the previous, up to poll_interval_max
DENSE_POLL_INTERVAL = 0.5  # seconds between polls around the expected finish
DENSE_FROM = 0.8  # dense polling starts at this fraction of the expected duration...
DENSE_UNTIL = 1.5  # ...and ends at this multiple of it...
DENSE_SLACK = 3.0  # ...plus this many seconds
MAX_DENSE_POLLS = 60  # a longer dense window gets this many polls, spread out


def poll_delays(first: float, maximum: float) -> Iterator[float]:
    """first, first*1.5, ... capped at maximum, forever."""
    delay = max(first, 0.001)
    while True:
        yield min(delay, maximum)
        delay = min(delay * POLL_GROWTH, maximum)


def poll_schedule(first: float, maximum: float, expected: float | None = None) -> Iterator[float]:
    """Seconds to wait before each getTaskResult poll, counted from the previous one (the first
    from the export request), forever.

    Without `expected` (seconds the export took in earlier runs): `poll_delays`. With it: growing
    delays that stop at least DENSE_POLL_INTERVAL short of DENSE_FROM x expected, one poll there,
    then MAX_DENSE_POLLS at most, DENSE_POLL_INTERVAL apart (spread out evenly over a longer
    window), up to DENSE_UNTIL x expected + DENSE_SLACK, and `poll_delays` again after that.
    """
    if expected is None or not math.isfinite(expected) or expected < 0:
        yield from poll_delays(first, maximum)
        return
    start = DENSE_FROM * expected
    end = DENSE_UNTIL * expected + DENSE_SLACK
    elapsed = 0.0
    for delay in poll_delays(first, maximum):
        if elapsed + delay > start - DENSE_POLL_INTERVAL:
            break
        elapsed += delay
        yield delay
    if start > elapsed:
        yield start - elapsed
    polls = min(MAX_DENSE_POLLS, max(1, math.ceil((end - start) / DENSE_POLL_INTERVAL)))
    step = (end - start) / polls
    for _ in range(polls):
        yield step
    yield from poll_delays(first, maximum)


async def wait_for_export(
    client: SelzyClient,
    config: SelzyConfig,
    list_id: int,
    *,
    callbacks: ExportCallbacks | None = None,
    expected: float | None = None,
) -> str:
    """Request the export of `list_id` and return its file_to_download URL.

    `expected`: seconds the export took in earlier runs (`syncd.db.runs.expected_export_seconds`),
    to poll densely around then (`poll_schedule`); None polls with growing intervals.
    ExportError when the task does not complete within config.export_deadline seconds or
    completes without a file.
    """
    slot: CallbackSlot | None = callbacks.open_slot() if callbacks is not None else None
    try:
        task = await client.export_contacts(
            list_id, EXPORT_FIELDS, notify_url=slot.url if slot is not None else None
        )
        if slot is not None:
            slot.bind(task.task_uuid)
        log.info("export_requested", task_uuid=task.task_uuid, callback=slot is not None)
        if task.completed:
            return _file_of(task.task_uuid, task.file_to_download)
        loop = asyncio.get_running_loop()
        due = loop.time()
        deadline = due + config.export_deadline
        schedule = poll_schedule(config.poll_interval, config.poll_interval_max, expected)
        for polls, delay in enumerate(schedule):
            # Polls keep to the schedule's times, so the time a poll takes does not shift the
            # dense window; one that fell behind (a slow poll) goes now, without catching up.
            now = loop.time()
            due = max(due + delay, now)
            remaining = deadline - now
            if remaining <= 0:
                raise ExportError(
                    f"export task {task.task_uuid} did not complete within "
                    f"export_deadline={config.export_deadline:g}s ({polls} polls)"
                )
            wait = min(due - now, remaining)
            if slot is not None:
                url = await slot.wait(wait)
                if url:
                    log.info("export_ready", task_uuid=task.task_uuid, via="callback", polls=polls)
                    return url
            else:
                await asyncio.sleep(wait)
            result = await client.get_task_result(task.task_uuid)
            if result.completed:
                log.info("export_ready", task_uuid=task.task_uuid, via="poll", polls=polls + 1)
                return _file_of(task.task_uuid, result.file_to_download)
        raise AssertionError("unreachable: poll_schedule is infinite")  # pragma: no cover
    finally:
        if slot is not None:
            slot.close()


def _file_of(task_uuid: str, url: str | None) -> str:
    if not url:
        raise ExportError(f"export task {task_uuid} completed without a file to download")
    return url
