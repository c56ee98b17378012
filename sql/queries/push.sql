-- What became of each importContacts batch, in the contact ledger (syncd.contacts) and
-- syncd.row_outcomes. Before a batch is sent its intent is written (committed); the answer is
-- recorded in ONE transaction right after Selzy gave it. So a crash never records a row Selzy
-- did not accept, never loses one it did, and leaves the rows of a batch whose answer was lost
-- marked in flight: the next run knows they *may* be in Selzy.

-- name: record_intent
-- $1 job, $2 run_id, $3 action, $4 keys (text[]), $5 fingerprints (bigint[]). -> nothing.
INSERT INTO syncd.contacts AS c (job, key, intent_action, intent_fp, intent_run, intent_at)
SELECT $1::text, u.key, $3::text, u.fingerprint, $2::bigint, now()
FROM unnest($4::text[], $5::bigint[]) AS u(key, fingerprint)
ON CONFLICT (job, key) DO UPDATE SET
    intent_action = EXCLUDED.intent_action,
    intent_fp = EXCLUDED.intent_fp,
    intent_run = EXCLUDED.intent_run,
    intent_at = EXCLUDED.intent_at;

-- name: clear_intent
-- $1 job, $2 keys (text[]). Selzy refused the whole call: none of it was applied. -> nothing.
UPDATE syncd.contacts
SET intent_action = NULL, intent_fp = NULL, intent_run = NULL, intent_at = NULL
WHERE job = $1::text AND key = ANY ($2::text[]);

-- name: record_accepted
-- $1 job, $2 run_id, $3 action, $4 keys (text[]), $5 fingerprints (bigint[]), $6 channel.
-- Selzy took these rows: settle the intent, remember the values (none after a deletion: nothing
-- of syncd's is left there), clear any rejection and quarantine, and note the list state the
-- push left the contact in, so that the next export's view of it counts as a change only if
-- Selzy's side changed it.
UPDATE syncd.contacts AS c
SET pushed_fp = CASE WHEN $3::text IN ('delete', 'exclude') THEN NULL ELSE u.fingerprint END,
    pushed_action = $3::text,
    pushed_at = now(),
    pushed_run = $2::bigint,
    intent_action = NULL, intent_fp = NULL, intent_run = NULL, intent_at = NULL,
    rejections = 0, rejected_fp = NULL, rejected_run = NULL, last_code = NULL, last_message = NULL,
    quarantined_at = NULL,
    list_status = CASE $3::text
        WHEN 'add' THEN 'subscribed'
        WHEN 'optout_list' THEN 'unsubscribed'
        WHEN 'delete' THEN 'absent'
        WHEN 'exclude' THEN 'absent'
        ELSE c.list_status END,
    email_status = CASE WHEN $3::text = 'optout_status' AND $6::text = 'email'
                        THEN 'unsubscribed' ELSE c.email_status END,
    phone_status = CASE WHEN $3::text = 'optout_status' AND $6::text = 'phone'
                        THEN 'unsubscribed' ELSE c.phone_status END
FROM unnest($4::text[], $5::bigint[]) AS u(key, fingerprint)
WHERE c.job = $1::text AND c.key = u.key;

-- name: record_rejected
-- $1 job, $2 run_id, $3 keys, $4 fingerprints (the rejected values), $5 codes, $6 messages,
-- $7 quarantine_after, $8 counts (boolean: a rejection that counts towards quarantine — rows of
-- adds and updates; never opt-outs or deletions). Consecutive rejections of the same values
-- count once per run; other values start over at 1. Reaching quarantine_after quarantines.
UPDATE syncd.contacts AS c
SET intent_action = NULL, intent_fp = NULL, intent_run = NULL, intent_at = NULL,
    rejections = CASE
        WHEN NOT $8::boolean THEN c.rejections
        WHEN c.rejected_fp IS DISTINCT FROM u.fingerprint THEN 1
        WHEN c.rejected_run = $2::bigint THEN c.rejections
        ELSE c.rejections + 1 END,
    rejected_fp = CASE WHEN $8::boolean THEN u.fingerprint ELSE c.rejected_fp END,
    last_code = u.code,
    last_message = u.message,
    rejected_run = CASE WHEN $8::boolean THEN $2::bigint ELSE c.rejected_run END,
    quarantined_at = CASE
        WHEN NOT $8::boolean THEN c.quarantined_at
        WHEN (CASE WHEN c.rejected_fp IS DISTINCT FROM u.fingerprint THEN 1
                   WHEN c.rejected_run = $2::bigint THEN c.rejections
                   ELSE c.rejections + 1 END) >= $7::int
            THEN coalesce(c.quarantined_at, now()) END
FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[]) AS u(key, fingerprint, code, message)
WHERE c.job = $1::text AND c.key = u.key;

-- name: record_push_history
-- $1 job, $2 run_id, $3 action, $4 batch (int, the run's batch number or NULL), $5 keys,
-- $6 outcomes (accepted | rejected | no_answer | refused), $7 codes, $8 messages. One history
-- row per contact of an answered (or unanswered) batch. -> nothing.
INSERT INTO syncd.history (job, key, run_id, kind, action, outcome, batch, code, message)
SELECT $1::text, u.key, $2::bigint, 'push', $3::text, u.outcome, $4::int, u.code, u.message
FROM unnest($5::text[], $6::text[], $7::text[], $8::text[]) AS u(key, outcome, code, message);
