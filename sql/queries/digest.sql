-- The contact digest (sql/migrations/0006): which contacts a run must plan. A contact whose
-- digest row still matches its local row and its export row, and whose ledger row nobody wrote
-- since (syncd.contacts_touched), needs nothing, exactly as the last finished run found: the
-- plan's decision is a function of those three rows and the job's configuration only, and the
-- digest is written under a version that names the configuration and the code. Everything else
-- is a candidate, and the plan (plan.sql) runs over the candidates alone, unchanged: the
-- session's TEMP tables syncd_local and syncd_export are narrowed to them, and
-- pg_temp.syncd_ledger(job) gives build_plan their ledger rows only.
-- tests/integration/reconcile/test_digest_plan.py holds the narrowed plan equal to the whole one.

-- name: create_digest_functions
-- No parameters. Creates, on this connection only:
--   pg_temp.syncd_view_fp(email, email_status, email_availability, email_list_ids,
--                         email_unsubscribed_list_ids, phone, phone_status, phone_list_ids,
--                         phone_unsubscribed_list_ids) -> 64-bit hash of an export row's
--       columns the plan reads ('' and NULL alike, as stage_remote reads them)
--   pg_temp.syncd_local_qfp(fingerprint, wb_email_status, wb_phone_status,
--                           wb_email_availability, wb_list_status) -> 64-bit hash of a local
--       row's columns the plan reads (its fingerprint and writeback columns)
--   pg_temp.syncd_ledger(job) -> the job's ledger rows the plan reads: all of them (this
--       definition); plan_scope_candidates redefines it for a narrowed plan
CREATE OR REPLACE FUNCTION pg_temp.syncd_view_fp(
    email text, email_status text, email_availability text, email_list_ids text,
    email_unsubscribed_list_ids text, phone text, phone_status text, phone_list_ids text,
    phone_unsubscribed_list_ids text
) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    -- each column's own 64-bit hash (its own seed: a value moved to another column changes it),
    -- XORed: at 1M export rows 0.24 s, where hash_record_extended of the same nine columns took
    -- 0.52 s (type lookups per column and row)
    AS $$ SELECT hashtextextended(coalesce(email, ''), 1)
               # hashtextextended(coalesce(email_status, ''), 2)
               # hashtextextended(coalesce(email_availability, ''), 3)
               # hashtextextended(coalesce(email_list_ids, ''), 4)
               # hashtextextended(coalesce(email_unsubscribed_list_ids, ''), 5)
               # hashtextextended(coalesce(phone, ''), 6)
               # hashtextextended(coalesce(phone_status, ''), 7)
               # hashtextextended(coalesce(phone_list_ids, ''), 8)
               # hashtextextended(coalesce(phone_unsubscribed_list_ids, ''), 9) $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_local_qfp(
    fingerprint bigint, wb_email_status text, wb_phone_status text, wb_email_availability text,
    wb_list_status text
) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    -- as syncd_view_fp, but a NULL writeback column is not '' (the writeback tells them apart)
    AS $$ SELECT fingerprint
               # coalesce(hashtextextended(wb_email_status, 1), 1)
               # coalesce(hashtextextended(wb_phone_status, 2), 2)
               # coalesce(hashtextextended(wb_email_availability, 3), 3)
               # coalesce(hashtextextended(wb_list_status, 4), 4) $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_ledger(job text) RETURNS SETOF syncd.contacts
    LANGUAGE sql STABLE
    AS $$ SELECT * FROM syncd.contacts AS c WHERE c.job = syncd_ledger.job $$;

-- name: digest_version
-- $1 job. -> version: what the job's digest was written under (NULL: none); server: the
-- server's major version (hash functions may change between them).
SELECT (SELECT version FROM syncd.job_digests WHERE job = $1::text) AS version,
       current_setting('server_version_num')::int / 10000 AS server;

-- name: read_touched
-- $1 job. TEMP syncd_touched_seen: the job's touched contacts as this run read them (before it
-- reads the ledger); a finished run removes exactly these rows (settle_touched_seen).
CREATE TEMP TABLE syncd_touched_seen AS
SELECT key, seq FROM syncd.contacts_touched WHERE job = $1::text;

