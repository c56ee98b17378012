"""The user's table as syncd sees it: identifier quoting (the ONE audited quoter of config
identifiers) and the check that the configured table, columns and types are usable.

It must not read or write the user's rows, and it never puts a configured name into SQL except
through quote_ident: tables are resolved with to_regclass() on the quoted name and columns are
compared with the catalog in Python, so a hostile name is at worst "not found".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import asyncpg

from syncd.config import JobConfig
from syncd.db.pool import Connection, translating
from syncd.db.sql import QUERIES
from syncd.errors import ConfigError

MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer names
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "citext"})
_TABLE_KINDS = frozenset({"r", "p"})  # ordinary and partitioned tables
_VIEW_KINDS = frozenset(
    {"v", "m", "f"}
)  # views, materialized views, foreign tables: read-only here


def quote_ident(name: str) -> str:
    """`name` as a PostgreSQL quoted identifier: every `"` doubled, the whole wrapped in `"`.

    ValueError for an empty name, a NUL character, or more than 63 bytes (which PostgreSQL would
    truncate, silently naming a different column).
    """
    if not name:
        raise ValueError("an identifier cannot be empty")
    if "\x00" in name:
        raise ValueError("an identifier cannot contain a NUL character")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"identifier {name[:20]!r}... is longer than {MAX_IDENTIFIER_BYTES} bytes")
    return '"' + name.replace('"', '""') + '"'


def split_table(name: str) -> tuple[str | None, str]:
    """`schema.table` -> (schema, table); `table` -> (None, table); more dots: ValueError."""
    parts = name.split(".")
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f"table {name!r} must be `table` or `schema.table` (at most one dot)")


def quote_table(name: str) -> str:
    """`schema.table` -> `"schema"."table"`, `table` -> `"table"` (each part via quote_ident)."""
    schema, table = split_table(name)
    return quote_ident(table) if schema is None else f"{quote_ident(schema)}.{quote_ident(table)}"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # as format_type() prints it: "character varying(200)", "boolean", ...
    base_type: str  # pg_type.typname of the type, or of a domain's base type
    not_null: bool
    has_default: bool  # a default, identity or generated value: an INSERT may omit it
    can_select: bool
    can_update: bool
    can_insert: bool


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """The resolved local source of a job."""

    kind: Literal["table", "view"]
    schema: str
    name: str
    columns: dict[str, str]  # column name -> type, in table order
    writable: bool  # may UPDATE the writeback columns (without writeback: the whole relation)
    insertable: bool = False  # a table this role may INSERT into (remote_only = "import")

    @property
    def qualified(self) -> str:
        """The quoted, schema-qualified name to put in SQL."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


class _Problems:
    def __init__(self, job: JobConfig) -> None:
        self.prefix = f"jobs[{job.name}]"
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{self.prefix}.{key}: {message}")


def _check_columns(
    job: JobConfig, display: str, columns: dict[str, Column], problems: _Problems
) -> None:
    for selzy_name, column in job.fields.items():
        found = columns.get(column)
        if found is None:
            problems.add(f"fields.{selzy_name}", f'column "{column}" does not exist in {display}')
        elif not found.can_select:
            problems.add(f"fields.{selzy_name}", f'no SELECT privilege on column "{column}"')
    if job.opt_out_column is not None:
        found = columns.get(job.opt_out_column)
        if found is None:
            problems.add(
                "opt_out_column", f'column "{job.opt_out_column}" does not exist in {display}'
            )
        elif found.base_type != "bool":
            problems.add(
                "opt_out_column", f'column "{found.name}" must be boolean, it is {found.type}'
            )
        elif not found.can_select:
            problems.add("opt_out_column", f'no SELECT privilege on column "{found.name}"')


