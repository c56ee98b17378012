-- 0005: Selzy's event webhooks (selzy-api.md §11). The receiver stores each verified event as it
-- came (a hint: never the source of a consent decision) and answers at once; the worker routes
-- stored events to the jobs they may concern, one queue row per (job, contact), and applies a
-- contact by asking getContact for the truth. A replayed body is stored once (its events'
-- digests); an event stored but not applied when the daemon died is applied after restart.

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
