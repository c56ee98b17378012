"""Recording one importContacts batch in the contact ledger (sql/queries/push.sql): the intent
before it is sent, then what Selzy did with it — accepted values, rejections and quarantine —
and the per-row outcomes.

Each write is one transaction on a pooled connection: the intent is committed before the call,
the answer right after it. A run killed at any point has recorded exactly the batches Selzy
accepted before it died, and the rows of a batch whose answer was lost stay marked in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncd.db.pool import Connection, Pool, translating
from syncd.db.runs import record_outcomes
from syncd.db.sql import QUERIES

# Rejections that count towards quarantine: the values of adds and updates. An opt-out is never
# quarantined (it carries no profile data), and a refused deletion is simply tried again.
_QUARANTINABLE = frozenset({"add", "update"})


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


async def record_intent(
    pool: Pool,
    *,
    job: str,
    run_id: int,
    action: str,
    keys: Sequence[str],
    fingerprints: Sequence[int | None],
) -> None:
    """Mark these contacts as being pushed by `action` (committed before the call goes out)."""
    with translating():
        async with pool.acquire() as conn:
            await conn.execute(
                QUERIES["record_intent"], job, run_id, action, list(keys), list(fingerprints)
            )


async def clear_intent(pool: Pool, *, job: str, keys: Sequence[str]) -> None:
    """Selzy refused the whole call: nothing of it was applied."""
    with translating():
        async with pool.acquire() as conn:
            await conn.execute(QUERIES["clear_intent"], job, list(keys))


async def _push_history(
    conn: Connection,
    job: str,
    run_id: int,
    action: str,
    batch: int | None,
    rows: Sequence[tuple[str, str, str | None, str | None]],
) -> None:
    """One history row per contact of a batch: (key, outcome, code, message)."""
    if not rows:
        return
    keys, outcomes, codes, messages = (list(column) for column in zip(*rows, strict=True))
    await conn.execute(
        QUERIES["record_push_history"], job, run_id, action, batch, keys, outcomes, codes, messages
    )


async def record_unanswered(
    pool: Pool,
    *,
    job: str,
    run_id: int,
    action: str,
    keys: Sequence[str],
    outcome: str,
    code: str,
    message: str,
    batch: int | None = None,
) -> None:
    """History of a batch that got no usable answer: `no_answer` (it may have been applied; its
    intent stays) or `refused` (Selzy refused the call; nothing was applied)."""
    with translating():
        async with pool.acquire() as conn:
            await _push_history(
                conn, job, run_id, action, batch, [(k, outcome, code, message) for k in keys]
            )


async def record_batch(
    pool: Pool,
    *,
    job: str,
    run_id: int,
    action: str,
    channel: str,
    accepted: Sequence[Accepted],
    rejected: Sequence[Rejected],
    quarantine_after: int,
    batch: int | None = None,
) -> None:
    """Record one answered batch atomically: accepted rows settle into the ledger's pushed
    values (none after a deletion), rejected ones count towards quarantine (adds and updates
    only), and every rejection gets a row outcome."""
    with translating():
        async with pool.acquire() as conn, conn.transaction():
            if accepted:
                await conn.execute(
                    QUERIES["record_accepted"],
                    job,
                    run_id,
                    action,
                    [a.key for a in accepted],
                    [a.fingerprint for a in accepted],
                    channel,
                )
            if rejected:
                await conn.execute(
                    QUERIES["record_rejected"],
                    job,
                    run_id,
                    [r.key for r in rejected],
                    [r.fingerprint for r in rejected],
                    [r.code for r in rejected],
                    [r.message for r in rejected],
                    quarantine_after,
                    action in _QUARANTINABLE,
                )
                await record_outcomes(
                    conn,
                    run_id,
                    job,
                    ((r.key, action, "rejected", r.code, r.message) for r in rejected),
                )
            await _push_history(
                conn,
                job,
                run_id,
                action,
                batch,
                [(a.key, "accepted", None, None) for a in accepted]
                + [(r.key, "rejected", r.code, r.message) for r in rejected],
            )
