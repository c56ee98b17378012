"""Counts HTTP attempts per context, so a run can report its own `api_calls` even when several
jobs share one client. The counters active in the current context live in a contextvar; tasks
started inside `counting()` inherit it, and nested `counting()` blocks each see every attempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

_active: ContextVar[tuple[CallCounter, ...]] = ContextVar("syncd_api_counters", default=())


@dataclass(slots=True)
class CallCounter:
    """HTTP attempts (retries and downloads included); `by_method` keys are API method names,
    plus "download" for export file downloads; `errors` counts failed attempts by error code
    (Selzy's code, `http_NNN`, `transport` or `protocol`), retried or not."""

    total: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, method: str) -> None:
        self.total += 1
        self.by_method[method] = self.by_method.get(method, 0) + 1

    def add_error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


@contextmanager
def counting() -> Iterator[CallCounter]:
    """Count the attempts made inside this block (and by tasks it starts) into a new counter."""
    counter = CallCounter()
    token = _active.set((*_active.get(), counter))
    try:
        yield counter
    finally:
        _active.reset(token)


def record_attempt(method: str) -> None:
    """Called by the client once per HTTP attempt."""
    for counter in _active.get():
        counter.add(method)


def record_error(code: str) -> None:
    """Called by the client once per failed attempt, with the error's short code."""
    for counter in _active.get():
        counter.add_error(code)