def _check_writeback(
    job: JobConfig,
    display: str,
    kind: str,
    updatable: bool,
    columns: dict[str, Column],
    problems: _Problems,
) -> None:
    if job.writeback and not updatable:
        problems.add("writeback", f"{display} is a {kind} that cannot be updated; use a table")
    for key, column in job.writeback.items():
        found = columns.get(column)
        if found is None:
            problems.add(f"writeback.{key}", f'column "{column}" does not exist in {display}')
        elif found.base_type not in TEXT_TYPES:
            problems.add(
                f"writeback.{key}",
                f'column "{column}" must be text, varchar, char or citext, it is {found.type}',
            )
        elif updatable and not found.can_update:
            problems.add(f"writeback.{key}", f'no UPDATE privilege on column "{column}"')


def _check_import(
    job: JobConfig,
    display: str,
    is_table: bool,
    can_insert: bool,
    columns: dict[str, Column],
    problems: _Problems,
) -> None:
    if not is_table:
        problems.add("remote_only", f'"import" needs a table, {display} is a view')
        return
    if not can_insert:
        problems.add("remote_only", f'"import" needs the INSERT privilege on {display}')
    filled = set(job.fields.values()) | set(job.writeback.values())
    for column in columns.values():
        if column.not_null and not column.has_default and column.name not in filled:
            problems.add(
                "remote_only",
                f'"import" cannot fill column "{column.name}" of {display}: '
                "it is NOT NULL without a default and not a mapped field",
            )


async def describe_source(conn: Connection, job: JobConfig) -> SourceInfo:
    """Resolve and check the job's table: ConfigError listing every problem found at once."""
    problems = _Problems(job)
    try:
        quoted = quote_table(job.table)
    except ValueError as exc:
        raise ConfigError([f"{problems.prefix}.table: {exc}"]) from None
    with translating(conn=conn):
        try:
            relation = await conn.fetchrow(QUERIES["describe_relation"], quoted)
        except asyncpg.InsufficientPrivilegeError as exc:  # no USAGE on the table's schema
            raise ConfigError([f"{problems.prefix}.table: {exc.args[0]}"]) from None
        rows = await conn.fetch(QUERIES["describe_columns"], relation["oid"]) if relation else []
    if relation is None:
        raise ConfigError([f'{problems.prefix}.table: relation "{job.table}" does not exist'])
    display = f"{relation['schema']}.{relation['name']}"
    relkind = relation["relkind"]
    if relkind not in _TABLE_KINDS | _VIEW_KINDS:
        raise ConfigError([f"{problems.prefix}.table: {display} is not a table or a view"])
    is_table = relkind in _TABLE_KINDS
    kind: Literal["table", "view"] = "table" if is_table else "view"
    updatable = is_table or relation["updatable"]  # privileges are checked per column
    columns = {
        row["name"]: Column(
            name=row["name"],
            type=row["type"],
            base_type=row["base_type"],
            not_null=row["not_null"],
            has_default=row["has_default"],
            can_select=row["can_select"],
            can_update=row["can_update"],
            can_insert=row["can_insert"],
        )
        for row in rows
    }
    _check_columns(job, display, columns, problems)
    _check_writeback(job, display, kind, updatable, columns, problems)
    if job.remote_only == "import":
        _check_import(job, display, is_table, relation["can_insert"], columns, problems)
    if problems.items:
        raise ConfigError(problems.items)
    if job.writeback:
        writable = updatable and all(columns[c].can_update for c in job.writeback.values())
    else:
        writable = updatable and relation["can_update"]
    return SourceInfo(
        kind=kind,
        schema=relation["schema"],
        name=relation["name"],
        columns={name: column.type for name, column in columns.items()},
        writable=writable,
        insertable=is_table and relation["can_insert"],
    )


async def verify_sources(conn: Connection, jobs: Iterable[JobConfig]) -> None:
    """Every job's table and columns, before anything runs: one ConfigError listing every
    problem of every job (not only the first job's)."""
    problems: list[str] = []
    for job in jobs:
        try:
            await describe_source(conn, job)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
