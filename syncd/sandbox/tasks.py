"""The async export task life cycle: new -> processing -> completed, the file's lifetime, and the
notify_url callback (POSTed with the sandbox's own aiohttp client, retried with back-off).

Owns the in-memory task table; the CSV itself is built by exports.build_file on the writer thread.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from syncd.sandbox.exports import ExportQuery, FileStats, build_file
from syncd.sandbox.journal import CallLog
from syncd.sandbox.options import SandboxOptions, Settings
from syncd.sandbox.store import Database

log = structlog.get_logger(__name__)

TASK_TYPE = "exportContacts"


@dataclass
class ExportFile:
    file_id: str
    stats: FileStats
    expires_at: float | None = None  # monotonic; None until the task completes


@dataclass
class Task:
    task_uuid: str
    file_id: str
    download_url: str
    notify_url: str | None
    never_finishes: bool
    status: str = "processing"

    def result(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "task_uuid": self.task_uuid,
            "task_type": TASK_TYPE,
            "status": self.status,
        }
        if self.status == "completed":
            body["file_to_download"] = self.download_url
        return body


class TaskEngine:
    def __init__(
        self, db: Database, options: SandboxOptions, settings: Settings, calls: CallLog
    ) -> None:
        self.db = db
        self.options = options
        self.settings = settings
        self.calls = calls
        self.tasks: dict[str, Task] = {}
        self.files: dict[str, ExportFile] = {}
        self.session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[None]] = set()

    def start(
        self,
        query: ExportQuery,
        *,
        file_url: str,
        notify_url: str | None,
        never_finishes: bool,
    ) -> Task:
        """Register the task and queue its snapshot on the writer thread right now."""
        file_id = uuid.uuid4().hex
        task = Task(
            task_uuid=str(uuid.uuid4()),
            file_id=file_id,
            download_url=f"{file_url}/{file_id}.csv",
            notify_url=notify_url,
            never_finishes=never_finishes,
        )
        self.tasks[task.task_uuid] = task
        built = self.db.submit_transaction(lambda conn: build_file(conn, file_id, query))
        self.spawn(self._run(task, built, time.monotonic()), f"export-{task.task_uuid}")
        return task

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        background = asyncio.create_task(coro, name=name)
        self._background.add(background)
        background.add_done_callback(self._background.discard)

    async def _run(self, task: Task, built: asyncio.Future[FileStats], started: float) -> None:
        try:
            stats = await built
        except Exception:
            log.exception("sandbox_export_failed", task_uuid=task.task_uuid)
            return
        export = ExportFile(task.file_id, stats)
        self.files[task.file_id] = export
        await asyncio.sleep(max(0.0, self.settings.export_delay - (time.monotonic() - started)))
        if task.never_finishes:
            return
        task.status = "completed"
        export.expires_at = time.monotonic() + self.settings.file_ttl
        log.info("sandbox_export_completed", task_uuid=task.task_uuid, rows=stats.rows)
        if task.notify_url:
            await self._notify(task, task.notify_url)

    async def _notify(self, task: Task, url: str) -> None:
        body = {"result": task.result()}
        timeout = aiohttp.ClientTimeout(total=self.options.callback_timeout)
        attempts = 1 + max(0, self.settings.callback_retries)
        for attempt in range(1, attempts + 1):
            entry: dict[str, Any] = {"url": url, "task_uuid": task.task_uuid, "attempt": attempt}
            try:
                assert self.session is not None  # noqa: S101 - set by the app's startup
                async with self.session.post(url, json=body, timeout=timeout) as response:
                    entry["status"] = response.status
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                entry["error"] = type(exc).__name__
            self.calls.record("notify_url", entry)
            if 200 <= entry.get("status", 0) < 300:
                return
            if attempt < attempts:
                await asyncio.sleep(self.options.callback_backoff * 2 ** (attempt - 1))
        log.warning("sandbox_notify_failed", task_uuid=task.task_uuid, attempts=attempts)

    def live_file(self, file_id: str) -> ExportFile | None:
        export = self.files.get(file_id)
        if export is None or export.expires_at is None:
            return None
        if time.monotonic() > export.expires_at:
            return None
        return export

    async def purge_expired(self) -> None:
        now = time.monotonic()
        expired = [
            f.file_id
            for f in self.files.values()
            if f.expires_at is not None and now > f.expires_at
        ]
        for file_id in expired:
            del self.files[file_id]
        if expired:
            await self.db.run(
                lambda conn: conn.executemany(
                    "DELETE FROM export_chunks WHERE file_id = ?", [(f,) for f in expired]
                )
            )

    def forget(self) -> None:
        self.tasks.clear()
        self.files.clear()

    async def aclose(self) -> None:
        for background in list(self._background):
            background.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
