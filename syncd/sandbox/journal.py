"""The calls log (every API call and notify_url attempt) and the sliding-window rate limiter.

In memory only. The log is bounded: old entries go first, and only the newest entries keep their
`data` rows so that a million-contact sync through the sandbox does not hoard memory.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

MAX_CALLS = 20_000
KEEP_DATA = 200  # calls that keep their full `data` parameter


class CallLog:
    def __init__(self) -> None:
        self._calls: deque[dict[str, Any]] = deque(maxlen=MAX_CALLS)

    def record(self, method: str, params: dict[str, Any], rows: int | None = None) -> None:
        self._calls.append(
            {
                "method": method,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "params": params,
                "rows": rows,
            }
        )
        if len(self._calls) > KEEP_DATA:
            old = self._calls[-KEEP_DATA - 1]
            if "data" in old["params"]:
                old["params"] = {k: v for k, v in old["params"].items() if k != "data"}

    def listing(self, method: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self._calls if method is None or c["method"] == method]

    def clear(self) -> None:
        self._calls.clear()


class SlidingWindow:
    """At most `limit` events per key in any 60 s; limit 0 means unlimited."""

    WINDOW = 60.0

    def __init__(self) -> None:
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str, limit: int) -> bool:
        if limit <= 0:
            return True
        now = time.monotonic()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.WINDOW:
            events.popleft()
        if len(events) >= limit:
            return False
        events.append(now)
        return True

    def clear(self) -> None:
        self._events.clear()
