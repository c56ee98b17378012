"""Single-contact methods (§6): subscribe, exclude, unsubscribe, getContact, isContactInLists and
the two count methods. Plain functions over a writer-thread connection; no HTTP here.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from syncd.sandbox import store
from syncd.sandbox.addresses import email_problem, normalize_email, normalize_phone
from syncd.sandbox.envelope import MethodError, invalid_arg, not_found
from syncd.sandbox.events import OFF, EventRecorder
from syncd.sandbox.params import Params
from syncd.sandbox.values import value_problem

MAX_TAGS = 10


def _address(params: Params, type_name: str, value_name: str) -> tuple[str, str]:
    kind = params.text(type_name, required=True).strip()
    raw = params.text(value_name, required=True).strip()
    if kind == "email":
        return "email", normalize_email(raw)
    if kind == "phone":
        return "phone", normalize_phone(raw) or raw
    raise invalid_arg(f"{type_name} must be email or phone")


def exclude(
    conn: sqlite3.Connection,
    params: Params,
    *,
    unsubscribe: bool,
    events: EventRecorder = OFF,
) -> dict[str, Any]:
    """exclude removes memberships; unsubscribe keeps them with the per-list unsubscribe mark."""
    kind, address = _address(params, "contact_type", "contact")
    contact_id = store.find_contact(conn, kind, address)
    if contact_id is None:
        raise not_found(address)
    before = events.snapshot(conn, contact_id)
    channel = store.CHANNELS[kind]
    current = store.memberships(conn, contact_id, channel)
    wanted = params.ids("list_ids") if params.text("list_ids").strip() else list(current)
    touched = [list_id for list_id in wanted if list_id in current]
    if not touched:
        raise not_found(address)
    for list_id in touched:
        if unsubscribe:
            store.set_membership(conn, contact_id, channel, list_id, unsubscribed=True)
        else:
            store.remove_membership(conn, contact_id, channel, list_id)
    events.record(conn, contact_id, before)
    return {}


def _subscribe_args(
    conn: sqlite3.Connection, params: Params
) -> tuple[list[int], str, str, dict[str, str], list[str]]:
    """(list_ids, email, phone, user fields, tags), validated."""
    list_ids = params.ids("list_ids")
    if not list_ids:
        raise invalid_arg("list_ids is required")
    for list_id in list_ids:
        if not store.list_exists(conn, list_id):
            raise invalid_arg(f"List {list_id} not found")
    fields = params.mapping("fields")
    email = normalize_email(fields.pop("email", ""))
    phone_raw = fields.pop("phone", "").strip()
    if not email and not phone_raw:
        raise invalid_arg("fields must contain email or phone")
    if email and (problem := email_problem(email)) and problem[0] == "invalid_email":
        raise invalid_arg(problem[1])
    phone = normalize_phone(phone_raw) if phone_raw else ""
    if phone is None:
        raise invalid_arg(f'Invalid phone number "{phone_raw}"')
    types = store.field_types(conn)
    for name, value in fields.items():
        if name not in types:
            raise invalid_arg(f'Unknown field "{name}"')
        if refusal := value_problem(types[name], value):
            raise invalid_arg(
                f'Invalid value "{value}" for field "{name}" ({types[name]}): {refusal}'
            )
    tags = [t.strip() for t in params.text("tags").split(",") if t.strip()]
    if len(tags) > MAX_TAGS:
        raise invalid_arg(f"More than {MAX_TAGS} tags")
    return list_ids, email, phone, fields, tags


def subscribe(
    conn: sqlite3.Connection, params: Params, events: EventRecorder = OFF
) -> dict[str, Any]:
    list_ids, email, phone, fields, tags = _subscribe_args(conn, params)
    double_optin = params.integer("double_optin", 0)
    if double_optin not in (0, 1, 2, 3, 4):
        raise invalid_arg("double_optin must be 0, 3 or 4")
    overwrite = params.integer("overwrite", 0)
    if overwrite not in (0, 1, 2):
        raise invalid_arg("overwrite must be 0, 1 or 2")

    by_email = store.find_contact(conn, "email", email) if email else None
    by_phone = store.find_contact(conn, "phone", phone) if phone else None
    if by_email is not None and by_phone is not None and by_email != by_phone:
        raise MethodError(
            "unspecified",
            f"Contacts {email} and {phone} already exist but owned by different subscribers",
        )
    contact_id = by_email if by_email is not None else by_phone
    before = events.snapshot(conn, contact_id)
    if contact_id is None:
        contact_id = int(conn.execute("INSERT INTO contacts DEFAULT VALUES").lastrowid or 0)
    now = store.now_text()
    if email:
        _subscribe_status(conn, contact_id, "email", email, double_optin or 0, now)
    if phone:
        _subscribe_status(conn, contact_id, "phone", phone, double_optin or 0, now)
    for kind in ("email", "phone") if phone else ("email",):
        if kind == "email" and not email:
            continue
        channel = store.CHANNELS[kind]
        if overwrite == 1:
            store.remove_membership(conn, contact_id, channel)
        for list_id in list_ids:
            store.set_membership(conn, contact_id, channel, list_id, unsubscribed=False, at=now)
    _subscribe_values(conn, contact_id, fields, tags, overwrite or 0, params.has("tags"))
    events.record(conn, contact_id, before)
    return {"person_id": contact_id}


def _subscribe_status(
    conn: sqlite3.Connection, contact_id: int, kind: str, address: str, optin: int, now: str
) -> None:
    current = conn.execute(
        f"SELECT {kind}, {kind}_status FROM contacts WHERE id = ?", (contact_id,)
    ).fetchone()
    if current[0] != address or current[1] is None:
        status = "active" if kind == "phone" else ("new" if optin == 3 else "invited")
        conn.execute(
            f"UPDATE contacts SET {kind} = ?, {kind}_status = ?, {kind}_availability = 'available',"
            f" {kind}_add_time = ? WHERE id = ?",
            (address, status, now, contact_id),
        )
    elif kind == "email" and optin != 3 and current[1] not in ("new", "active", "blocked"):
        conn.execute("UPDATE contacts SET email_status = 'invited' WHERE id = ?", (contact_id,))


def _subscribe_values(
    conn: sqlite3.Connection,
    contact_id: int,
    fields: dict[str, str],
    tags: list[str],
    overwrite: int,
    tags_given: bool,
) -> None:
    old_tags, old_fields = conn.execute(
        "SELECT tags, fields FROM contacts WHERE id = ?", (contact_id,)
    ).fetchone()
    values = store.load_json(old_fields)
    tag_list = [t for t in old_tags.split(",") if t]
    if overwrite == 1:
        values, tag_list = dict(fields), tags
    elif overwrite == 2:
        values.update(fields)
        tag_list = tags if tags_given else tag_list
    else:
        for name, value in fields.items():
            values.setdefault(name, value)
        tag_list += [t for t in tags if t not in tag_list]
    conn.execute(
        "UPDATE contacts SET tags = ?, fields = ? WHERE id = ?",
        (",".join(tag_list), json.dumps(values, ensure_ascii=False), contact_id),
    )


def get_contact(conn: sqlite3.Connection, params: Params) -> dict[str, Any]:
    email = normalize_email(params.text("email", required=True))
    contact_id = store.find_contact(conn, "email", email)
    if contact_id is None:
        raise not_found(email)
    row = conn.execute(
        "SELECT email_add_time, email_status, email_availability, fields FROM contacts"
        " WHERE id = ?",
        (contact_id,),
    ).fetchone()
    result: dict[str, Any] = {
        "email": {
            "email": email,
            "added_at": row[0],
            "status": row[1],
            "availability": row[2],
        }
    }
    if params.flag("include_details"):
        result["email"].update(
            last_send_datetime=None,
            last_delivery_datetime=None,
            last_read_datetime=None,
            last_click_datetime=None,
            rating=None,
        )
    if params.flag("include_lists"):
        lists = conn.execute(
            "SELECT list_id, unsubscribed, subscribed_at FROM memberships"
            " WHERE contact_id = ? AND channel = ? ORDER BY list_id",
            (contact_id, store.EMAIL),
        )
        result["lists"] = [
            {"id": r[0], "status": "unsubscribed" if r[1] else "active", "added_at": r[2]}
            for r in lists
        ]
    if params.flag("include_fields"):
        result["fields"] = store.load_json(row[3])
    return result


def is_in_lists(conn: sqlite3.Connection, params: Params) -> bool:
    email = normalize_email(params.text("email", required=True))
    list_ids = params.ids("list_ids")
    condition = params.text("condition", required=True).strip().lower()
    if not list_ids:
        raise invalid_arg("list_ids is required")
    if condition not in ("or", "and"):
        raise invalid_arg("condition must be or/and")
    contact_id = store.find_contact(conn, "email", email)
    if contact_id is None:
        raise not_found(email)
    member = store.memberships(conn, contact_id, store.EMAIL)
    hits = [list_id in member for list_id in list_ids]
    return all(hits) if condition == "and" else any(hits)


def contact_count(conn: sqlite3.Connection, params: Params) -> dict[str, Any]:
    list_id = params.integer("list_id", required=True)
    search = params.mapping("params")
    if not search:
        raise invalid_arg("At least one params[...] is required")
    kind = search.get("type", "")
    if kind not in ("", "address", "phone"):
        raise invalid_arg("params[type] must be address or phone")
    if "search" in search and not kind:
        raise invalid_arg("params[search] needs params[type]")
    if list_id is None or not store.list_exists(conn, list_id):
        raise invalid_arg(f"List {list_id} not found")
    column = "phone" if kind == "phone" else "email"
    sql = (
        "SELECT count(DISTINCT c.id) FROM memberships m JOIN contacts c ON c.id = m.contact_id"
        f" WHERE m.list_id = ? AND c.{column} IS NOT NULL"
    )
    args: list[Any] = [list_id]
    if kind:
        sql += f" AND m.channel = {store.CHANNELS[column]}"
    if search.get("search"):
        sql += f" AND instr(c.{column}, ?) > 0"
        args.append(search["search"].lower())
    count = conn.execute(sql, args).fetchone()[0]
    return {"listId": list_id, "searchParams": search, "count": count}


def total_count(conn: sqlite3.Connection, params: Params) -> dict[str, Any]:
    params.text("login", required=True)
    return {"total": conn.execute("SELECT count(*) FROM contacts").fetchone()[0]}
