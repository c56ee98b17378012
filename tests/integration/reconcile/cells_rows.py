"""Every cell of the state space (tests/unit/reconcile/cells.py) as real rows: a local table,
an export file and ledger rows. Shared by the SQL agreement tests of the decision and of the
narrowed plan."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from syncd.config import DatabaseConfig, JobConfig
from syncd.db import Connection, RunSession, describe_source, ensure_job, load_export
from syncd.db.local import create_key_functions
from syncd.reconcile.actions import EXPORT_FIELDS
from tests.integration.reconcile.harness import make_job
from tests.unit.reconcile.cells import DELETE_MODES, MATCHES, REMOTE_ONLY, Cell, all_cells

LIST_ID = 4242
OTHER_LIST = 99
CONFIGS = list(itertools.product(MATCHES, DELETE_MODES, REMOTE_ONLY))
LOCAL_DDL = (
    "CREATE TABLE public.contacts (id serial PRIMARY KEY, email text, phone text,"
    " first_name text, opted_out boolean NOT NULL DEFAULT false)"
)
LEDGER_COLUMNS = [
    "job",
    "key",
    "pushed_fp",
    "intent_action",
    "intent_fp",
    "rejections",
    "rejected_fp",
    "rejected_run",
    "last_code",
    "quarantined_at",
    "suppressed_reason",
]


def keys(match: str, index: int) -> tuple[str, str]:
    """(match key, the other channel's address) of cell `index`."""
    email, phone = f"c{index}@x.org", f"+7900{index:07d}"
    return (email, phone) if match == "email" else (phone, email)


def export_row(cell: Cell, index: int) -> dict[str, str] | None:
    if cell.membership == "absent":
        return None
    key, other = keys(cell.match, index)
    own_lists, own_unsub = "", ""
    if cell.membership in ("subscribed", "unsubscribed"):
        own_lists = str(LIST_ID)
    if cell.membership == "unsubscribed":
        own_unsub = str(LIST_ID)
    if cell.elsewhere:
        own_lists = ",".join(filter(None, (own_lists, str(OTHER_LIST))))
        own_unsub = ",".join(filter(None, (own_unsub, str(OTHER_LIST))))
    mine = cell.match
    theirs = "phone" if mine == "email" else "email"
    row = dict.fromkeys(EXPORT_FIELDS, "")
    row[mine] = key
    row[f"{mine}_status"] = cell.status or ""
    row[f"{mine}_list_ids"] = own_lists
    row[f"{mine}_unsubscribed_list_ids"] = own_unsub
    if cell.other_status is not None:
        row[theirs] = other
        row[f"{theirs}_status"] = cell.other_status
        row[f"{theirs}_list_ids"] = str(LIST_ID) if cell.membership == "other_channel" else ""
    return row


def local_rows(cell: Cell, index: int) -> list[tuple[str, str, bool]]:
    """(key column value, first_name, opted_out) rows of the local table for this cell."""
    key, _ = keys(cell.match, index)
    spelled = key.upper() if cell.match == "email" else key.removeprefix("+")  # not canonical
    if cell.local == "unchanged":
        return [(spelled, "same", False)]
    if cell.local == "changed":
        return [(spelled, "new", False)]
    if cell.local == "opted_out":
        return [(spelled, "same", True)]
    if cell.local == "duplicate":
        return [(spelled, "same", False), (f" {key} ", "shadow", False)]
    if cell.local == "invalid_key":
        return [(f"bad{index}" if cell.match == "email" else f"no phone {index}", "x", False)]
    return []


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


def winner_fp(cell: Cell, fps: dict[str, int]) -> int | None:
    """What the cell's winning local row fingerprints to (as syncd_local computes it)."""
    if cell.local == "unchanged":
        return fps["same"]
    if cell.local == "changed":
        return fps["new"]
    if cell.local == "opted_out":
        return fps["same+opt_out"]
    if cell.local == "duplicate":  # the row Selzy accepted wins, else the smaller fingerprint
        return fps["same"] if cell.history == "pushed" else min(fps["same"], fps["shadow"])
    return None


def ledger(cell: Cell, index: int, fps: dict[str, int]) -> tuple[Any, ...] | None:
    """The ledger row of this cell's history (None: syncd knows nothing of it)."""
    key, _ = keys(cell.match, index)
    remembered = "email_status=unsubscribed" if cell.remembered else None
    local_fp = winner_fp(cell, fps)
    mine = local_fp if local_fp is not None else fps["old"]
    empty = (None, None, None, 0, None, None, None, None)
    history = cell.history
    if history == "never":
        return None if remembered is None else ("cells", key, *empty, remembered)
    if history == "pushed":
        pushed = fps["same"] if cell.local in ("unchanged", "duplicate") else fps["old"]
        return ("cells", key, pushed, *empty[1:], remembered)
    if history == "in_flight":
        return ("cells", key, None, "add", mine, 0, None, None, None, None, remembered)
    if history == "rejected":
        return ("cells", key, None, None, None, 1, mine, 1, "x", None, remembered)
    now = datetime.now(UTC)
    return ("cells", key, None, None, None, 3, mine, 1, "x", now, remembered)


async def fingerprints(conn: Connection) -> dict[str, int]:
    """The fingerprints of the cells' local values, as syncd_local computes them."""
    await create_key_functions(conn)
    return {
        f"{value}{'+opt_out' if opted else ''}": await conn.fetchval(
            "SELECT pg_temp.syncd_fp(pg_temp.syncd_vals_fp('{Name}', ARRAY[$1::text]), $2)",
            value,
            opted,
        )
        for value in ("same", "new", "shadow", "old")
        for opted in (False, True)
    }


def export_csv(rows: Iterable[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue().encode()


def cells_of(match: str, delete_mode: str, remote_only: str) -> list[Cell]:
    """Every cell of one configuration."""
    return [
        c
        for c in all_cells()
        if (c.match, c.delete_mode, c.remote_only) == (match, delete_mode, remote_only)
    ]


def cells_job(match: str, delete_mode: str, remote_only: str) -> JobConfig:
    """The job the cells of one configuration are planned for."""
    return make_job(
        LIST_ID,
        name="cells",
        match=match,
        fields={match: match, "Name": "first_name"},
        writeback={},
        delete_mode=delete_mode,
        remote_only=remote_only,
    )


async def load_cells(conn: Connection, cells: list[Cell], match: str) -> list[dict[str, str]]:
    """The cells' local table and ledger rows into the database; their export rows."""
    await conn.execute(LOCAL_DDL)
    await conn.copy_records_to_table(
        "contacts",
        schema_name="public",
        columns=[match, "first_name", "opted_out"],
        records=[r for i, cell in enumerate(cells) for r in local_rows(cell, i)],
    )
    fps = await fingerprints(conn)
    await conn.copy_records_to_table(
        "contacts",
        schema_name="syncd",
        columns=LEDGER_COLUMNS,
        records=[r for i, cell in enumerate(cells) if (r := ledger(cell, i, fps))],
    )
    return [r for i, cell in enumerate(cells) if (r := export_row(cell, i)) is not None]


async def cells_session(
    conn: Connection, db_config: DatabaseConfig, job: JobConfig, export: list[dict[str, str]]
) -> RunSession:
    """A run session of `job` on `conn` with `export` staged (TEMP syncd_export)."""
    source = await describe_source(conn, job)
    await load_export(conn, chunks(export_csv(export)), required=EXPORT_FIELDS)
    return RunSession(conn, db_config, job, source, job_id=await ensure_job(conn, job.name))
