-- The daemon's /healthz and /metrics read the run log (syncd.runs) through these blocks.

-- name: job_health
-- The last run and the last successful run of each job named in $1 (text[]); dry runs and the
-- fast opt-out passes (trigger 'opt_out': no export, opt-outs only) ignored.
-- Ages are computed by the server's clock so that a skewed host clock cannot fake freshness.
SELECT j.job,
       last.status                                  AS last_status,
       last.started_at                              AS last_started_at,
       last.finished_at                             AS last_finished_at,
       ok.finished_at                               AS last_success_at,
       extract(epoch FROM ok.finished_at)::float8   AS last_success_epoch,
       extract(epoch FROM now() - ok.finished_at)::float8 AS success_age_s
FROM unnest($1::text[]) AS j(job)
LEFT JOIN LATERAL (
    SELECT r.status, r.started_at, r.finished_at
    FROM syncd.runs AS r
    WHERE r.job = j.job AND NOT r.dry_run AND r.trigger <> 'opt_out'
    ORDER BY r.id DESC
    LIMIT 1
) AS last ON true
LEFT JOIN LATERAL (
    SELECT r.finished_at
    FROM syncd.runs AS r
    WHERE r.job = j.job AND NOT r.dry_run AND r.status = 'succeeded' AND r.trigger <> 'opt_out'
    ORDER BY r.id DESC
    LIMIT 1
) AS ok ON true
ORDER BY j.job;
