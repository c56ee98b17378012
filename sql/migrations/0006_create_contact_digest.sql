-- 0006: the contact digest. What a run needs to know of the contacts that needed nothing, so that
-- a run plans only the contacts whose local row, export row or ledger row changed since, instead
-- of joining the whole ledger with the whole export and the whole local table every time.
--
-- A digest row says: "at the end of a run that finished, this contact needed nothing (no action,
-- no writeback, no ledger change), and the plan would say so again as long as its local row
-- fingerprints to local_fp and its export row to remote_fp, under the same configuration and
-- the same code (syncd.jobs.digest_version)". It is derived data: deleting any of it, or all of
-- it, costs the next run time, never correctness (a contact without a digest row is planned).
CREATE TABLE syncd.contact_digest (
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
CREATE TABLE syncd.contacts_touched (
    job  text NOT NULL,
    key  text NOT NULL,
    seq  bigint NOT NULL,
    PRIMARY KEY (job, key)
);

-- A run that writes the ledger itself first takes the job's digest over (syncd.jobs.
-- digest_version set NULL: no run trusts the digest until that run writes it anew) and marks its
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

-- The configuration, code and server the job's digest was written under (NULL: none yet); a run
-- whose own differs plans every contact and writes the digest anew.
ALTER TABLE syncd.jobs ADD COLUMN digest_version text;
-- How many of the job's digest rows are list members (kept with the digest: a run narrowed to
-- its candidates counts the list without reading the digest).
ALTER TABLE syncd.jobs ADD COLUMN digest_members bigint NOT NULL DEFAULT 0;
