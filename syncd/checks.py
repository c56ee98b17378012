"""`syncd check`: every verification an operator wants before trusting a config — the API key,
Selzy (key accepted, lists and user fields exist), PostgreSQL (reachable, schema migrated, each
job's table and columns). It collects every problem instead of stopping at the first, and it
never writes anything anywhere.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from syncd.config import NO_API_KEY, SYSTEM_FIELDS, Config
from syncd.errors import ApiError, AuthError, ConfigError, DatabaseError, SchemaError
from syncd.logs import redact

CHECK_MAX_ATTEMPTS = 2  # a check reports an unreachable Selzy quickly instead of retrying at length


class CheckResult(NamedTuple):
    name: str  # what was checked, named like the config key when there is one
    ok: bool
    detail: str


class CheckReport(list[CheckResult]):
    """Every check in the order it ran; `problems` are the failed ones as printable lines."""

    def passed(self, name: str, detail: str) -> None:
        self.append(CheckResult(name, True, detail))

    def failed(self, name: str, detail: str) -> None:
        self.append(CheckResult(name, False, redact(detail)))

    @property
    def problems(self) -> list[str]:
        return [f"{r.name}: {r.detail}" for r in self if not r.ok]


async def run_checks(cfg: Config) -> CheckReport:
    report = CheckReport()
    where = str(cfg.path) if cfg.path else "configuration"
    report.passed("config", f"{where} is valid ({len(cfg.jobs)} job(s))")
    await _check_selzy(cfg, report)
    await _check_database(cfg, report)
    return report


async def _check_selzy(cfg: Config, report: CheckReport) -> None:
    if not cfg.selzy.api_key:
        report.failed("selzy", NO_API_KEY)
        return
    from syncd.api import SelzyClient

    selzy = dataclasses.replace(
        cfg.selzy, max_attempts=min(cfg.selzy.max_attempts, CHECK_MAX_ATTEMPTS)
    )
    try:
        async with SelzyClient(selzy) as client:
            lists = {item.id: item.title for item in await client.get_lists()}
            report.passed("selzy", f"{cfg.selzy.base_url} accepted the API key")
            fields = {item.name for item in await client.get_fields()}
    except AuthError as exc:
        report.failed("selzy", f"the API key was refused ({exc.code})")
        return
    except ApiError as exc:
        report.failed("selzy", f"cannot use {cfg.selzy.base_url}: {exc}")
        return
    for index, job in enumerate(cfg.jobs):
        if job.list_id in lists:
            report.passed(f"jobs[{index}].list_id", f"list {job.list_id} {lists[job.list_id]!r}")
        else:
            report.failed(f"jobs[{index}].list_id", f"Selzy has no list {job.list_id}")
        for name in job.fields:
            if name in SYSTEM_FIELDS:
                continue
            if name in fields:
                report.passed(f"jobs[{index}].fields.{name}", "user field exists in Selzy")
            else:
                report.failed(
                    f"jobs[{index}].fields.{name}",
                    f"Selzy has no user field {name!r}: create it there or remove the mapping",
                )


async def _check_database(cfg: Config, report: CheckReport) -> None:
    from syncd.db import connect, describe_source, ensure_schema

    try:
        conn = await connect(cfg.database)
    except DatabaseError as exc:
        report.failed("database", f"cannot connect: {exc}")
        return
    try:
        report.passed("database", "connected")
        try:
            await ensure_schema(conn)
            report.passed("database.schema", "syncd's schema is up to date")
        except SchemaError as exc:
            report.failed("database.schema", str(exc))
        for index, job in enumerate(cfg.jobs):
            try:
                await describe_source(conn, job)
                report.passed(f"jobs[{index}].table", f"{job.table}: table and columns present")
            except ConfigError as exc:
                for problem in exc.problems:  # already "key path: message" from describe_source
                    name, sep, detail = problem.partition(": ")
                    report.failed(name if sep else f"jobs[{index}].table", detail or problem)
            except DatabaseError as exc:
                report.failed(f"jobs[{index}].table", str(exc))
    finally:
        await conn.close()
