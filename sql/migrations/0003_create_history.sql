-- 0003: the per-contact history (PRODUCT.md "What syncd keeps"): every decision syncd made for
-- a contact, every push and Selzy's answer, every Selzy-side change it saw and every writeback
-- or import — what `syncd explain` reads. Append-only; rows older than a job's history_days
-- are pruned. A run with nothing to change adds nothing: a decision is recorded when it
-- differs from the contact's last one, which the ledger now keeps.

-- When the job runs next, as the daemon that schedules it says (for `syncd status`, which
-- reads PostgreSQL and so works from any host).
ALTER TABLE syncd.jobs
    ADD COLUMN next_run_at timestamptz,
    ADD COLUMN scheduled_by text,          -- host:pid of that daemon
    ADD COLUMN scheduled_at timestamptz;   -- when it last said so

ALTER TABLE syncd.contacts
    ADD COLUMN decision text,          -- the reason code of the last real run's decision
    ADD COLUMN decided_run bigint;

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
CREATE INDEX history_job_key_idx ON syncd.history (job, key, id);
CREATE INDEX history_at_idx ON syncd.history (at);  -- pruning
