"""State changes that bypass the API rules, for the admin API: inspect contacts, upsert them as a
person or an administrator would (unsubscribe, block), and seed many contacts fast in SQL.

Validation errors are ValueError (admin.py answers 400). Runs on the writer thread.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from syncd.sandbox import catalog, store
from syncd.sandbox.addresses import (
    AVAILABILITIES,
    EMAIL_STATUSES,
    PHONE_STATUSES,
    normalize_email,
    normalize_phone,
)
from syncd.sandbox.envelope import MethodError
from syncd.sandbox.events import OFF, EventRecorder

DEFAULT_LIMIT = 100_000


def query_contacts(conn: sqlite3.Connection, filters: dict[str, str]) -> list[dict[str, Any]]:
    clauses: list[str] = ["1 = 1"]
    args: list[Any] = []
    if filters.get("list_id"):
        clauses.append("id IN (SELECT contact_id FROM memberships WHERE list_id = ?)")
        args.append(int(filters["list_id"]))
    if filters.get("email"):
        clauses.append("email = ?")
        args.append(normalize_email(filters["email"]))
    if filters.get("phone"):
        clauses.append("phone = ?")
        args.append(normalize_phone(filters["phone"]) or filters["phone"])
    limit = int(filters.get("limit") or DEFAULT_LIMIT)
    sql = f"SELECT id FROM contacts WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?"
    ids = [r[0] for r in conn.execute(sql, (*args, limit)).fetchall()]
    return [store.contact_view(conn, i) for i in ids]


def _ensure_list(conn: sqlite3.Connection, list_id: int) -> None:
    if not store.list_exists(conn, list_id):
        conn.execute("INSERT INTO lists (id, title) VALUES (?, ?)", (list_id, f"List {list_id}"))


def _ensure_field(conn: sqlite3.Connection, name: str) -> None:
    if name not in store.field_names(conn):
        try:
            catalog.create_field(conn, name, "string")
        except MethodError as exc:
            raise ValueError(exc.message) from None


def upsert_contact(
    conn: sqlite3.Connection, spec: dict[str, Any], events: EventRecorder = OFF
) -> int:
    email = normalize_email(str(spec["email"])) if spec.get("email") else None
    phone = None
    if spec.get("phone"):
        phone = normalize_phone(str(spec["phone"])) or str(spec["phone"])
    if email is None and phone is None:
        raise ValueError("a contact needs an email or a phone")
    contact_id = (store.find_contact(conn, "email", email) if email else None) or (
        store.find_contact(conn, "phone", phone) if phone else None
    )
    if spec.get("delete"):
        if contact_id is not None:
            store.delete_contact(conn, contact_id)
        return 0
    before = events.snapshot(conn, contact_id)
    if contact_id is None:
        contact_id = int(conn.execute("INSERT INTO contacts DEFAULT VALUES").lastrowid or 0)
    now = store.now_text()
    for kind, address, statuses, default in (
        ("email", email, EMAIL_STATUSES, "new"),
        ("phone", phone, PHONE_STATUSES, "active"),
    ):
        if address is not None:
            conn.execute(
                f"UPDATE contacts SET {kind} = ?, {kind}_status = coalesce({kind}_status, ?),"
                f" {kind}_availability = coalesce({kind}_availability, 'available'),"
                f" {kind}_add_time = coalesce({kind}_add_time, ?) WHERE id = ?",
                (address, default, now, contact_id),
            )
        _set_checked(conn, contact_id, spec, f"{kind}_status", statuses)
        _set_checked(conn, contact_id, spec, f"{kind}_availability", AVAILABILITIES)
        _set_lists(conn, contact_id, kind, spec)
    _set_values(conn, contact_id, spec)
    events.record(conn, contact_id, before)
    return contact_id


def _set_checked(
    conn: sqlite3.Connection,
    contact_id: int,
    spec: dict[str, Any],
    key: str,
    allowed: tuple[str, ...],
) -> None:
    if key not in spec:
        return
    if spec[key] not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}")
    conn.execute(f"UPDATE contacts SET {key} = ? WHERE id = ?", (spec[key], contact_id))


def _ids(spec: dict[str, Any], key: str) -> set[int] | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    try:
        return {int(v) for v in value}
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a list of list ids") from None


def _set_lists(conn: sqlite3.Connection, contact_id: int, kind: str, spec: dict[str, Any]) -> None:
    """`*_list_ids` replaces the subscribed set; `*_unsubscribed_list_ids` the unsubscribed set."""
    subscribed = _ids(spec, f"{kind}_list_ids")
    unsubscribed = _ids(spec, f"{kind}_unsubscribed_list_ids")
    if subscribed is None and unsubscribed is None:
        return
    channel = store.CHANNELS[kind]
    current = store.memberships(conn, contact_id, channel)
    old_sub = {k for k, u in current.items() if not u}
    old_unsub = {k for k, u in current.items() if u}
    new_unsub = unsubscribed if unsubscribed is not None else old_unsub - (subscribed or set())
    new_sub = (subscribed if subscribed is not None else old_sub) - new_unsub
    for list_id in (old_sub | old_unsub) - (new_sub | new_unsub):
        store.remove_membership(conn, contact_id, channel, list_id)
    for list_id in new_sub | new_unsub:
        _ensure_list(conn, list_id)
        store.set_membership(conn, contact_id, channel, list_id, unsubscribed=list_id in new_unsub)


def _set_values(conn: sqlite3.Connection, contact_id: int, spec: dict[str, Any]) -> None:
    old_tags, old_fields = conn.execute(
        "SELECT tags, fields FROM contacts WHERE id = ?", (contact_id,)
    ).fetchone()
    tags = old_tags
    if "tags" in spec:
        given = spec["tags"]
        tags = ",".join(given) if isinstance(given, list) else str(given or "")
    values = store.load_json(old_fields)
    for name, value in dict(spec.get("fields") or {}).items():
        if value is None:
            values.pop(name, None)
        else:
            _ensure_field(conn, name)
            values[name] = str(value)
    conn.execute(
        "UPDATE contacts SET tags = ?, fields = ? WHERE id = ?",
        (tags, json.dumps(values, ensure_ascii=False), contact_id),
    )


SEED_SQL = """
WITH RECURSIVE seq(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
INSERT INTO contacts (email, email_status, email_availability, email_add_time,
                      phone, phone_status, phone_availability, phone_add_time, tags, fields)
SELECT replace(?1_email, '{i}', i), ?, 'available', ?,
       CASE WHEN ? IS NULL THEN NULL ELSE replace(?, '{i}', i) END,
       CASE WHEN ? IS NULL THEN NULL ELSE 'active' END,
       CASE WHEN ? IS NULL THEN NULL ELSE 'available' END,
       CASE WHEN ? IS NULL THEN NULL ELSE ? END,
       '', FIELDS_EXPR
FROM seq WHERE true
ON CONFLICT DO NOTHING
"""


def seed(conn: sqlite3.Connection, spec: dict[str, Any]) -> dict[str, int]:
    """Insert `count` contacts from templates with `{i}` = start..start+count-1, all in one list."""
    list_id = int(spec["list_id"])
    count = int(spec.get("count", 0))
    start = int(spec.get("start", 0))
    email_template = str(spec.get("email_template", "user{i}@example.com"))
    phone_template = spec.get("phone_template")
    status = str(spec.get("email_status", "active"))
    fields = {str(k): str(v) for k, v in dict(spec.get("fields") or {}).items()}
    if status not in EMAIL_STATUSES:
        raise ValueError(f"email_status must be one of {', '.join(EMAIL_STATUSES)}")
    if count <= 0:
        return {"inserted": 0}
    _ensure_list(conn, list_id)
    for name in fields:
        _ensure_field(conn, name)
    pairs = ", ".join("?, replace(?, '{i}', i)" for _ in fields)
    sql = SEED_SQL.replace("?1_email", "?").replace(
        "FIELDS_EXPR", f"json_object({pairs})" if fields else "'{}'"
    )
    now = store.now_text()
    phone = None if phone_template is None else str(phone_template)
    args: list[Any] = [start, start + count - 1, email_template, status, now]
    args += [phone, phone, phone, phone, phone, now]
    for name, template in fields.items():
        args += [name, template]
    before = conn.execute("SELECT coalesce(max(id), 0) FROM contacts").fetchone()[0]
    changes = conn.total_changes
    conn.execute(sql, args)
    inserted = conn.total_changes - changes  # rowcount is -1 for a WITH ... INSERT
    conn.execute(
        "INSERT OR IGNORE INTO memberships SELECT id, 0, ?, 0, ? FROM contacts WHERE id > ?",
        (list_id, now, before),
    )
    if phone is not None:
        conn.execute(
            "INSERT OR IGNORE INTO memberships SELECT id, 1, ?, 0, ? FROM contacts"
            " WHERE id > ? AND phone IS NOT NULL",
            (list_id, now, before),
        )
    return {"inserted": inserted}
