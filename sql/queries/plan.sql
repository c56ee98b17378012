-- The plan: the staged export and the local source (TEMP tables of the run's dedicated
-- connection) diffed against syncd.pushed and syncd.suppressions, in set-based SQL.
-- Every rule of PRODUCT.md "Diff" and "Consent" that decides *what happens to a contact* is
-- in build_plan; what a row may carry is syncd/reconcile/batches.py.

-- name: tune_session
-- No parameters. The run's dedicated session hashes a whole list at once: give each hash room
-- so a million-row join stays in memory instead of spilling in many small batches (memory is
-- capped by these settings, not by the list's size), skip JIT compilation, which costs up
-- to a second per big statement here and buys nothing for one scan of simple expressions,
-- and keep the statistics of the TEMP tables small.
SET work_mem = '64MB';
SET jit = off;
-- ANALYZE of the session's TEMP tables samples 300 rows per unit of target: 3,000 rows tell
-- the planner as much about a unique key column as 30,000, for a sixth of the time.
SET default_statistics_target = 10;

-- name: stage_remote
-- $1 channel ('email' | 'phone'), $2 list_id (text).
-- One row per exported contact with a usable key of the channel (dedupe_remote then keeps one
-- per key). list_status: the job's list via the channel's *_unsubscribed_list_ids /
-- *_list_ids, else 'absent' (exported because its other channel is in the list).
CREATE TEMP TABLE syncd_remote AS
SELECT r.*
FROM (
    SELECT
        CASE WHEN $1::text = 'email' THEN pg_temp.syncd_email_key(e.email)
             ELSE pg_temp.syncd_phone_key(e.phone) END AS key,
        nullif(e.email, '') AS email,
        nullif(e.email_status, '') AS email_status,
        nullif(e.email_availability, '') AS email_availability,
        nullif(e.email_list_ids, '') AS email_list_ids,
        nullif(e.email_unsubscribed_list_ids, '') AS email_unsubscribed_list_ids,
        nullif(e.phone, '') AS phone,
        nullif(e.phone_status, '') AS phone_status,
        nullif(e.phone_list_ids, '') AS phone_list_ids,
        nullif(e.phone_unsubscribed_list_ids, '') AS phone_unsubscribed_list_ids,
        nullif(CASE WHEN $1::text = 'email' THEN e.email_status ELSE e.phone_status END, '') AS status,
        -- "$2 is one of the comma-separated ids" (spaces ignored), as a substring test of
        -- ",a,b," for ",$2," — the same answer as splitting into an array, without building one
        CASE
            WHEN strpos(',' || replace(
                CASE WHEN $1::text = 'email' THEN e.email_unsubscribed_list_ids
                     ELSE e.phone_unsubscribed_list_ids END, ' ', '') || ',', ',' || $2::text || ',') > 0
                THEN 'unsubscribed'
            WHEN strpos(',' || replace(
                CASE WHEN $1::text = 'email' THEN e.email_list_ids
                     ELSE e.phone_list_ids END, ' ', '') || ',', ',' || $2::text || ',') > 0
                THEN 'subscribed'
            ELSE 'absent'
        END AS list_status
    FROM syncd_export AS e
    OFFSET 0
) AS r
WHERE r.key <> '';

-- name: analyze_remote
-- No parameters. The join column only.
ANALYZE syncd_remote (key);

-- name: index_remote
-- No parameters. One row per exported key: a unique index on the key, which costs a sort of
-- the keys (a third of hashing them) and proves the export holds no key twice. When it fails,
-- dedupe_remote removes the extra rows and the index is built again. The index also serves
-- the few lookups of the duplicate and invalid local rows in build_plan.
CREATE UNIQUE INDEX syncd_remote_key ON syncd_remote (key);

-- name: dedupe_remote
-- No parameters. Only when index_remote found a key held twice in the export (addresses that
-- differ only in case or punctuation): keep one row per key, the member row (unsubscribed
-- before subscribed before absent).
DELETE FROM syncd_remote AS r
USING (
    SELECT ranked.ctid AS row_id
    FROM (
        SELECT x.ctid,
               row_number() OVER (
                   PARTITION BY x.key
                   ORDER BY CASE x.list_status WHEN 'unsubscribed' THEN 0
                                               WHEN 'subscribed' THEN 1 ELSE 2 END,
                            x.email, x.phone
               ) AS n
        FROM syncd_remote AS x
        WHERE x.key IN (SELECT y.key FROM syncd_remote AS y GROUP BY y.key HAVING count(*) > 1)
    ) AS ranked
    WHERE ranked.n > 1
) AS extra
WHERE r.ctid = extra.row_id;

-- name: find_local_duplicates
-- No parameters. TEMP syncd_local_odd: the few local rows build_plan reports rather than
-- plans — those without a usable key and those whose key other usable rows share — so that
-- build_plan reads them there, not by scanning syncd_local again. Rows whose key *hash* is
-- held twice are taken (a sort of 64-bit hashes: cheaper than grouping the keys, and with
-- hashing disabled for the statement, cheaper than a million-group hash table);
-- TEMP syncd_dupkey then finds the keys really held twice among them, exactly, with
-- opt_out = whether any of them opted out (an opt-out in any duplicate wins).
SET enable_hashagg = off;
CREATE TEMP TABLE syncd_local_odd AS
SELECT l.*
FROM syncd_local AS l
WHERE NOT l.key_valid
   OR hashtextextended(l.key, 0) IN (
        SELECT hashtextextended(x.key, 0)
        FROM syncd_local AS x
        WHERE x.key_valid
        GROUP BY 1
        HAVING count(*) > 1);
RESET enable_hashagg;
CREATE TEMP TABLE syncd_dupkey AS
SELECT o.key, bool_or(o.opt_out) AS opt_out
FROM syncd_local_odd AS o
WHERE o.key_valid
GROUP BY o.key
HAVING count(*) > 1;
ANALYZE syncd_local_odd;
ANALYZE syncd_dupkey;

-- name: remote_count
-- No parameters. -> contacts of the list (list_status subscribed or unsubscribed).
SELECT count(*) FROM syncd_remote WHERE list_status <> 'absent';

-- name: create_plan_table
-- No parameters.
CREATE TEMP TABLE syncd_plan (
    seq          bigint NOT NULL,
    action       text NOT NULL,       -- see build_plan; 'writeback' and 'forget' are bookkeeping
    key          text NOT NULL,       -- normalised key ('' for an unusable one)
    key_raw      text,                -- the local value as written (invalid_key, duplicate)
    vals         text[],              -- mapped field values, in config order
    fingerprint  bigint,              -- what syncd.pushed keeps once Selzy accepts the row
    remote_only  boolean NOT NULL DEFAULT false,  -- in the list, never pushed, absent locally
    intended     text,                -- quarantined: the action it would have been
    code         text,                -- reported rows: syncd's or Selzy's last code
    message      text,
    writeback    boolean NOT NULL DEFAULT false   -- a local row of this key differs from Selzy's view
);

-- name: build_plan
-- $1 job, $2 list_id (bigint), $3 channel ('email' | 'phone'), $4 delete_mode, $5 remote_only.
-- $6..$9 (boolean): whether email_status, phone_status, email_availability, list_status are
-- written back (syncd_local.wb_* hold those local columns as text, NULL when not configured).
-- One row per contact that needs an action or a report; contacts already in step get none.
-- The local winners, the export and syncd.pushed are joined ONCE (full joins: every key of any
-- of the three meets its other sides in one pass), and every decision is read off that row:
--   local winner            -> add / update / opt-out / suppressed / quarantined (or nothing)
--   in the list, not local  -> delete / exclude / keep / import (delete candidate or remote-only)
--   pushed, neither local nor in the list -> 'forget' (cleanup_pushed drops its pushed row)
-- and, for every local row whose key is in the export, whether its writeback columns differ
-- from Selzy's values (`writeback`; a contact needing nothing else gets action 'writeback').
INSERT INTO syncd_plan (seq, action, key, key_raw, vals, fingerprint, remote_only, intended, code,
                        message, writeback)
WITH
dup AS (
    SELECT l.*, d.opt_out AS group_opt_out,
           pg_temp.syncd_fp(l.vals_fp, d.opt_out) AS group_fingerprint
    FROM syncd_dupkey AS d
    JOIN syncd_local_odd AS l ON l.key = d.key AND l.key_valid
),
dup_ranked AS (
    -- The winner: the row syncd pushed last time if any, else the smallest fingerprint.
    -- Deterministic and sticky, so a duplicate never flip-flops between two rows.
    SELECT dup.*,
           row_number() OVER (
               PARTITION BY dup.key
               ORDER BY (dup.group_fingerprint = p.fingerprint) IS TRUE DESC,
                        dup.group_fingerprint, dup.key_raw
           ) AS rank
    FROM dup
    LEFT JOIN syncd.pushed AS p ON p.job = $1::text AND p.key = dup.key
),
winner AS (
    SELECT l.key, l.vals, l.opt_out, l.fingerprint,
           l.wb_email_status, l.wb_phone_status, l.wb_email_availability, l.wb_list_status
    FROM syncd_local AS l
    WHERE l.key_valid
      AND NOT EXISTS (SELECT 1 FROM syncd_dupkey AS d WHERE d.key = l.key)
    UNION ALL
    SELECT key, vals, group_opt_out, group_fingerprint,
           wb_email_status, wb_phone_status, wb_email_availability, wb_list_status
    FROM dup_ranked
    WHERE rank = 1
),
joined AS (
    SELECT
        coalesce(w.key, r.key, p.key) AS key,
        w.key IS NOT NULL AS is_local,
        w.vals, w.opt_out, w.fingerprint,
        r.key IS NOT NULL AND r.list_status <> 'absent' AS in_list,
        coalesce(r.list_status, 'absent') AS list_status,
        r.status,
        p.key IS NOT NULL AS tracked,
        p.fingerprint AS pushed_fingerprint,
        p.quarantined_at IS NOT NULL AND p.rejected_fingerprint = w.fingerprint AS quarantined,
        p.last_code, p.last_message,
        s.key IS NOT NULL AS suppressed,
        r.key IS NOT NULL AND w.key IS NOT NULL
            AND (w.wb_email_status, w.wb_phone_status, w.wb_email_availability, w.wb_list_status)
                IS DISTINCT FROM (
                    CASE WHEN $6::boolean THEN r.email_status END,
                    CASE WHEN $7::boolean THEN r.phone_status END,
                    CASE WHEN $8::boolean THEN r.email_availability END,
                    CASE WHEN $9::boolean THEN r.list_status END)
            AS writeback
    FROM winner AS w
    FULL JOIN syncd_remote AS r ON r.key = w.key
    FULL JOIN (SELECT * FROM syncd.pushed WHERE job = $1::text) AS p
        ON p.key = coalesce(w.key, r.key)
    LEFT JOIN syncd.suppressions AS s
        ON s.list_id = $2::bigint AND s.channel = $3::text AND s.key = w.key
),
decided AS (
    SELECT
        j.*,
        CASE
            WHEN j.is_local AND NOT j.in_list THEN
                CASE
                    -- consent: never re-add an address unsubscribed or blocked before
                    WHEN j.suppressed OR j.status IN ('unsubscribed', 'blocked') THEN 'suppressed'
                    WHEN j.opt_out THEN 'suppressed'
                    WHEN j.quarantined THEN 'quarantined'
                    ELSE 'add'
                END
            -- consent: an opt-out makes a mailable contact unmailable; never quarantined
            WHEN j.is_local AND j.opt_out AND j.list_status = 'subscribed'
                 AND coalesce(j.status, '') NOT IN ('unsubscribed', 'blocked')
                THEN CASE WHEN j.status IN ('active', 'inactive') THEN 'optout_status'
                          ELSE 'optout_list' END
            WHEN j.is_local AND j.quarantined THEN 'quarantined'
            WHEN j.is_local AND j.fingerprint IS DISTINCT FROM j.pushed_fingerprint THEN 'update'
            WHEN j.is_local THEN NULL
            -- in the list and absent locally: pushed earlier (a delete candidate) or remote-only
            WHEN j.in_list THEN
                CASE
                    WHEN j.pushed_fingerprint IS NOT NULL AND $4::text = 'off' THEN NULL
                    WHEN j.pushed_fingerprint IS NULL AND $5::text = 'keep' THEN 'keep'
                    WHEN j.pushed_fingerprint IS NULL AND $5::text = 'import' THEN 'import'
                    -- consent: never erase a suppression record; unsubscribed/blocked are excluded
                    WHEN $4::text = 'exclude'
                         OR coalesce(j.status, '') NOT IN ('new', 'active', 'inactive')
                         OR j.list_status = 'unsubscribed'
                        THEN 'exclude'
                    ELSE 'delete'
                END
            -- pushed earlier, neither local nor in the list: nothing left to update or delete
            WHEN j.tracked THEN 'forget'
        END AS action
    FROM joined AS j
),
planned AS (
    SELECT coalesce(action, 'writeback') AS action, key, NULL::text AS key_raw,
           CASE WHEN is_local THEN vals END AS vals,
           CASE WHEN is_local THEN fingerprint END AS fingerprint,
           NOT is_local AND pushed_fingerprint IS NULL AS remote_only,
           CASE WHEN action = 'quarantined' THEN CASE WHEN in_list THEN 'update' ELSE 'add' END
           END AS intended,
           CASE
               WHEN NOT is_local THEN NULL
               WHEN in_list THEN last_code
               WHEN suppressed OR status IN ('unsubscribed', 'blocked') THEN 'unsubscribed'
               WHEN opt_out THEN 'opt_out'
               ELSE last_code
           END AS code,
           CASE WHEN is_local THEN last_message END AS message,
           writeback
    FROM decided
    WHERE action IS NOT NULL OR writeback
    UNION ALL
    SELECT 'duplicate', d.key, d.key_raw, NULL, d.group_fingerprint, false, NULL, 'duplicate_key',
           'another local row has the same normalised key',
           r.key IS NOT NULL
               AND (d.wb_email_status, d.wb_phone_status, d.wb_email_availability, d.wb_list_status)
                   IS DISTINCT FROM (
                       CASE WHEN $6::boolean THEN r.email_status END,
                       CASE WHEN $7::boolean THEN r.phone_status END,
                       CASE WHEN $8::boolean THEN r.email_availability END,
                       CASE WHEN $9::boolean THEN r.list_status END)
    FROM dup_ranked AS d
    LEFT JOIN syncd_remote AS r ON r.key = d.key
    WHERE d.rank > 1
    UNION ALL
    SELECT 'invalid_key', l.key, l.key_raw, NULL, NULL, false, NULL,
           CASE WHEN $3::text = 'email' THEN 'invalid_email' ELSE 'invalid_phone' END,
           CASE WHEN l.key_raw = '' THEN 'no ' || $3::text || ' value'
                ELSE 'not a usable ' || $3::text END,
           r.key IS NOT NULL
               AND (l.wb_email_status, l.wb_phone_status, l.wb_email_availability, l.wb_list_status)
                   IS DISTINCT FROM (
                       CASE WHEN $6::boolean THEN r.email_status END,
                       CASE WHEN $7::boolean THEN r.phone_status END,
                       CASE WHEN $8::boolean THEN r.email_availability END,
                       CASE WHEN $9::boolean THEN r.list_status END)
    FROM syncd_local_odd AS l
    LEFT JOIN syncd_remote AS r ON r.key = l.key AND l.key <> ''
    WHERE NOT l.key_valid
)
SELECT row_number() OVER (ORDER BY action, key, key_raw), action, key, key_raw, vals,
       fingerprint, remote_only, intended, code, message, writeback
FROM planned;

-- name: index_plan
-- No parameters.
CREATE INDEX syncd_plan_action_seq ON syncd_plan (action, seq);
ANALYZE syncd_plan;

-- name: plan_counts
-- No parameters. -> action, rows, remote_only (how many of them are remote-only contacts),
-- for the actions that are reported (not the 'writeback' and 'forget' bookkeeping), and the
-- bookkeeping totals as the pseudo-actions '.writeback' and '.forget'.
SELECT action, count(*) AS rows, count(*) FILTER (WHERE remote_only) AS remote_only
FROM syncd_plan
WHERE action NOT IN ('writeback', 'forget')
GROUP BY action
UNION ALL
SELECT '.writeback', count(*), 0 FROM syncd_plan WHERE writeback
UNION ALL
SELECT '.forget', count(*), 0 FROM syncd_plan WHERE action = 'forget'
ORDER BY action;

-- name: plan_sample
-- $1 rows per action. -> action, key: the first keys of each action (raw value for invalid keys).
SELECT action, CASE WHEN action = 'invalid_key' THEN key_raw ELSE key END AS key
FROM (
    SELECT action, key, key_raw, row_number() OVER (PARTITION BY action ORDER BY seq) AS n
    FROM syncd_plan
    WHERE action NOT IN ('writeback', 'forget')
) AS numbered
WHERE n <= $1::int
ORDER BY action, n;

-- name: plan_batch
-- $1 action, $2 after seq (exclusive), $3 rows. -> seq, key, vals, fingerprint in seq order.
-- Streams the plan: a run never holds more than one batch per call in flight in memory.
SELECT seq, key, vals, fingerprint
FROM syncd_plan
WHERE action = $1::text AND seq > $2::bigint
ORDER BY seq
LIMIT $3::int;

-- name: record_plan_outcomes
-- $1 run_id, $2 job. Invalid keys, duplicates and quarantined contacts into syncd.row_outcomes
-- (reported every run). -> nothing.
INSERT INTO syncd.row_outcomes (run_id, job, key, action, outcome, code, message)
SELECT $1::bigint, $2::text,
       CASE WHEN action = 'invalid_key' THEN coalesce(key_raw, '') ELSE key END,
       coalesce(intended, 'none'), action, code, message
FROM syncd_plan
WHERE action IN ('invalid_key', 'duplicate', 'quarantined');

-- name: cleanup_pushed
-- $1 job. Forget what syncd pushed for keys that are neither in the local source nor in the
-- list any more (nothing left to update or delete): the plan's 'forget' rows. -> nothing.
DELETE FROM syncd.pushed AS p
USING syncd_plan AS f
WHERE f.action = 'forget' AND p.job = $1::text AND p.key = f.key;
