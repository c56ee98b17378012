"""Contact exports: the field catalogue, the filtered query, and the CSV file snapshot (§4).

`build_file` runs on the writer thread and writes the CSV as chunks into `export_chunks`, reading
the contacts with `fetchmany` so that a million rows never sit in memory at once. Downloading a
file only streams those chunks back (files.py). The async task life cycle lives in tasks.py.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncd.sandbox import store
from syncd.sandbox.addresses import EMAIL_STATUSES, PHONE_STATUSES
from syncd.sandbox.envelope import invalid_arg
from syncd.sandbox.params import Params

CHUNK_ROWS = 5000
LEGACY_MAX_LIMIT = 1000


def _lists(channel: int, column: str, unsubscribed: int) -> str:
    return (
        f"(SELECT group_concat({column}, ',') FROM (SELECT {column} FROM memberships m"
        f" WHERE m.contact_id = c.id AND m.channel = {channel} AND m.unsubscribed = {unsubscribed}"
        " ORDER BY m.list_id))"
    )


SYSTEM_FIELDS: dict[str, str] = {
    "id": "c.id",
    "email": "c.email",
    "email_status": "c.email_status",
    "email_availability": "c.email_availability",
    "email_add_time": "c.email_add_time",
    "email_request_ip": "NULL",
    "email_confirm_time": "NULL",
    "email_confirm_ip": "NULL",
    "email_list_ids": _lists(store.EMAIL, "list_id", 0),
    "email_subscribe_times": _lists(store.EMAIL, "subscribed_at", 0),
    "email_unsubscribed_list_ids": _lists(store.EMAIL, "list_id", 1),
    "email_last_delivered_at": "NULL",
    "email_last_read_at": "NULL",
    "email_last_clicked_at": "NULL",
    "phone": "c.phone",
    "phone_status": "c.phone_status",
    "phone_availability": "c.phone_availability",
    "phone_add_time": "c.phone_add_time",
    "phone_request_ip": "NULL",
    "phone_list_ids": _lists(store.PHONE, "list_id", 0),
    "phone_subscribe_times": _lists(store.PHONE, "subscribed_at", 0),
    "phone_unsubscribed_list_ids": _lists(store.PHONE, "list_id", 1),
    "tags": "NULLIF(c.tags, '')",
}


@dataclass(frozen=True)
class ExportQuery:
    field_names: tuple[str, ...]
    sql: str
    args: tuple[Any, ...]


def plan_query(conn: sqlite3.Connection, params: Params) -> ExportQuery:
    """Validate the export arguments and build the SELECT (one value per requested field)."""
    user_fields = store.field_names(conn)
    names = params.strings("field_names") or [*SYSTEM_FIELDS, *user_fields]
    columns: list[str] = []
    args: list[Any] = []
    for name in names:
        if name in SYSTEM_FIELDS:
            columns.append(SYSTEM_FIELDS[name])
        elif name in user_fields:
            columns.append("json_extract(c.fields, ?)")
            args.append(f'$."{name}"')
        else:
            raise invalid_arg(f'Unknown field name "{name}" in field_names')
    where, where_args = _filters(conn, params)
    sql = f"SELECT {', '.join(columns)} FROM contacts c WHERE {where} ORDER BY c.id"
    return ExportQuery(tuple(names), sql, (*args, *where_args))


def _filters(conn: sqlite3.Connection, params: Params) -> tuple[str, list[Any]]:
    clauses = ["1 = 1"]
    args: list[Any] = []
    list_id = params.integer("list_id")
    if list_id is not None:
        if not store.list_exists(conn, list_id):
            raise invalid_arg(f"List {list_id} not found")
        clauses.append("c.id IN (SELECT contact_id FROM memberships WHERE list_id = ?)")
        args.append(list_id)
    for name, column in (("email", "c.email"), ("phone", "c.phone")):
        if value := params.text(name).strip():
            clauses.append(f"{column} = ?")
            args.append(value.lower() if name == "email" else value)
    if tag := params.text("tag").strip():
        clauses.append("instr(',' || c.tags || ',', ',' || ? || ',') > 0")
        args.append(tag)
    for name, allowed in (("email_status", EMAIL_STATUSES), ("phone_status", PHONE_STATUSES)):
        if value := params.text(name).strip():
            if value not in allowed:
                raise invalid_arg(f"Argument {name!r} has an invalid value {value!r}")
            clauses.append(f"c.{name} = ?")
            args.append(value)
    return " AND ".join(clauses), args


_NEEDS_QUOTES = re.compile(r'[,"\r\n\t ]')  # §4.4: quote values with a comma, quote, space, newline


def _quote(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 lines with `\n` ends. By hand, not csv.writer: that quotes no value for a space,
    and Selzy's files quote dates (`"2021-03-04 10:11:12"`), which some parsers rely on."""
    return "".join([",".join(map(_quote, row)) + "\n" for row in rows])


@dataclass(frozen=True)
class FileStats:
    rows: int
    size: int


def build_file(conn: sqlite3.Connection, file_id: str, query: ExportQuery) -> FileStats:
    """Write the CSV (header + a line per contact) into export_chunks, inside a transaction."""
    header = _csv_text([query.field_names]).encode()
    conn.execute("INSERT INTO export_chunks VALUES (?, 0, ?)", (file_id, header))
    size, rows, seq = len(header), 0, 0
    cursor = conn.execute(query.sql, query.args)
    while batch := cursor.fetchmany(CHUNK_ROWS):
        seq += 1
        data = _csv_text(batch).encode()
        conn.execute("INSERT INTO export_chunks VALUES (?, ?, ?)", (file_id, seq, data))
        size += len(data)
        rows += len(batch)
    return FileStats(rows=rows, size=size)


def legacy_export(conn: sqlite3.Connection, params: Params) -> dict[str, Any]:
    """Synchronous exportContacts: one page of at most 1000 contacts as {field_names, data}."""
    offset = params.integer("offset", 0) or 0
    limit = params.integer("limit", LEGACY_MAX_LIMIT) or 0
    if offset < 0 or not 0 < limit <= LEGACY_MAX_LIMIT:
        raise invalid_arg(f"limit must be 1..{LEGACY_MAX_LIMIT} and offset >= 0")
    query = plan_query(conn, params)
    rows = conn.execute(f"{query.sql} LIMIT ? OFFSET ?", (*query.args, limit, offset)).fetchall()
    return {
        "field_names": list(query.field_names),
        "data": [["" if v is None else str(v) for v in row] for row in rows],
    }
