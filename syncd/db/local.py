"""Every statement that names the user's table or columns: reading the local source into the
run's TEMP table, the writeback UPDATE and the remote-only import INSERT.

This is the one place such SQL is built. Identifiers come from the configuration and pass through
syncd.db.source.quote_ident / SourceInfo.qualified only; every value is a bind parameter. Key
normalisation and fingerprints are the pg_temp functions of sql/queries/local.sql, so the local
rows, the export and the writeback join agree by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from syncd.config import JobConfig
from syncd.db.pool import Connection, translating
from syncd.db.source import SourceInfo, quote_ident
from syncd.db.sql import QUERIES

_KEY_FUNCTION = {"email": "pg_temp.syncd_email_key", "phone": "pg_temp.syncd_phone_key"}
# writeback key -> column of syncd.remote_contacts / TEMP syncd_remote holding Selzy's value
_WRITEBACK_SOURCE = {
    "email_status": "email_status",
    "phone_status": "phone_status",
    "email_availability": "email_availability",
    "list_status": "list_status",
}
_TEXT_TYPES = ("text", "character varying", "character", "citext")


@dataclass(frozen=True, slots=True)
class _RowExprs:
    """SQL expressions over one row of the user's table (alias `src`)."""

    key_raw: str
    key: str
    opt_out: str
    vals: str


def _column(alias: str, name: str) -> str:
    return f"{alias}.{quote_ident(name)}"


def _row_exprs(job: JobConfig, profile: Sequence[str], alias: str = "src") -> _RowExprs:
    key_column = _column(alias, job.fields[job.match]) + "::text"
    values = []
    for name in profile:
        value = _column(alias, job.fields[name]) + "::text"
        if name in _KEY_FUNCTION:  # the other channel's address: sent normalised
            values.append(f"{_KEY_FUNCTION[name]}({value})")
        else:
            values.append(f"coalesce({value}, '')")
    opt_out = (
        f"coalesce({_column(alias, job.opt_out_column)}::boolean, false)"
        if job.opt_out_column
        else "false"
    )
    return _RowExprs(
        key_raw=f"coalesce({key_column}, '')",
        key=f"{_KEY_FUNCTION[job.match]}({key_column})",
        opt_out=opt_out,
        vals=f"ARRAY[{', '.join(values)}]::text[]",
    )


def _writeback_value(job: JobConfig, key: str) -> str:
    """The local writeback column of `key` as text, or NULL when that writeback is not mapped."""
    column = job.writeback.get(key)
    return "NULL::text" if column is None else _column("src", column) + "::text"


def local_table_sql(job: JobConfig, source: SourceInfo, profile: Sequence[str]) -> str:
    """CREATE TEMP TABLE syncd_local: one scan of the user's table. $1 profile field names,
    $2 channel. Columns: key_raw, key, key_valid, opt_out, vals, vals_fp, fingerprint, and
    wb_<source> (the local writeback column as text; NULL when that writeback is not configured)."""
    row = _row_exprs(job, profile)
    writeback = "".join(
        f",\n               {_writeback_value(job, key)} AS wb_{key}" for key in _WRITEBACK_SOURCE
    )
    return (
        "CREATE TEMP TABLE syncd_local AS\n"
        "SELECT v.*, pg_temp.syncd_fp(v.vals_fp, v.opt_out) AS fingerprint\n"
        "FROM (\n"
        "    SELECT s.*, pg_temp.syncd_key_valid($2::text, s.key) AS key_valid,\n"
        "           pg_temp.syncd_vals_fp($1::text[], s.vals) AS vals_fp\n"
        "    FROM (\n"
        f"        SELECT {row.key_raw} AS key_raw, {row.key} AS key,\n"
        f"               {row.opt_out} AS opt_out, {row.vals} AS vals{writeback}\n"
        f"        FROM {source.qualified} AS src\n"
        "        OFFSET 0\n"  # evaluate each expression once per row, not once per use
        "    ) AS s\n"
        "    OFFSET 0\n"
        ") AS v"
    )