-- name: local_candidates
-- $1 job. TEMP syncd_cand_local (key, remote_key, member): what the local side and syncd's own
-- records say must be planned, known before the export: local rows with a usable key whose
-- digest row is missing or fingerprints otherwise, digest rows of a local row that is gone or
-- changed, touched contacts, duplicate keys and the keys of unusable local rows. remote_key: the
-- candidate's export spelling in its digest row (export_delta keeps those export rows);
-- member: its digest row's (settled_members).
CREATE TEMP TABLE syncd_cand_local AS
SELECT k.key, d.remote_key, d.member
FROM (
    SELECT coalesce(l.key, d.key) AS key
    FROM (
        SELECT l.key, pg_temp.syncd_local_qfp(l.fingerprint, l.wb_email_status,
                                              l.wb_phone_status, l.wb_email_availability,
                                              l.wb_list_status) AS qfp
        FROM syncd_local AS l
        WHERE l.key_valid
        OFFSET 0
    ) AS l
    FULL JOIN (
        SELECT key, local_fp FROM syncd.contact_digest WHERE job = $1::text AND local_fp IS NOT NULL
    ) AS d ON d.key = l.key AND d.local_fp = l.qfp
    WHERE l.key IS NULL OR d.key IS NULL
    UNION
    SELECT key FROM syncd_touched_seen
    UNION
    SELECT key FROM syncd_local_odd WHERE key <> ''
) AS k
LEFT JOIN syncd.contact_digest AS d ON d.job = $1::text AND d.key = k.key;

-- name: analyze_local_candidates
-- No parameters.
ANALYZE syncd_cand_local;

-- name: prefetch_local
-- No parameters. While Selzy prepares the export, when the local candidates are few enough to
-- narrow the plan: TEMP syncd_local_pre, their rows of syncd_local (every usable row of each of
-- their keys), so that narrowing the plan to the candidates after the COPY scans syncd_local
-- again only for the candidates the export adds (plan_scope_candidates).
CREATE TEMP TABLE syncd_local_pre AS
SELECT * FROM syncd_local WHERE key_valid AND key IN (SELECT key FROM syncd_cand_local);

-- name: prefetch_ledger
-- $1 job. With prefetch_local: TEMP syncd_ledger_pre, the local candidates' ledger rows (looked
-- up by key). The run holds the job's lock: only an operator's SQL can write the ledger until
-- build_plan reads them, and such a write is touched, so the next run plans the contact again.
CREATE TEMP TABLE syncd_ledger_pre AS
SELECT c.*
FROM syncd_cand_local AS k
CROSS JOIN LATERAL (SELECT * FROM syncd.contacts AS x
                    WHERE x.job = $1::text AND x.key = k.key OFFSET 0) AS c;

-- name: export_delta
-- $1 job, $2 channel ('email' | 'phone'). TEMP syncd_export_delta: the export rows the plan
-- must see — those no digest row matches (spelling of the match channel and view fingerprint),
-- and those of the local candidates (matched: a digest row matched it) — and, as missing_key,
-- the digest rows that expected an export row no longer there (or no longer alike). One hash
-- join of the export with the digest.
CREATE TEMP TABLE syncd_export_delta AS
SELECT e.email, e.email_status, e.email_availability, e.email_list_ids,
       e.email_unsubscribed_list_ids, e.phone, e.phone_status, e.phone_list_ids,
       e.phone_unsubscribed_list_ids, e.raw_key, e.view_fp,
       CASE WHEN e.raw_key IS NULL THEN d.key END AS missing_key,
       e.raw_key IS NOT NULL AND d.key IS NOT NULL AS matched
