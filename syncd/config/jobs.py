"""The [[jobs]] tables -> JobConfig: which Selzy fields may be mapped onto which local columns,
identifier limits, schedules and the per-job knobs. Reads values only; never the database.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, cast

from syncd.config.model import (
    MIN_OPT_OUT_LATENCY,
    SYSTEM_FIELDS,
    WRITEBACK_KEYS,
    JobConfig,
    MatchKey,
)
from syncd.config.schedule import parse_schedule
from syncd.config.table import REQUIRED, Table, field_defaults

# System names importContacts gives a meaning to; mapping a local column onto them would let local
# data change status, membership, tags or delete contacts. (selzy-api.md §3.3, §4.1)
RESERVED_FIELDS = frozenset(
    {
        "id",
        "delete",
        "tags",
        "double_optin",
        "overwrite_lists",
        "overwrite_tags",
        "platform",
        "lang",
        *(
            f"{channel}_{suffix}"
            for channel in ("email", "phone")
            for suffix in (
                "status",
                "availability",
                "list_ids",
                "subscribe_times",
                "unsubscribed_list_ids",
                "excluded_list_ids",
                "add_time",
                "request_ip",
                "confirm_time",
                "confirm_ip",
                "last_delivered_at",
                "last_read_at",
                "last_clicked_at",
            )
        ),
    }
)
_USER_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_JOB_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently truncated


def read_jobs(root: Table) -> tuple[JobConfig, ...]:
    if not root.data.get("jobs", []):
        root.reject("jobs", "at least one [[jobs]] table is required")
        return ()
    raw = root._get(
        "jobs",
        "an array of tables ([[jobs]])",
        lambda v: isinstance(v, list) and all(isinstance(j, dict) for j in v),
        [],
    )
    jobs = []
    names: set[str] = set()
    for index, data in enumerate(raw):
        t = Table(root.problems, data, f"jobs[{index}]")
        job = _read_job(t)
        t.finish()
        name = data.get("name")
        if isinstance(name, str) and name in names:
            t.add("name", f"duplicate job name {name!r}")
        names.add(name if isinstance(name, str) else "")
        if job is not None:
            jobs.append(job)
    return tuple(jobs)


def _identifier_problem(name: str, what: str) -> str:
    if not name:
        return f"{what} is empty"
    if "\x00" in name:
        return f"{what} contains a NUL character"
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        return f"{what} is longer than {_MAX_IDENTIFIER_BYTES} bytes"
    return ""


def _table_problem(name: str) -> str:
    parts = name.split(".")
    if len(parts) > 2:
        return f'expected "table" or "schema.table", got {name!r}'
    for part, what in zip(
        parts, ("the schema name", "the table name")[2 - len(parts) :], strict=True
    ):
        if problem := _identifier_problem(part, what):
            return problem
    return ""


def _read_job(t: Table) -> JobConfig | None:
    d = field_defaults(JobConfig)
    name = t.text("name", REQUIRED)
    if name is not None and not _JOB_NAME.fullmatch(name):
        t.add("name", f"expected letters, digits, '_', '.', '-', got {name!r}")
    list_id = t.integer("list_id", REQUIRED, low=1)
    table = t.text("table", REQUIRED)
    if table is not None and (problem := _table_problem(table)):
        t.add("table", problem)
    match = t.text("match", "email", choices=SYSTEM_FIELDS)
    schedule_text = t.text("schedule", "every 15m")
    schedule = None
    try:
        schedule = parse_schedule(schedule_text)
    except ValueError as exc:
        t.add("schedule", str(exc))
    opt_out = t.text("opt_out_column", None)
    if opt_out is not None and (problem := _identifier_problem(opt_out, "the column name")):
        t.add("opt_out_column", problem)
    fields_table = t.table("fields", required=True)
    fields = _read_fields(fields_table)
    if "fields" in t.data and match not in fields_table.data:
        t.add("fields", f"must map the match key {match!r} to a column")
    writeback = _read_writeback(t.table("writeback"), fields, opt_out)
    job: dict[str, Any] = {
        "remote_only": t.text(
            "remote_only", d["remote_only"], choices=("keep", "delete", "import")
        ),
        "delete_mode": t.text(
            "delete_mode", d["delete_mode"], choices=("delete", "exclude", "off")
        ),
        "max_deletes": t.integer("max_deletes", d["max_deletes"], low=0),
        "max_delete_fraction": t.number(
            "max_delete_fraction", d["max_delete_fraction"], low=0, high=1
        ),
        "batch_size": t.integer("batch_size", d["batch_size"], low=1, high=500),
        "max_in_flight": t.integer("max_in_flight", d["max_in_flight"], low=1, high=8),
        "quarantine_after": t.integer("quarantine_after", d["quarantine_after"], low=1),
        "run_timeout": t.number("run_timeout", d["run_timeout"], above=0),
        "run_at_start": t.boolean("run_at_start", d["run_at_start"]),
        "history_days": t.integer("history_days", d["history_days"], low=1),
        "plan_max_age": t.duration("plan_max_age", d["plan_max_age"]),
        "event_backlog_run": t.integer("event_backlog_run", d["event_backlog_run"], low=0),
        "opt_out_latency": _opt_out_latency(t),
    }
    if job["remote_only"] == "delete" and job["delete_mode"] == "off":
        t.add(
            "remote_only",
            '"delete" cannot be honoured with delete_mode = "off" (which removes nobody from '
            'the list); use remote_only = "keep" or another delete_mode',
        )
    if name is None or list_id is None or table is None or schedule is None:
        return None
    return JobConfig(
        name=name,
        list_id=list_id,
        table=table,
        match=cast(MatchKey, match),
        schedule=schedule,
        fields=fields,
        writeback=writeback,
        opt_out_column=opt_out,
        **job,
    )


def _opt_out_latency(t: Table) -> float | None:
    """`opt_out_latency`: a duration of at least MIN_OPT_OUT_LATENCY, only with an opt-out
    column (it pushes that column's opt-outs between runs); None when omitted or wrong."""
    latency: float | None = t.duration("opt_out_latency", None)
    if latency is None:
        return None
    if latency < MIN_OPT_OUT_LATENCY:
        t.add(
            "opt_out_latency",
            f"must be at least {MIN_OPT_OUT_LATENCY:g} second, got {latency:g}",
        )
        return None
    if "opt_out_column" not in t.data:
        t.add(
            "opt_out_latency",
            "needs opt_out_column: it pushes that column's opt-outs between runs",
        )
        return None
    return latency


def _read_fields(t: Table) -> dict[str, str]:
    fields: dict[str, str] = {}
    for selzy_name in t.data:
        column = t.text(selzy_name, None)
        if selzy_name in RESERVED_FIELDS:
            t.add(
                selzy_name, "is a Selzy system field that syncd manages itself; it cannot be mapped"
            )
        elif selzy_name not in SYSTEM_FIELDS and not _USER_FIELD.fullmatch(selzy_name):
            t.add(selzy_name, "a Selzy user field name is a letter then letters, digits or '_'")
        elif column is not None:
            if problem := _identifier_problem(column, "the column name"):
                t.add(selzy_name, problem)
            else:
                fields[selzy_name] = column
    return fields


def _read_writeback(t: Table, fields: Mapping[str, str], opt_out: str | None) -> dict[str, str]:
    writeback: dict[str, str] = {}
    taken = {column: f"fields.{name}" for name, column in fields.items()}
    if opt_out:
        taken[opt_out] = "opt_out_column"
    for key in t.data:
        column = t.text(key, None)
        if key not in WRITEBACK_KEYS:
            close = difflib.get_close_matches(key, WRITEBACK_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            t.add(key, f"unknown writeback key{hint}; expected one of {', '.join(WRITEBACK_KEYS)}")
        elif column is not None:
            if problem := _identifier_problem(column, "the column name"):
                t.add(key, problem)
            elif column in taken:
                t.add(key, f"column {column!r} is already used by {taken[column]}")
            else:
                taken[column] = f"writeback.{key}"
                writeback[key] = column
    return writeback
