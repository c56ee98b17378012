-- Selzy's event webhooks (syncd.events, syncd.event_queue; selzy-api.md §11): the receiver's
-- store, the worker's routing of stored events to the jobs they may concern, and the apply of
-- a contact's fetched truth (getContact) to the ledger and the history. The writeback into the
-- user's table is the template event_writeback (sql/templates/events.sql).

-- name: store_events
-- $1 digests (bytea[]), $2 event names (text[]), $3 event times (timestamptz[], NULL when
-- unparsable), $4 emails (text[]), $5 list ids (text[]: comma-separated, NULL when the event
-- names none), $6 the events as received (jsonb[]). Aligned arrays, one element per event; an
-- event whose digest is already stored (a replay, a duplicate delivery) is skipped.
-- -> stored: the new rows.
WITH stored AS (
    INSERT INTO syncd.events (digest, event_name, event_time, email, key, list_ids, data)
    SELECT u.digest, u.event_name, u.event_time, u.email, syncd.email_key(u.email),
           CASE WHEN u.list_ids IS NOT NULL
                THEN string_to_array(u.list_ids, ',')::bigint[] END,
           u.data
    FROM unnest($1::bytea[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::jsonb[])
         AS u(digest, event_name, event_time, email, list_ids, data)
    ON CONFLICT (digest) DO NOTHING
    RETURNING 1
)
SELECT count(*) AS stored FROM stored;

-- name: route_events
-- $1 job names (text[]), $2 their list ids (bigint[], aligned): the email-matched jobs.
-- $3 events at most (int). Takes the oldest stored events not routed yet (rows another worker
-- holds are skipped) and queues each for every job it may concern: one whose list it names, or
-- any job when it names none, or a job whose ledger holds the contact (an address-level change
-- concerns every list). A later event of a queued contact gives its row a new version.
-- -> events (routed), contacts (queue rows written).
WITH taken AS (
    SELECT e.id
    FROM syncd.events AS e
    WHERE e.routed_at IS NULL
    ORDER BY e.id
    LIMIT $3::int
    FOR UPDATE SKIP LOCKED
), routed AS (
    UPDATE syncd.events AS e
    SET routed_at = now()
    FROM taken
    WHERE e.id = taken.id
    RETURNING e.id, e.key, e.email, e.event_name, e.list_ids, e.received_at
), wanted AS (
    SELECT j.job, r.key, r.email, r.id, r.event_name, r.received_at
    FROM routed AS r
    CROSS JOIN unnest($1::text[], $2::bigint[]) AS j(job, list_id)
    WHERE r.key <> ''
      AND (r.list_ids IS NULL OR j.list_id = ANY (r.list_ids)
           OR EXISTS (SELECT 1 FROM syncd.contacts AS c WHERE c.job = j.job AND c.key = r.key))
), grouped AS (
    SELECT w.job, w.key,
           (array_agg(w.email ORDER BY w.id DESC))[1] AS email,
           count(*)::int AS events,
           (array_agg(w.event_name ORDER BY w.id DESC))[1] AS last_event,
           max(w.id) AS last_event_id,
           max(w.received_at) AS last_received_at
    FROM wanted AS w
    GROUP BY w.job, w.key
), queued AS (
    INSERT INTO syncd.event_queue AS q (job, key, email, events, last_event, last_event_id,
                                        last_received_at)
    SELECT g.job, g.key, g.email, g.events, g.last_event, g.last_event_id, g.last_received_at
    FROM grouped AS g
    ON CONFLICT (job, key) DO UPDATE SET
        email = EXCLUDED.email,
        version = nextval('syncd.event_queue_version_seq'),
        events = q.events + EXCLUDED.events,
        last_event = EXCLUDED.last_event,
        last_event_id = greatest(q.last_event_id, EXCLUDED.last_event_id),
        last_received_at = greatest(q.last_received_at, EXCLUDED.last_received_at)
    RETURNING 1
)
SELECT (SELECT count(*) FROM routed) AS events, (SELECT count(*) FROM queued) AS contacts;

-- name: discard_covered_events
-- $1 job. Queue rows whose newest event arrived before the job's last real run (succeeded or
-- blocked: both write the ledger and the writeback; not a fast opt-out pass, which exports
-- nothing) started: that run's export already showed the change. -> rows deleted.
DELETE FROM syncd.event_queue AS q
WHERE q.job = $1::text
  AND q.last_received_at < (
      SELECT r.started_at
      FROM syncd.runs AS r
      WHERE r.job = $1::text AND NOT r.dry_run AND r.status IN ('succeeded', 'blocked')
        AND r.trigger <> 'opt_out'
      ORDER BY r.id DESC
      LIMIT 1);

