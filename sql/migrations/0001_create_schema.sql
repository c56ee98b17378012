-- 0001: syncd's own objects. Forward-only; sql/schema.sql must stay equal to applying every
-- migration in order (tests/integration/db/test_migrations.py compares the catalogs).

-- One row per configured job ever run; `id` is the advisory-lock key of the job.
CREATE TABLE syncd.jobs (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per reconciliation run (PRODUCT.md "What syncd keeps").
CREATE TABLE syncd.runs (
    id                bigserial PRIMARY KEY,
    job               text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    heartbeat_at      timestamptz NOT NULL DEFAULT now(),
    status            text NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'succeeded', 'failed', 'blocked', 'interrupted')),
    dry_run           boolean NOT NULL DEFAULT false,
    allow_mass_delete boolean NOT NULL DEFAULT false,
    trigger           text NOT NULL DEFAULT 'cli',      -- cli | schedule | startup
    host              text,
    pid               integer,
    local_count       integer,                          -- rows in the local source
    remote_count      integer,                          -- contacts of the list in the export
    added             integer NOT NULL DEFAULT 0,
    updated           integer NOT NULL DEFAULT 0,
    deleted           integer NOT NULL DEFAULT 0,       -- importContacts delete=1
    excluded          integer NOT NULL DEFAULT 0,       -- removed from the list only
    opted_out         integer NOT NULL DEFAULT 0,       -- made unmailable from the opt-out column
    imported          integer NOT NULL DEFAULT 0,       -- remote-only contacts inserted locally
    rejected          integer NOT NULL DEFAULT 0,       -- refused by Selzy or by syncd's validation
    quarantined       integer NOT NULL DEFAULT 0,       -- skipped after N consecutive rejections
    duplicates        integer NOT NULL DEFAULT 0,       -- local rows shadowed by another with the same key
    remote_only       integer NOT NULL DEFAULT 0,       -- in the list, never pushed, absent locally
    suppressed        integer NOT NULL DEFAULT 0,       -- adds withheld by the consent rules
    status_changes    integer NOT NULL DEFAULT 0,       -- Selzy-side status changes since the last export
    written_back      integer NOT NULL DEFAULT 0,       -- local rows whose writeback columns changed
    api_calls         integer NOT NULL DEFAULT 0,
    planned           jsonb NOT NULL DEFAULT '{}',      -- the plan's counts per action
    timings           jsonb NOT NULL DEFAULT '{}',      -- seconds per phase
    blocked_reason    text,
    error             text
);
CREATE INDEX runs_job_id_idx ON syncd.runs (job, id DESC);
CREATE INDEX runs_running_idx ON syncd.runs (job) WHERE status = 'running';

-- Per-row outcome of every rejected, quarantined, duplicate or invalid contact of a run.
CREATE TABLE syncd.row_outcomes (
    id          bigserial PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES syncd.runs (id) ON DELETE CASCADE,
    job         text NOT NULL,
    key         text NOT NULL,          -- normalised key, or the raw value when it is unusable
    action      text NOT NULL,          -- add | update | optout_status | optout_list | delete | exclude | none
    outcome     text NOT NULL           -- rejected | quarantined | duplicate | invalid_key
                CHECK (outcome IN ('rejected', 'quarantined', 'duplicate', 'invalid_key')),
    code        text,                   -- Selzy's code, or syncd's own (invalid_email, ...)
    message     text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX row_outcomes_run_idx ON syncd.row_outcomes (run_id);
CREATE INDEX row_outcomes_job_key_idx ON syncd.row_outcomes (job, key);
CREATE INDEX row_outcomes_created_idx ON syncd.row_outcomes (created_at);  -- pruning

-- The remote mirror: each contact of the job's list as the last export showed it.
CREATE TABLE syncd.remote_contacts (
    job                          text NOT NULL,
    key                          text NOT NULL,   -- normalised match key
    email                        text,
    email_status                 text,
    email_availability           text,
    email_list_ids               text,
    email_unsubscribed_list_ids  text,
    phone                        text,
    phone_status                 text,
    phone_list_ids               text,
    phone_unsubscribed_list_ids  text,
    list_status                  text NOT NULL    -- via the match channel: subscribed | unsubscribed | absent
                                 CHECK (list_status IN ('subscribed', 'unsubscribed', 'absent')),
    first_seen_at                timestamptz NOT NULL DEFAULT now(),
    changed_at                   timestamptz NOT NULL DEFAULT now(),
    run_id                       bigint,
    PRIMARY KEY (job, key)
);

-- What syncd last pushed per contact, and its rejection history.
CREATE TABLE syncd.pushed (
    job                   text NOT NULL,
    key                   text NOT NULL,
    fingerprint           bigint,          -- 64-bit hash of the values Selzy last accepted; NULL = never accepted
    pushed_at             timestamptz,
    run_id                bigint,
    rejections            integer NOT NULL DEFAULT 0,   -- consecutive runs in which it was rejected
    rejected_fingerprint  bigint,          -- the values that were rejected
    last_code             text,
    last_message          text,
    quarantined_at        timestamptz,     -- set when rejections reached quarantine_after
    PRIMARY KEY (job, key)
);

-- Every address ever seen unsubscribed or blocked in a list: never re-added to that list.
CREATE TABLE syncd.suppressions (
    list_id        bigint NOT NULL,
    channel        text NOT NULL CHECK (channel IN ('email', 'phone')),
    key            text NOT NULL,
    reason         text NOT NULL,          -- e.g. email_status=unsubscribed, list_status=unsubscribed
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    run_id         bigint,
    PRIMARY KEY (list_id, channel, key)
);
