"""At most one log line per kind per interval: a flood of forged or malformed POSTs, or of one
unknown field, must not flood the journal. Pure bookkeeping over an injected clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

LOG_INTERVAL = 60.0  # seconds between two lines of the same kind
MAX_KINDS = 1024  # kinds remembered; past it the book starts over (kinds come from payloads)


class LogThrottle:
    """`allow(kind)` says whether a line of `kind` may be written now, and how many were held
    back since the last one (to put on the line), or None when this one is held back."""

    def __init__(
        self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, kind: str) -> int | None:
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        if len(self._last) >= MAX_KINDS:
            self._last.clear()
            self._held.clear()
        self._last[kind] = now
        return self._held.pop(kind, 0)
