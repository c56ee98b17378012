-- Queries of `syncd status` (syncd/status.py): one job's schedule, runs and ledger counts, from
-- PostgreSQL only, so that the command works from any host.

-- name: job_overview
-- $1 job. -> the last run, the last success and what a daemon said of the next run; NULLs
-- where nothing is known. The fast opt-out passes (trigger 'opt_out') are not the job's runs
-- here: the last of them comes separately (optout_*).
SELECT
    j.next_run_at, j.scheduled_by, j.scheduled_at,
    last.id AS last_run_id, last.status AS last_status, last.started_at AS last_started_at,
    last.finished_at AS last_finished_at, last.error AS last_error,
    last.blocked_reason AS last_blocked_reason, last.dry_run AS last_dry_run,
    ok.id AS success_run_id, ok.finished_at AS success_at,
    optout.id AS optout_run_id, optout.status AS optout_status,
    optout.started_at AS optout_started_at, optout.opted_out AS optout_opted_out,
    optout.rejected AS optout_rejected, optout.error AS optout_error
FROM (SELECT $1::text AS name) AS wanted
LEFT JOIN syncd.jobs AS j ON j.name = wanted.name
LEFT JOIN LATERAL (
    SELECT * FROM syncd.runs AS r
    WHERE r.job = wanted.name AND r.trigger <> 'opt_out'
    ORDER BY r.id DESC LIMIT 1
) AS last ON true
LEFT JOIN LATERAL (
    SELECT * FROM syncd.runs AS r
    WHERE r.job = wanted.name AND r.status = 'succeeded' AND NOT r.dry_run
      AND r.trigger <> 'opt_out'
    ORDER BY r.id DESC LIMIT 1
) AS ok ON true
LEFT JOIN LATERAL (
    SELECT * FROM syncd.runs AS r
    WHERE r.job = wanted.name AND r.trigger = 'opt_out'
    ORDER BY r.id DESC LIMIT 1
) AS optout ON true;

-- name: job_ledger_counts
-- $1 job. -> contacts (ledger rows), quarantined, suppressed (a suppression remembered, or the
-- last decision withheld an add), in_flight (a push whose answer was never recorded) and
-- pending (the last decision is a push not yet accepted: rejected, blocked, failed runs).
SELECT
    count(*) AS contacts,
    count(*) FILTER (WHERE quarantined_at IS NOT NULL AND local_fp IS NOT NULL) AS quarantined,
    count(*) FILTER (WHERE suppressed_reason IS NOT NULL OR decision LIKE 'suppressed:%')
        AS suppressed,
    count(*) FILTER (WHERE intent_action IS NOT NULL) AS in_flight,
    count(*) FILTER (
        WHERE intent_action IS NOT NULL
           OR (split_part(decision, ':', 1) IN ('add', 'update', 'optout_status', 'optout_list',
                                                  'delete', 'exclude')
               AND coalesce(pushed_run, 0) < decided_run)
    ) AS pending
FROM syncd.contacts
WHERE job = $1::text;

-- name: record_schedule
-- $1 job, $2 next run (timestamptz or NULL: not scheduled), $3 host:pid of the daemon.
UPDATE syncd.jobs
SET next_run_at = $2::timestamptz, scheduled_by = $3::text, scheduled_at = now()
WHERE name = $1::text;
