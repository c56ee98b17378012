"""syncd's own schema: applying the forward-only migrations in sql/migrations and checking that
the database matches this code. It must not touch any table outside the `syncd` schema.

Each migration `NNNN_verb_object.sql` runs in its own transaction under a transaction-level
advisory lock, so two `syncd migrate` started at once both succeed and apply each file once.
sql/schema.sql is the result of applying all of them (a test compares the two catalogs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from syncd.config import DatabaseConfig
from syncd.db.pool import Connection, connect, translating
from syncd.db.sql import QUERIES, sql_dir
from syncd.errors import SchemaError

log = structlog.get_logger(__name__)

# pg_advisory_xact_lock key of `syncd migrate` (the bytes of "syncd-mg"); one bigint key, so it
# can never collide with the two-int4 job locks of syncd.db.runs.
MIGRATION_LOCK_KEY = int.from_bytes(b"syncd-mg", "big") & 0x7FFF_FFFF_FFFF_FFFF
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z][a-z0-9]*(?:_[a-z0-9]+)+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # verb_object, as recorded in syncd.migrations
    path: Path

    @property
    def label(self) -> str:
        return self.path.stem


def migrations_dir() -> Path:
    return sql_dir() / "migrations"


def available_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files in version order; a badly named file or a gap is a packaging bug."""
    directory = directory if directory is not None else migrations_dir()
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: migration files are named NNNN_verb_object.sql")
        found.append(Migration(int(match["version"]), match["name"], path))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise ValueError(f"{migration.path}: expected migration {expected:04d} here")
    return found


def latest_version() -> int:
    migrations = available_migrations()
    return migrations[-1].version if migrations else 0


async def _applied_versions(conn: Connection) -> set[int]:
    return {row["version"] for row in await conn.fetch(QUERIES["applied_migrations"])}


def _check_not_newer(applied: set[int], latest: int) -> None:
    newest = max(applied, default=0)
    if newest > latest:
        raise SchemaError(f"database schema version {newest} is newer than this syncd ({latest})")


async def apply_migrations(conn: Connection) -> list[str]:
    """Apply the pending migrations on `conn`; return their labels (`0001_create_schema`, ...)."""
    migrations = available_migrations()
    applied_now: list[str] = []
    with translating(conn=conn):
        async with conn.transaction():
            await conn.execute(QUERIES["lock_migrations"], MIGRATION_LOCK_KEY)
            await conn.execute(QUERIES["bootstrap_schema"])
            _check_not_newer(await _applied_versions(conn), len(migrations))
        for migration in migrations:
            async with conn.transaction():
                await conn.execute(QUERIES["lock_migrations"], MIGRATION_LOCK_KEY)
                # Read again under the lock: another `syncd migrate` may have applied it meanwhile.
                if migration.version in await _applied_versions(conn):
                    continue
                await conn.execute(migration.path.read_text(encoding="utf-8"))
                await conn.execute(QUERIES["record_migration"], migration.version, migration.name)
            log.info("migration_applied", migration=migration.label)
            applied_now.append(migration.label)
    return applied_now


async def migrate(cfg: DatabaseConfig) -> list[str]:
    """Create or upgrade syncd's schema in the configured database; idempotent, concurrency-safe."""
    conn = await connect(cfg)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def ensure_schema(conn: Connection) -> None:
    """Raise SchemaError unless the database holds exactly the schema this syncd expects."""
    latest = latest_version()
    with translating(conn=conn):
        installed = await conn.fetchval(QUERIES["migrations_installed"])
        applied = await _applied_versions(conn) if installed else set()
    if not applied:
        raise SchemaError("syncd's schema is not installed: run `syncd migrate`")
    _check_not_newer(applied, latest)
    current = max(applied)
    if current < latest:
        raise SchemaError(
            f"syncd's schema is at version {current}, this syncd needs {latest}: "
            "run `syncd migrate`"
        )
