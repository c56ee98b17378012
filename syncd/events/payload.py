"""Event webhook bodies (selzy-api.md §11.3, §11.4): the `auth` check on the raw bytes and a
tolerant parse into Events. Pure: no I/O, no clock, no logging (the receiver counts and logs).

An Event is a hint ("look at this contact"), never a consent decision: the worker asks
getContact. Only `subscribe` and `unsubscribe` with an email are kept; other event names are
counted as ignored; fields nobody documented are reported so they can be logged, never fatal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CONTACT_EVENTS = ("subscribe", "unsubscribe")
LIST_FIELDS = {"subscribe": "subscribed_list_ids", "unsubscribe": "unsubscribed_list_ids"}
EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # UTC, no zone (§11.3)
_AUTH = re.compile(rb'"auth"\s*:\s*"([0-9a-f]{32})"')
_ENVELOPE_FIELDS = frozenset({"auth", "events_by_user"})
_USER_FIELDS = frozenset({"login", "events"})
_EVENT_FIELDS = frozenset({"event_name", "event_time", "event_data"})
_FLAT_FIELDS = frozenset({"auth", "login", "event_name", "event_time"})
_DATA_FIELDS = frozenset({"email", "phone", "subscribed_list_ids", "unsubscribed_list_ids"})


def auth_is_valid(raw: bytes, api_key: str) -> bool:
    """§11.4 on the raw bytes, before any parsing: exactly one `"auth":"<32 hex>"`, its value
    occurring once in the body; the MD5 of the body with that value replaced by the API key
    must equal it (compared in constant time)."""
    found = _AUTH.findall(raw)
    if len(found) != 1:
        return False
    value: bytes = found[0]
    if raw.count(value) != 1:
        return False
    keyed = raw.replace(value, api_key.encode("utf-8"))
    digest = hashlib.md5(keyed, usedforsecurity=False).hexdigest().encode("ascii")
    return hmac.compare_digest(digest, value)


@dataclass(frozen=True, slots=True)
class Event:
    """One contact event as received. `list_ids` None: the event names no list (or names them
    in a shape nobody documented): it may concern any job."""

    digest: bytes  # SHA-256 of (name, event_time as sent, data): the same event is stored once
    name: str
    time: datetime | None  # event_time read as UTC; None when absent or unparsable
    email: str
    list_ids: tuple[int, ...] | None
    data: Mapping[str, Any]  # the event object as received, for the record (never trusted)


@dataclass(frozen=True, slots=True)
class Parsed:
    events: tuple[Event, ...]
    ignored: Mapping[str, int]  # event name (or why) -> events not kept
    unknown_fields: frozenset[str]  # dotted paths of fields nobody documented


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str  # a short code for the log and the 400 body


class _Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ignored: Counter[str] = Counter()
        self.unknown: set[str] = set()

    def fields(self, obj: Mapping[str, Any], known: frozenset[str], where: str) -> None:
        self.unknown.update(f"{where}{name}" for name in obj if name not in known)

    def add(self, name: Any, event_time: Any, data: Any, record: Mapping[str, Any]) -> None:
        if not isinstance(name, str) or not name:
            self.ignored["<no event_name>"] += 1
            return
        if name not in CONTACT_EVENTS:
            self.ignored[name] += 1
            return
        if not isinstance(data, Mapping):
            self.ignored[f"{name}:<no event_data>"] += 1
            return
        email = data.get("email")
        if not isinstance(email, str) or not email.strip():
            self.ignored[f"{name}:<no email>"] += 1
            return
        self.fields(data, _DATA_FIELDS, "event_data.")
        self.events.append(
            Event(
                digest=_digest(name, event_time, data),
                name=name,
                time=_event_time(event_time),
                email=email,
                list_ids=_list_ids(data.get(LIST_FIELDS[name])),
                data=dict(record),
            )
        )

    def parsed(self) -> Parsed:
        unique = list({e.digest: e for e in self.events}.values())  # duplicates within a body
        return Parsed(tuple(unique), dict(self.ignored), frozenset(self.unknown))


def parse_body(raw: bytes) -> Parsed | Malformed:
    """The events of a (verified) body, batched (`events_by_user`) or flat (`single_event=1`)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Malformed("not_json")
    if not isinstance(body, dict):
        return Malformed("not_an_object")
    out = _Collector()
    if "events_by_user" in body:
        users = body["events_by_user"]
        if not isinstance(users, list):
            return Malformed("events_by_user_not_a_list")
        out.fields(body, _ENVELOPE_FIELDS, "")
        for user in users:
            if not isinstance(user, dict) or not isinstance(user.get("events"), list):
                return Malformed("events_not_a_list")
            out.fields(user, _USER_FIELDS, "events_by_user[].")
            for event in user["events"]:
                if not isinstance(event, dict):
                    out.ignored["<not an object>"] += 1
                    continue
                out.fields(event, _EVENT_FIELDS, "events[].")
                record = {"login": user.get("login"), **event}
                out.add(
                    event.get("event_name"),
                    event.get("event_time"),
                    event.get("event_data"),
                    record,
                )
        return out.parsed()
    if "event_name" in body:
        data = {k: v for k, v in body.items() if k not in _FLAT_FIELDS}
        record = {k: v for k, v in body.items() if k != "auth"}
        out.add(body["event_name"], body.get("event_time"), data, record)
        return out.parsed()
    return Malformed("no_events")


def _digest(name: str, event_time: Any, data: Mapping[str, Any]) -> bytes:
    """The same event has the same digest in a batched and in a flat body."""
    canonical = json.dumps([name, event_time, data], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def _event_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), EVENT_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _list_ids(value: Any) -> tuple[int, ...] | None:
    """`[1, 2]`, `["1", "2"]`, `"1,2"` or `1` -> (1, 2); anything else -> None (names none)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value,) if value > 0 else None
    items: list[Any]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    ids: list[int] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            ids.append(item)
        elif isinstance(item, str) and item.isascii() and item.isdecimal() and int(item) > 0:
            ids.append(int(item))
        else:
            return None
    return tuple(ids)
