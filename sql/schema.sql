-- syncd's schema as of the latest migration: what `syncd migrate` produces on an empty database.
-- Bootstrap (also run by the migrator before any migration):
CREATE SCHEMA IF NOT EXISTS syncd;
CREATE TABLE IF NOT EXISTS syncd.migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE syncd.jobs (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    list_id     bigint,          -- the job's list and match channel, as its last run knew them
    match       text,
    next_run_at  timestamptz,    -- when the job runs next, as the daemon scheduling it says
    scheduled_by text,           -- host:pid of that daemon
    scheduled_at timestamptz     -- when it last said so
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
    trigger           text NOT NULL DEFAULT 'cli',      -- cli | schedule | startup | events | plan | apply | opt_out
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
    error             text,
    plan_id           bigint,                           -- the plan a `plan`/`apply` run made/applied
    drift             integer NOT NULL DEFAULT 0        -- apply: contacts whose decision changed
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

-- The canonical key of a raw email / phone (the same rules as pg_temp.syncd_email_key and
-- syncd_phone_key of sql/queries/local.sql, which a test holds equal to syncd.reconcile.keys).
CREATE FUNCTION syncd.email_key(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(btrim(coalesce(raw, ''),
        E' \t\n\r\u000B\u000C\u0085\u00A0\u1680\u180E\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u200B\u200C\u200D\u2028\u2029\u202F\u205F\u2060\u3000\uFEFF')) $$;
CREATE FUNCTION syncd.phone_key(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif('+' || regexp_replace(coalesce(raw, ''), '[^0-9]', '', 'g'), '+'), '') $$;

-- The contact ledger (PRODUCT.md "What syncd keeps"): one row per (job, key).
CREATE TABLE syncd.contacts (
    job                          text NOT NULL,
    key                          text NOT NULL,   -- canonical key of the job's match channel
    -- the local side, as the last real run saw it
    local_fp                     bigint,          -- fingerprint of the mapped values and opt-out; NULL: not in the local table at the last run
    local_changed_at             timestamptz,     -- when local_fp last changed (NULL: absent)
    -- what syncd last pushed and Selzy accepted
    pushed_fp                    bigint,          -- NULL: nothing of syncd's is in Selzy
    pushed_action                text,
    pushed_at                    timestamptz,
    pushed_run                   bigint,
    -- a push in flight: written before the batch is sent, settled when its answer is recorded;
    -- left set by a crash, it means the contact *may* exist in Selzy with these values
    intent_action                text,
    intent_fp                    bigint,
    intent_run                   bigint,
    intent_at                    timestamptz,
    -- Selzy, as the last export showed it (both channels)
    remote_seen                  boolean NOT NULL DEFAULT false,  -- in the last export
    email                        text,
    email_status                 text,
    email_availability           text,
    email_list_ids               text,
    email_unsubscribed_list_ids  text,
    phone                        text,
    phone_status                 text,
    phone_list_ids               text,
    phone_unsubscribed_list_ids  text,
    list_status                  text NOT NULL DEFAULT 'absent'  -- this list, via the match channel
                                 CHECK (list_status IN ('subscribed', 'unsubscribed', 'absent')),
    remote_first_seen_at         timestamptz,
    remote_changed_at            timestamptz,
    remote_run                   bigint,
    -- consent: the first suppression seen on the match channel for this list; kept for good
    suppressed_reason            text,
    suppressed_at                timestamptz,
    -- rejections of syncd's values by Selzy, and quarantine
    rejections                   integer NOT NULL DEFAULT 0,  -- consecutive runs rejected
    rejected_fp                  bigint,
    rejected_run                 bigint,
    last_code                    text,
    last_message                 text,
    quarantined_at               timestamptz,
    decision                     text,            -- the reason code of the last real run's decision
    decided_run                  bigint,
    PRIMARY KEY (job, key)
) WITH (fillfactor = 85);  -- room for HOT updates (migration 0007)
-- The few rows a crash left in flight, found without scanning the ledger.
CREATE INDEX contacts_intent_idx ON syncd.contacts (job) WHERE intent_action IS NOT NULL;

-- Suppressions of 0001 were kept per (list, channel, key), not per job: they wait here until a
-- run of the job owning that list and channel takes them into its ledger (then they are gone).
CREATE TABLE syncd.suppressions_carried (
    list_id        bigint NOT NULL,
    channel        text NOT NULL,
    key            text NOT NULL,
    reason         text NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    PRIMARY KEY (list_id, channel, key)
);

-- The remote mirror (PRODUCT.md): each contact of the job's list as the last export showed it,
-- under the name and columns 0001 gave it.
CREATE VIEW syncd.remote_contacts AS
SELECT job, key, email, email_status, email_availability, email_list_ids,
       email_unsubscribed_list_ids, phone, phone_status, phone_list_ids,
       phone_unsubscribed_list_ids, list_status, remote_first_seen_at AS first_seen_at,
       remote_changed_at AS changed_at, remote_run AS run_id
FROM syncd.contacts
WHERE remote_seen;

-- The per-contact history: what `syncd explain` reads; append-only, pruned after history_days.
CREATE TABLE syncd.history (
    id          bigserial PRIMARY KEY,
    job         text NOT NULL,
    key         text NOT NULL,
    run_id      bigint,
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL CHECK (kind IN ('decision', 'push', 'selzy_change', 'writeback',
                                              'import', 'event')),
    action      text,           -- decision/push: the action (add, update, optout_status, ...)
    reason      text,           -- decision: decision.py's code `action:why`
    outcome     text,           -- push: accepted | rejected | in_flight | refused; import: ...
    batch       integer,        -- push: the run's batch number
    code        text,           -- Selzy's (or the local table's) code
    message     text,           -- Selzy's message, or what changed (never profile data)
    CHECK (kind <> 'decision' OR reason IS NOT NULL)
);
CREATE INDEX history_job_key_idx ON syncd.history (job, key);  -- deduplicated (migration 0007)
CREATE INDEX history_at_idx ON syncd.history (at);  -- pruning

-- Binding plans: `syncd plan` keeps every contact's action, `syncd apply` executes exactly that.
CREATE TABLE syncd.plans (
    id                 bigserial PRIMARY KEY,
    job                text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    run_id             bigint NOT NULL,   -- the dry run that made it
    config_hash        text NOT NULL,     -- of the job's configuration (syncd.reconcile.plans)
    allow_mass_delete  boolean NOT NULL DEFAULT false,  -- made with --allow-mass-delete
    blocked_reason     text,              -- what the guards said of it
    counts             jsonb NOT NULL DEFAULT '{}',  -- rows per action
    applied_run        bigint,            -- the run that applied it (once)
    applied_at         timestamptz
);
CREATE INDEX plans_job_idx ON syncd.plans (job, id DESC);

CREATE TABLE syncd.plan_rows (
    plan_id      bigint NOT NULL REFERENCES syncd.plans (id) ON DELETE CASCADE,
    seq          bigint NOT NULL,
    key          text NOT NULL,
    action       text NOT NULL,
    reason       text NOT NULL,
    vals         text[],
    fingerprint  bigint,
    PRIMARY KEY (plan_id, seq)
);
CREATE INDEX plan_rows_key_idx ON syncd.plan_rows (plan_id, key);

-- Selzy's event webhooks (migration 0005): each verified event as received, and the contacts
-- of each job with events not applied yet.
CREATE TABLE syncd.events (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    digest       bytea NOT NULL,    -- SHA-256 of the event (name, time, data): a replay is stored once
    event_name   text NOT NULL,     -- subscribe | unsubscribe
    event_time   timestamptz,       -- as Selzy sent it (read as UTC); NULL when unparsable
    email        text NOT NULL,     -- the address, as sent
    key          text NOT NULL,     -- syncd.email_key(email)
    list_ids     bigint[],          -- the lists the event names; NULL: it names none
    data         jsonb NOT NULL,    -- the event as received
    routed_at    timestamptz        -- when the worker queued it for the jobs it concerns
);
CREATE UNIQUE INDEX events_digest_idx ON syncd.events (digest);
CREATE INDEX events_pending_idx ON syncd.events (id) WHERE routed_at IS NULL;
CREATE INDEX events_received_idx ON syncd.events (received_at);  -- pruning

-- The contacts of each job with events not applied yet: one row per (job, key), however many
-- events came. `version` is new (from one sequence) with every later event, so an apply that
-- fetched the contact before a newer event arrived leaves the row for another look.
CREATE SEQUENCE syncd.event_queue_version_seq;
CREATE TABLE syncd.event_queue (
    job               text NOT NULL,
    key               text NOT NULL,
    email             text NOT NULL,         -- the address getContact is asked about
    version           bigint NOT NULL DEFAULT nextval('syncd.event_queue_version_seq'),
    events            integer NOT NULL DEFAULT 1,   -- events folded into the row
    last_event        text NOT NULL,         -- the newest event's name
    last_event_id     bigint NOT NULL,
    queued_at         timestamptz NOT NULL DEFAULT now(),
    last_received_at  timestamptz NOT NULL,  -- when the newest event arrived (a run started later covers it)
    PRIMARY KEY (job, key)
);


-- The contact digest. What a run needs to know of the contacts that needed nothing, so that
-- a run plans only the contacts whose local row, export row or ledger row changed since, instead
-- of joining the whole ledger with the whole export and the whole local table every time.
--
-- A digest row says: "at the end of a run that finished, this contact needed nothing (no action,
-- no writeback, no ledger change), and the plan would say so again as long as its local row
-- fingerprints to local_fp and its export row to remote_fp, under the same configuration and
-- the same code (syncd.job_digests.version)". It is derived data: deleting any of it, or all of
-- it, costs the next run time, never correctness (a contact without a digest row is planned).
--
-- So the digest's three tables are UNLOGGED: a run's writes to them cost no WAL (a 1% run
-- rewrites tens of thousands of their rows, often just after a checkpoint, when each page's first
-- change would be a full-page image), and what a crash of the server does to them — PostgreSQL
-- empties every unlogged table while it recovers, as does a promoted standby — leaves all three
-- empty together: no version, so the next run plans every contact and writes the digest anew.
CREATE UNLOGGED TABLE syncd.contact_digest (
    job         text NOT NULL,
    key         text NOT NULL,
    local_fp    bigint,            -- pg_temp.syncd_local_qfp of its local row; NULL: not in the local table
    remote_key  text,              -- its export row's match-channel value as exported; NULL: not exported
    remote_fp   bigint,            -- pg_temp.syncd_view_fp of that export row
    member      boolean NOT NULL,  -- a contact of the job's list (subscribed or unsubscribed)
    PRIMARY KEY (job, key)
);