def writeback_sql(job: JobConfig, source: SourceInfo) -> str:
    """UPDATE the writeback columns from the mirror where they differ, for the keys the plan
    flagged (syncd_plan.writeback). $1 job."""
    columns = [
        (quote_ident(column), _WRITEBACK_SOURCE[key]) for key, column in job.writeback.items()
    ]
    assignments = ", ".join(f"{column} = m.{value}" for column, value in columns)
    local_values = ", ".join(f"src.{column}::text" for column, _ in columns)
    remote_values = ", ".join(f"m.{value}" for _, value in columns)
    key_column = _column("src", job.fields[job.match]) + "::text"
    return (
        f"UPDATE {source.qualified} AS src SET {assignments}\n"
        "FROM syncd.remote_contacts AS m\n"
        f"WHERE m.job = $1::text AND m.key = {_KEY_FUNCTION[job.match]}({key_column})\n"
        "  AND m.key IN (SELECT p.key FROM syncd_plan AS p WHERE p.writeback)\n"
        f"  AND ROW({local_values}) IS DISTINCT FROM ROW({remote_values})"
    )


def _is_text(source: SourceInfo, column: str) -> bool:
    return source.columns.get(column, "").startswith(_TEXT_TYPES)


def import_sql(job: JobConfig, source: SourceInfo, profile: Sequence[str]) -> str:
    """INSERT the plan's `import` contacts with seq in [$4, $5] into the user's table and record
    their fingerprint in the ledger as read back from the inserted rows (defaults included), so
    the next run pushes nothing over Selzy's own field values. $1 job, $2 profile field names,
    $3 run_id. -> imported."""
    targets = [quote_ident(job.fields[job.match])]
    values = ["p.key"]
    other = "phone" if job.match == "email" else "email"
    if other in job.fields and _is_text(source, job.fields[other]):
        targets.append(quote_ident(job.fields[other]))
        values.append(f"r.{other}")
    for key, column in job.writeback.items():
        targets.append(quote_ident(column))
        values.append(f"r.{_WRITEBACK_SOURCE[key]}")
    row = _row_exprs(job, profile)
    return (
        "WITH inserted AS (\n"
        f"    INSERT INTO {source.qualified} AS src ({', '.join(targets)})\n"
        f"    SELECT {', '.join(values)}\n"
        "    FROM syncd_plan AS p JOIN syncd_remote AS r ON r.key = p.key\n"
        "    WHERE p.action = 'import' AND p.seq BETWEEN $4::bigint AND $5::bigint\n"
        "    ORDER BY p.seq\n"
        f"    RETURNING {row.key} AS key,\n"
        f"        pg_temp.syncd_fp(pg_temp.syncd_vals_fp($2::text[], {row.vals}), {row.opt_out})"
        " AS fingerprint\n"
        "), recorded AS (\n"
        "    INSERT INTO syncd.contacts AS c (job, key, pushed_fp, pushed_action, pushed_at,\n"
        "                                     pushed_run, local_fp, local_changed_at)\n"
        "    SELECT DISTINCT ON (key) $1::text, key, fingerprint, 'import', now(), $3::bigint,\n"
        "           fingerprint, now()\n"
        "    FROM inserted\n"
        "    ORDER BY key, fingerprint\n"
        "    ON CONFLICT (job, key) DO UPDATE SET\n"
        "        pushed_fp = EXCLUDED.pushed_fp, pushed_action = EXCLUDED.pushed_action,\n"
        "        pushed_at = EXCLUDED.pushed_at, pushed_run = EXCLUDED.pushed_run,\n"
        "        local_fp = EXCLUDED.local_fp, local_changed_at = EXCLUDED.local_changed_at,\n"
        "        rejections = 0, rejected_fp = NULL, rejected_run = NULL,\n"
        "        last_code = NULL, last_message = NULL, quarantined_at = NULL\n"
        ")\n"
        "SELECT count(*) FROM inserted"
    )


