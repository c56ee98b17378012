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
    """INSERT the plan's `import` contacts into the user's table and record their fingerprint
    as read back from the inserted rows (defaults included), so the next run pushes nothing
    over Selzy's own field values. $1 job, $2 profile field names, $3 run_id. -> imported."""
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
        "    WHERE p.action = 'import'\n"
        "    ORDER BY p.seq\n"
        f"    RETURNING {row.key} AS key,\n"
        f"        pg_temp.syncd_fp(pg_temp.syncd_vals_fp($2::text[], {row.vals}), {row.opt_out})"
        " AS fingerprint\n"
        "), recorded AS (\n"
        "    INSERT INTO syncd.pushed AS pu (job, key, fingerprint, pushed_at, run_id)\n"
        "    SELECT DISTINCT ON (key) $1::text, key, fingerprint, now(), $3::bigint FROM inserted\n"
        "    ORDER BY key, fingerprint\n"
        "    ON CONFLICT (job, key) DO UPDATE SET\n"
        "        fingerprint = EXCLUDED.fingerprint, pushed_at = EXCLUDED.pushed_at,\n"
        "        run_id = EXCLUDED.run_id, rejections = 0, rejected_fingerprint = NULL,\n"
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


async def import_remote(
    conn: Connection, job: JobConfig, source: SourceInfo, profile: Sequence[str], run_id: int
) -> int:
    """Insert the plan's remote-only contacts into the local table; how many were inserted."""
    with translating():  # one statement: the rows and their fingerprints land together
        imported = await conn.fetchval(
            import_sql(job, source, profile), job.name, list(profile), run_id
        )
    return int(imported)
