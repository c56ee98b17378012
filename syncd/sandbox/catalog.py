"""Lists and user fields (§5): getLists, createList, updateList, deleteList, getFields, createField.

Plain functions over a writer-thread connection; the admin API reuses them without the API rules
where it says so.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from syncd.sandbox.envelope import invalid_arg
from syncd.sandbox.importing import SYSTEM_COLUMNS
from syncd.sandbox.params import Params
from syncd.sandbox.values import FIELD_TYPES

MAX_FIELDS = 50
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def get_lists(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [
        {"id": r[0], "title": r[1]} for r in conn.execute("SELECT id, title FROM lists ORDER BY id")
    ]


def create_list(conn: sqlite3.Connection, title: str, list_id: int | None = None) -> int:
    title = title.strip()
    if not title:
        raise invalid_arg("title is required")
    if conn.execute("SELECT 1 FROM lists WHERE title = ?", (title,)).fetchone():
        raise invalid_arg(f'List with title "{title}" already exists')
    if (
        list_id is not None
        and conn.execute("SELECT 1 FROM lists WHERE id = ?", (list_id,)).fetchone()
    ):
        raise invalid_arg(f"List {list_id} already exists")
    cur = conn.execute("INSERT INTO lists (id, title) VALUES (?, ?)", (list_id, title))
    return int(cur.lastrowid or 0)


def update_list(conn: sqlite3.Connection, params: Params) -> dict[str, Any]:
    list_id = params.integer("list_id", required=True)
    if not conn.execute("SELECT 1 FROM lists WHERE id = ?", (list_id,)).fetchone():
        raise invalid_arg(f"List {list_id} not found")
    for name in ("title", "before_subscribe_url", "after_subscribe_url"):
        if params.has(name):
            value = params.text(name).strip()
            if (
                name == "title"
                and conn.execute(
                    "SELECT 1 FROM lists WHERE title = ? AND id <> ?", (value, list_id)
                ).fetchone()
            ):
                raise invalid_arg(f'List with title "{value}" already exists')
            conn.execute(f"UPDATE lists SET {name} = ? WHERE id = ?", (value, list_id))
    return {}


def delete_list(conn: sqlite3.Connection, params: Params) -> dict[str, Any]:
    list_id = params.integer("list_id", required=True)
    if conn.execute("DELETE FROM lists WHERE id = ?", (list_id,)).rowcount == 0:
        raise invalid_arg(f"List {list_id} not found")
    conn.execute("DELETE FROM memberships WHERE list_id = ?", (list_id,))
    return {}


def get_fields(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT id, name, type, public_name FROM fields ORDER BY id")
    return [
        {
            "id": r[0],
            "name": r[1],
            "type": r[2],
            "is_visible": 1,
            "view_pos": i + 1,
            "public_name": r[3],
        }
        for i, r in enumerate(rows)
    ]


def create_field(conn: sqlite3.Connection, name: str, type_: str, public_name: str = "") -> int:
    if not _FIELD_NAME.match(name):
        raise invalid_arg(f'Invalid field name "{name}": Latin letters, digits and _ only')
    if name in SYSTEM_COLUMNS:
        raise invalid_arg(f'Field name "{name}" is a system field name')
    if type_ not in FIELD_TYPES:
        raise invalid_arg(f"Field type must be one of {', '.join(FIELD_TYPES)}")
    if conn.execute("SELECT 1 FROM fields WHERE name = ?", (name,)).fetchone():
        raise invalid_arg(f'Field "{name}" already exists')
    if conn.execute("SELECT count(*) FROM fields").fetchone()[0] >= MAX_FIELDS:
        raise invalid_arg(f"An account can have at most {MAX_FIELDS} user fields")
    cur = conn.execute(
        "INSERT INTO fields (name, type, public_name) VALUES (?, ?, ?)",
        (name, type_, public_name or name),
    )
    return int(cur.lastrowid or 0)
