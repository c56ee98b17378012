-- Queries of syncd.db.migrate: the migrations table and the lock that serialises `syncd migrate`.

-- name: bootstrap_schema
-- The schema and the migrations table, before any migration (also the top of sql/schema.sql).
-- Run under lock_migrations: concurrent CREATE SCHEMA IF NOT EXISTS can otherwise collide.
CREATE SCHEMA IF NOT EXISTS syncd;
CREATE TABLE IF NOT EXISTS syncd.migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: lock_migrations
-- Wait for, then hold until the end of the transaction, the lock of `syncd migrate`.
-- $1 bigint: the lock key (syncd.db.migrate.MIGRATION_LOCK_KEY).
SELECT pg_advisory_xact_lock($1::bigint);

-- name: migrations_installed
-- Whether the migrations table exists at all.
SELECT to_regclass('syncd.migrations') IS NOT NULL;

-- name: applied_migrations
-- Versions already applied, in order.
SELECT version FROM syncd.migrations ORDER BY version;

-- name: record_migration
-- $1 integer: version (the NNNN of the file); $2 text: name (the verb_object of the file).
INSERT INTO syncd.migrations (version, name) VALUES ($1, $2);
