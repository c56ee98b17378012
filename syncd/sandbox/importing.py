"""importContacts (§3 of selzy-api.md): validation of the whole call, then per-row rules.

Runs inside one writer-thread transaction; a whole-call error raises MethodError so that nothing
of the call is kept. The status rule lives here and only here: an existing address's status
changes only from active/inactive. A refused row (address, tags, a user-field value that does not
fit the field's type) is a `log` entry counted in `invalid`, never a whole-call error.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from syncd.sandbox import store
from syncd.sandbox.addresses import (
    CHANGEABLE_FROM,
    IMPORTABLE_STATUSES,
    email_problem,
    normalize_email,
    normalize_phone,
)
from syncd.sandbox.envelope import MethodError, invalid_arg
from syncd.sandbox.events import OFF, EventRecorder
from syncd.sandbox.params import parse_ids
from syncd.sandbox.values import value_problem

MAX_ROWS = 500
MAX_TAGS = 10
_LIST_COLUMNS = ("list_ids", "subscribe_times", "unsubscribed_list_ids", "excluded_list_ids")
SYSTEM_COLUMNS = frozenset(
    {
        "email",
        "phone",
        "delete",
        "tags",
        "email_status",
        "phone_status",
        "email_availability",
        "phone_availability",
        "email_add_time",
        "email_confirm_time",
        "email_request_ip",
        "double_optin",
    }
    | {f"{ch}_{c}" for ch in ("email", "phone") for c in _LIST_COLUMNS}
)


@dataclass
class ImportResult:
    total: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    new_emails: int = 0
    invalid: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, index: int, code: str, message: str) -> None:
        """The row is not imported: one log entry, counted in `invalid`."""
        self.log.append({"index": index, "code": code, "message": message})
        self.invalid += 1


def check_call(conn: sqlite3.Connection, names: list[str], rows: list[list[str]]) -> None:
    if not names:
        raise invalid_arg("field_names is required")
    if len(rows) > MAX_ROWS:
        raise invalid_arg(f"Too many rows in data: {len(rows)}, the limit is {MAX_ROWS}")
    if "email" not in names and "phone" not in names:
        raise invalid_arg("field_names must contain email or phone")
    user_fields = set(store.field_names(conn))
    for name in names:
        if name not in SYSTEM_COLUMNS and name not in user_fields:
            raise invalid_arg(f'Unknown field name "{name}" in field_names')
    if len(set(names)) != len(names):
        raise invalid_arg("field_names contains duplicates")
    _check_list_ids(conn, names, rows)


def _check_list_ids(conn: sqlite3.Connection, names: list[str], rows: list[list[str]]) -> None:
    for channel in ("email", "phone"):
        for col in ("list_ids", "unsubscribed_list_ids", "excluded_list_ids"):
            name = f"{channel}_{col}"
            if name in names:
                j = names.index(name)
                for row in rows:
                    for list_id in parse_ids(row[j] if j < len(row) else "", name):
                        if not store.list_exists(conn, list_id):
                            raise invalid_arg(f"List {list_id} not found")


def import_contacts(
    conn: sqlite3.Connection,
    names: list[str],
    rows: list[list[str]],
    *,
    overwrite_tags: bool,
    overwrite_lists: bool,
    events: EventRecorder = OFF,
) -> ImportResult:
    check_call(conn, names, rows)
    result = ImportResult(total=len(rows))
    types = store.field_types(conn)
    user_fields = {n: types[n] for n in names if n not in SYSTEM_COLUMNS}  # name -> field type
    for index, cells in enumerate(rows):
        row = {name: (cells[j].strip() if j < len(cells) else "") for j, name in enumerate(names)}
        for name in user_fields:  # user field values are kept as sent (only trailing spaces go)
            j = names.index(name)
            row[name] = cells[j] if j < len(cells) else ""
        _import_row(conn, index, row, user_fields, result, overwrite_tags, overwrite_lists, events)
    return result


def _values_fit(
    index: int, row: dict[str, str], user_fields: dict[str, str], result: ImportResult
) -> bool:
    """False after logging the first user-field value that its field's type refuses."""
    for name, field_type in user_fields.items():
        if problem := value_problem(field_type, row[name]):
            result.reject(
                index,
                "invalid_field_value",
                f'Invalid value "{row[name]}" for field "{name}" ({field_type}): {problem}',
            )
            return False
    return True