async def create_key_functions(conn: Connection) -> None:
    """The pg_temp key and fingerprint functions, on this connection (before anything else)."""
    with translating():
        await conn.execute(QUERIES["create_key_functions"])


async def build_local(
    conn: Connection, job: JobConfig, source: SourceInfo, profile: Sequence[str]
) -> int:
    """Materialise TEMP syncd_local (one scan of the user's table) and ANALYZE its join columns.
    Returns the rows in the source."""
    with translating():
        status = await conn.execute(local_table_sql(job, source, profile), list(profile), job.match)
        await conn.execute(QUERIES["analyze_local"])
    return int(status.rsplit(" ", 1)[-1])


async def write_back(conn: Connection, job: JobConfig, source: SourceInfo, *, flagged: int) -> int:
    """Selzy's view from the mirror into the writeback columns; rows changed. `flagged`: how
    many contacts the plan found out of step (none: nothing to scan)."""
    if not job.writeback or not flagged:
        return 0
    with translating():
        result = await conn.execute(writeback_sql(job, source), job.name)
    return int(result.rsplit(" ", 1)[-1])


@dataclass(frozen=True, slots=True)
class ImportRefusal:
    """A remote-only contact the local table refused: its key and why, without its data."""

    key: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    imported: int
    refused: tuple[ImportRefusal, ...]


IMPORT_CHUNK = 1000  # plan rows per INSERT; a chunk the table refuses is retried row by row
# SQLSTATE classes a row's own values cause (data exceptions, integrity constraint violations):
# such a refusal is the row's, and the other rows go on. Anything else fails the run.
_ROW_SQLSTATE_CLASSES = ("22", "23")


def _refusal(key: str, exc: asyncpg.PostgresError) -> ImportRefusal:
    """Why the table refused a row, from the error's fields; never its message or detail, which
    quote the row's values (contact data)."""
    sqlstate = exc.sqlstate or "?"
    what = type(exc).__name__.removesuffix("Error")
    column = getattr(exc, "column_name", None)
    constraint = getattr(exc, "constraint_name", None)
    where = f' on column "{column}"' if column else ""
    where += f' (constraint "{constraint}")' if constraint else ""
    return ImportRefusal(
        key,
        f"import_{sqlstate}",
        f"the local table refused the contact: {what} ({sqlstate}){where}",
    )


async def import_remote(
    conn: Connection, job: JobConfig, source: SourceInfo, profile: Sequence[str], run_id: int
) -> ImportResult:
    """Insert the plan's remote-only contacts into the local table, IMPORT_CHUNK at a time; a
    chunk the table refuses is inserted row by row, and each row it still refuses (a NOT NULL
    column Selzy has no value for, a CHECK, a unique index) is returned as a refusal: one
    sign-up the table cannot hold never stops the others."""
    statement = import_sql(job, source, profile)
    args = (job.name, list(profile), run_id)
    with translating(conn=conn):
        bounds = await conn.fetchrow(QUERIES["import_bounds"])
        if bounds is None or bounds["first"] is None:
            return ImportResult(0, ())
        imported = 0
        refused: list[ImportRefusal] = []
        for start in range(int(bounds["first"]), int(bounds["last"]) + 1, IMPORT_CHUNK):
            end = start + IMPORT_CHUNK - 1
            try:
                async with conn.transaction():
                    imported += int(await conn.fetchval(statement, *args, start, end))
                continue
            except asyncpg.PostgresError as exc:
                if (exc.sqlstate or "")[:2] not in _ROW_SQLSTATE_CLASSES:
                    raise
            for row in await conn.fetch(QUERIES["import_rows"], start, end):
                seq = int(row["seq"])
                try:
                    async with conn.transaction():
                        imported += int(await conn.fetchval(statement, *args, seq, seq))
                except asyncpg.PostgresError as exc:
                    if (exc.sqlstate or "")[:2] not in _ROW_SQLSTATE_CLASSES:
                        raise
                    refused.append(_refusal(row["key"], exc))
    return ImportResult(imported, tuple(refused))
