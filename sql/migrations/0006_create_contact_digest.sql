-- 0006: the contact digest. What a run needs to know of the contacts that needed nothing, so that
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
