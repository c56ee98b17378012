-- Queries of syncd.db.alerts: what syncd.alerts compares a finished run with.

-- name: alert_history
-- Run $2 (bigint) of job $1 (text), last, after the runs it is compared with, oldest first. For
-- each part of a job's state (syncd/alerts/model.py), the job's latest earlier non-dry run that
-- knew that part:
--   its health: a succeeded, failed or blocked run (an interrupted one says nothing);
--   its quarantine count: a succeeded or blocked run (a failed run may stop before its plan);
--   its rejected share: such a run that rejected nothing or pushed at least $3 (integer) rows
--   (syncd.alerts.model.REJECTED_MIN_ROWS: the share of a handful of rows is noise).
-- Fast opt-out passes (trigger 'opt_out': opt-outs only, no export) play no part.
-- A run playing several parts appears once. Run $2 is absent when it is not a finished,
-- non-dry run of $1. Every column (the counts are syncd.db.runs.COUNT_COLUMNS, whatever they
-- are), with planned and timings also as text.
SELECT *, planned::text AS planned_text, timings::text AS timings_text
FROM syncd.runs
WHERE id IN (
    (SELECT r.id FROM syncd.runs AS r
     WHERE r.id = $2::bigint AND r.job = $1::text AND NOT r.dry_run AND r.trigger <> 'opt_out'
       AND r.status <> 'running' AND r.finished_at IS NOT NULL)
    UNION
    (SELECT r.id FROM syncd.runs AS r
     WHERE r.job = $1::text AND r.id < $2::bigint AND NOT r.dry_run
       AND r.trigger <> 'opt_out' AND r.status IN ('succeeded', 'failed', 'blocked')
     ORDER BY r.id DESC LIMIT 1)
    UNION
    (SELECT r.id FROM syncd.runs AS r
     WHERE r.job = $1::text AND r.id < $2::bigint AND NOT r.dry_run
       AND r.trigger <> 'opt_out' AND r.status IN ('succeeded', 'blocked')
     ORDER BY r.id DESC LIMIT 1)
    UNION
    (SELECT r.id FROM syncd.runs AS r
     WHERE r.job = $1::text AND r.id < $2::bigint AND NOT r.dry_run
       AND r.trigger <> 'opt_out' AND r.status IN ('succeeded', 'blocked')
       AND (r.rejected = 0
            OR r.added + r.updated + r.opted_out + r.deleted + r.excluded + r.imported
               + r.rejected >= $3::integer)
     ORDER BY r.id DESC LIMIT 1)
)
ORDER BY id;
