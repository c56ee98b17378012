"""The set-based SQL that decides a million contacts at once agrees with `decide()` on every cell
of the state space (tests/unit/reconcile/cells.py): for each configuration, every cell becomes
real rows — a local table, an export file, ledger rows — the real plan phase runs over all of
them in one statement, and each contact's reason in TEMP syncd_plan is the one `decide` gives."""

from __future__ import annotations

import dataclasses

import pytest

from syncd.config import DatabaseConfig
from syncd.db import connect
from syncd.reconcile.decision import decide
from syncd.reconcile.planning import plan_run, read_local
from tests.integration.reconcile.cells_rows import (
    CONFIGS,
    cells_job,
    cells_of,
    cells_session,
    keys,
    load_cells,
)
from tests.unit.reconcile.cells import Cell


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
    cells = cells_of(match, delete_mode, remote_only)
    job = cells_job(match, delete_mode, remote_only)
    conn = await connect(db_config)
    try:
        rows_out = await load_cells(conn, cells, match)
        exported = len(rows_out)
        session = await cells_session(conn, db_config, job, rows_out)
        local = await read_local(session, ("Name",), "cells")
        await plan_run(session, local=local, exported=exported)
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
        key, _ = keys(match, i)
        expected = _expected(cell)
        got = planned.get(key, "none:*")
        if got != expected and not (got == "none:*" and expected.startswith("none:")):
            mismatches.append((cell, expected, got))
        if cell.local == "duplicate":
            assert key in losers, cell
    assert mismatches == [], mismatches[:5]
    invalid = sum(1 for c in cells if c.local == "invalid_key")
    assert invalid > 0
