-- The plan: the staged export and the local source (TEMP tables of the run's dedicated
-- connection) diffed against syncd.pushed and syncd.suppressions, in set-based SQL.
-- Every rule of PRODUCT.md "Diff" and "Consent" that decides *what happens to a contact* is
-- in build_plan; what a row may carry is syncd/reconcile/batches.py.

-- name: tune_session
-- No parameters. The run's dedicated session sorts and hashes a whole list at once; give it
-- room so a million-row join stays in memory instead of spilling in many small batches.
SET work_mem = '64MB';

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
        CASE
            WHEN $2::text = ANY (string_to_array(replace(
                CASE WHEN $1::text = 'email' THEN e.email_unsubscribed_list_ids
                     ELSE e.phone_unsubscribed_list_ids END, ' ', ''), ','))
                THEN 'unsubscribed'
            WHEN $2::text = ANY (string_to_array(replace(
                CASE WHEN $1::text = 'email' THEN e.email_list_ids
                     ELSE e.phone_list_ids END, ' ', ''), ','))
                THEN 'subscribed'
            ELSE 'absent'
        END AS list_status
    FROM syncd_export AS e
    OFFSET 0
) AS r
WHERE r.key <> '';

-- name: dedupe_remote
-- No parameters. When the export holds a key twice (addresses that differ only in case or
-- punctuation), keep one: the member row (unsubscribed before subscribed before absent).
-- A hash aggregate finds the (rare) duplicates; only those are sorted.
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
        WHERE x.key IN (SELECT key FROM syncd_remote GROUP BY key HAVING count(*) > 1)
    ) AS ranked
    WHERE ranked.n > 1
) AS extra
WHERE r.ctid = extra.row_id;

-- name: analyze_remote
-- No parameters.
ANALYZE syncd_remote;

-- name: remote_stats
-- $1 channel. -> exported (rows in the file), unkeyed (rows without a usable key),
-- remote_count (contacts of the list: list_status subscribed or unsubscribed).
SELECT
    (SELECT count(*) FROM syncd_export) AS exported,
    (SELECT count(*) FROM syncd_export AS e
      WHERE (CASE WHEN $1::text = 'email' THEN pg_temp.syncd_email_key(e.email)
                  ELSE pg_temp.syncd_phone_key(e.phone) END) = '') AS unkeyed,
    (SELECT count(*) FROM syncd_remote WHERE list_status <> 'absent') AS remote_count;

-- name: plan_duplicate_keys
-- No parameters. The keys held by more than one local row, and whether any of them opted out
-- (an opt-out in any duplicate wins).
CREATE TEMP TABLE syncd_dupkey AS
SELECT l.key, bool_or(l.opt_out) AS opt_out
FROM syncd_local AS l
WHERE l.key_valid
GROUP BY l.key
HAVING count(*) > 1;

-- name: create_plan_table
-- No parameters.
CREATE TEMP TABLE syncd_plan (
    seq          bigint NOT NULL,
    action       text NOT NULL,
    key          text NOT NULL,       -- normalised key ('' for an unusable one)
    key_raw      text,                -- the local value as written (invalid_key, duplicate)
    vals         text[],              -- mapped field values, in config order
    fingerprint  uuid,                -- what syncd.pushed keeps once Selzy accepts the row
    remote_only  boolean NOT NULL DEFAULT false,  -- in the list, never pushed, absent locally
    intended     text,                -- quarantined: the action it would have been
    code         text,                -- reported rows: syncd's or Selzy's last code
    message      text
);

