"""The set-based SQL that decides a million contacts at once agrees with `decide()` on every cell
of the state space (tests/unit/reconcile/cells.py): for each configuration, every cell becomes
real rows — a local table, an export file, ledger rows — the real plan phase runs over all of
them in one statement, and each contact's reason in TEMP syncd_plan is the one `decide` gives."""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.config import DatabaseConfig
from syncd.db import RunSession, connect, describe_source, ensure_job, load_export
from syncd.db.local import create_key_functions
from syncd.reconcile.actions import EXPORT_FIELDS
from syncd.reconcile.decision import decide
from syncd.reconcile.planning import plan_run, read_local
from tests.integration.reconcile.harness import make_job
from tests.unit.reconcile.cells import DELETE_MODES, MATCHES, REMOTE_ONLY, Cell, all_cells

LIST_ID = 4242
OTHER_LIST = 99
CONFIGS = list(itertools.product(MATCHES, DELETE_MODES, REMOTE_ONLY))


def _keys(match: str, index: int) -> tuple[str, str]:
    """(match key, the other channel's address) of cell `index`."""
    email, phone = f"c{index}@x.org", f"+7900{index:07d}"
    return (email, phone) if match == "email" else (phone, email)


def _export_row(cell: Cell, index: int) -> dict[str, str] | None:
    if cell.membership == "absent":
        return None
    key, other = _keys(cell.match, index)
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


def _local_rows(cell: Cell, index: int) -> list[tuple[str, str, bool]]:
    """(key column value, first_name, opted_out) rows of the local table for this cell."""
    key, _ = _keys(cell.match, index)
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


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


def _expected(cell: Cell) -> str:
    facts = cell.facts()
    if cell.local == "invalid_key":  # the cell's key itself has no local row
        facts = dataclasses.replace(facts, local="absent")
    return decide(facts).code


@pytest.mark.slow
@pytest.mark.parametrize(("match", "delete_mode", "remote_only"), CONFIGS)
async def test_plan_sql_decides_every_cell_as_decide_does(
    db_config: DatabaseConfig, match: str, delete_mode: str, remote_only: str
) -> None:
    cells = [
        c
        for c in all_cells()
        if (c.match, c.delete_mode, c.remote_only) == (match, delete_mode, remote_only)
    ]
    job = make_job(
        LIST_ID,
        name="cells",
        match=match,
        fields={match: match, "Name": "first_name"},
        writeback={},
        delete_mode=delete_mode,
        remote_only=remote_only,
    )
    conn = await connect(db_config)
    try:
        await conn.execute(
            "CREATE TABLE public.contacts (id serial PRIMARY KEY, email text, phone text,"
            " first_name text, opted_out boolean NOT NULL DEFAULT false)"
        )
        await conn.copy_records_to_table(
            "contacts",
            schema_name="public",
            columns=[match, "first_name", "opted_out"],
            records=[r for i, cell in enumerate(cells) for r in _local_rows(cell, i)],
        )
        await create_key_functions(conn)
        fps = {
            f"{value}{'+opt_out' if opted else ''}": await conn.fetchval(
                "SELECT pg_temp.syncd_fp(pg_temp.syncd_vals_fp('{Name}', ARRAY[$1::text]), $2)",
                value,
                opted,
            )
            for value in ("same", "new", "shadow", "old")
            for opted in (False, True)
        }
        await conn.copy_records_to_table(
            "contacts",
            schema_name="syncd",
            columns=[
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
            ],
            records=[r for i, cell in enumerate(cells) if (r := _ledger(cell, i, fps))],
        )
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        exported = 0
        for i, cell in enumerate(cells):
            if (row := _export_row(cell, i)) is not None:
                writer.writerow(row)
                exported += 1
        source = await describe_source(conn, job)
        await load_export(conn, _chunks(buffer.getvalue().encode()), required=EXPORT_FIELDS)
        session = RunSession(conn, db_config, job, source, job_id=await ensure_job(conn, job.name))
        local_count = await read_local(session, ("Name",))
        await plan_run(session, local_count=local_count, exported=exported)
        rows = await conn.fetch("SELECT key, reason FROM syncd_plan WHERE action <> 'duplicate'")
        losers = {
            r["key"]
            for r in await conn.fetch("SELECT key FROM syncd_plan WHERE action = 'duplicate'")
        }
    finally:
        await conn.close()
    planned: dict[str, str] = {}
    for row in rows:
        assert row["key"] not in planned or row["key"] == "", row["key"]
        planned[row["key"]] = row["reason"]
    mismatches = []
    for i, cell in enumerate(cells):
        key, _ = _keys(match, i)
        expected = _expected(cell)
        got = planned.get(key, "none:*")
        if got != expected and not (got == "none:*" and expected.startswith("none:")):
            mismatches.append((cell, expected, got))
        if cell.local == "duplicate":
            assert key in losers, cell
    assert mismatches == [], mismatches[:5]
    invalid = sum(1 for c in cells if c.local == "invalid_key")
    assert invalid > 0


def _local_fp(cell: Cell, fps: dict[str, int]) -> int | None:
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


def _ledger(cell: Cell, index: int, fps: dict[str, int]) -> tuple[Any, ...] | None:
    """The ledger row of this cell's history (None: syncd knows nothing of it)."""
    key, _ = _keys(cell.match, index)
    remembered = "email_status=unsubscribed" if cell.remembered else None
    local_fp = _local_fp(cell, fps)
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