FROM (
    SELECT x.email, x.email_status, x.email_availability, x.email_list_ids,
           x.email_unsubscribed_list_ids, x.phone, x.phone_status, x.phone_list_ids,
           x.phone_unsubscribed_list_ids,
           CASE WHEN $2::text = 'email' THEN x.email ELSE x.phone END AS raw_key,
           pg_temp.syncd_view_fp(x.email, x.email_status, x.email_availability, x.email_list_ids,
                                 x.email_unsubscribed_list_ids, x.phone, x.phone_status,
                                 x.phone_list_ids, x.phone_unsubscribed_list_ids) AS view_fp
    FROM syncd_export AS x
    WHERE CASE WHEN $2::text = 'email' THEN x.email ELSE x.phone END <> ''
    OFFSET 0
) AS e
FULL JOIN (
    SELECT key, remote_key, remote_fp
    FROM syncd.contact_digest
    WHERE job = $1::text AND remote_fp IS NOT NULL
) AS d ON d.remote_key = e.raw_key AND d.remote_fp = e.view_fp
WHERE d.key IS NULL OR e.raw_key IS NULL
   OR e.raw_key IN (SELECT c.remote_key FROM syncd_cand_local AS c WHERE c.remote_key IS NOT NULL);

-- name: analyze_export_delta
-- No parameters. Row counts for the planner of the statements that follow (TEMP tables are
-- never analysed by autovacuum).
ANALYZE syncd_export_delta;

-- name: export_unkeyed
-- $1 channel. -> export rows without a value of the match channel (not in syncd_export_delta).
SELECT count(*)
FROM syncd_export
WHERE coalesce(CASE WHEN $1::text = 'email' THEN email ELSE phone END, '') = '';

-- name: candidates
-- $1 channel. TEMP syncd_cand (key): every contact the plan must see — the local candidates,
-- the keys of the export rows no digest row matched, the digest rows whose export row is gone.
-- -> SELECT n
CREATE TEMP TABLE syncd_cand AS
SELECT key
FROM (
    SELECT key FROM syncd_cand_local
    UNION
    SELECT CASE WHEN $1::text = 'email' THEN pg_temp.syncd_email_key(raw_key)
                ELSE pg_temp.syncd_phone_key(raw_key) END
    FROM syncd_export_delta
    WHERE missing_key IS NULL
    UNION
    SELECT missing_key FROM syncd_export_delta WHERE missing_key IS NOT NULL
) AS k
WHERE key <> '';