def _import_row(
    conn: sqlite3.Connection,
    index: int,
    row: dict[str, str],
    user_fields: dict[str, str],
    result: ImportResult,
    overwrite_tags: bool,
    overwrite_lists: bool,
    events: EventRecorder,
) -> None:
    checked = _checked_row(index, row, user_fields, result)
    if checked is None:
        return
    email, phone, tags = checked
    by_email = store.find_contact(conn, "email", email) if email else None
    by_phone = store.find_contact(conn, "phone", phone) if phone else None
    _check_owners(conn, email, phone, by_email, by_phone, deleting=row.get("delete") == "1")
    contact_id = by_email if by_email is not None else by_phone
    if row.get("delete") == "1":
        if contact_id is not None:
            store.delete_contact(conn, contact_id)
            result.deleted += 1
        return
    before = events.snapshot(conn, contact_id)
    now = store.now_text()
    if contact_id is None:
        cur = conn.execute("INSERT INTO contacts (tags, fields) VALUES ('', '{}')")
        contact_id = int(cur.lastrowid or 0)
        result.inserted += 1
    else:
        result.updated += 1
    if email:
        _apply_status(conn, contact_id, "email", email, row, new=by_email is None, now=now)
    if phone:
        _apply_status(conn, contact_id, "phone", phone, row, new=by_phone is None, now=now)
    for channel in ("email", "phone"):
        if email if channel == "email" else phone:
            _apply_lists(conn, contact_id, channel, row, overwrite_lists)
    _apply_tags_and_fields(
        conn, contact_id, row, "tags" in row, tags, overwrite_tags, list(user_fields)
    )
    if email:
        status = conn.execute(
            "SELECT email_status FROM contacts WHERE id = ?", (contact_id,)
        ).fetchone()[0]
        if status == "new":
            result.new_emails += 1
    events.record(conn, contact_id, before)


def _check_owners(
    conn: sqlite3.Connection,
    email: str,
    phone: str,
    by_email: int | None,
    by_phone: int | None,
    *,
    deleting: bool,
) -> None:
    """The whole call is refused when the row's email and phone belong to two contacts, or when
    its phone belongs to a contact with another address (a contact holds one email, and an
    import neither moves the phone nor renames the address)."""
    if by_phone is None or by_email == by_phone:
        return
    other = by_email is not None or (
        not deleting and bool(email) and store.contact_email(conn, by_phone) not in (None, email)
    )
    if other:
        raise MethodError(
            "unspecified",
            f"Contacts {email} and {phone} already exist but owned by different subscribers",
        )


def _checked_row(
    index: int, row: dict[str, str], user_fields: dict[str, str], result: ImportResult
) -> tuple[str, str, list[str]] | None:
    """(email, phone, tags) normalised, or None after logging why the row is not imported."""
    email = normalize_email(row.get("email", ""))
    phone_raw = row.get("phone", "")
    phone = normalize_phone(phone_raw) if phone_raw else ""
    if not email and not phone_raw:
        result.reject(index, "invalid_email", "Row has neither an email nor a phone")
        return None
    if email and (problem := email_problem(email)):
        result.reject(index, *problem)
        return None
    if phone is None:
        result.reject(index, "invalid_phone", f'Invalid phone number "{phone_raw}"')
        return None
    tags = [t.strip() for t in row.get("tags", "").split(",") if t.strip()]
    if len(tags) > MAX_TAGS:
        result.reject(index, "too_many_tags", f"More than {MAX_TAGS} tags")
        return None
    deleting = row.get("delete") == "1"  # the values of a contact being deleted do not matter
    if not deleting and not _values_fit(index, row, user_fields, result):
        return None
    return email, phone, tags


