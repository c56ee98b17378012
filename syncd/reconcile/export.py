"""Obtaining the list export: request the task, wait for it (notify_url callback when the daemon
offers one, polling getTaskResult with growing intervals always), within `export_deadline`.

It returns the file's URL and does not read the file: the runner streams it into PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import structlog

from syncd.api import SelzyClient
from syncd.config import SelzyConfig
from syncd.errors import ExportError
from syncd.reconcile.actions import EXPORT_FIELDS
from syncd.reconcile.outcome import CallbackSlot, ExportCallbacks

log = structlog.get_logger(__name__)

POLL_GROWTH = 1.5  # each wait is this much longer than the previous, up to poll_interval_max


def poll_delays(first: float, maximum: float) -> Iterator[float]:
    """first, first*1.5, ... capped at maximum, forever."""
    delay = max(first, 0.001)
    while True:
        yield min(delay, maximum)
        delay = min(delay * POLL_GROWTH, maximum)


async def wait_for_export(
    client: SelzyClient,
    config: SelzyConfig,
    list_id: int,
    *,
    callbacks: ExportCallbacks | None = None,
) -> str:
    """Request the export of `list_id` and return its file_to_download URL.

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
        deadline = loop.time() + config.export_deadline
        for polls, delay in enumerate(poll_delays(config.poll_interval, config.poll_interval_max)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ExportError(
                    f"export task {task.task_uuid} did not complete within "
                    f"export_deadline={config.export_deadline:g}s ({polls} polls)"
                )
            if slot is not None:
                url = await slot.wait(min(delay, remaining))
                if url:
                    log.info("export_ready", task_uuid=task.task_uuid, via="callback", polls=polls)
                    return url
            else:
                await asyncio.sleep(min(delay, remaining))
            result = await client.get_task_result(task.task_uuid)
            if result.completed:
                log.info("export_ready", task_uuid=task.task_uuid, via="poll", polls=polls + 1)
                return _file_of(task.task_uuid, result.file_to_download)
        raise AssertionError("unreachable: poll_delays is infinite")  # pragma: no cover
    finally:
        if slot is not None:
            slot.close()


def _file_of(task_uuid: str, url: str | None) -> str:
    if not url:
        raise ExportError(f"export task {task_uuid} completed without a file to download")
    return url
