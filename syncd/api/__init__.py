"""The Selzy API client package: the only place that talks HTTP to Selzy (aiohttp stays here).

Modules: client (SelzyClient), encoding (form bodies), envelope (answer -> result or error),
results (result JSON -> types), types (result values), retry (policy + pure decision),
ratelimit (shared client-side limiter), counting (per-context attempt counters),
transport (the aiohttp boundary, exception translation), messages (secret-free message text).
"""

from syncd.api.client import MAX_IMPORT_ROWS, SelzyClient
from syncd.api.counting import CallCounter
from syncd.api.ratelimit import RateLimiter
from syncd.api.retry import RetryPolicy
from syncd.api.types import (
    ContactInfo,
    ContactList,
    FieldInfo,
    HookInfo,
    ImportLogEntry,
    ImportResult,
    ListInfo,
    TaskResult,
)

__all__ = [
    "MAX_IMPORT_ROWS",
    "CallCounter",
    "ContactInfo",
    "ContactList",
    "FieldInfo",
    "HookInfo",
    "ImportLogEntry",
    "ImportResult",
    "ListInfo",
    "RateLimiter",
    "RetryPolicy",
    "SelzyClient",
    "TaskResult",
]
