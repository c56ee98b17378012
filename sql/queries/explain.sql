-- Queries of `syncd explain` (syncd/explain.py): everything syncd keeps of one contact of one
-- job. Read-only. The user's table is read through sql/templates/local.sql (local_explain).

-- name: explain_ledger
-- $1 job, $2 canonical key. -> the ledger row, or none.
SELECT * FROM syncd.contacts WHERE job = $1::text AND key = $2::text;

-- name: explain_key_by_other_channel
-- $1 job, $2 channel of the address given ('email' | 'phone'), $3 its canonical form. -> the
-- ledger keys whose other-channel address (as the last export showed it) is that one.
SELECT key FROM syncd.contacts
WHERE job = $1::text
  AND CASE WHEN $2::text = 'email' THEN syncd.email_key(email) ELSE syncd.phone_key(phone) END
      = $3::text
ORDER BY key
LIMIT 5;

-- name: explain_history
-- $1 job, $2 key, $3 rows at most. -> the contact's history, oldest first (the last $3 rows).
SELECT * FROM (
    SELECT h.id, h.at, h.run_id, h.kind, h.action, h.reason, h.outcome, h.batch, h.code,
           h.message
    FROM syncd.history AS h
    WHERE h.job = $1::text AND h.key = $2::text
    ORDER BY h.id DESC
    LIMIT $3::int
) AS recent
ORDER BY id;

-- name: explain_outcomes
-- $1 job, $2 key, $3 rows at most. -> per-row outcomes of the contact (rejections with Selzy's
-- code and message, quarantine, duplicates), newest first.
SELECT o.run_id, o.created_at, o.action, o.outcome, o.code, o.message
FROM syncd.row_outcomes AS o
WHERE o.job = $1::text AND o.key = $2::text
ORDER BY o.id DESC
LIMIT $3::int;
