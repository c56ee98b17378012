-- Templates of syncd.db.optouts: the fast opt-out pass's read of the user's table (a job's
-- `opt_out_latency`, between runs). Rendered by syncd.db.templates: a placeholder takes only a
-- quoted identifier or another rendered block, never data; values are `$n` parameters. The key,
-- the values and the fingerprint are the very expressions of a full run's local scan
-- (sql/templates/local.sql and the pg_temp functions of sql/queries/local.sql), so what a pass
-- records as pushed is what the next full run computes for the same row.

-- name: optout_candidates
-- The local rows whose opt-out column is true and whose ledger row remembers the contact as
-- mailable in the list: subscribed to it on the match channel, that channel's status neither
-- unsubscribed nor blocked (Facts.mailable of syncd/reconcile/decision.py, the only state in
-- which decide() pushes an opt-out; decide() still has the last word). Left out: contacts
-- whose opt-out a pass since the job's last full run saw rejected or refused (that run's
-- successor decides them again), keys that are not usable. One row per key (of duplicates,
-- the smallest fingerprint: whichever a pass records, the next full run keeps, as it prefers
-- the row whose fingerprint Selzy last accepted), the first $4 keys.
-- The bare column in the WHERE lets an index on the opt-out column serve the scan. The cost is
-- one ledger lookup per opted-out row, old or new (bench/README.md: about 0.1 s at 10,000
-- opted-out rows, 0.5 s at 100,000); the values and the fingerprint are computed for the rows
-- that pass the ledger's test only.
-- $1 text: the job; $2 text: the channel (email | phone); $3 text[]: the profile field names;
-- $4 integer: the most rows.
-- -> key, fingerprint, and the ledger's columns the decision reads: pushed_fp, intent_action,
-- suppressed_reason, quarantined_at, rejected_fp, list_status, email_status, phone_status,
-- email_unsubscribed_list_ids, phone_unsubscribed_list_ids, decision.
-- {{table}} ident: the user's table, schema-qualified
-- {{opted_out}} ident: the opt-out column, qualified by its alias (src.<column>)
-- {{key_raw}} fragment: local_key_raw of the match column
-- {{key}} fragment: local_email_key / local_phone_key of the match column
-- {{vals}} fragment: local_vals of the profile fields
SELECT DISTINCT ON (o.key)
       o.key,
       pg_temp.syncd_fp(pg_temp.syncd_vals_fp($3::text[], o.vals), true) AS fingerprint,
       c.pushed_fp, c.intent_action, c.suppressed_reason, c.quarantined_at, c.rejected_fp,
       c.list_status, c.email_status, c.phone_status, c.email_unsubscribed_list_ids,
       c.phone_unsubscribed_list_ids, c.decision
FROM (
    SELECT {{key}} AS key, {{key_raw}} AS key_raw, {{vals}} AS vals
    FROM {{table}} AS src
    WHERE {{opted_out}}::boolean
) AS o
JOIN syncd.contacts AS c ON c.job = $1::text AND c.key = o.key
WHERE c.list_status = 'subscribed'
  AND coalesce(CASE WHEN $2::text = 'email' THEN c.email_status ELSE c.phone_status END, '')
      NOT IN ('unsubscribed', 'blocked')
  AND pg_temp.syncd_key_valid($2::text, o.key)
  AND NOT EXISTS (
      SELECT 1
      FROM syncd.history AS h
      WHERE h.job = $1::text AND h.key = o.key AND h.kind = 'push'
        AND h.action IN ('optout_status', 'optout_list')
        AND h.outcome IN ('rejected', 'refused')
        AND h.run_id > (
            SELECT coalesce(max(r.id), 0)
            FROM syncd.runs AS r
            WHERE r.job = $1::text AND r.trigger <> 'opt_out' AND NOT r.dry_run))
ORDER BY o.key, fingerprint, o.key_raw
LIMIT $4::int;
