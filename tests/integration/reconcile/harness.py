"""A job, a user table and the sandbox wired together for reconciliation tests.

`Harness.run()` calls run_job in-process (integration tests); the e2e tests drive the CLI with
the same table and config (`write_config`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from syncd.api import SelzyClient
from syncd.config import Config, DatabaseConfig, JobConfig, Schedule, SelzyConfig
from syncd.db import Connection, Pool, create_pool
from syncd.reconcile import RunOutcome, RunServices, run_job
from tests.fixtures.sandbox import SandboxHandle

TABLE_DDL = """
CREATE TABLE public.contacts (
    id                  serial PRIMARY KEY,
    email               text,
    phone               text,
    first_name          text,
    city                text,
    opted_out           boolean NOT NULL DEFAULT false,
    selzy_email_status  text,
    selzy_list_status   text
)
"""


def make_job(list_id: int, **overrides: Any) -> JobConfig:
    values: dict[str, Any] = {
        "name": "newsletter",
        "list_id": list_id,
        "table": "public.contacts",
        "match": "email",
        "schedule": Schedule(text="every 15m", interval_seconds=900),
        "fields": {"email": "email", "Name": "first_name", "City": "city"},
        "writeback": {"email_status": "selzy_email_status", "list_status": "selzy_list_status"},
        "opt_out_column": "opted_out",
        "max_deletes": 1000,
        "max_delete_fraction": 1.0,
        "batch_size": 500,
    }
    values.update(overrides)
    return JobConfig(**values)


@dataclasses.dataclass
class Harness:
    db: Connection
    db_config: DatabaseConfig
    sandbox: SandboxHandle
    pool: Pool
    client: SelzyClient
    list_id: int
    job: JobConfig
    selzy: SelzyConfig | None = None  # overrides the sandbox's config

    def config(self, job: JobConfig | None = None) -> Config:
        return Config(
            selzy=self.selzy or self.sandbox.config,
            database=self.db_config,
            jobs=(job or self.job,),
        )

    async def run(
        self,
        *,
        dry_run: bool = False,
        allow_mass_delete: bool = False,
        stop: asyncio.Event | None = None,
        **job_overrides: Any,
    ) -> RunOutcome:
        job = dataclasses.replace(self.job, **job_overrides) if job_overrides else self.job
        services = RunServices(config=self.config(job), pool=self.pool, client=self.client)
        return await run_job(
            services, job, dry_run=dry_run, allow_mass_delete=allow_mass_delete, stop=stop
        )

    async def insert(self, *rows: Mapping[str, Any]) -> None:
        for row in rows:
            columns = ", ".join(row)
            params = ", ".join(f"${i}" for i in range(1, len(row) + 1))
            await self.db.execute(
                f"INSERT INTO public.contacts ({columns}) VALUES ({params})", *row.values()
            )

    async def local(self) -> dict[str, dict[str, Any]]:
        rows = await self.db.fetch("SELECT * FROM public.contacts ORDER BY id")
        return {r["email"]: dict(r) for r in rows}

    async def members(self) -> dict[str, dict[str, Any]]:
        """Sandbox contacts whose email is in the job's list (subscribed or unsubscribed)."""
        found = await self.sandbox.contacts(list_id=self.list_id)
        return {c["email"]: c for c in found}

    async def remote(self, email: str) -> dict[str, Any] | None:
        return await self.sandbox.contact(email)

    async def import_calls(self) -> list[dict[str, Any]]:
        return await self.sandbox.calls("importContacts")

    async def pushed(self) -> dict[str, dict[str, Any]]:
        """The ledger rows of contacts syncd pushed or tried to (what syncd.pushed held before
        the ledger), with the old column names."""
        rows = await self.db.fetch(
            "SELECT *, pushed_fp AS fingerprint, rejected_fp AS rejected_fingerprint"
            " FROM syncd.contacts WHERE job = $1"
            " AND (pushed_fp IS NOT NULL OR rejections > 0)",
            self.job.name,
        )
        return {r["key"]: dict(r) for r in rows}

    async def in_flight(self) -> dict[str, str]:
        """key -> action of the ledger rows whose push was never answered (maybe applied)."""
        rows = await self.db.fetch(
            "SELECT key, intent_action FROM syncd.contacts"
            " WHERE job = $1 AND intent_action IS NOT NULL",
            self.job.name,
        )
        return {r["key"]: r["intent_action"] for r in rows}

    async def run_row(self, run_id: int | None) -> dict[str, Any]:
        row = await self.db.fetchrow("SELECT * FROM syncd.runs WHERE id = $1", run_id)
        assert row is not None
        return dict(row)

    async def outcomes(self, run_id: int | None) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT * FROM syncd.row_outcomes WHERE run_id = $1 ORDER BY key, outcome", run_id
        )
        return [dict(r) for r in rows]

    def write_config(self, path: Path, job: JobConfig | None = None) -> Path:
        """A TOML config for the CLI describing this harness (API key via $SELZY_API_KEY)."""
        job = job or self.job
        assert self.db_config.dsn is not None
        lines = [
            "[selzy]",
            f'base_url = "{self.sandbox.base_url}"',
            "timeout = 5",
            "poll_interval = 0.02",
            "poll_interval_max = 0.2",
            "export_deadline = 30",
            "max_attempts = 3",
            "",
            "[database]",
            f'dsn = "{self.db_config.dsn.reveal()}"',
            "",
            "[[jobs]]",
            f'name = "{job.name}"',
            f"list_id = {job.list_id}",
            f'table = "{job.table}"',
            f'match = "{job.match}"',
            f'schedule = "{job.schedule.text}"',
            f'remote_only = "{job.remote_only}"',
            f'delete_mode = "{job.delete_mode}"',
            f"max_deletes = {job.max_deletes}",
            f"max_delete_fraction = {job.max_delete_fraction}",
            f"batch_size = {job.batch_size}",
            f"max_in_flight = {job.max_in_flight}",
            f"quarantine_after = {job.quarantine_after}",
        ]
        if job.opt_out_column:
            lines.append(f'opt_out_column = "{job.opt_out_column}"')
        lines += ["", "[jobs.fields]"]
        lines += [f'{name} = "{column}"' for name, column in job.fields.items()]
        if job.writeback:
            lines += ["", "[jobs.writeback]"]
            lines += [f'{key} = "{column}"' for key, column in job.writeback.items()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


@pytest.fixture(name="harness")
async def harness_fixture(
    db: Connection, db_config: DatabaseConfig, sandbox: SandboxHandle
) -> AsyncIterator[Harness]:
    list_id = await sandbox.create_list("Newsletter")
    await sandbox.create_field("Name")
    await sandbox.create_field("City")
    await db.execute(TABLE_DDL)
    pool = await create_pool(db_config)
    client = SelzyClient(sandbox.config)
    try:
        yield Harness(
            db=db,
            db_config=db_config,
            sandbox=sandbox,
            pool=pool,
            client=client,
            list_id=list_id,
            job=make_job(list_id),
        )
    finally:
        await client.aclose()
        await pool.close()
