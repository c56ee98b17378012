-- 0004: binding plans (`syncd plan`, `syncd apply`). A plan is a dry run whose every contact's
-- action, values and reason are kept, with the hash of the job's configuration, so that
-- `apply` executes exactly that and reports whatever changed since as drift.

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

ALTER TABLE syncd.runs
    ADD COLUMN plan_id bigint,                       -- the plan a `plan`/`apply` run made/applied
    ADD COLUMN drift integer NOT NULL DEFAULT 0;     -- apply: contacts whose decision changed
