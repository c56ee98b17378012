"""syncd's PostgreSQL boundary: the only package that imports asyncpg.

Owns connections and pools, the SQL files, syncd's schema, the run log, the description of the
user's table and the staging of exports. Other packages use the names below and never asyncpg's:
a run works through its RunSession (its own connection) and a Database (the pool's operations).
`Connection` and `DedicatedConnection` are asyncpg's types, for syncd/db/ and the tests only
(ruff TID251 bans them elsewhere).
"""

from syncd.db.database import Database, JobRuns
from syncd.db.digest import DigestWrite, Narrowing
from syncd.db.export_load import load_export
from syncd.db.local import ImportRefusal, ImportResult
from syncd.db.migrate import apply_migrations, ensure_schema, latest_version, migrate
from syncd.db.optouts import OptOutCandidate, OptOutSession
from syncd.db.plan import LedgerResult, PlannedAction, PlanRow, PlanSummary
from syncd.db.pool import (
    Connection,
    DedicatedConnection,
    Pool,
    connect,
    create_pool,
    translate,
    translating,
)
from syncd.db.push import Accepted, Rejected
from syncd.db.runs import (
    COUNT_COLUMNS,
    OPT_OUT_TRIGGER,
    RunRecord,
    ensure_job,
    finish_run,
    format_runs_table,
    heartbeat,
    prune_outcomes,
    recent_runs,
    record_outcomes,
    run_as_dict,
    start_run,
    try_lock_job,
    unlock_job,
)
from syncd.db.session import RunSession
from syncd.db.source import (
    SourceInfo,
    describe_source,
    quote_ident,
    quote_table,
    verify_sources,
)
from syncd.db.sql import QUERIES, sql_dir

__all__ = [
    "COUNT_COLUMNS",
    "OPT_OUT_TRIGGER",
    "QUERIES",
    "Accepted",
    "Connection",
    "Database",
    "DedicatedConnection",
    "DigestWrite",
    "ImportRefusal",
    "ImportResult",
    "JobRuns",
    "LedgerResult",
    "Narrowing",
    "OptOutCandidate",
    "OptOutSession",
    "PlanRow",
    "PlanSummary",
    "PlannedAction",
    "Pool",
    "Rejected",
    "RunRecord",
    "RunSession",
    "SourceInfo",
    "apply_migrations",
    "connect",
    "create_pool",
    "describe_source",
    "ensure_job",
    "ensure_schema",
    "finish_run",
    "format_runs_table",
    "heartbeat",
    "latest_version",
    "load_export",
    "migrate",
    "prune_outcomes",
    "quote_ident",
    "quote_table",
    "recent_runs",
    "record_outcomes",
    "run_as_dict",
    "sql_dir",
    "start_run",
    "translate",
    "translating",
    "try_lock_job",
    "unlock_job",
    "verify_sources",
]