-- name: export_rows
-- No parameters. -> the rows of syncd_export (the plan's export: narrowed or whole).
SELECT count(*) FROM syncd_export;

-- name: analyze_candidates
-- No parameters.
ANALYZE syncd_cand;

-- name: find_respelled
-- $1 job, $2 channel. TEMP syncd_respelled (remote_key, remote_fp): the export rows the plan
-- must see that the delta does not hold — a candidate found in the export (a row no digest row
-- matched) whose key has a digest row that did match another export row (the key held twice:
-- two spellings, or one spelling twice). Looked up from the unmatched rows only, by key; local
-- candidates' matched rows are in the delta already (export_delta). -> SELECT n
CREATE TEMP TABLE syncd_respelled AS
SELECT DISTINCT dg.remote_key, dg.remote_fp
FROM syncd_export_delta AS e
CROSS JOIN LATERAL (
    SELECT d.key, d.remote_key, d.remote_fp
    FROM syncd.contact_digest AS d
    WHERE d.job = $1::text
      AND d.key = CASE WHEN $2::text = 'email' THEN pg_temp.syncd_email_key(e.raw_key)
                       ELSE pg_temp.syncd_phone_key(e.raw_key) END
    OFFSET 0
) AS dg
WHERE e.missing_key IS NULL AND NOT e.matched
  AND dg.remote_key IS NOT NULL
  AND (dg.remote_key, dg.remote_fp) NOT IN (SELECT x.raw_key, x.view_fp
                                            FROM syncd_export_delta AS x
                                            WHERE x.raw_key IS NOT NULL)
  AND dg.key NOT IN (SELECT x.missing_key FROM syncd_export_delta AS x
                     WHERE x.missing_key IS NOT NULL);

-- name: add_respelled
-- $1 channel. The rows find_respelled named, from the export (a scan: only when there are
-- any). -> INSERT 0 n
INSERT INTO syncd_export_delta (email, email_status, email_availability, email_list_ids,
                                email_unsubscribed_list_ids, phone, phone_status, phone_list_ids,
                                phone_unsubscribed_list_ids, raw_key, view_fp, matched)
SELECT x.email, x.email_status, x.email_availability, x.email_list_ids,
       x.email_unsubscribed_list_ids, x.phone, x.phone_status, x.phone_list_ids,
       x.phone_unsubscribed_list_ids, w.remote_key, w.remote_fp, true
FROM syncd_export AS x
JOIN syncd_respelled AS w
  ON w.remote_key = CASE WHEN $1::text = 'email' THEN x.email ELSE x.phone END
 AND w.remote_fp = pg_temp.syncd_view_fp(x.email, x.email_status, x.email_availability,
                                         x.email_list_ids, x.email_unsubscribed_list_ids,
                                         x.phone, x.phone_status, x.phone_list_ids,
                                         x.phone_unsubscribed_list_ids);

-- name: plan_scope_candidates
-- No parameters. Narrows the plan to TEMP syncd_cand: syncd_export and syncd_local become the
-- candidates' rows (the whole tables stay as syncd_export_all and syncd_local_all), and
-- pg_temp.syncd_ledger(job) their ledger rows. The local candidates' rows were read while the
-- export was prepared (prefetch_local, prefetch_ledger); the candidates the export adds
-- (syncd_cand_extra) are added here: their local rows by a scan of syncd_local_all that runs
-- only when there are any (a one-time filter), their ledger rows looked up by key.
ALTER TABLE syncd_export RENAME TO syncd_export_all;
CREATE TEMP TABLE syncd_export AS
SELECT email, email_status, email_availability, email_list_ids, email_unsubscribed_list_ids,
       phone, phone_status, phone_list_ids, phone_unsubscribed_list_ids
FROM syncd_export_delta
WHERE missing_key IS NULL;
ALTER TABLE syncd_cand ADD PRIMARY KEY (key);
CREATE TEMP TABLE syncd_cand_extra AS
SELECT c.key FROM syncd_cand AS c
WHERE NOT EXISTS (SELECT 1 FROM syncd_cand_local AS l WHERE l.key = c.key);
ALTER TABLE syncd_local RENAME TO syncd_local_all;
ALTER TABLE syncd_local_pre RENAME TO syncd_local;
INSERT INTO syncd_local
SELECT * FROM syncd_local_all
WHERE (SELECT EXISTS (SELECT 1 FROM syncd_cand_extra))
  AND key_valid AND key IN (SELECT key FROM syncd_cand_extra);
ANALYZE syncd_local (key, key_valid);
-- (each added candidate's row by its key: OFFSET 0 keeps the lookup a lookup, however stale
-- the ledger's statistics make the job's row count look)
CREATE OR REPLACE FUNCTION pg_temp.syncd_ledger(job text) RETURNS SETOF syncd.contacts
    LANGUAGE sql STABLE
    AS $$ SELECT * FROM syncd_ledger_pre
          UNION ALL
          SELECT c.* FROM syncd_cand_extra AS k
          CROSS JOIN LATERAL (SELECT * FROM syncd.contacts AS x
                              WHERE x.job = syncd_ledger.job AND x.key = k.key OFFSET 0) AS c $$;

-- name: settled_members
-- $1 job. -> the list's contacts among the digest rows that are not candidates (in the export
-- as the digest expects, so members as it records): the job's digest members less those of
-- the candidates — the local candidates' as local_candidates read them, the others' looked up
-- by key.
SELECT (SELECT members FROM syncd.job_digests WHERE job = $1::text)
       - (SELECT count(*) FROM syncd_cand_local WHERE member)
       - (SELECT count(*)
          FROM syncd_cand AS c
          CROSS JOIN LATERAL (SELECT d.member FROM syncd.contact_digest AS d
                              WHERE d.job = $1::text AND d.key = c.key OFFSET 0) AS d
          WHERE d.member AND NOT EXISTS (SELECT 1 FROM syncd_cand_local AS l WHERE l.key = c.key));

-- name: settle_forget_all
-- $1 job. A plan of every contact: the job's digest is written anew (settle_start next).
DELETE FROM syncd.contact_digest WHERE job = $1::text;

