-- The plan: the staged export and the local source (TEMP tables of the run's dedicated
-- connection) joined ONCE with the contact ledger (syncd.contacts), each contact decided by
-- pg_temp.syncd_decide (sql/queries/decide.sql, the SQL form of syncd/reconcile/decision.py).
-- What a row may carry is syncd/reconcile/batches.py.

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
-- status / other_status: the match channel's and the other channel's status; elsewhere: an
-- unsubscribe from any list on either channel other than this list on the match channel.
CREATE TEMP TABLE syncd_remote AS
SELECT r.*,
       -- "$2 is one of the comma-separated ids" as a substring test of ",a,b," for ",$2,"
       -- (the equality and empty-list tests first: they answer for most rows, cheaply)
       CASE
           WHEN r.own_unsub <> ''
                AND strpos(',' || r.own_unsub || ',', ',' || $2::text || ',') > 0
               THEN 'unsubscribed'
           WHEN r.own_lists = $2::text
                OR strpos(',' || r.own_lists || ',', ',' || $2::text || ',') > 0
               THEN 'subscribed'
           ELSE 'absent'
       END AS list_status,
       -- the match channel's unsubscribes other than $2: what is left once ",$2," is
       -- taken out
       r.other_unsub <> ''
           OR (r.own_unsub <> ''
               AND replace(replace(',' || r.own_unsub || ',', ',' || $2::text || ',', ','),
                           ',', '') <> '') AS elsewhere
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
        nullif(CASE WHEN $1::text = 'email' THEN e.email_status ELSE e.phone_status END, '')
            AS status,
        nullif(CASE WHEN $1::text = 'email' THEN e.phone_status ELSE e.email_status END, '')
            AS other_status,
        replace(coalesce(CASE WHEN $1::text = 'email' THEN e.email_list_ids
                              ELSE e.phone_list_ids END, ''), ' ', '') AS own_lists,
        replace(coalesce(CASE WHEN $1::text = 'email' THEN e.email_unsubscribed_list_ids
                              ELSE e.phone_unsubscribed_list_ids END, ''), ' ', '')
            AS own_unsub,
        replace(coalesce(CASE WHEN $1::text = 'email' THEN e.phone_unsubscribed_list_ids
                              ELSE e.email_unsubscribed_list_ids END, ''), ' ', '')
            AS other_unsub
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
-- before subscribed before absent), a suppressed one first, the same whatever the rows' order.
DELETE FROM syncd_remote AS r
USING (
    SELECT ranked.ctid AS row_id
    FROM (
        SELECT x.ctid,
               row_number() OVER (
                   PARTITION BY x.key
                   ORDER BY CASE x.list_status WHEN 'unsubscribed' THEN 0
                                               WHEN 'subscribed' THEN 1 ELSE 2 END,
                            -- then a suppression on either channel, then every column: one
                            -- winner whatever order the rows come in
                            coalesce(x.status, '') NOT IN ('unsubscribed', 'blocked'),
                            coalesce(x.other_status, '') NOT IN ('unsubscribed', 'blocked'),
                            x.email, x.phone, x.email_status, x.phone_status,
                            x.email_availability, x.email_list_ids,
                            x.email_unsubscribed_list_ids, x.phone_list_ids,
                            x.phone_unsubscribed_list_ids
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
SELECT l.ctid AS local_tid, l.*
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

-- name: absorb_carried_suppressions
-- $1 job, $2 list_id (bigint), $3 channel. Suppressions carried over from schema 0001 (kept per
-- list and channel) move into the ledger of the job that owns that list. Nothing to do, and
-- nothing written, once they have moved. -> rows moved.
WITH moved AS (
    DELETE FROM syncd.suppressions_carried
    WHERE list_id = $2::bigint AND channel = $3::text
    RETURNING key, reason, first_seen_at
)
INSERT INTO syncd.contacts AS c (job, key, suppressed_reason, suppressed_at)
SELECT $1::text, key, reason, first_seen_at FROM moved
ON CONFLICT (job, key) DO UPDATE SET
    suppressed_reason = coalesce(c.suppressed_reason, EXCLUDED.suppressed_reason),
    suppressed_at = coalesce(c.suppressed_at, EXCLUDED.suppressed_at);

-- name: create_plan_table
-- No parameters. TEMP syncd_plan, and TEMP syncd_settle: the contacts the plan found needing
-- nothing, as their digest rows (sql/queries/digest.sql) will record them.
CREATE TEMP TABLE syncd_plan (
    seq             bigint NOT NULL,
    action          text NOT NULL,       -- the action part of `reason`
    reason          text NOT NULL,       -- decision.py's code, `action:why`
    key             text NOT NULL,       -- canonical key ('' for an unusable one)
    key_raw         text,                -- the local value as written (invalid_key, duplicate)
    vals            text[],              -- mapped field values, in config order
    fingerprint     bigint,              -- what the ledger keeps once Selzy accepts the row
    is_local        boolean NOT NULL DEFAULT false,
    exported        boolean NOT NULL DEFAULT false,  -- in this export (either channel)
    remote_only     boolean NOT NULL DEFAULT false,  -- in the list, never pushed, absent locally
    code            text,                -- reported rows: syncd's or Selzy's last code
    message         text,
    writeback       boolean NOT NULL DEFAULT false,  -- a local row of this key differs from Selzy's view
    ledger          text,                -- how the ledger row changes: upsert | forget | NULL
    new_suppression text,                -- a suppression the ledger did not know yet
    status_changed  boolean NOT NULL DEFAULT false,  -- Selzy-side status change since the ledger's view
    decided         boolean NOT NULL DEFAULT false,  -- the decision differs from the ledger's last one
    change          text                 -- what Selzy's side changed (statuses, lists), for history
);
CREATE TEMP TABLE syncd_settle (
    key             text NOT NULL,
    local_fp        bigint,
    remote_key      text,
    remote_fp       bigint,
    member          boolean NOT NULL
);

-- name: build_plan
-- $1 job, $2 channel ('email' | 'phone'), $3 delete_mode, $4 remote_only.
-- $5..$8 (boolean): whether email_status, phone_status, email_availability, list_status are
-- written back (syncd_local.wb_* hold those local columns as text, NULL when not configured).
-- The local winners, the export and the job's ledger are joined ONCE (full joins: every key of
-- any of the three meets its other sides in one pass); pg_temp.syncd_decide gives each contact
-- its reason. One row per contact that needs an action, a report, a writeback or a change of
-- its ledger row; contacts already in step get none, so a run with nothing to change writes
-- nothing but this (empty) TEMP table.
WITH
dup AS (
    SELECT l.*, d.opt_out AS group_opt_out,
           pg_temp.syncd_fp(l.vals_fp, d.opt_out) AS group_fingerprint
    FROM syncd_dupkey AS d
    JOIN syncd_local_odd AS l ON l.key = d.key AND l.key_valid
),
dup_ranked AS (
    -- The winner: the row Selzy last accepted if any, else the smallest fingerprint.
    -- Deterministic and sticky, so a duplicate never flip-flops between two rows.
    SELECT dup.*,
           row_number() OVER (
               PARTITION BY dup.key
               ORDER BY (dup.group_fingerprint = c.pushed_fp) IS TRUE DESC,
                        dup.group_fingerprint, dup.key_raw
           ) AS rank
    FROM dup
    LEFT JOIN syncd.contacts AS c ON c.job = $1::text AND c.key = dup.key
),
winner AS (
    -- The values travel as the row's address in syncd_local (local_tid), not through the
    -- joins: `planned` fetches them for the few rows that need them.
    SELECT l.ctid AS local_tid, l.key, l.opt_out, l.fingerprint,
           l.wb_email_status, l.wb_phone_status, l.wb_email_availability, l.wb_list_status,
           false AS is_dup, NULL::text[] AS dup_vals
    FROM syncd_local AS l
    WHERE l.key_valid
      -- without duplicates (nearly always) no row is looked up: a one-time test
      AND CASE WHEN NOT EXISTS (SELECT 1 FROM syncd_dupkey) THEN true
               ELSE l.key NOT IN (SELECT d.key FROM syncd_dupkey AS d) END
    UNION ALL
    SELECT local_tid, key, group_opt_out, group_fingerprint,
           wb_email_status, wb_phone_status, wb_email_availability, wb_list_status, true,
           vals  -- a duplicate group's winner carries its values: its local_tid addresses the
                 -- whole syncd_local, which a narrowed plan replaces by the candidates' rows
    FROM dup_ranked
    WHERE rank = 1
),
joined AS (
    -- The local values and the wording of Selzy-side changes do not cross the joins: `planned`
    -- fetches them for the few contacts that need them.
    SELECT
        coalesce(w.key, r.key, c.key) AS key,
        w.key IS NOT NULL AS is_local,
        w.local_tid, w.dup_vals, w.opt_out, w.fingerprint, coalesce(w.is_dup, false) AS is_dup,
        -- the contact's digest row, should it need nothing (syncd_settle): its local row as
        -- it will be once written back, and its export row
        CASE WHEN w.key IS NOT NULL THEN pg_temp.syncd_local_qfp(
            w.fingerprint,
            CASE WHEN r.key IS NULL THEN w.wb_email_status
                 WHEN $5::boolean THEN r.email_status END,
            CASE WHEN r.key IS NULL THEN w.wb_phone_status
                 WHEN $6::boolean THEN r.phone_status END,
            CASE WHEN r.key IS NULL THEN w.wb_email_availability
                 WHEN $7::boolean THEN r.email_availability END,
            CASE WHEN r.key IS NULL THEN w.wb_list_status
                 WHEN $8::boolean THEN r.list_status END) END AS settled_local_fp,
        CASE WHEN $2::text = 'email' THEN r.email ELSE r.phone END AS remote_key,
        CASE WHEN r.key IS NOT NULL THEN pg_temp.syncd_view_fp(
            r.email, r.email_status, r.email_availability, r.email_list_ids,
            r.email_unsubscribed_list_ids, r.phone, r.phone_status, r.phone_list_ids,
            r.phone_unsubscribed_list_ids) END AS remote_fp,
        r.key IS NOT NULL AS exported,
        CASE WHEN r.list_status IN ('subscribed', 'unsubscribed') THEN r.list_status
             ELSE 'none' END AS membership,
        r.status, r.other_status, coalesce(r.elsewhere, false) AS elsewhere,
        -- a ledger row with something left to forget once neither side holds the contact
        c.key IS NOT NULL AND (c.suppressed_reason IS NULL OR c.pushed_fp IS NOT NULL
                               OR c.intent_action IS NOT NULL OR c.local_fp IS NOT NULL
                               OR c.remote_seen) AS forgettable,
        c.pushed_fp, c.intent_action, c.suppressed_reason, c.last_code, c.last_message,
        c.decision AS last_decision,
        -- what Selzy's side changed, for the history: worded here when it is short, by
        -- `planned` (from both rows, looked up) for a known contact whose view changed
        coalesce(c.remote_seen, false) AND r.key IS NOT NULL AS seen_again,
        CASE WHEN c.remote_seen AND r.key IS NULL THEN 'left the export'
             WHEN c.remote_seen THEN NULL
             WHEN c.key IS NOT NULL AND r.key IS NOT NULL
                  AND (c.list_status IS DISTINCT FROM r.list_status
                       OR r.status IN ('unsubscribed', 'blocked'))
                 THEN 'after syncd''s push: list_status ' || r.list_status
                      || coalesce(', ' || $2::text || '_status ' || r.status, '')
        END AS change_text,
        c.quarantined_at IS NOT NULL AND c.rejected_fp = w.fingerprint AS quarantined,
        -- the ledger's row is out of date: the local side or Selzy's changed since it was written
        (w.key IS NOT NULL AND c.local_fp IS DISTINCT FROM w.fingerprint)
            OR (w.key IS NULL AND c.local_fp IS NOT NULL) AS local_dirty,
        CASE
            WHEN r.key IS NULL THEN coalesce(c.remote_seen, false)
            WHEN c.key IS NULL OR NOT c.remote_seen THEN true
            ELSE (c.email, c.email_status, c.email_availability, c.email_list_ids,
                  c.email_unsubscribed_list_ids, c.phone, c.phone_status, c.phone_list_ids,
                  c.phone_unsubscribed_list_ids, c.list_status)
                 IS DISTINCT FROM
                 (r.email, r.email_status, r.email_availability, r.email_list_ids,
                  r.email_unsubscribed_list_ids, r.phone, r.phone_status, r.phone_list_ids,
                  r.phone_unsubscribed_list_ids, r.list_status)
        END AS remote_dirty,
        -- Selzy-side status changes: against the ledger's last view, or, for a contact syncd
        -- pushed since (never seen in an export yet), against what the push left it as
        r.key IS NOT NULL AND c.key IS NOT NULL AND (
            c.list_status IS DISTINCT FROM r.list_status
            OR (c.remote_seen AND (c.email_status, c.phone_status)
                                  IS DISTINCT FROM (r.email_status, r.phone_status))
            OR (NOT c.remote_seen AND r.status IN ('unsubscribed', 'blocked'))
        ) AS status_changed,
        CASE WHEN c.suppressed_reason IS NULL AND r.key IS NOT NULL THEN
            CASE WHEN r.status IN ('unsubscribed', 'blocked') THEN $2::text || '_status=' || r.status
                 WHEN r.list_status = 'unsubscribed' THEN 'list_status=unsubscribed' END
        END AS new_suppression,
        r.key IS NOT NULL AND w.key IS NOT NULL
            AND (w.wb_email_status, w.wb_phone_status, w.wb_email_availability, w.wb_list_status)
                IS DISTINCT FROM (
                    CASE WHEN $5::boolean THEN r.email_status END,
                    CASE WHEN $6::boolean THEN r.phone_status END,
                    CASE WHEN $7::boolean THEN r.email_availability END,
                    CASE WHEN $8::boolean THEN r.list_status END)
            AS writeback
    FROM winner AS w
    FULL JOIN syncd_remote AS r ON r.key = w.key
    FULL JOIN pg_temp.syncd_ledger($1::text) AS c ON c.key = coalesce(w.key, r.key)
),
decided AS (
    SELECT j.*,
           pg_temp.syncd_decide(
               CASE WHEN j.is_local THEN 'present' ELSE 'absent' END,
               coalesce(j.opt_out, false),
               j.fingerprint IS DISTINCT FROM j.pushed_fp,
               j.membership, j.status, j.other_status, j.elsewhere,
               j.suppressed_reason IS NOT NULL,
               j.pushed_fp IS NOT NULL,
               j.intent_action IS NOT NULL,
               coalesce(j.quarantined, false),
               $3::text, $4::text) AS reason
    FROM joined AS j
),
settled AS (
    -- the contacts that need nothing once this run is done: no action, no new suppression,
    -- nothing to forget, not a duplicate group (reported every run)
    INSERT INTO syncd_settle (key, local_fp, remote_key, remote_fp, member)
    SELECT key, settled_local_fp, remote_key, remote_fp, membership <> 'none'
    FROM decided
    WHERE reason LIKE 'none:%' AND new_suppression IS NULL AND NOT is_dup
      AND NOT (NOT is_local AND NOT exported AND forgettable)
),
planned AS (
    SELECT split_part(reason, ':', 1) AS action, reason, key, NULL::text AS key_raw,
           CASE WHEN is_local
                THEN coalesce(dup_vals, (SELECT l.vals FROM syncd_local AS l
                                         WHERE l.ctid = local_tid)) END AS vals,
           CASE WHEN is_local THEN fingerprint END AS fingerprint,
           is_local, exported,
           NOT is_local AND pushed_fp IS NULL AND intent_action IS NULL AND membership <> 'none'
               AS remote_only,
           CASE WHEN is_local AND split_part(reason, ':', 1) IN ('suppressed', 'quarantined')
                THEN coalesce(last_code, split_part(reason, ':', 2)) END AS code,
           CASE WHEN is_local AND split_part(reason, ':', 1) = 'quarantined'
                THEN last_message END AS message,
           writeback,
           CASE
               -- neither local nor exported: nothing left to update or delete; the row goes,
               -- unless it holds a suppression (kept for good)
               WHEN NOT is_local AND NOT exported AND forgettable THEN 'forget'
               WHEN local_dirty OR remote_dirty OR new_suppression IS NOT NULL
                    OR reason IS DISTINCT FROM last_decision THEN 'upsert'
           END AS ledger,
           new_suppression, status_changed,
           reason IS DISTINCT FROM last_decision AS decided,
           CASE WHEN seen_again AND remote_dirty THEN (
               -- both full rows, looked up by key for the few contacts whose view changed
               SELECT nullif(concat_ws(', ',
                   CASE WHEN c.email_status IS DISTINCT FROM r.email_status
                        THEN 'email_status ' || coalesce(c.email_status, '-') || ' -> '
                             || coalesce(r.email_status, '-') END,
                   CASE WHEN c.phone_status IS DISTINCT FROM r.phone_status
                        THEN 'phone_status ' || coalesce(c.phone_status, '-') || ' -> '
                             || coalesce(r.phone_status, '-') END,
                   CASE WHEN c.email_availability IS DISTINCT FROM r.email_availability
                        THEN 'email_availability ' || coalesce(c.email_availability, '-')
                             || ' -> ' || coalesce(r.email_availability, '-') END,
                   CASE WHEN c.list_status IS DISTINCT FROM r.list_status
                        THEN 'list_status ' || c.list_status || ' -> ' || r.list_status END,
                   CASE WHEN (c.email_unsubscribed_list_ids, c.phone_unsubscribed_list_ids)
                             IS DISTINCT FROM (r.email_unsubscribed_list_ids,
                                               r.phone_unsubscribed_list_ids)
                        THEN 'unsubscribed lists ' || coalesce(c.email_unsubscribed_list_ids, '-')
                             || '/' || coalesce(c.phone_unsubscribed_list_ids, '-') || ' -> '
                             || coalesce(r.email_unsubscribed_list_ids, '-') || '/'
                             || coalesce(r.phone_unsubscribed_list_ids, '-') END), '')
               FROM syncd.contacts AS c, syncd_remote AS r
               WHERE c.job = $1::text AND c.key = decided.key AND r.key = decided.key)
                ELSE change_text END AS change
    FROM decided
    WHERE reason NOT LIKE 'none:%' OR writeback OR local_dirty OR remote_dirty
       OR new_suppression IS NOT NULL OR (NOT is_local AND NOT exported AND forgettable)
       OR reason IS DISTINCT FROM last_decision
    UNION ALL
    SELECT 'duplicate', 'duplicate:shadowed', d.key, d.key_raw, NULL, d.group_fingerprint,
           true, r.key IS NOT NULL, false, 'duplicate_key',
           'another local row has the same normalised key',
           r.key IS NOT NULL
               AND (d.wb_email_status, d.wb_phone_status, d.wb_email_availability, d.wb_list_status)
                   IS DISTINCT FROM (
                       CASE WHEN $5::boolean THEN r.email_status END,
                       CASE WHEN $6::boolean THEN r.phone_status END,
                       CASE WHEN $7::boolean THEN r.email_availability END,
                       CASE WHEN $8::boolean THEN r.list_status END),
           NULL, NULL, false, false, NULL
    FROM dup_ranked AS d
    LEFT JOIN syncd_remote AS r ON r.key = d.key
    WHERE d.rank > 1
    UNION ALL
    SELECT 'invalid_key', 'invalid_key:unusable', l.key, l.key_raw, NULL, NULL, true,
           r.key IS NOT NULL, false,
           CASE WHEN $2::text = 'email' THEN 'invalid_email' ELSE 'invalid_phone' END,
           CASE WHEN l.key_raw = '' THEN 'no ' || $2::text || ' value'
                ELSE 'not a usable ' || $2::text END,
           r.key IS NOT NULL
               AND (l.wb_email_status, l.wb_phone_status, l.wb_email_availability, l.wb_list_status)
                   IS DISTINCT FROM (
                       CASE WHEN $5::boolean THEN r.email_status END,
                       CASE WHEN $6::boolean THEN r.phone_status END,
                       CASE WHEN $7::boolean THEN r.email_availability END,
                       CASE WHEN $8::boolean THEN r.list_status END),
           NULL, NULL, false, false, NULL
    FROM syncd_local_odd AS l
    LEFT JOIN syncd_remote AS r ON r.key = l.key AND l.key <> ''
    WHERE NOT l.key_valid
)
INSERT INTO syncd_plan (seq, action, reason, key, key_raw, vals, fingerprint, is_local, exported,
                        remote_only, code, message, writeback, ledger, new_suppression,
                        status_changed, decided, change)
SELECT row_number() OVER (ORDER BY action, key, key_raw), action, reason, key, key_raw, vals,
       fingerprint, is_local, exported, remote_only, code, message, writeback, ledger,
       new_suppression, status_changed, decided, change
FROM planned;

-- name: index_plan
-- No parameters.
CREATE INDEX syncd_plan_action_seq ON syncd_plan (action, seq);
ANALYZE syncd_plan;

-- name: plan_counts
-- No parameters. -> action, rows, remote_only (how many of them are remote-only contacts),
-- for the reported actions (not 'none'), and the bookkeeping totals as pseudo-actions:
-- '.writeback', '.ledger' (ledger rows to write) and '.status_changes'.
SELECT action, count(*) AS rows, count(*) FILTER (WHERE remote_only) AS remote_only
FROM syncd_plan
WHERE action <> 'none'
GROUP BY action
UNION ALL
SELECT '.writeback', count(*), 0 FROM syncd_plan WHERE writeback
UNION ALL
SELECT '.ledger', count(*), 0 FROM syncd_plan WHERE ledger IS NOT NULL
UNION ALL
SELECT '.status_changes', count(*), 0 FROM syncd_plan WHERE status_changed
ORDER BY action;

-- name: plan_reasons
-- No parameters. -> reason, rows: the plan per decision rule (the reported actions).
SELECT reason, count(*) AS rows FROM syncd_plan WHERE action <> 'none' GROUP BY reason ORDER BY 1;

-- name: plan_sample
-- $1 rows per action. -> action, key: the first keys of each action (raw value for invalid keys).
SELECT action, CASE WHEN action = 'invalid_key' THEN key_raw ELSE key END AS key
FROM (
    SELECT action, key, key_raw, row_number() OVER (PARTITION BY action ORDER BY seq) AS n
    FROM syncd_plan
    WHERE action <> 'none'
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
       CASE WHEN action = 'quarantined' THEN CASE WHEN exported THEN 'update' ELSE 'add' END
            ELSE 'none' END,
       action, code, message
FROM syncd_plan
WHERE action IN ('invalid_key', 'duplicate', 'quarantined');

-- name: ledger_sync
-- $1 job, $2 run_id. The plan's ledger changes in one statement: the local side
-- and Selzy's view (from TEMP syncd_remote) of every contact whose row is out of date, and new
-- suppressions. A contact that left the export keeps its last-seen values with remote_seen
-- false. -> rows written.
INSERT INTO syncd.contacts AS c (
    job, key, local_fp, local_changed_at, remote_seen, email, email_status, email_availability,
    email_list_ids, email_unsubscribed_list_ids, phone, phone_status, phone_list_ids,
    phone_unsubscribed_list_ids, list_status, remote_first_seen_at, remote_changed_at,
    remote_run, suppressed_reason, suppressed_at, decision, decided_run)
SELECT $1::text, p.key,
       CASE WHEN p.is_local THEN p.fingerprint END,
       CASE WHEN p.is_local THEN now() END,
       r.key IS NOT NULL, r.email, r.email_status, r.email_availability, r.email_list_ids,
       r.email_unsubscribed_list_ids, r.phone, r.phone_status, r.phone_list_ids,
       r.phone_unsubscribed_list_ids, coalesce(r.list_status, 'absent'),
       CASE WHEN r.key IS NOT NULL THEN now() END, now(), $2::bigint,
       p.new_suppression, CASE WHEN p.new_suppression IS NOT NULL THEN now() END,
       p.reason, $2::bigint
FROM syncd_plan AS p
LEFT JOIN syncd_remote AS r ON r.key = p.key
WHERE p.ledger = 'upsert'
ON CONFLICT (job, key) DO UPDATE SET
    local_fp = EXCLUDED.local_fp,
    local_changed_at = CASE WHEN c.local_fp IS NOT DISTINCT FROM EXCLUDED.local_fp
                            THEN c.local_changed_at ELSE EXCLUDED.local_changed_at END,
    remote_seen = EXCLUDED.remote_seen,
    email = CASE WHEN EXCLUDED.remote_seen THEN EXCLUDED.email ELSE c.email END,
    email_status = CASE WHEN EXCLUDED.remote_seen THEN EXCLUDED.email_status ELSE c.email_status END,
    email_availability = CASE WHEN EXCLUDED.remote_seen THEN EXCLUDED.email_availability
                              ELSE c.email_availability END,
    email_list_ids = CASE WHEN EXCLUDED.remote_seen THEN EXCLUDED.email_list_ids
                          ELSE c.email_list_ids END,
    email_unsubscribed_list_ids = CASE WHEN EXCLUDED.remote_seen
                                       THEN EXCLUDED.email_unsubscribed_list_ids
                                       ELSE c.email_unsubscribed_list_ids END,
    phone = CASE WHEN EXCLUDED.remote_seen THEN EXCLUDED.phone ELSE c.phone END,
    phone_status = CASE WHEN EXCLUDED.remote_seen THEN EXCLUDED.phone_status ELSE c.phone_status END,
    phone_list_ids = CASE WHEN EXCLUDED.remote_seen THEN EXCLUDED.phone_list_ids
                          ELSE c.phone_list_ids END,
    phone_unsubscribed_list_ids = CASE WHEN EXCLUDED.remote_seen
                                       THEN EXCLUDED.phone_unsubscribed_list_ids
                                       ELSE c.phone_unsubscribed_list_ids END,
    list_status = CASE WHEN EXCLUDED.remote_seen THEN EXCLUDED.list_status ELSE 'absent' END,
    remote_first_seen_at = coalesce(c.remote_first_seen_at, EXCLUDED.remote_first_seen_at),
    remote_changed_at = CASE
        WHEN c.remote_seen = EXCLUDED.remote_seen
             AND (c.email, c.email_status, c.email_availability, c.email_list_ids,
                  c.email_unsubscribed_list_ids, c.phone, c.phone_status, c.phone_list_ids,
                  c.phone_unsubscribed_list_ids, c.list_status)
                 IS NOT DISTINCT FROM
                 (EXCLUDED.email, EXCLUDED.email_status, EXCLUDED.email_availability,
                  EXCLUDED.email_list_ids, EXCLUDED.email_unsubscribed_list_ids, EXCLUDED.phone,
                  EXCLUDED.phone_status, EXCLUDED.phone_list_ids,
                  EXCLUDED.phone_unsubscribed_list_ids, EXCLUDED.list_status)
            THEN c.remote_changed_at ELSE EXCLUDED.remote_changed_at END,
    remote_run = CASE WHEN EXCLUDED.remote_seen THEN EXCLUDED.remote_run ELSE c.remote_run END,
    suppressed_reason = coalesce(c.suppressed_reason, EXCLUDED.suppressed_reason),
    suppressed_at = coalesce(c.suppressed_at, EXCLUDED.suppressed_at),
    decision = EXCLUDED.decision,
    decided_run = CASE WHEN c.decision IS NOT DISTINCT FROM EXCLUDED.decision
                       THEN c.decided_run ELSE EXCLUDED.decided_run END;

-- name: record_plan_history
-- $1 job, $2 run_id. The plan's changed decisions and the Selzy-side changes it saw, into
-- syncd.history (in the ledger_sync transaction). -> rows.
INSERT INTO syncd.history (job, key, run_id, kind, action, reason, message)
SELECT $1::text, key, $2::bigint, 'decision', action, reason,
       CASE WHEN action IN ('suppressed', 'quarantined') THEN message END
FROM syncd_plan
WHERE decided
UNION ALL
SELECT $1::text, key, $2::bigint, 'selzy_change', NULL, NULL, change
FROM syncd_plan
WHERE change IS NOT NULL;

-- name: prune_history
-- $1 job, $2 days. History rows of the job older than $2 days. -> rows deleted.
-- By the `at` index alone: the job's own index would mark every row of the job first (3M
-- at 1M contacts) to find the few old ones, which the planner does whenever the history's
-- statistics predate a big run; `IS TRUE` keeps the job test a filter.
DELETE FROM syncd.history
WHERE at < now() - make_interval(days => $2::int) AND (job = $1::text) IS TRUE;

-- name: vacuum_ledger
-- No parameters. After a run that rewrote much of the ledger (a first sync, the run after an
-- upgrade or a changed setting): every rewritten row left a dead version behind, which the next
-- run's reads would prune page by page (each page's first change after a checkpoint a full-page
-- image in the WAL), and the planner's statistics predate the run. What autovacuum would do
-- later, done now; a table another VACUUM holds is skipped, not waited for. Not in a
-- transaction.
VACUUM (SKIP_LOCKED, ANALYZE) syncd.contacts, syncd.contact_digest, syncd.contacts_touched;

-- name: ledger_forget
-- $1 job. Contacts neither in the local table nor in the export: nothing is left to update or
-- delete. Their row goes, unless it holds a suppression: that is kept for good, without the
-- pushed values and the in-flight intent. -> rows deleted.
WITH gone AS (
    SELECT key FROM syncd_plan WHERE ledger = 'forget'
), kept AS (
    UPDATE syncd.contacts AS c
    SET pushed_fp = NULL, pushed_action = NULL, intent_action = NULL, intent_fp = NULL,
        intent_run = NULL, intent_at = NULL, local_fp = NULL, local_changed_at = NULL,
        remote_seen = false, list_status = 'absent'
    FROM gone
    WHERE c.job = $1::text AND c.key = gone.key AND c.suppressed_reason IS NOT NULL
)
DELETE FROM syncd.contacts AS c
USING gone
WHERE c.job = $1::text AND c.key = gone.key AND c.suppressed_reason IS NULL;

-- name: import_bounds
-- No parameters. -> first, last: the seq range of the plan's `import` rows (contiguous: seq is
-- numbered by action), NULLs when there are none.
SELECT min(seq) AS first, max(seq) AS last FROM syncd_plan WHERE action = 'import';

-- name: import_rows
-- $1 first seq, $2 last seq. -> seq, key of the `import` rows in that range.
SELECT seq, key FROM syncd_plan WHERE action = 'import' AND seq BETWEEN $1::bigint AND $2::bigint
ORDER BY seq;

-- name: backend_pid
-- No parameters. -> the run connection's server process (bench/plan_profile.py reads its CPU time).
SELECT pg_backend_pid();

-- name: log_plans
-- No parameters. Every statement of this session that takes 100 ms or more logs its plan with
-- the actual row counts into the server log (bench/plan_profile.py --explain; needs a superuser).
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 100;
SET auto_explain.log_analyze = on;
SET auto_explain.log_timing = off;
SET auto_explain.log_buffers = on;
