-- Queries of syncd.db.runs: jobs, their locks, the run log and per-row outcomes.

-- name: ensure_job
-- The id of job $1 (text: the job's name), created on first use, with $2 its list_id (bigint)
-- and $3 its match channel as this run knows them. DO UPDATE rather than DO NOTHING so that
-- RETURNING gives the id even when the row exists or a concurrent insert won.
INSERT INTO syncd.jobs (name, list_id, match) VALUES ($1, $2::bigint, $3::text)
ON CONFLICT (name) DO UPDATE SET list_id = EXCLUDED.list_id, match = EXCLUDED.match
RETURNING id;

-- name: try_lock_job
-- Session-level advisory lock of one job; true when acquired, false when another session has it.
-- $1 integer: syncd.db.runs.JOB_LOCK_NAMESPACE; $2 integer: the job's id (syncd.jobs.id).
SELECT pg_try_advisory_lock($1::integer, $2::integer);

-- name: unlock_job
-- Release the job's lock; false when this session did not hold it.
-- $1 integer: syncd.db.runs.JOB_LOCK_NAMESPACE; $2 integer: the job's id.
SELECT pg_advisory_unlock($1::integer, $2::integer);

-- name: start_run
-- Record a new 'running' run and, in the same statement, mark the job's older 'running' runs
-- 'interrupted' (the caller holds the job's lock, so whoever ran them is gone). The UPDATE cannot
-- see the row inserted beside it: both read the snapshot taken when the statement started.
-- $1 text: job; $2 boolean: dry_run; $3 boolean: allow_mass_delete; $4 text: trigger
-- (cli | schedule | startup | events | plan | apply | opt_out: a fast opt-out pass); $5 text:
-- host name; $6 integer: process id.
-- Returns the new run's id and the ids of the runs it marked interrupted.
WITH new_run AS (
    INSERT INTO syncd.runs (job, dry_run, allow_mass_delete, trigger, host, pid)
    VALUES ($1, $2, $3, $4, $5, $6)
    RETURNING id
), stale AS (
    UPDATE syncd.runs
    SET status = 'interrupted',
        finished_at = now(),
        error = 'the process running it stopped (found by run ' || (SELECT id FROM new_run) || ')'
    WHERE job = $1 AND status = 'running'
    RETURNING id
)
SELECT (SELECT id FROM new_run) AS id,
       coalesce((SELECT array_agg(id ORDER BY id) FROM stale), '{}') AS interrupted;

-- name: heartbeat
-- $1 bigint: run id.
UPDATE syncd.runs SET heartbeat_at = now() WHERE id = $1 AND status = 'running';

-- name: finish_run
-- Close a run. Counts absent from $3 keep their current value.
-- $1 bigint: run id; $2 text: final status; $3 jsonb: counts {column: integer};
-- $4 jsonb: planned {action: integer}; $5 jsonb: timings {phase: seconds};
-- $6 text: blocked_reason or NULL; $7 text: error or NULL.
UPDATE syncd.runs SET
    status = $2,
    finished_at = now(),
    heartbeat_at = now(),
    local_count = coalesce(($3::jsonb ->> 'local_count')::integer, local_count),
    remote_count = coalesce(($3::jsonb ->> 'remote_count')::integer, remote_count),
    added = coalesce(($3::jsonb ->> 'added')::integer, added),
    updated = coalesce(($3::jsonb ->> 'updated')::integer, updated),
    deleted = coalesce(($3::jsonb ->> 'deleted')::integer, deleted),
    excluded = coalesce(($3::jsonb ->> 'excluded')::integer, excluded),
    opted_out = coalesce(($3::jsonb ->> 'opted_out')::integer, opted_out),
    imported = coalesce(($3::jsonb ->> 'imported')::integer, imported),
    rejected = coalesce(($3::jsonb ->> 'rejected')::integer, rejected),
    quarantined = coalesce(($3::jsonb ->> 'quarantined')::integer, quarantined),
    duplicates = coalesce(($3::jsonb ->> 'duplicates')::integer, duplicates),
    remote_only = coalesce(($3::jsonb ->> 'remote_only')::integer, remote_only),
    suppressed = coalesce(($3::jsonb ->> 'suppressed')::integer, suppressed),
    status_changes = coalesce(($3::jsonb ->> 'status_changes')::integer, status_changes),
    written_back = coalesce(($3::jsonb ->> 'written_back')::integer, written_back),
    api_calls = coalesce(($3::jsonb ->> 'api_calls')::integer, api_calls),
    drift = coalesce(($3::jsonb ->> 'drift')::integer, drift),
    planned = $4::jsonb,
    timings = $5::jsonb,
    blocked_reason = $6,
    error = $7
WHERE id = $1;

-- name: prune_outcomes
-- Forget per-row outcomes older than $1 (integer) days.
DELETE FROM syncd.row_outcomes WHERE created_at < now() - make_interval(days => $1::integer);

-- name: recent_runs
-- The newest runs first. $1 text: job name, or NULL for every job; $2 integer: how many.
SELECT id, job, started_at, finished_at, heartbeat_at, status, dry_run, allow_mass_delete,
       trigger, host, pid,
       local_count, remote_count, added, updated, deleted, excluded, opted_out, imported,
       rejected, quarantined, duplicates, remote_only, suppressed, status_changes,
       written_back, api_calls, drift, plan_id,
       planned::text AS planned, timings::text AS timings, blocked_reason, error
FROM syncd.runs
WHERE $1::text IS NULL OR job = $1::text
ORDER BY id DESC
LIMIT $2;

-- name: expected_export_seconds
-- How long an export of job $1 (text) takes, in seconds: the median of timings.export over the
-- job's last 5 succeeded, non-dry runs that recorded one; NULL when there is none. The median, so
-- that one odd run (a slow Selzy, a list that just doubled) does not move it.
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS seconds
FROM (
    SELECT (timings ->> 'export')::float8 AS seconds
    FROM syncd.runs
    WHERE job = $1::text
      AND status = 'succeeded'
      AND NOT dry_run
      AND jsonb_typeof(timings -> 'export') = 'number'
    ORDER BY id DESC
    LIMIT 5
) AS recent;

-- name: run_in_progress
-- $1 text: job. -> in_progress: whether a run of the job (not a fast opt-out pass) is going on in
-- some process: `running`, with a heartbeat in the last minute (a run beats every 15 s). Asked
-- by a run that finds the job's lock held: a run makes it `busy` at once, a short holder (the
-- event worker, a fast opt-out pass) is waited for.
SELECT EXISTS (
    SELECT 1 FROM syncd.runs
    WHERE job = $1::text AND status = 'running' AND trigger <> 'opt_out'
      AND heartbeat_at > now() - interval '1 minute'
) AS in_progress;