-- name: settle_start
-- $1 job. After settle_forget_all: the job's digest row, no rows counted yet.
INSERT INTO syncd.job_digests (job, version, members) VALUES ($1::text, NULL, 0)
ON CONFLICT (job) DO UPDATE SET version = NULL, members = 0;

-- name: settle_write
-- $1 job. The contacts this run found needing nothing (TEMP syncd_settle, from build_plan), after
-- settle_forget_all: the job's member count follows by trigger. -> INSERT 0 n
INSERT INTO syncd.contact_digest (job, key, local_fp, remote_key, remote_fp, member)
SELECT $1::text, key, local_fp, remote_key, remote_fp, member FROM syncd_settle;

-- name: settle_write_candidates
-- $1 job. A narrowed plan: the candidates it found needing nothing get their digest row anew.
-- The others keep theirs — rewriting the digest row of every contact the run acts on would cost
-- a write per candidate for nothing: settle_unsettled touches them, and a touched contact is
-- planned whatever its digest row says; settle_drop_unplanned removes the rows of the few
-- candidates the plan had no row for. -> INSERT 0 n
INSERT INTO syncd.contact_digest AS d (job, key, local_fp, remote_key, remote_fp, member)
SELECT $1::text, key, local_fp, remote_key, remote_fp, member FROM syncd_settle
ON CONFLICT (job, key) DO UPDATE SET
    local_fp = EXCLUDED.local_fp, remote_key = EXCLUDED.remote_key,
    remote_fp = EXCLUDED.remote_fp, member = EXCLUDED.member;

-- name: settle_drop_unplanned
-- $1 job. A narrowed plan: the digest rows of candidates it had no row for (neither settled nor
-- touched by settle_unsettled), looked up by key.
DELETE FROM syncd.contact_digest AS d
WHERE d.job = $1::text
  AND d.key = ANY (ARRAY(
      SELECT c.key FROM syncd_cand AS c
      WHERE NOT EXISTS (SELECT 1 FROM syncd_plan AS p WHERE p.key = c.key)
        AND NOT EXISTS (SELECT 1 FROM syncd_settle AS s WHERE s.key = c.key)));

-- name: settle_touched_seen
-- $1 job. The touched rows this run read and planned; a row written again since stays.
DELETE FROM syncd.contacts_touched AS t
USING syncd_touched_seen AS s
WHERE t.job = $1::text AND t.key = s.key AND t.seq = s.seq;

-- name: unsettled_count
-- No parameters. -> the contacts this run planned and did not settle.
SELECT count(*)
FROM (SELECT DISTINCT key FROM syncd_plan WHERE key <> '') AS p
WHERE NOT EXISTS (SELECT 1 FROM syncd_settle AS s WHERE s.key = p.key);

-- name: settle_unsettled
-- $1 job. The contacts this run planned and did not settle: touched, so that the next run
-- plans them whatever becomes of their local and export rows (a contact that leaves both is
-- found by its ledger row only).
INSERT INTO syncd.contacts_touched (job, key, seq)
SELECT $1::text, p.key, (SELECT nextval('syncd.contacts_touched_seq'))
FROM (SELECT DISTINCT key FROM syncd_plan WHERE key <> '') AS p
WHERE NOT EXISTS (SELECT 1 FROM syncd_settle AS s WHERE s.key = p.key)
ON CONFLICT (job, key) DO NOTHING;

-- name: own_digest
-- $1 job. Before this session writes the ledger: the job's digest is not trusted until this
-- run writes it anew (settle_version), and this session's writes need no touched rows.
UPDATE syncd.job_digests SET version = NULL WHERE job = $1::text AND version IS NOT NULL;

-- name: mark_digest_owner
-- No parameters. After own_digest committed.
SET syncd.digest_owner = 'on';

-- name: analyze_digest
-- No parameters. After a job's digest was written anew: its statistics, so that the next run's
-- joins with it are planned for its real size (autovacuum may come much later).
ANALYZE syncd.contact_digest;

-- name: settle_version
-- $1 job, $2 version.
UPDATE syncd.job_digests SET version = $2::text
WHERE job = $1::text AND version IS DISTINCT FROM $2::text;
