-- The remote mirror (syncd.remote_contacts) and the suppression list, from the staged export
-- (TEMP syncd_remote of the run's connection). Real runs only, in one transaction.

-- name: mirror_sync
-- $1 job, $2 run_id. One full join of the export with the job's mirror finds the new, changed
-- and vanished contacts; only those are written (an unchanged contact costs no write, so a run
-- with nothing to change leaves no dead rows behind). -> status_changes (rows that were in the
-- mirror before and whose email_status, phone_status or list_status changed), removed (rows
-- no longer in the export, deleted).
WITH diff AS (
    SELECT r.*,
           m.key AS mirror_key,
           r.key IS NULL AS vanished,
           m.key IS NOT NULL AND r.key IS NOT NULL
               AND (m.email_status, m.phone_status, m.list_status)
                   IS DISTINCT FROM (r.email_status, r.phone_status, r.list_status)
               AS status_changed
    FROM syncd_remote AS r
    FULL JOIN (SELECT * FROM syncd.remote_contacts WHERE job = $1::text) AS m ON m.key = r.key
    WHERE m.key IS NULL
       OR r.key IS NULL
       OR (m.email, m.email_status, m.email_availability, m.email_list_ids,
           m.email_unsubscribed_list_ids, m.phone, m.phone_status, m.phone_list_ids,
           m.phone_unsubscribed_list_ids, m.list_status)
          IS DISTINCT FROM
          (r.email, r.email_status, r.email_availability, r.email_list_ids,
           r.email_unsubscribed_list_ids, r.phone, r.phone_status, r.phone_list_ids,
           r.phone_unsubscribed_list_ids, r.list_status)
),
upserted AS (
    INSERT INTO syncd.remote_contacts AS m (
        job, key, email, email_status, email_availability, email_list_ids,
        email_unsubscribed_list_ids, phone, phone_status, phone_list_ids,
        phone_unsubscribed_list_ids, list_status, run_id)
    SELECT $1::text, key, email, email_status, email_availability, email_list_ids,
           email_unsubscribed_list_ids, phone, phone_status, phone_list_ids,
           phone_unsubscribed_list_ids, list_status, $2::bigint
    FROM diff
    WHERE NOT vanished
    ON CONFLICT (job, key) DO UPDATE SET
        email = EXCLUDED.email,
        email_status = EXCLUDED.email_status,
        email_availability = EXCLUDED.email_availability,
        email_list_ids = EXCLUDED.email_list_ids,
        email_unsubscribed_list_ids = EXCLUDED.email_unsubscribed_list_ids,
        phone = EXCLUDED.phone,
        phone_status = EXCLUDED.phone_status,
        phone_list_ids = EXCLUDED.phone_list_ids,
        phone_unsubscribed_list_ids = EXCLUDED.phone_unsubscribed_list_ids,
        list_status = EXCLUDED.list_status,
        changed_at = now(),
        run_id = EXCLUDED.run_id
),
removed AS (
    DELETE FROM syncd.remote_contacts AS m
    USING diff
    WHERE diff.vanished AND m.job = $1::text AND m.key = diff.mirror_key
    RETURNING 1
)
SELECT (SELECT count(*) FROM diff WHERE status_changed) AS status_changes,
       (SELECT count(*) FROM removed) AS removed;

-- name: mirror_suppressions
-- $1 list_id (bigint), $2 channel, $3 run_id. Every key seen unsubscribed or blocked (status of
-- the channel) or unsubscribed from the list is remembered for good: never re-added.
INSERT INTO syncd.suppressions (list_id, channel, key, reason, run_id)
SELECT $1::bigint, $2::text, r.key,
       CASE WHEN r.status IN ('unsubscribed', 'blocked') THEN $2::text || '_status=' || r.status
            ELSE 'list_status=unsubscribed' END,
       $3::bigint
FROM syncd_remote AS r
WHERE (r.status IN ('unsubscribed', 'blocked') OR r.list_status = 'unsubscribed')
  AND NOT EXISTS (
      SELECT 1 FROM syncd.suppressions AS s
      WHERE s.list_id = $1::bigint AND s.channel = $2::text AND s.key = r.key)
ON CONFLICT DO NOTHING;
