"""Export-ready callbacks (Selzy's notify_url): one unguessable token per export, a slot the run
waits on, and the decision what to do with an incoming callback. No HTTP here (see server.py);
this module never trusts a callback beyond "the file for *this* task is ready".

A token is `secrets.token_urlsafe(32)`; slots are found by the SHA-256 of the token and then
compared in constant time, so response timing says nothing about valid tokens. Closed tokens
are remembered (bounded) so that a replay is told apart from a guess in the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import structlog

log = structlog.get_logger(__name__)

TOKEN_BYTES = 32
REMEMBER_CLOSED = 1024  # closed tokens kept to recognise replays
MAX_PENDING_SLOTS = 256  # open slots at once; far above jobs x concurrent exports


class Verdict(Enum):
    """What became of a callback; the server maps each to an HTTP status."""

    ACCEPTED = 200
    NOT_COMPLETED = 202  # a status other than "completed": nothing to do yet
    REPLAYED = 409  # the slot already fired or was closed
    UNKNOWN = 404  # no such token
    MISMATCH = 403  # the token is valid but names another task
    MALFORMED = 400  # not the documented shape


@dataclass(frozen=True, slots=True)
class CallbackPayload:
    task_uuid: str
    status: str
    file_to_download: str | None


def parse_payload(body: Any) -> CallbackPayload | None:
    """`{"result": {"task_uuid", "status", "file_to_download"}}` (or the inner object alone)."""
    if not isinstance(body, Mapping):
        return None
    result = body.get("result", body)
    if not isinstance(result, Mapping):
        return None
    task_uuid, status, url = (
        result.get("task_uuid"),
        result.get("status"),
        result.get("file_to_download"),
    )
    if not isinstance(task_uuid, str) or not task_uuid or not isinstance(status, str):
        return None
    if url is not None and not isinstance(url, str):
        return None
    return CallbackPayload(task_uuid, status, url or None)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Slot:
    """One export's notify_url. Implements syncd.reconcile's CallbackSlot protocol."""

    def __init__(self, registry: CallbackRegistry, token: str, url: str) -> None:
        self._registry = registry
        self.token = token
        self.url = url
        self.task_uuid: str | None = None
        self._early: CallbackPayload | None = None  # arrived before bind()
        self._file: str | None = None
        self._fired = asyncio.Event()
        self.closed = False

    def __repr__(self) -> str:  # the token is a credential: never in a repr
        return f"Slot(task_uuid={self.task_uuid!r}, fired={self.fired}, closed={self.closed})"

    @property
    def fired(self) -> bool:
        return self._fired.is_set()

    def bind(self, task_uuid: str) -> None:
        self.task_uuid = task_uuid
        early, self._early = self._early, None
        if early is not None:
            if early.task_uuid == task_uuid:
                self._fire(early.file_to_download)
            else:
                log.warning("callback_rejected", reason="task_mismatch", task_uuid=early.task_uuid)

    async def wait(self, timeout: float) -> str | None:  # noqa: ASYNC109 - the CallbackSlot protocol
        """file_to_download once the callback came, or None when nothing came within `timeout`."""
        if not self._fired.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._fired.wait()
            except TimeoutError:
                return None
        return self._file

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._registry._forget(self)

    def _fire(self, file_to_download: str | None) -> None:
        self._file = file_to_download
        self._fired.set()

    def _deliver(self, payload: CallbackPayload) -> Verdict:
        if self.closed or self.fired:
            return Verdict.REPLAYED
        if self.task_uuid is None:
            if self._early is not None:
                return Verdict.REPLAYED
            if payload.status != "completed":
                return Verdict.NOT_COMPLETED
            self._early = payload  # checked against the task in bind()
            return Verdict.ACCEPTED
        if not hmac.compare_digest(payload.task_uuid.encode(), self.task_uuid.encode()):
            return Verdict.MISMATCH
        if payload.status != "completed":
            return Verdict.NOT_COMPLETED
        self._fire(payload.file_to_download)
        return Verdict.ACCEPTED


class CallbackRegistry:
    """The daemon's open slots. Implements syncd.reconcile's ExportCallbacks protocol."""

    def __init__(self, public_url: str) -> None:
        self._base = public_url.rstrip("/")
        self._open: dict[bytes, Slot] = {}
        self._closed: OrderedDict[bytes, None] = OrderedDict()
        self.received = 0  # callbacks that reached a slot (metrics)

    def __len__(self) -> int:
        return len(self._open)

    def open_slot(self) -> Slot:
        while len(self._open) >= MAX_PENDING_SLOTS:  # a leak elsewhere must not grow us forever
            oldest = next(iter(self._open.values()))
            log.warning("callback_slot_evicted", task_uuid=oldest.task_uuid)
            oldest.close()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        slot = Slot(self, token, f"{self._base}/{token}")
        self._open[_digest(token)] = slot
        return slot

    def deliver(self, token: str, body: Any) -> Verdict:
        """Route a callback to its slot; logs the verdict (never the token)."""
        digest = _digest(token)
        slot = self._open.get(digest)
        if slot is None or not hmac.compare_digest(slot.token.encode(), token.encode()):
            verdict = Verdict.REPLAYED if digest in self._closed else Verdict.UNKNOWN
            payload = parse_payload(body)
            _log_verdict(verdict, payload.task_uuid if payload else None)
            return verdict
        payload = parse_payload(body)
        verdict = Verdict.MALFORMED if payload is None else slot._deliver(payload)
        _log_verdict(verdict, payload.task_uuid if payload else None, expected=slot.task_uuid)
        if verdict is Verdict.ACCEPTED:
            self.received += 1
        return verdict

    def _forget(self, slot: Slot) -> None:
        digest = _digest(slot.token)
        self._open.pop(digest, None)
        self._closed[digest] = None
        while len(self._closed) > REMEMBER_CLOSED:
            self._closed.popitem(last=False)


def _log_verdict(verdict: Verdict, task_uuid: str | None, *, expected: str | None = None) -> None:
    if verdict is Verdict.ACCEPTED:
        log.info("callback_received", task_uuid=task_uuid)
    elif verdict is Verdict.NOT_COMPLETED:
        log.info("callback_ignored", reason="not_completed", task_uuid=task_uuid)
    elif verdict is Verdict.REPLAYED:
        log.info("callback_ignored", reason="replayed", task_uuid=task_uuid)
    elif verdict is Verdict.UNKNOWN:
        log.warning("callback_rejected", reason="unknown_token", task_uuid=task_uuid)
    elif verdict is Verdict.MISMATCH:
        log.warning(
            "callback_rejected", reason="task_mismatch", task_uuid=task_uuid, expected=expected
        )
    else:
        log.warning("callback_rejected", reason="malformed")
