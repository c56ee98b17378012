-- What became of each importContacts batch: syncd.pushed (fingerprints, rejections, quarantine)
-- and syncd.row_outcomes. Each batch is recorded in ONE transaction right after Selzy answered,
-- so a crash never records a row Selzy did not accept, and never loses one it did.

-- name: record_accepted
-- $1 job, $2 run_id, $3 keys (text[]), $4 fingerprints (bigint[]). Selzy took these rows: remember
-- the values, clear any rejection history and quarantine.
INSERT INTO syncd.pushed AS p (job, key, fingerprint, pushed_at, run_id)
SELECT $1::text, u.key, u.fingerprint, now(), $2::bigint
FROM unnest($3::text[], $4::bigint[]) AS u(key, fingerprint)
ON CONFLICT (job, key) DO UPDATE SET
    fingerprint = EXCLUDED.fingerprint,
    pushed_at = EXCLUDED.pushed_at,
    run_id = EXCLUDED.run_id,
    rejections = 0,
    rejected_fingerprint = NULL,
    last_code = NULL,
    last_message = NULL,
    quarantined_at = NULL;

-- name: forget_pushed
-- $1 job, $2 keys (text[]). Deleted or excluded contacts: nothing pushed remains to track.
DELETE FROM syncd.pushed WHERE job = $1::text AND key = ANY ($2::text[]);

-- name: record_rejected
-- $1 job, $2 run_id, $3 keys, $4 fingerprints (the rejected values), $5 codes, $6 messages,
-- $7 quarantine_after. Consecutive rejections of the same values count once per run; other
-- values start over at 1. Reaching quarantine_after quarantines the contact.
INSERT INTO syncd.pushed AS p (
    job, key, run_id, rejections, rejected_fingerprint, last_code, last_message, quarantined_at)
SELECT $1::text, u.key, $2::bigint, 1, u.fingerprint, u.code, u.message,
       CASE WHEN 1 >= $7::int THEN now() END
FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[]) AS u(key, fingerprint, code, message)
ON CONFLICT (job, key) DO UPDATE SET
    rejections = CASE
        WHEN p.rejected_fingerprint IS DISTINCT FROM EXCLUDED.rejected_fingerprint THEN 1
        WHEN p.run_id = EXCLUDED.run_id THEN p.rejections
        ELSE p.rejections + 1 END,
    run_id = EXCLUDED.run_id,
    rejected_fingerprint = EXCLUDED.rejected_fingerprint,
    last_code = EXCLUDED.last_code,
    last_message = EXCLUDED.last_message,
    quarantined_at = CASE
        WHEN (CASE
                WHEN p.rejected_fingerprint IS DISTINCT FROM EXCLUDED.rejected_fingerprint THEN 1
                WHEN p.run_id = EXCLUDED.run_id THEN p.rejections
                ELSE p.rejections + 1 END) >= $7::int
            THEN coalesce(p.quarantined_at, now()) END;
