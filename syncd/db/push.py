"""Recording what Selzy did with one importContacts batch (sql/queries/push.sql): fingerprints
of accepted rows, rejections and quarantine in syncd.pushed, and per-row outcomes.

One batch = one transaction on a pooled connection, committed right after Selzy answered: a run
killed at any point has recorded exactly the batches Selzy accepted before it died.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncd.db.pool import Pool, translating
from syncd.db.runs import record_outcomes
from syncd.db.sql import QUERIES

_DELETIONS = frozenset({"delete", "exclude"})


@dataclass(frozen=True, slots=True)
class Accepted:
    key: str
    fingerprint: int | None


@dataclass(frozen=True, slots=True)
class Rejected:
    key: str
    fingerprint: int | None
    code: str
    message: str


async def record_batch(
    pool: Pool,
    *,
    job: str,
    run_id: int,
    action: str,
    accepted: Sequence[Accepted],
    rejected: Sequence[Rejected],
    quarantine_after: int,
) -> None:
    """Record one answered batch atomically.

    Accepted deletions/exclusions forget the contact's pushed row; other accepted rows store
    their fingerprint and clear any rejection. Rejected adds/updates/opt-outs count towards
    quarantine; every rejection gets a row outcome.
    """
    with translating():
        async with pool.acquire() as conn, conn.transaction():
            if accepted and action in _DELETIONS:
                await conn.execute(QUERIES["forget_pushed"], job, [a.key for a in accepted])
            elif accepted:
                await conn.execute(
                    QUERIES["record_accepted"],
                    job,
                    run_id,
                    [a.key for a in accepted],
                    [a.fingerprint for a in accepted],
                )
            if rejected and action not in _DELETIONS:
                await conn.execute(
                    QUERIES["record_rejected"],
                    job,
                    run_id,
                    [r.key for r in rejected],
                    [r.fingerprint for r in rejected],
                    [r.code for r in rejected],
                    [r.message for r in rejected],
                    quarantine_after,
                )
            if rejected:
                await record_outcomes(
                    conn,
                    run_id,
                    job,
                    ((r.key, action, "rejected", r.code, r.message) for r in rejected),
                )