-- name: build_plan
-- $1 job, $2 list_id (bigint), $3 channel ('email' | 'phone'), $4 delete_mode, $5 remote_only.
-- One row per contact that needs an action or a report; contacts already in step get none.
INSERT INTO syncd_plan (seq, action, key, key_raw, vals, fingerprint, remote_only, intended, code, message)
WITH
dup AS (
    SELECT l.key, l.key_raw, l.vals, d.opt_out,
           pg_temp.syncd_fp(l.vals_fp, d.opt_out) AS fingerprint
    FROM syncd_local AS l
    JOIN syncd_dupkey AS d ON d.key = l.key
    WHERE l.key_valid
),
dup_ranked AS (
    -- The winner: the row syncd pushed last time if any, else the smallest fingerprint.
    -- Deterministic and sticky, so a duplicate never flip-flops between two rows.
    SELECT dup.*,
           row_number() OVER (
               PARTITION BY dup.key
               ORDER BY (dup.fingerprint = p.fingerprint) IS TRUE DESC, dup.fingerprint, dup.key_raw
           ) AS rank
    FROM dup
    LEFT JOIN syncd.pushed AS p ON p.job = $1::text AND p.key = dup.key
),
winner AS (
    SELECT l.key, l.vals, l.opt_out, l.fingerprint
    FROM syncd_local AS l
    WHERE l.key_valid
      AND NOT EXISTS (SELECT 1 FROM syncd_dupkey AS d WHERE d.key = l.key)
    UNION ALL
    SELECT key, vals, opt_out, fingerprint FROM dup_ranked WHERE rank = 1
),
local_decided AS (
    SELECT
        w.key, w.vals, w.fingerprint,
        CASE
            WHEN coalesce(r.list_status, 'absent') = 'absent' THEN
                CASE
                    -- consent: never re-add an address unsubscribed or blocked before
                    WHEN s.key IS NOT NULL OR r.status IN ('unsubscribed', 'blocked') THEN 'suppressed'
                    WHEN w.opt_out THEN 'suppressed'
                    WHEN p.quarantined_at IS NOT NULL AND p.rejected_fingerprint = w.fingerprint
                        THEN 'quarantined'
                    ELSE 'add'
                END
            -- consent: an opt-out makes a mailable contact unmailable; never quarantined
            WHEN w.opt_out AND r.list_status = 'subscribed'
                 AND coalesce(r.status, '') NOT IN ('unsubscribed', 'blocked')
                THEN CASE WHEN r.status IN ('active', 'inactive') THEN 'optout_status'
                          ELSE 'optout_list' END
            WHEN p.quarantined_at IS NOT NULL AND p.rejected_fingerprint = w.fingerprint
                THEN 'quarantined'
            WHEN w.fingerprint IS DISTINCT FROM p.fingerprint THEN 'update'
        END AS action,
        CASE WHEN coalesce(r.list_status, 'absent') = 'absent' THEN 'add' ELSE 'update' END
            AS intended,
        CASE
            WHEN coalesce(r.list_status, 'absent') <> 'absent' THEN p.last_code
            WHEN s.key IS NOT NULL OR r.status IN ('unsubscribed', 'blocked') THEN 'unsubscribed'
            WHEN w.opt_out THEN 'opt_out'
            ELSE p.last_code
        END AS code,
        p.last_message AS message
    FROM winner AS w
    LEFT JOIN syncd_remote AS r ON r.key = w.key
    LEFT JOIN syncd.pushed AS p ON p.job = $1::text AND p.key = w.key
    LEFT JOIN syncd.suppressions AS s
        ON s.list_id = $2::bigint AND s.channel = $3::text AND s.key = w.key
),
remote_decided AS (
    -- In the list and absent locally: pushed earlier (a delete candidate) or remote-only.
    SELECT
        r.key,
        p.fingerprint IS NULL AS remote_only,
        CASE
            WHEN p.fingerprint IS NOT NULL AND $4::text = 'off' THEN NULL
            WHEN p.fingerprint IS NULL AND $5::text = 'keep' THEN 'keep'
            WHEN p.fingerprint IS NULL AND $5::text = 'import' THEN 'import'
            -- consent: never erase a suppression record; unsubscribed/blocked are excluded
            WHEN $4::text = 'exclude'
                 OR coalesce(r.status, '') NOT IN ('new', 'active', 'inactive')
                 OR r.list_status = 'unsubscribed'
                THEN 'exclude'
            ELSE 'delete'
        END AS action
    FROM syncd_remote AS r
    LEFT JOIN syncd.pushed AS p ON p.job = $1::text AND p.key = r.key
    WHERE r.list_status <> 'absent'
      AND NOT EXISTS (SELECT 1 FROM syncd_local AS l WHERE l.key_valid AND l.key = r.key)
),
planned AS (
    SELECT action, key, NULL::text AS key_raw, vals, fingerprint, false AS remote_only,
           CASE WHEN action = 'quarantined' THEN intended END AS intended, code, message
    FROM local_decided
    WHERE action IS NOT NULL
    UNION ALL
    SELECT action, key, NULL, NULL, NULL, remote_only, NULL, NULL, NULL
    FROM remote_decided
    WHERE action IS NOT NULL
    UNION ALL
    SELECT 'duplicate', key, key_raw, NULL, fingerprint, false, NULL, 'duplicate_key',
           'another local row has the same normalised key'
    FROM dup_ranked
    WHERE rank > 1
    UNION ALL
    SELECT 'invalid_key', key, key_raw, NULL, NULL, false, NULL,
           CASE WHEN $3::text = 'email' THEN 'invalid_email' ELSE 'invalid_phone' END,
           CASE WHEN key_raw = '' THEN 'no ' || $3::text || ' value'
                ELSE 'not a usable ' || $3::text END
    FROM syncd_local
    WHERE NOT key_valid
)
SELECT row_number() OVER (ORDER BY action, key, key_raw), action, key, key_raw, vals,
       fingerprint, remote_only, intended, code, message
FROM planned;

-- name: index_plan
-- No parameters.
CREATE INDEX syncd_plan_action_seq ON syncd_plan (action, seq);
ANALYZE syncd_plan;

-- name: plan_counts
-- No parameters. -> action, rows, remote_only (how many of them are remote-only contacts).
SELECT action, count(*) AS rows, count(*) FILTER (WHERE remote_only) AS remote_only
FROM syncd_plan
GROUP BY action
ORDER BY action;

-- name: plan_sample
-- $1 rows per action. -> action, key: the first keys of each action (raw value for invalid keys).
SELECT action, CASE WHEN action = 'invalid_key' THEN key_raw ELSE key END AS key
FROM (
    SELECT action, key, key_raw, row_number() OVER (PARTITION BY action ORDER BY seq) AS n
    FROM syncd_plan
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
-- list any more (nothing left to update or delete). -> nothing.
DELETE FROM syncd.pushed AS p
WHERE p.job = $1::text
  AND NOT EXISTS (SELECT 1 FROM syncd_local AS l WHERE l.key_valid AND l.key = p.key)
  AND NOT EXISTS (SELECT 1 FROM syncd_remote AS r WHERE r.key = p.key AND r.list_status <> 'absent');
