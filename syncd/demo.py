"""`syncd demo`: the quick start. Builds a demo database in the local PostgreSQL, starts the sandbox
in-process, seeds both sides, runs the real reconciliation a few times and narrates what happened.

It uses the same code paths as `syncd sync` (migrate, run_job, the HTTP client against the sandbox);
only the configuration is built here instead of read from a file. It never touches a real Selzy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp  # the demo plays the subscriber through the sandbox's admin API
from aiohttp import web

from syncd.api import SelzyClient
from syncd.config import Config, DatabaseConfig, JobConfig, Schedule, Secret, SelzyConfig
from syncd.db import (
    COUNT_COLUMNS,
    connect,
    create_pool,
    format_runs_table,
    migrate,
    recent_runs,
)
from syncd.db.templates import Ident, render
from syncd.reconcile import RunOutcome, RunServices, run_job
from syncd.sandbox import SandboxOptions, build_app

DEMO_DB = "syncd_demo"
DEMO_KEY = "demo-key"

LOCAL_ROWS = [
    ("ann@example.com", "Ann"),
    ("bob@example.com", "Bob"),
    ("carol@example.com", "Carol"),
    ("dave@example.com", "Dave"),
    ("erin@example.com", "Erin"),
    ("frank@example.com", "Frank"),
    ("  Grace@Example.com ", "Grace"),  # normalised to grace@example.com
    ("grace@example.com", "Grace H."),  # ... so this one is a duplicate
    ("info@example.com", "Info desk"),  # a role address: Selzy refuses it
    ("not-an-email", "Nobody"),  # no usable key: syncd refuses it
]


def _admin_dsn() -> str:
    return os.environ.get("SYNCD_DEMO_ADMIN_DSN", "postgresql://127.0.0.1:5432/postgres")


def _demo_dsn(admin_dsn: str) -> str:
    base, _, _ = admin_dsn.rpartition("/")
    return f"{base}/{DEMO_DB}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Admin:
    """The sandbox's admin API, used to play the subscriber who unsubscribes."""

    root: str
    session: aiohttp.ClientSession

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        async with self.session.post(f"{self.root}/_sandbox/{path}", json=body) as resp:
            resp.raise_for_status()
            return await resp.json()


def say(text: str = "") -> None:
    print(text, flush=True)


def show(outcome: RunOutcome) -> None:
    counts = ", ".join(
        f"{name}={outcome.counts.get(name, 0)}" for name in COUNT_COLUMNS if name != "imported"
    )
    say(f"  run {outcome.run_id}: {outcome.status} in {outcome.duration_s:.1f}s")
    say(f"  {counts}")
    if outcome.error:
        say(f"  error: {outcome.error}")


async def _prepare_database(admin_dsn: str) -> DatabaseConfig:
    admin = await connect(DatabaseConfig(dsn=Secret(admin_dsn)))
    try:
        await admin.execute(render("demo_drop_database", database=Ident(DEMO_DB)).sql)
        await admin.execute(render("demo_create_database", database=Ident(DEMO_DB)).sql)
    finally:
        await admin.close()
    db = DatabaseConfig(dsn=Secret(_demo_dsn(admin_dsn)))
    await migrate(db)
    conn = await connect(db)
    try:
        await conn.execute(
            """
            CREATE TABLE public.contacts (
                id serial PRIMARY KEY,
                email text,
                first_name text,
                opted_out boolean NOT NULL DEFAULT false,
                selzy_email_status text,
                selzy_list_status text
            )"""
        )
        await conn.executemany(
            "INSERT INTO public.contacts (email, first_name) VALUES ($1, $2)", LOCAL_ROWS
        )
    finally:
        await conn.close()
    return db


async def _local_sql(db: DatabaseConfig, *statements: str) -> None:
    conn = await connect(db)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _show_local(db: DatabaseConfig) -> None:
    conn = await connect(db)
    try:
        rows = await conn.fetch(
            "SELECT email, first_name, opted_out, selzy_email_status, selzy_list_status"
            " FROM public.contacts ORDER BY id"
        )
    finally:
        await conn.close()
    say("  public.contacts: email, name, opted_out, selzy_email_status, selzy_list_status")
    for row in rows:
        say(f"    {row[0]!s:24} {row[1]!s:10} {row[2]!s:6} {row[3]!s:13} {row[4]}")


