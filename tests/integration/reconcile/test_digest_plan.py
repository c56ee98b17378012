"""A plan narrowed to the candidates the contact digest names is the plan of every contact.

For each configuration, every cell of the state space becomes real rows (cells_rows.py); a run's
plan is made and committed (the ledger brought up to date, the digest written), then, round after
round, the local table, the export and the ledger are changed at random — values edited, opt-outs
set and cleared, rows deleted and added, keys spelled twice, statuses and lists changed in Selzy,
ledger rows written and deleted behind syncd's back — and the plan is made twice on the same state,
once narrowed and once over every contact. Both must give the same plan rows, the same counts, and
leave the same digest. Nothing is pushed: contacts with an action keep it, as after a run that
failed to push, which the digest must survive too.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

import pytest

from syncd.config import DatabaseConfig, JobConfig
from syncd.db import Connection, connect
from syncd.db.runs import start_run
from syncd.reconcile import planning
from syncd.reconcile.actions import EXPORT_FIELDS
from syncd.reconcile.planning import PlanResult, plan_run, read_local
from tests.integration.reconcile.cells_rows import (
    CONFIGS,
    LIST_ID,
    OTHER_LIST,
    cells_job,
    cells_of,
    cells_session,
    load_cells,
)

SETTINGS = "digest-test"  # the settings hash of the digest's version (one job, one config)
ROUNDS = 4
PLAN_COLUMNS = (
    "action, reason, key, key_raw, vals, fingerprint, is_local, exported, remote_only, code,"
    " message, writeback, ledger, new_suppression, status_changed, decided, change"
)
STATUSES = ("new", "active", "inactive", "unsubscribed", "blocked", "invited")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    plan: list[tuple[Any, ...]]
    remote_count: int
    local_valid: int
    actions: dict[str, tuple[int, int]]
    reasons: dict[str, int]
    writeback: int
    ledger: int
    status_changes: int
    digest: set[tuple[Any, ...]]  # the job's digest as this plan's run would leave it


async def _plan(
    db_config: DatabaseConfig,
    job: JobConfig,
    export: list[dict[str, str]],
    *,
    narrow: bool,
    commit: bool = False,
) -> tuple[Snapshot, PlanResult]:
    conn = await connect(db_config)
    try:
        session = await cells_session(conn, db_config, job, export)
        local = await read_local(session, ("Name",), SETTINGS)
        if not narrow:
            local = dataclasses.replace(local, digest=False)
        result = await plan_run(session, local=local, exported=len(export))
        plan = sorted(
            (tuple(r) for r in await conn.fetch(f"SELECT {PLAN_COLUMNS} FROM syncd_plan")),
            key=repr,
        )
        digest = {tuple(r) for r in await conn.fetch("SELECT * FROM syncd_settle")}
        if result.scope.narrowed:  # the rows the narrowed plan did not see stay
            digest |= {
                tuple(r)
                for r in await conn.fetch(
                    "SELECT key, local_fp, remote_key, remote_fp, member"
                    " FROM syncd.contact_digest"
                    " WHERE job = $1 AND key NOT IN (SELECT key FROM syncd_cand)",
                    job.name,
                )
            }
        summary = result.summary
        snapshot = Snapshot(
            plan=plan,
            remote_count=result.remote_count,
            local_valid=result.local_valid,
            actions={a: (p.rows, p.remote_only) for a, p in summary.actions.items()},
            reasons=dict(summary.reasons),
            writeback=summary.writeback,
            ledger=summary.ledger,
            status_changes=summary.status_changes,
            digest=digest,
        )
        if commit:  # a run that pushed nothing: the ledger and the digest as it leaves them
            run_id = await start_run(
                conn, job.name, dry_run=False, allow_mass_delete=False, trigger="test"
            )
            if summary.ledger:  # as the runner does: its own writes need no touched rows
                await session.own_digest()
            await session.sync_ledger(run_id=run_id, changes=summary.ledger)
            if job.writeback:
                await session.write_back(flagged=summary.writeback)
            await session.write_digest(
                version=local.version, narrowed=result.scope.narrowed, limit=10**9
            )
    finally:
        await conn.close()
    return snapshot, result


def _spelled_again(match: str, value: str) -> str:
    """Another spelling of the same key (canonical keys agree)."""
    if match == "email":
        return "\u00a0" + value.upper()
    return value.removeprefix("+") if value.startswith("+") else "+" + value


async def _perturb_local(conn: Connection, rng: random.Random, match: str, size: int) -> None:
    """Set-based: each row's fate is a hash of its id and this round's salt."""
    salt = str(rng.randrange(1 << 30))
    fate = "abs(hashtext(id::text || ':' || $1::text)) % 100"
    await conn.execute(f"UPDATE public.contacts SET first_name = 'edited' WHERE {fate} < 6", salt)
    await conn.execute(
        f"UPDATE public.contacts SET opted_out = NOT opted_out WHERE {fate} BETWEEN 6 AND 9",
        salt,
    )
    respelled = (
        "chr(160) || upper(email)"
        if match == "email"
        else "CASE WHEN phone LIKE '+%' THEN substr(phone, 2) ELSE '+' || phone END"
    )
    await conn.execute(
        f"INSERT INTO public.contacts ({match}, first_name)"
        f" SELECT {respelled}, 'shadow' FROM public.contacts"
        f" WHERE {match} <> '' AND {fate} BETWEEN 10 AND 11",
        salt,
    )
    await conn.execute(f"DELETE FROM public.contacts WHERE {fate} BETWEEN 12 AND 15", salt)
    new = [
        f"n{rng.randrange(size * 2)}@x.org" if match == "email" else f"+7901{n:07d}"
        for n in range(size // 25)  # new contacts, some of them Selzy already holds
    ]
    await conn.executemany(
        f"INSERT INTO public.contacts ({match}, first_name) VALUES ($1, 'same')",
        [(v,) for v in new],
    )


def _perturb_export(
    rows: list[dict[str, str]], rng: random.Random, match: str
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for row in rows:
        roll = rng.random()
        row = dict(row)
        if roll < 0.05:
            continue  # left the list and the account
        if roll < 0.10:
            row[f"{match}_status"] = rng.choice(STATUSES)
        elif roll < 0.14:
            row[f"{match}_unsubscribed_list_ids"] = ",".join(
                filter(None, (row[f"{match}_unsubscribed_list_ids"], str(LIST_ID)))
            )
        elif roll < 0.17:
            other = "phone" if match == "email" else "email"
            if row[other]:
                row[f"{other}_status"] = rng.choice(STATUSES)
        elif roll < 0.19:
            row[f"{match}_unsubscribed_list_ids"] = str(OTHER_LIST)
        elif roll < 0.21 and row[match]:
            out.append(dict(row, **{match: _spelled_again(match, row[match])}))
        out.append(row)
    for n in range(len(rows) // 25):  # sign-ups syncd never saw, some also in the local table
        row = dict.fromkeys(EXPORT_FIELDS, "")
        row[match] = (
            f"n{rng.randrange(len(rows) * 2)}@x.org" if match == "email" else f"+7901{n:07d}"
        )
        row[f"{match}_status"] = rng.choice(STATUSES)
        row[f"{match}_list_ids"] = str(LIST_ID)
        out.append(row)
    return out


async def _perturb_ledger(conn: Connection, rng: random.Random, job: str) -> None:
    """Ledger rows written and deleted behind syncd's back (set-based, as _perturb_local)."""
    salt = str(rng.randrange(1 << 30))
    fate = "abs(hashtext(key || ':' || $2::text)) % 100"
    await conn.execute(f"DELETE FROM syncd.contacts WHERE job = $1 AND {fate} < 2", job, salt)
    await conn.execute(
        "UPDATE syncd.contacts SET suppressed_reason = 'list_status=unsubscribed'"
        f" WHERE job = $1 AND {fate} BETWEEN 2 AND 3",
        job,
        salt,
    )
    await conn.execute(
        "UPDATE syncd.contacts SET intent_action = 'update', intent_fp = 1"
        f" WHERE job = $1 AND {fate} BETWEEN 4 AND 5",
        job,
        salt,
    )
    await conn.execute(
        f"UPDATE syncd.contacts SET pushed_fp = NULL WHERE job = $1 AND {fate} BETWEEN 6 AND 7",
        job,
        salt,
    )


