"""Contact events for webhooks (§11.2): what one operation changed in one contact's subscriptions,
found by comparing a snapshot taken before the change with one taken after it.

`changes` is pure. EventRecorder takes the snapshots on the writer thread inside the operation's
transaction; `OFF` records nothing and costs nothing (used while no hook is active). Events leave
the recorder only after the transaction committed (methods.py, admin.py hand them to delivery).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.sandbox import store

SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"
CONTACT_EVENTS = (SUBSCRIBE, UNSUBSCRIBE)  # the events the sandbox fires
UNSUBSCRIBED = "unsubscribed"


@dataclass(frozen=True, slots=True)
class Snapshot:
    email: str | None = None
    phone: str | None = None
    email_status: str | None = None
    phone_status: str | None = None
    lists: Mapping[tuple[int, int], bool] = field(default_factory=dict)  # (channel, id) -> unsub


EMPTY = Snapshot()


@dataclass(frozen=True, slots=True)
class ContactEvent:
    name: str  # SUBSCRIBE | UNSUBSCRIBE
    time: str  # "YYYY-MM-DD HH:MM:SS", UTC
    email: str | None
    phone: str | None
    list_ids: tuple[int, ...]
    address_level: bool = False  # the address itself became unsubscribed (all lists, future ones)

    def data(self) -> dict[str, Any]:
        """The event_data object: email, phone (when the contact has them), the list ids."""
        out: dict[str, Any] = {}
        if self.email:
            out["email"] = self.email
        if self.phone:
            out["phone"] = self.phone
        key = "subscribed_list_ids" if self.name == SUBSCRIBE else "unsubscribed_list_ids"
        out[key] = list(self.list_ids)
        return out


def changes(before: Snapshot, after: Snapshot, at: str) -> list[ContactEvent]:
    """subscribe: a list membership that is now subscribed and was not before; unsubscribe: a
    membership newly marked unsubscribed, or an address whose status became `unsubscribed` (then
    every list of that address counts). Removals (exclude, delete) fire nothing."""
    if after.email is None and after.phone is None:
        return []
    subscribed = {
        key[1]
        for key, unsub in after.lists.items()
        if not unsub and before.lists.get(key) is not False
    }
    unsubscribed = {
        key[1] for key, unsub in after.lists.items() if unsub and before.lists.get(key) is not True
    }
    address_level = False
    for channel, status, old_status in (
        (store.EMAIL, after.email_status, before.email_status),
        (store.PHONE, after.phone_status, before.phone_status),
    ):
        if status == UNSUBSCRIBED and old_status != UNSUBSCRIBED:
            address_level = True
            unsubscribed |= {list_id for ch, list_id in after.lists if ch == channel}
    events: list[ContactEvent] = []
    if subscribed:
        events.append(
            ContactEvent(SUBSCRIBE, at, after.email, after.phone, tuple(sorted(subscribed)))
        )
    if unsubscribed or address_level:
        events.append(
            ContactEvent(
                UNSUBSCRIBE,
                at,
                after.email,
                after.phone,
                tuple(sorted(unsubscribed)),
                address_level=address_level,
            )
        )
    return events


def take_snapshot(conn: sqlite3.Connection, contact_id: int) -> Snapshot:
    row = conn.execute(
        "SELECT email, phone, email_status, phone_status FROM contacts WHERE id = ?", (contact_id,)
    ).fetchone()
    if row is None:
        return EMPTY
    lists = conn.execute(
        "SELECT channel, list_id, unsubscribed FROM memberships WHERE contact_id = ?",
        (contact_id,),
    )
    return Snapshot(row[0], row[1], row[2], row[3], {(r[0], r[1]): bool(r[2]) for r in lists})


class EventRecorder:
    """Collects the events of one operation; `snapshot` before a contact changes, `record` after."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.events: list[ContactEvent] = []

    def snapshot(self, conn: sqlite3.Connection, contact_id: int | None) -> Snapshot:
        if not self.enabled or contact_id is None:
            return EMPTY
        return take_snapshot(conn, contact_id)

    def record(self, conn: sqlite3.Connection, contact_id: int, before: Snapshot) -> None:
        if self.enabled:
            self.events += changes(before, take_snapshot(conn, contact_id), store.now_text())


OFF = EventRecorder(enabled=False)  # never records, so sharing it is safe