async def _run_demo(admin_dsn: str) -> int:
    # The in-process sandbox's access log would drown the narration.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    say("syncd demo: a local PostgreSQL table <-> a Selzy list (the built-in sandbox)")
    say()
    db = await _prepare_database(admin_dsn)
    say(f"1. created database {DEMO_DB}: syncd's schema and {len(LOCAL_ROWS)} local contacts")

    port = _free_port()
    options = SandboxOptions(host="127.0.0.1", port=port, api_keys=(DEMO_KEY,), export_delay=0.3)
    runner = web.AppRunner(build_app(options))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    root = f"http://127.0.0.1:{port}"
    selzy = SelzyConfig(
        base_url=f"{root}/en/api",
        api_key=Secret(DEMO_KEY),
        poll_interval=0.2,
        poll_interval_max=1.0,
    )
    say(f"2. started the Selzy sandbox at {root}/en/api")

    try:
        async with SelzyClient(selzy) as client, aiohttp.ClientSession() as http:
            admin = _Admin(root, http)
            list_id = await client.create_list("Demo newsletter")
            await client.create_field("Name", "string")
            await admin.post(
                "contacts",
                {
                    "contacts": [
                        {
                            "email": "walkin@example.com",
                            "email_status": "active",
                            "email_list_ids": [list_id],
                        }
                    ]
                },
            )
            say(f"3. created list {list_id} and field Name; one person signed up in Selzy")
            job = JobConfig(
                name="demo",
                list_id=list_id,
                table="public.contacts",
                match="email",
                schedule=Schedule(text="every 15m", interval_seconds=900),
                fields={"email": "email", "Name": "first_name"},
                writeback={
                    "email_status": "selzy_email_status",
                    "list_status": "selzy_list_status",
                },
                opt_out_column="opted_out",
                max_delete_fraction=0.5,  # a demo list is tiny: 1 delete of 8 is 12%
            )
            config = Config(selzy=selzy, database=db, jobs=(job,))
            pool = await create_pool(db)
            try:
                services = RunServices(config=config, pool=pool, client=client)

                say()
                say("4. first sync: local contacts are added, the sign-up is kept")
                show(await run_job(services, job))

                await _local_sql(
                    db,
                    "UPDATE public.contacts SET first_name = 'Robert' WHERE id = 2",
                    "DELETE FROM public.contacts WHERE email = 'carol@example.com'",
                    "UPDATE public.contacts SET opted_out = true WHERE email = 'dave@example.com'",
                )
                await admin.post(
                    "contacts",
                    {
                        "contacts": [
                            {"email": "erin@example.com", "email_unsubscribed_list_ids": [list_id]}
                        ]
                    },
                )
                say()
                say("5. changes: Bob renamed, Carol deleted, Dave opted out locally;")
                say("   Erin clicked 'unsubscribe' in a Selzy email")
                say("   second sync: an update, a delete, an opt-out, Erin's status written back")
                show(await run_job(services, job))

                say()
                say("6. third sync, nothing changed: only info@ is retried (quarantined after 3)")
                say("   and Dave's opt-out, now in Selzy, is written back too")
                show(await run_job(services, job))
                await _show_local(db)

                conn = await connect(db)
                try:
                    runs = await recent_runs(conn, job=None, limit=10)
                finally:
                    await conn.close()
                say()
                say("7. the run log (`syncd runs`):")
                say(format_runs_table(runs))
            finally:
                await pool.close()
    finally:
        await runner.cleanup()

    say()
    say(f"The demo database {DEMO_DB} is left in place: look at syncd.runs, syncd.row_outcomes,")
    say("syncd.remote_contacts and public.contacts with psql. Next: README.md.")
    return 0


def main() -> int:
    """Entry point of `syncd demo` (cli.py configures logging first)."""
    try:
        return asyncio.run(_run_demo(_admin_dsn()))
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        return 1