WRITEBACK = {  # writeback key -> local column (test_..._local_writeback_columns)
    "email_status": "wb_email_status",
    "phone_status": "wb_phone_status",
    "email_availability": "wb_email_availability",
    "list_status": "wb_list_status",
}


async def _perturb_writeback(conn: Connection, rng: random.Random) -> None:
    """Each writeback column set to NULL, '' or another value behind syncd's back, in 3% of the
    rows each (set-based, as _perturb_local)."""
    salt = str(rng.randrange(1 << 30))
    fate = "(abs(hashtext(id::text || ':' || $1::text)) % 100)"
    for n, column in enumerate(WRITEBACK.values()):
        await conn.execute(
            f"UPDATE public.contacts SET {column} = CASE {fate} % 3 WHEN 0 THEN NULL"
            f" WHEN 1 THEN '' ELSE 'edited' END WHERE {fate} BETWEEN {3 * n} AND {3 * n + 2}",
            salt,
        )


def _assert_same(narrowed: Snapshot, whole: Snapshot) -> None:
    for field in dataclasses.fields(Snapshot):
        mine, theirs = getattr(narrowed, field.name), getattr(whole, field.name)
        if field.name in ("plan", "digest") and mine != theirs:
            ours, other = Counter(map(repr, mine)), Counter(map(repr, theirs))
            extra, missing = list((ours - other).elements()), list((other - ours).elements())
            raise AssertionError(
                f"{field.name}: narrowed only {extra[:5]}, whole only {missing[:5]}"
            )
        else:
            assert mine == theirs, field.name


