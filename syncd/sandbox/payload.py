"""Webhook request bodies (§11.3, §11.4): the batched and the flat json_post shapes, PHP-style JSON
and the keyed-MD5 `auth`. Pure functions.

`auth` is computed the way a receiver checks it: the body is built with the API key (raw, as a
receiver substitutes it) in the auth slot, hashed, and the lowercase hex MD5 put in the key's place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from syncd.sandbox.events import ContactEvent

MAX_EVENTS_PER_POST = 1000  # a batched body carries at most this many events (our choice)


def php_json(value: Any) -> str:
    """What PHP's json_encode writes by default: compact, `/` as `\\/`, non-ASCII as `\\uXXXX`."""
    # "/" can only occur inside JSON strings, so escaping every one of them is exact.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


def signed(payload: dict[str, Any], api_key: str) -> bytes:
    """`{"auth":"<md5>",...payload}`; the md5 is of the same text with the API key as auth."""
    rest = php_json(payload)[1:]  # `"key":...}` or `}` for an empty payload
    glue = "," if payload else ""
    keyed = f'{{"auth":"{api_key}"{glue}{rest}'
    auth = hashlib.md5(keyed.encode("utf-8"), usedforsecurity=False).hexdigest()
    return f'{{"auth":"{auth}"{glue}{rest}'.encode("ascii")


def batched(login: str, events: Sequence[ContactEvent]) -> dict[str, Any]:
    return {
        "events_by_user": [
            {
                "login": login,
                "events": [
                    {"event_name": e.name, "event_time": e.time, "event_data": e.data()}
                    for e in events
                ],
            }
        ]
    }


def flat(login: str, event: ContactEvent) -> dict[str, Any]:
    """single_event=1: one event per body, its event_data fields at the top level."""
    return {"login": login, "event_name": event.name, "event_time": event.time, **event.data()}


def bodies(
    events: Sequence[ContactEvent], *, login: str, api_key: str, single_event: bool
) -> list[tuple[bytes, int]]:
    """The signed bodies that carry `events` to one handler, in order, with their event counts."""
    if single_event:
        return [(signed(flat(login, e), api_key), 1) for e in events]
    chunks = [
        events[i : i + MAX_EVENTS_PER_POST] for i in range(0, len(events), MAX_EVENTS_PER_POST)
    ]
    return [(signed(batched(login, chunk), api_key), len(chunk)) for chunk in chunks]
