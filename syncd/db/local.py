"""Every statement that names the user's table or columns: reading the local source into the
run's TEMP table, the writeback UPDATE and the remote-only import INSERT.

The statements are the `local_*` templates of sql/templates/local.sql, rendered here by
syncd.db.templates: configured names enter SQL only as Idents (syncd.db.source.quote_ident) and
every value is a bind parameter. Key normalisation and fingerprints are the pg_temp functions of
sql/queries/local.sql, so the local rows, the export and the writeback join agree by
construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from syncd.config import JobConfig
from syncd.db.pool import Connection, translating
from syncd.db.source import SourceInfo
from syncd.db.sql import QUERIES
from syncd.db.templates import Fragment, Ident, join, render

_KEY_TEMPLATE = {"email": "local_email_key", "phone": "local_phone_key"}
# writeback key -> column of syncd.remote_contacts / TEMP syncd_remote holding Selzy's value
_WRITEBACK_SOURCE = {
    "email_status": "email_status",
    "phone_status": "phone_status",
    "email_availability": "email_availability",
    "list_status": "list_status",
}
_TEXT_TYPES = ("text", "character varying", "character", "citext")
_ALIAS = "src"  # the user's table in every statement here


@dataclass(frozen=True, slots=True)
class RowExprs:
    """SQL expressions over one row of the user's table (alias `src`)."""

    key_raw: Fragment
    key: Fragment
    opt_out: Fragment
    vals: Fragment


def _table(source: SourceInfo) -> Ident:
    return Ident(source.schema, source.name)


def _text(column: str) -> Fragment:
    return render("local_text_column", column=Ident(_ALIAS, column))


def _key(job: JobConfig) -> Fragment:
    """The match column normalised to the contact's key."""
    return render(_KEY_TEMPLATE[job.match], value=_text(job.fields[job.match]))


def row_exprs(job: JobConfig, profile: Sequence[str]) -> RowExprs:
    values = []
    for name in profile:
        value = _text(job.fields[name])
        if name in _KEY_TEMPLATE:  # the other channel's address: sent normalised
            values.append(render(_KEY_TEMPLATE[name], value=value))
        else:
            values.append(render("local_profile_value", value=value))
    opt_out = (
        render("local_opt_out", column=Ident(_ALIAS, job.opt_out_column))
        if job.opt_out_column
        else render("local_no_opt_out")
    )
    return RowExprs(
        key_raw=render("local_key_raw", column=Ident(_ALIAS, job.fields[job.match])),
        key=_key(job),
        opt_out=opt_out,
        vals=render("local_vals", values=join(values)),
    )


def _writeback_value(job: JobConfig, key: str) -> Fragment:
    """The local writeback column of `key` as text, or NULL when that writeback is not mapped."""
    column = job.writeback.get(key)
    return render("local_no_writeback") if column is None else _text(column)


def local_table_sql(job: JobConfig, source: SourceInfo, profile: Sequence[str]) -> str:
    """CREATE TEMP TABLE syncd_local: one scan of the user's table. $1 profile field names,
    $2 channel. Columns: key_raw, key, key_valid, opt_out, vals, vals_fp, fingerprint, and
    wb_<source> (the local writeback column as text; NULL when that writeback is not configured)."""
    row = row_exprs(job, profile)
    writeback = {f"wb_{key}": _writeback_value(job, key) for key in _WRITEBACK_SOURCE}
    return render(
        "local_scan",
        table=_table(source),
        key_raw=row.key_raw,
        key=row.key,
        opt_out=row.opt_out,
        vals=row.vals,
        **writeback,
    ).sql


def writeback_sql(job: JobConfig, source: SourceInfo) -> str:
    """UPDATE the writeback columns from the mirror where they differ, for the keys the plan
    flagged (syncd_plan.writeback). $1 job."""
    columns = [
        (column, Ident("m", _WRITEBACK_SOURCE[key])) for key, column in job.writeback.items()
    ]
    return render(
        "local_writeback",
        table=_table(source),
        assignments=join(
            render("local_assignment", column=Ident(column), value=remote)
            for column, remote in columns
        ),
        key=_key(job),
        local_values=join(_text(column) for column, _ in columns),
        remote_values=join(remote for _, remote in columns),
    ).sql


def shown_columns(job: JobConfig) -> list[str]:
    """The local columns `syncd explain` shows: the mapped fields, the opt-out column and the
    writeback columns, each once, in config order (never the table's other columns)."""
    columns = [*job.fields.values()]
    if job.opt_out_column:
        columns.append(job.opt_out_column)
    columns += job.writeback.values()
    return list(dict.fromkeys(columns))


def explain_sql(job: JobConfig, source: SourceInfo, profile: Sequence[str]) -> str:
    """The rows of the user's table with key $1 (profile names $2); see local_explain."""
    row = row_exprs(job, profile)
    return render(
        "local_explain",
        table=_table(source),
        key_raw=row.key_raw,
        key=row.key,
        opt_out=row.opt_out,
        vals=row.vals,
        shown=join(_text(column) for column in shown_columns(job)),
    ).sql


async def explain_rows(
    conn: Connection, job: JobConfig, source: SourceInfo, profile: Sequence[str], key: str
) -> list[dict[str, object]]:
    """The local rows holding `key` (needs create_key_functions on `conn`): for each, its key as
    written, opt-out, the values syncd would push, its configured columns and its fingerprint."""
    columns = shown_columns(job)
    with translating(conn=conn):
        rows = await conn.fetch(explain_sql(job, source, profile), key, list(profile))
    return [
        {
            "key_raw": r["key_raw"],
            "opt_out": r["opt_out"],
            "vals": list(r["vals"]),
            "columns": dict(zip(columns, r["shown"], strict=True)),
            "fingerprint": r["fingerprint"],
        }
        for r in rows
    ]


def _is_text(source: SourceInfo, column: str) -> bool:
    return source.columns.get(column, "").startswith(_TEXT_TYPES)


def import_sql(job: JobConfig, source: SourceInfo, profile: Sequence[str]) -> str:
    """INSERT the plan's `import` contacts with seq in [$4, $5] into the user's table and record
    their fingerprint in the ledger as read back from the inserted rows (defaults included), so
    the next run pushes nothing over Selzy's own field values. $1 job, $2 profile field names,
    $3 run_id. -> imported."""
    targets = [Ident(job.fields[job.match])]
    values = [Ident("p", "key")]
    other = "phone" if job.match == "email" else "email"
    if other in job.fields and _is_text(source, job.fields[other]):
        targets.append(Ident(job.fields[other]))
        values.append(Ident("r", other))
    for key, column in job.writeback.items():
        targets.append(Ident(column))
        values.append(Ident("r", _WRITEBACK_SOURCE[key]))
    row = row_exprs(job, profile)
    return render(
        "local_import",
        table=_table(source),
        targets=join(targets),
        values=join(values),
        key=row.key,
        vals=row.vals,
        opt_out=row.opt_out,
    ).sql


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
        async with conn.transaction():
            await conn.execute(QUERIES["writeback_hash_joins"])
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