@pytest.mark.slow
@pytest.mark.parametrize(("match", "delete_mode", "remote_only"), CONFIGS)
async def test_a_narrowed_plan_is_the_plan_of_every_contact(
    db_config: DatabaseConfig,
    db: Connection,
    monkeypatch: pytest.MonkeyPatch,
    match: str,
    delete_mode: str,
    remote_only: str,
) -> None:
    # most cells need something every run: narrow however many candidates there are
    monkeypatch.setattr(planning, "NARROW_MIN", 10**9)
    cells = cells_of(match, delete_mode, remote_only)
    job = cells_job(match, delete_mode, remote_only)
    export = await load_cells(db, cells, match)
    first, result = await _plan(db_config, job, export, narrow=True, commit=True)
    assert not result.scope.narrowed  # no digest yet: every contact
    rng = random.Random(f"{match}-{delete_mode}-{remote_only}")
    narrowed_rounds = 0
    for round_no in range(ROUNDS):
        if round_no:  # the first round checks the state the first run left, unchanged
            await _perturb_local(db, rng, match, len(cells))
            export = _perturb_export(export, rng, match)
            await _perturb_ledger(db, rng, job.name)
        whole, _ = await _plan(db_config, job, export, narrow=False)
        narrowed, result = await _plan(db_config, job, export, narrow=True, commit=True)
        narrowed_rounds += result.scope.narrowed
        _assert_same(narrowed, whole)
    assert narrowed_rounds == ROUNDS  # every round after the first run was narrowed
    assert first.plan  # the cells plan something: the comparison is not of empty plans


@pytest.mark.slow
async def test_a_narrowed_plan_sees_local_writeback_columns_change(
    db_config: DatabaseConfig, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local side of the digest holds the writeback columns too: a column the writeback
    filled, emptied or set to '' or another value behind syncd's back makes its contact a
    candidate again (the writeback puts it back), exactly as a plan of every contact finds."""
    monkeypatch.setattr(planning, "NARROW_MIN", 10**9)
    match, delete_mode, remote_only = CONFIGS[0]
    cells = cells_of(match, delete_mode, remote_only)
    job = dataclasses.replace(cells_job(match, delete_mode, remote_only), writeback=WRITEBACK)
    export = await load_cells(db, cells, match)
    for column in WRITEBACK.values():
        await db.execute(f"ALTER TABLE public.contacts ADD COLUMN {column} text")
    await _plan(db_config, job, export, narrow=True, commit=True)  # writes every status back
    rng = random.Random("writeback")
    written_back = 0
    for round_no in range(ROUNDS):
        if round_no:
            await _perturb_writeback(db, rng)
        whole, _ = await _plan(db_config, job, export, narrow=False)
        narrowed, result = await _plan(db_config, job, export, narrow=True, commit=True)
        assert result.scope.narrowed
        _assert_same(narrowed, whole)
        written_back += whole.writeback
    assert written_back  # the perturbed columns were planned for writeback, not ignored