-- The contacts whose ledger row was written since a run read this table: a run plans them
-- whatever their digest says. Every write of syncd.contacts lands here, whoever makes it (a run,
-- the event worker, the fast opt-out pass, an operator's SQL), by the statement triggers below;
-- a finished run removes the rows it read (by seq, one per writing statement: a row written
-- again meanwhile stays).
CREATE SEQUENCE syncd.contacts_touched_seq;
CREATE UNLOGGED TABLE syncd.contacts_touched (
    job  text NOT NULL,
    key  text NOT NULL,
    seq  bigint NOT NULL,
    PRIMARY KEY (job, key)
);

-- A run that writes the ledger itself first takes the job's digest over (syncd.job_digests.
-- version set NULL: no run trusts the digest until that run writes it anew) and marks its
-- session `syncd.digest_owner = on`; its own writes need no touched rows.
CREATE FUNCTION syncd.note_contacts_touched() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF current_setting('syncd.digest_owner', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO syncd.contacts_touched AS t (job, key, seq)
    SELECT c.job, c.key, (SELECT nextval('syncd.contacts_touched_seq'))
    FROM (SELECT DISTINCT job, key FROM changed) AS c
    ON CONFLICT (job, key) DO UPDATE SET seq = EXCLUDED.seq;
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_touched_insert AFTER INSERT ON syncd.contacts
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.note_contacts_touched();
CREATE TRIGGER contacts_touched_update AFTER UPDATE ON syncd.contacts
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.note_contacts_touched();
CREATE TRIGGER contacts_touched_delete AFTER DELETE ON syncd.contacts
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.note_contacts_touched();

-- Per job: the configuration, code and server its digest was written under (NULL: taken over by
-- a run that has not written it yet; no row: none), and how many of its digest rows are list
-- members (kept with the digest: a run narrowed to its candidates counts the list without
-- reading the digest). A run whose version differs plans every contact and writes it anew.
CREATE UNLOGGED TABLE syncd.job_digests (
    job      text PRIMARY KEY,
    version  text,
    members  bigint NOT NULL DEFAULT 0
);

-- members follows the digest rows, whoever writes them (a run, or an operator deleting some by
-- hand): statement triggers count the list members each statement adds or removes. Emptied by
-- TRUNCATE, the digest has no version left either.
CREATE FUNCTION syncd.count_digest_members() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM syncd.job_digests;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE syncd.job_digests AS j SET members = j.members - o.n
        FROM (SELECT job, count(*) AS n FROM old_rows WHERE member GROUP BY job) AS o
        WHERE j.job = o.job;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE syncd.job_digests AS j SET members = j.members + o.n
        FROM (SELECT job, count(*) AS n FROM new_rows WHERE member GROUP BY job) AS o
        WHERE j.job = o.job;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER contact_digest_insert AFTER INSERT ON syncd.contact_digest
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.count_digest_members();
CREATE TRIGGER contact_digest_update AFTER UPDATE ON syncd.contact_digest
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.count_digest_members();
CREATE TRIGGER contact_digest_delete AFTER DELETE ON syncd.contact_digest
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.count_digest_members();
CREATE TRIGGER contact_digest_truncate AFTER TRUNCATE ON syncd.contact_digest
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.count_digest_members();

INSERT INTO syncd.migrations (version, name)
VALUES (1, 'create_schema'), (2, 'create_contact_ledger'), (3, 'create_history'),
       (4, 'create_plans'), (5, 'create_events'), (6, 'create_contact_digest'),
       (7, 'tune_ledger_writes');
