"""The plan phase of a run, in two halves on the run's session. `read_local` needs nothing from
Selzy: the session's functions, TEMP syncd_local (one scan of the user's table) and the local
rows reported rather than planned (unusable keys, duplicates); the runner starts it while Selzy
prepares the export, on the otherwise idle session connection. `plan_run`, once the export is
staged: the candidates (the contacts the contact digest says must be planned, db/digest.py),
TEMP syncd_remote, one row per exported key, and TEMP syncd_plan (each step needs the previous
ones' TEMP tables).

It sequences the steps of the RunSession and returns what the runner needs to count and guard;
it decides nothing itself (the rules are decision.py, applied by the plan SQL through
pg_temp.syncd_decide) and writes nothing outside the session's TEMP tables but the suppressions
carried over from schema 0001, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from syncd.db import Narrowing, PlanSummary, RunSession

log = structlog.get_logger(__name__)


# The plan is narrowed to its candidates when they are at most this share of the contacts (or
# NARROW_MIN): past it, looking a candidate's ledger row up by key costs more than one join
# with the whole ledger, so the plan sees every contact.
NARROW_SHARE = 0.2
NARROW_MIN = 10_000


def narrow_limit(contacts: int) -> int:
    """The most candidates a plan of `contacts` contacts is narrowed to."""
    return max(NARROW_MIN, int(contacts * NARROW_SHARE))


@dataclass(frozen=True, slots=True)
class LocalHalf:
    """What `read_local` found: the local table's rows, and whether the job's digest can narrow
    the plan (written under this run's version, and few enough local candidates)."""

    rows: int  # rows in the local source
    version: str  # this run's digest version (db/digest.py versions)
    digest: bool


@dataclass(frozen=True, slots=True)
class PlanScope:
    """Which contacts the plan saw: the candidates only (`narrowed`), or every contact."""

    narrowed: bool
    candidates: int | None  # the contacts the digest says must be planned (None: no digest)
    version: str


@dataclass(frozen=True, slots=True)
class PlanResult:
    summary: PlanSummary
    local_count: int  # rows in the local source
    local_valid: int  # rows with a usable key
    remote_count: int  # contacts of the list in the export
    scope: PlanScope


async def read_local(session: RunSession, profile: Sequence[str], settings_hash: str) -> LocalHalf:
    """The local half (no export needed): the local rows, the suppressions carried over from
    schema 0001 (once), and the digest's local candidates with their rows read ahead. After
    session.tune(). `settings_hash`: the job's plan settings (binding.config_hash), part of the
    digest's version."""
    await session.create_functions()
    local_count = await session.build_local(profile)
    await session.find_local_duplicates()
    # before the digest's reads of the ledger: the suppressions it moves in are read with it
    await session.absorb_carried_suppressions()
    return await check_digest(session, settings_hash, local_count)


async def check_digest(session: RunSession, settings_hash: str, local_count: int) -> LocalHalf:
    """Whether the job's digest can narrow this plan, and its local candidates (after
    build_local and find_local_duplicates)."""
    await session.read_touched()  # before anything of the plan reads the ledger
    stored, version = await session.digest_versions(settings_hash)
    usable = stored == version
    if usable:
        candidates = await session.local_candidates()
        usable = candidates <= narrow_limit(local_count)
        if usable:  # their rows now, while Selzy prepares the export
            await session.prefetch_candidates()
        else:
            log.info("plan_not_narrowed", reason="local_candidates", candidates=candidates)
    elif stored is not None:
        log.info("plan_not_narrowed", reason="digest_version")
    return LocalHalf(rows=local_count, version=version, digest=usable)


async def narrow(session: RunSession, local: LocalHalf, exported: int) -> Narrowing | None:
    """The candidates after the export was staged, and the plan narrowed to them when the
    digest can serve and they are few enough (None: no usable digest)."""
    if not local.digest:
        return None
    narrowing = await session.narrow_to_candidates(limit=narrow_limit(max(local.rows, exported)))
    if not narrowing.narrowed:
        log.info("plan_not_narrowed", reason="candidates", candidates=narrowing.candidates)
    return narrowing


async def plan_run(session: RunSession, *, local: LocalHalf, exported: int) -> PlanResult:
    """Build TEMP syncd_plan for the session's job from TEMP syncd_export (`exported` rows) and
    the local half `read_local` left: over the candidates the digest names when it can, else
    over every contact (the same SQL either way)."""
    channel = session.job.match
    narrowing = await narrow(session, local, exported)
    narrowed = narrowing is not None and narrowing.narrowed
    keyed = await session.stage_remote()
    if narrowing is not None and narrowed:
        unkeyed = narrowing.unkeyed + narrowing.export_rows - keyed
    else:
        unkeyed = exported - keyed
    if unkeyed > 0:
        log.warning("export_rows_without_key", rows=unkeyed, channel=channel)
    remote_count = await session.dedupe_remote()
    if narrowed:
        remote_count += await session.settled_members()
    await session.build_plan()
    summary = await session.plan_counts()
    invalid = summary.actions["invalid_key"].rows if "invalid_key" in summary.actions else 0
    return PlanResult(
        summary=summary,
        local_count=local.rows,
        local_valid=local.rows - invalid,
        remote_count=remote_count,
        scope=PlanScope(
            narrowed=narrowed,
            candidates=narrowing.candidates if narrowing is not None else None,
            version=local.version,
        ),
    )