def _apply_status(
    conn: sqlite3.Connection,
    contact_id: int,
    channel: str,
    address: str,
    row: dict[str, str],
    *,
    new: bool,
    now: str,
) -> None:
    wanted = row.get(f"{channel}_status", "").lower()
    availability = row.get(f"{channel}_availability", "")
    if new:
        default = "new" if channel == "email" else "active"
        status = wanted if wanted in IMPORTABLE_STATUSES else default
        conn.execute(
            f"UPDATE contacts SET {channel} = ?, {channel}_status = ?, {channel}_availability = ?,"
            f" {channel}_add_time = ? WHERE id = ?",
            (address, status, availability or "available", now, contact_id),
        )
        return
    current = conn.execute(
        f"SELECT {channel}_status FROM contacts WHERE id = ?", (contact_id,)
    ).fetchone()[0]
    if wanted in IMPORTABLE_STATUSES and current in CHANGEABLE_FROM:
        conn.execute(f"UPDATE contacts SET {channel}_status = ? WHERE id = ?", (wanted, contact_id))


def _apply_lists(
    conn: sqlite3.Connection,
    contact_id: int,
    channel: str,
    row: dict[str, str],
    overwrite: bool,
) -> None:
    code = store.CHANNELS[channel]
    given = {c: row.get(f"{channel}_{c}") for c in _LIST_COLUMNS}
    list_ids = parse_ids(given["list_ids"] or "", f"{channel}_list_ids")
    unsub_ids = parse_ids(given["unsubscribed_list_ids"] or "", f"{channel}_unsubscribed_list_ids")
    excluded = parse_ids(given["excluded_list_ids"] or "", f"{channel}_excluded_list_ids")
    times = [t.strip() for t in (given["subscribe_times"] or "").split(",") if t.strip()]
    supplied = given["list_ids"] is not None or given["unsubscribed_list_ids"] is not None
    if overwrite and supplied:
        store.remove_membership(conn, contact_id, code)
    for i, list_id in enumerate(list_ids):
        at = _time(times[i]) if i < len(times) else None
        store.set_membership(
            conn, contact_id, code, list_id, unsubscribed=False if overwrite else None, at=at
        )
    for list_id in unsub_ids:
        store.set_membership(conn, contact_id, code, list_id, unsubscribed=True)
    for list_id in excluded:
        store.remove_membership(conn, contact_id, code, list_id)


def _time(text: str) -> str:
    """Accept `YYYY-MM-DD hh:mm:ss`, `YYYY-MM-DD` and RFC 3339; store the first form."""
    text = text.replace("T", " ").rstrip("Z")
    return text if len(text) > 10 else f"{text} 00:00:00"


def _apply_tags_and_fields(
    conn: sqlite3.Connection,
    contact_id: int,
    row: dict[str, str],
    tags_given: bool,
    tags: list[str],
    overwrite_tags: bool,
    user_fields: list[str],
) -> None:
    old_tags, old_fields = conn.execute(
        "SELECT tags, fields FROM contacts WHERE id = ?", (contact_id,)
    ).fetchone()
    new_tags = [t for t in old_tags.split(",") if t]
    if tags_given:
        new_tags = tags if overwrite_tags else new_tags + [t for t in tags if t not in new_tags]
    values = store.load_json(old_fields)
    for name in user_fields:
        if row[name] == "":
            values.pop(name, None)  # an empty cell clears the value (§10.11)
        else:
            values[name] = row[name]
    conn.execute(
        "UPDATE contacts SET tags = ?, fields = ? WHERE id = ?",
        (",".join(new_tags), json.dumps(values, ensure_ascii=False), contact_id),
    )
