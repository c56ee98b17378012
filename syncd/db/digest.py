"""Typed wrappers of sql/queries/digest.sql: which contacts a run must plan (the contact digest
and the touched contacts of migration 0006), narrowing the session's plan to them, and writing
the digest once a run is done.

Runs on the run's dedicated connection, beside plan.py's TEMP tables. It decides nothing: the
digest only records what the plan (plan.sql, decide.sql) found, and says which contacts the
plan must see again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from syncd.db.pool import Connection, translating
from syncd.db.sql import QUERIES, sql_dir


@dataclass(frozen=True, slots=True)
class DigestWrite:
    settled: int  # digest rows written (contacts found needing nothing)
    touched: int  # contacts left for the next run to plan whatever their rows say
    dropped: bool  # too many left unsettled: no digest (the next run plans every contact)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


@cache
def _sql_hash() -> str:
    """A hash of every SQL file syncd runs: a digest written by other SQL is not trusted."""
    digest = hashlib.sha256()
    root = sql_dir()
    for path in sorted([*root.glob("queries/*.sql"), *root.glob("templates/*.sql")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


async def versions(conn: Connection, *, job: str, settings_hash: str) -> tuple[str | None, str]:
    """(the version the job's digest was written under or None, this run's version): the job's
    settings (`settings_hash`), syncd's SQL and the server's major version. A digest is used only
    when the two are equal."""
    with translating():
        row = await conn.fetchrow(QUERIES["digest_version"], job)
    stored = row["version"] if row is not None else None
    text = f"{settings_hash}:{_sql_hash()}:{row['server'] if row is not None else ''}"
    return stored, hashlib.sha256(text.encode()).hexdigest()


async def create_functions(conn: Connection) -> None:
    """pg_temp.syncd_view_fp, syncd_local_qfp and syncd_ledger (the whole ledger) on `conn`."""
    with translating():
        await conn.execute(QUERIES["create_digest_functions"])


async def read_touched(conn: Connection, *, job: str) -> None:
    """TEMP syncd_touched_seen: the job's touched contacts, read before the plan reads it."""
    with translating():
        await conn.execute(QUERIES["read_touched"], job)


async def local_candidates(conn: Connection, *, job: str) -> int:
    """TEMP syncd_cand_local from syncd_local, the digest and the touched contacts; its size."""
    with translating():
        status = await conn.execute(QUERIES["local_candidates"], job)
        await conn.execute(QUERIES["analyze_local_candidates"])
    return _count(status)


async def prefetch(conn: Connection, *, job: str) -> None:
    """The local candidates' local and ledger rows, read ahead (after local_candidates, when
    they are few enough to narrow the plan): plan_scope_candidates narrows to them."""
    with translating():
        await conn.execute(QUERIES["prefetch_local"])
        await conn.execute(QUERIES["prefetch_ledger"], job)


@dataclass(frozen=True, slots=True)
class Narrowing:
    candidates: int  # contacts the plan must see
    narrowed: bool  # the plan was narrowed to them (False: too many, the plan sees every contact)
    export_rows: int  # rows of syncd_export once narrowed (0 when not: the caller has the count)
    # rows of the whole export without a value of the match channel (0 when not narrowed: the
    # caller counts them from stage_remote over the whole export then)
    unkeyed: int


async def narrow_to_candidates(
    conn: Connection, *, job: str, channel: str, limit: int
) -> Narrowing:
    """Find every contact the plan must see (TEMP syncd_cand: the local candidates and what the
    export changed against the digest) and, when there are at most `limit`, narrow the plan to
    them (plan_scope_candidates)."""
    with translating():
        await conn.execute(QUERIES["export_delta"], job, channel)
        await conn.execute(QUERIES["analyze_export_delta"])
        count = _count(await conn.execute(QUERIES["candidates"], channel))
        if count > limit:
            return Narrowing(candidates=count, narrowed=False, export_rows=0, unkeyed=0)
        await conn.execute(QUERIES["analyze_candidates"])
        unkeyed = int(await conn.fetchval(QUERIES["export_unkeyed"], channel))
        if _count(await conn.execute(QUERIES["find_respelled"], job, channel)):
            await conn.execute(QUERIES["add_respelled"], channel)
        await conn.execute(QUERIES["plan_scope_candidates"])
        rows = int(await conn.fetchval(QUERIES["export_rows"]))
    return Narrowing(candidates=count, narrowed=True, export_rows=rows, unkeyed=unkeyed)


async def own(conn: Connection, *, job: str) -> None:
    """Before the run's session writes the ledger: the digest is not trusted until `write`
    (a run that fails after this leaves a next run that plans every contact), and the session's
    own ledger writes are not recorded as touched (the run plans and settles them itself)."""
    with translating():
        await conn.execute(QUERIES["own_digest"], job)
        await conn.execute(QUERIES["mark_digest_owner"])


async def settled_members(conn: Connection, *, job: str) -> int:
    """The list's contacts the narrowed plan did not see (digest rows that are not candidates)."""
    with translating():
        return int(await conn.fetchval(QUERIES["settled_members"], job))


async def write(
    conn: Connection, *, job: str, version: str, narrowed: bool, limit: int
) -> DigestWrite:
    """After a run that finished: the digest rows of what the plan found needing nothing, in one
    transaction (all of the job's rows anew when the plan saw every contact), and the contacts
    it planned and left needing something touched (their digest rows may stay: a touched
    contact is planned whatever they say). When more than `limit` contacts are left unsettled
    the digest is given up instead (the next run plans every contact, as it would for that
    many candidates)."""
    with translating():
        unsettled = int(await conn.fetchval(QUERIES["unsettled_count"]))
        async with conn.transaction():
            await conn.execute(QUERIES["settle_touched_seen"], job)
            if unsettled > limit:
                await conn.execute(QUERIES["own_digest"], job)
                return DigestWrite(settled=0, touched=0, dropped=True)
            if narrowed:
                settled = _count(await conn.execute(QUERIES["settle_write_candidates"], job))
            else:
                await conn.execute(QUERIES["settle_forget_all"], job)
                await conn.execute(QUERIES["settle_start"], job)
                settled = _count(await conn.execute(QUERIES["settle_write"], job))
            touched = await conn.execute(QUERIES["settle_unsettled"], job)
            if narrowed:
                await conn.execute(QUERIES["settle_drop_unplanned"], job)
            await conn.execute(QUERIES["settle_version"], job, version)
        if not narrowed:
            await conn.execute(QUERIES["analyze_digest"])
    return DigestWrite(settled=settled, touched=_count(touched), dropped=False)
