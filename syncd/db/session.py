"""The run's own PostgreSQL session (`RunSession`): one dedicated connection per run, holding
the job's lock, the session settings and every TEMP table of the pipeline — export staging ->
local scan -> decide (the plan) -> the batches to push -> ledger and writeback.

It owns that connection from open to close and exposes each step of the pipeline as a method
that delegates to the typed wrappers of plan.py, local.py, export_load.py and runs.py, with the
run's job and source bound in. It decides nothing: the order of the steps is the runner's
(syncd.reconcile), the rules are the plan SQL's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

import structlog

from syncd.config import DatabaseConfig, JobConfig
from syncd.db import digest, export_load, local, plan, plans, runs
from syncd.db.digest import DigestWrite, Narrowing
from syncd.db.local import ImportResult
from syncd.db.migrate import ensure_schema
from syncd.db.plan import LedgerResult, PlanRow, PlanSummary
from syncd.db.pool import DedicatedConnection, bounded_lock_call, close_dedicated, connect
from syncd.db.source import SourceInfo, describe_source
from syncd.errors import SyncdError

log = structlog.get_logger(__name__)


class RunSession:
    """One run's dedicated connection and the pipeline steps that run on it.

    Open it with `RunSession.open(cfg, job)` (connects, describes the job's table, checks the
    schema, registers the job); leaving the block closes the connection, which also frees the
    job's lock should `unlock` not have been reached.
    """

    def __init__(
        self,
        conn: DedicatedConnection,
        cfg: DatabaseConfig,
        job: JobConfig,
        source: SourceInfo,
        *,
        job_id: int,
    ) -> None:
        self._conn = conn
        self._cfg = cfg
        self.job = job
        self.source = source
        self._job_id = job_id

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, cfg: DatabaseConfig, job: JobConfig) -> AsyncIterator[RunSession]:
        """A session for one run of `job`. ConfigError when its table or columns are missing,
        SchemaError when syncd's schema is not migrated, DatabaseError when PostgreSQL fails."""
        conn = await connect(cfg)
        try:
            source = await describe_source(conn, job)
            await ensure_schema(conn)
            job_id = await runs.ensure_job(conn, job.name, list_id=job.list_id, match=job.match)
            yield cls(conn, cfg, job, source, job_id=job_id)
        finally:
            await close_dedicated(conn)

    # -- the job lock ------------------------------------------------------------------------

    async def try_lock(self) -> bool:
        """Take the job's lock for this session; False when another session holds it."""
        async with bounded_lock_call(self._cfg.lock_timeout, "the job lock"):
            return await runs.try_lock_job(self._conn, self._job_id)

    async def unlock(self) -> None:
        """Release the job's lock. Best effort: a failure is logged, never raised (closing the
        session frees the lock too)."""
        try:
            async with bounded_lock_call(self._cfg.lock_timeout, "the job unlock"):
                await runs.unlock_job(self._conn, self._job_id)
        except SyncdError as exc:
            log.warning("job_unlock_failed", job=self.job.name, error=str(exc))

    # -- the pipeline --------------------------------------------------------------------------

    async def tune(self) -> None:
        """The run's session settings; before the session's first TEMP table (temp_buffers)."""
        await plan.tune_session(self._conn)

    async def stage_export(self, chunks: AsyncIterator[bytes], *, required: Sequence[str]) -> int:
        """Stream the export's CSV into TEMP syncd_export; its row count (export_load)."""
        return await export_load.load_export(self._conn, chunks, required=required)

    async def create_functions(self) -> None:
        """The session's pg_temp key, fingerprint, digest and decision functions (before the
        plan)."""
        await local.create_key_functions(self._conn)
        await digest.create_functions(self._conn)
        await plan.create_decide_function(self._conn)

    # -- the contact digest: which contacts the plan must see (db/digest.py) ---------------------

    async def digest_versions(self, settings_hash: str) -> tuple[str | None, str]:
        """(the version the job's digest was written under, this run's)."""
        return await digest.versions(self._conn, job=self.job.name, settings_hash=settings_hash)

    async def read_touched(self) -> None:
        await digest.read_touched(self._conn, job=self.job.name)

    async def local_candidates(self) -> int:
        """The contacts the local side says the plan must see (after build_local)."""
        return await digest.local_candidates(self._conn, job=self.job.name)

    async def prefetch_candidates(self) -> None:
        """The local candidates' local and ledger rows, read ahead (db/digest.py `prefetch`)."""
        await digest.prefetch(self._conn, job=self.job.name)

    async def narrow_to_candidates(self, *, limit: int) -> Narrowing:
        """Every contact the plan must see, and the plan narrowed to them when at most `limit`."""
        return await digest.narrow_to_candidates(
            self._conn, job=self.job.name, channel=self.job.match, limit=limit
        )

    async def own_digest(self) -> None:
        """Before this session writes the ledger (db/digest.py `own`)."""
        await digest.own(self._conn, job=self.job.name)

    async def settled_members(self) -> int:
        return await digest.settled_members(self._conn, job=self.job.name)

    async def write_digest(self, *, version: str, narrowed: bool, limit: int) -> DigestWrite:
        """What the finished run's plan found needing nothing, for the next run (given up when
        more than `limit` contacts are left unsettled)."""
        return await digest.write(
            self._conn, job=self.job.name, version=version, narrowed=narrowed, limit=limit
        )

    async def absorb_carried_suppressions(self) -> int:
        job = self.job
        return await plan.absorb_carried_suppressions(
            self._conn, job=job.name, list_id=job.list_id, channel=job.match
        )

    async def stage_remote(self) -> int:
        """TEMP syncd_remote from the staged export: how many rows have a usable key."""
        return await plan.stage_remote(self._conn, channel=self.job.match, list_id=self.job.list_id)

    async def build_local(self, profile: Sequence[str]) -> int:
        """TEMP syncd_local: one scan of the user's table; the rows in it."""
        return await local.build_local(self._conn, self.job, self.source, profile)

    async def find_local_duplicates(self) -> None:
        """TEMP syncd_local_odd / syncd_dupkey: the local rows reported, not planned."""
        await plan.find_local_duplicates(self._conn)

    async def dedupe_remote(self) -> int:
        """One exported row per key; the list's contact count."""
        return await plan.dedupe_remote(self._conn)

    async def build_plan(self) -> None:
        job = self.job
        await plan.build_plan(
            self._conn,
            job=job.name,
            list_id=job.list_id,
            channel=job.match,
            delete_mode=job.delete_mode,
            remote_only=job.remote_only,
            writeback=tuple(job.writeback),
        )

    async def plan_counts(self) -> PlanSummary:
        return await plan.plan_counts(self._conn)

    async def plan_sample(self, per_action: int) -> dict[str, list[str]]:
        return await plan.plan_sample(self._conn, per_action)

    async def plan_batch(self, action: str, after_seq: int, limit: int) -> list[PlanRow]:
        """The next `limit` plan rows of `action` after `after_seq` (empty: done)."""
        return await plan.plan_batch(self._conn, action, after_seq, limit)

    async def sync_ledger(self, *, run_id: int, changes: int) -> LedgerResult:
        job = self.job
        return await plan.sync_ledger(
            self._conn, job=job.name, run_id=run_id, channel=job.match, changes=changes
        )

    async def record_plan_outcomes(self, *, run_id: int) -> int:
        return await plan.record_plan_outcomes(self._conn, run_id=run_id, job=self.job.name)

    async def write_back(self, *, flagged: int) -> int:
        """Selzy's view into the local writeback columns; the rows changed."""
        return await local.write_back(self._conn, self.job, self.source, flagged=flagged)

    async def import_remote(self, profile: Sequence[str], *, run_id: int) -> ImportResult:
        """The plan's remote-only contacts into the local table (remote_only = "import")."""
        return await local.import_remote(self._conn, self.job, self.source, profile, run_id)

    async def prune_history(self) -> int:
        """The job's history rows older than its history_days."""
        return await plan.prune_history(self._conn, job=self.job.name, days=self.job.history_days)

    async def vacuum_ledger(self) -> None:
        """What autovacuum would do after a big rewrite of the ledger, now (plan.sql)."""
        await plan.vacuum_ledger(self._conn)

    # -- diagnostics (bench/plan_profile.py) ---------------------------------------------------

    async def backend_pid(self) -> int:
        """The server process of the run's connection."""
        return await plan.backend_pid(self._conn)

    async def log_plans(self) -> None:
        """Log the plan of every slow statement of this session (auto_explain; superuser)."""
        await plan.log_plans(self._conn)

    # -- binding plans -----------------------------------------------------------------------

    async def store_plan(
        self,
        *,
        run_id: int,
        config_hash: str,
        allow_mass_delete: bool,
        blocked_reason: str | None,
        counts: Mapping[str, int],
    ) -> int:
        """Keep this run's plan (`syncd plan`); its id."""
        return await plans.store_plan(
            self._conn,
            job=self.job.name,
            run_id=run_id,
            config_hash=config_hash,
            allow_mass_delete=allow_mass_delete,
            blocked_reason=blocked_reason,
            counts=counts,
        )

    async def restrict_to_plan(self, plan_id: int) -> plans.Drift:
        """Hold this run's fresh plan to stored plan `plan_id` (`syncd apply`)."""
        return await plans.restrict_to_plan(self._conn, plan_id)

    async def claim_plan(self, plan_id: int, *, run_id: int) -> bool:
        """Mark the plan applied by this run; False when another run applied it already."""
        return await plans.mark_applied(self._conn, plan_id, run_id)