-- name: event_backlog
-- $1 job. -> contacts: the job's queue rows.
SELECT count(*) AS contacts FROM syncd.event_queue WHERE job = $1::text;

-- name: event_backlogs
-- No parameters. -> job, contacts, events, oldest (when the job's oldest row was queued).
SELECT q.job, count(*) AS contacts, sum(q.events)::bigint AS events, min(q.queued_at) AS oldest
FROM syncd.event_queue AS q
GROUP BY q.job
ORDER BY q.job;

-- name: events_pending
-- No parameters. -> events stored and not routed yet.
SELECT count(*) AS pending FROM syncd.events WHERE routed_at IS NULL;

-- name: take_event_queue
-- $1 job, $2 rows at most (int). -> key, email, version, last_event, events: the job's queue
-- rows, oldest first.
SELECT q.key, q.email, q.version, q.last_event, q.events
FROM syncd.event_queue AS q
WHERE q.job = $1::text
ORDER BY q.queued_at, q.key
LIMIT $2::int;

-- name: event_ledger
-- $1 job; aligned arrays, one element per contact fetched with getContact: $2 keys, $3 emails,
-- $4 email_status, $5 email_availability, $6 email_list_ids, $7 email_unsubscribed_list_ids
-- (comma-separated, NULL for none), $8 list_status of the job's list (text[] each).
-- Selzy's email-channel view of each contact into the ledger, as an export would leave it: a
-- contact the ledger does not hold is added only when it is in the job's list; a suppression
-- is recorded the first time it is seen and kept for good. The phone channel is left as it
-- is (getContact does not show it). -> key, change: what changed in the ledger's view, for
-- every contact whose row changed.
WITH fetched AS (
    SELECT u.*
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[])
         AS u(key, email, email_status, email_availability, email_list_ids,
              email_unsubscribed_list_ids, list_status)
), compared AS (
    SELECT f.*, c.key IS NOT NULL AS known,
           CASE WHEN c.suppressed_reason IS NULL THEN
               CASE WHEN f.email_status IN ('unsubscribed', 'blocked')
                    THEN 'email_status=' || f.email_status
                    WHEN f.list_status = 'unsubscribed' THEN 'list_status=unsubscribed' END
           END AS new_suppression,
           CASE WHEN c.key IS NULL THEN 'seen in an event: list_status ' || f.list_status
                                         || ', email_status ' || f.email_status
           ELSE nullif(concat_ws(', ',
               CASE WHEN c.email_status IS DISTINCT FROM f.email_status
                    THEN 'email_status ' || coalesce(c.email_status, '-') || ' -> '
                         || f.email_status END,
               CASE WHEN c.email_availability IS DISTINCT FROM f.email_availability
                    THEN 'email_availability ' || coalesce(c.email_availability, '-') || ' -> '
                         || f.email_availability END,
               CASE WHEN c.list_status IS DISTINCT FROM f.list_status
                    THEN 'list_status ' || c.list_status || ' -> ' || f.list_status END,
               CASE WHEN c.email_unsubscribed_list_ids IS DISTINCT FROM f.email_unsubscribed_list_ids
                    THEN 'unsubscribed lists ' || coalesce(c.email_unsubscribed_list_ids, '-')
                         || ' -> ' || coalesce(f.email_unsubscribed_list_ids, '-') END), '')
           END AS change,
           c.key IS NOT NULL
               AND (c.email, c.email_list_ids, c.remote_seen)
                   IS DISTINCT FROM (f.email, f.email_list_ids, f.list_status <> 'absent')
               AS quiet_change
    FROM fetched AS f
    LEFT JOIN syncd.contacts AS c ON c.job = $1::text AND c.key = f.key
), written AS (
    INSERT INTO syncd.contacts AS c (
        job, key, remote_seen, email, email_status, email_availability, email_list_ids,
        email_unsubscribed_list_ids, list_status, remote_first_seen_at, remote_changed_at,
        suppressed_reason, suppressed_at)
    SELECT $1::text, x.key, x.list_status <> 'absent', x.email, x.email_status,
           x.email_availability, x.email_list_ids, x.email_unsubscribed_list_ids, x.list_status,
           CASE WHEN x.list_status <> 'absent' THEN now() END, now(),
           x.new_suppression, CASE WHEN x.new_suppression IS NOT NULL THEN now() END
    FROM compared AS x
    WHERE (x.known AND (x.change IS NOT NULL OR x.quiet_change OR x.new_suppression IS NOT NULL))
       OR (NOT x.known AND x.list_status <> 'absent')
    ON CONFLICT (job, key) DO UPDATE SET
        remote_seen = EXCLUDED.remote_seen,
        email = EXCLUDED.email,
        email_status = EXCLUDED.email_status,
        email_availability = EXCLUDED.email_availability,
        email_list_ids = EXCLUDED.email_list_ids,
        email_unsubscribed_list_ids = EXCLUDED.email_unsubscribed_list_ids,
        list_status = EXCLUDED.list_status,
        remote_first_seen_at = coalesce(c.remote_first_seen_at, EXCLUDED.remote_first_seen_at),
        remote_changed_at = EXCLUDED.remote_changed_at,
        suppressed_reason = coalesce(c.suppressed_reason, EXCLUDED.suppressed_reason),
        suppressed_at = coalesce(c.suppressed_at, EXCLUDED.suppressed_at)
    RETURNING c.key
)
SELECT x.key, x.change
FROM compared AS x
WHERE x.change IS NOT NULL AND (x.known OR x.list_status <> 'absent');

-- name: event_history
-- $1 job; aligned arrays: $2 keys, $3 the event that brought each contact in (its action),
-- $4 what changed (message). One 'event' row per contact the apply changed. -> nothing.
INSERT INTO syncd.history (job, key, kind, action, outcome, message)
SELECT $1::text, u.key, 'event', u.action, 'applied', u.message
FROM unnest($2::text[], $3::text[], $4::text[]) AS u(key, action, message);

-- name: dequeue_events
-- $1 job; aligned arrays $2 keys (text[]), $3 versions (bigint[]): the queue rows about to be
-- applied. A row whose version changed since it was taken (a newer event came, or another
-- worker applied it) stays. -> key of every row deleted: only those are applied.
DELETE FROM syncd.event_queue AS q
USING unnest($2::text[], $3::bigint[]) AS u(key, version)
WHERE q.job = $1::text AND q.key = u.key AND q.version = u.version
RETURNING q.key;

-- name: latest_run_id
-- $1 job. -> id: the job's newest run (any kind), 0 when none.
SELECT coalesce(max(id), 0) AS id FROM syncd.runs WHERE job = $1::text;

-- name: run_ended_since
-- $1 job, $2 run id. -> ended: whether a run of the job newer than $2 has ended, a real one
-- (not a dry run, not a fast opt-out pass): the early run the worker asked for when $2 was the
-- job's newest, or any run that covered the same events.
SELECT EXISTS (
    SELECT 1
    FROM syncd.runs AS r
    WHERE r.job = $1::text AND r.id > $2::bigint AND NOT r.dry_run
      AND r.trigger <> 'opt_out' AND r.finished_at IS NOT NULL
) AS ended;

-- name: prune_events
-- $1 days (int). Routed events older than $1 days, and queue rows that waited that long (a job
-- no longer configured; the scheduled export covered them long ago). -> rows deleted.
WITH events AS (
    DELETE FROM syncd.events
    WHERE routed_at IS NOT NULL AND received_at < now() - make_interval(days => $1::int)
    RETURNING 1
), queue AS (
    DELETE FROM syncd.event_queue
    WHERE last_received_at < now() - make_interval(days => $1::int)
    RETURNING 1
)
SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM queue) AS pruned;
