-- Binding plans (`syncd plan`, `syncd apply`): storing a dry run's complete plan, reading it
-- back as JSON lines, and holding a later run to exactly that plan.

-- name: store_plan
-- $1 job, $2 run_id, $3 config hash, $4 allow_mass_delete, $5 blocked_reason, $6 counts (jsonb).
-- Keeps every contact of TEMP syncd_plan that has an action or a report (not 'none'), in one
-- statement on the run's connection. -> the plan's id.
WITH plan AS (
    INSERT INTO syncd.plans (job, run_id, config_hash, allow_mass_delete, blocked_reason, counts)
    VALUES ($1::text, $2::bigint, $3::text, $4::boolean, $5::text, $6::jsonb)
    RETURNING id
), stored AS (
    INSERT INTO syncd.plan_rows (plan_id, seq, key, action, reason, vals, fingerprint)
    SELECT plan.id, p.seq, p.key, p.action, p.reason, p.vals, p.fingerprint
    FROM syncd_plan AS p CROSS JOIN plan
    WHERE p.action <> 'none'
)
SELECT id FROM plan;

-- name: link_run_plan
-- $1 run_id, $2 plan_id. The run that made (or applies) the plan.
UPDATE syncd.runs SET plan_id = $2::bigint WHERE id = $1::bigint;

-- name: get_plan
-- $1 plan_id. -> the plan's row and the status of the run that applied it, or none.
SELECT p.*, r.status AS applied_status
FROM syncd.plans AS p
LEFT JOIN syncd.runs AS r ON r.id = p.applied_run
WHERE p.id = $1::bigint;

-- name: plan_rows_page
-- $1 plan_id, $2 after seq, $3 rows. -> the next rows in seq order (streamed, for --out).
SELECT seq, key, action, reason, vals, fingerprint
FROM syncd.plan_rows
WHERE plan_id = $1::bigint AND seq > $2::bigint
ORDER BY seq
LIMIT $3::int;

-- name: restrict_to_plan
-- $1 plan_id. An `apply` run: every contact of the fresh plan (TEMP syncd_plan) whose action,
-- reason or values differ from the stored plan's becomes 'drift' and is not executed; so does
-- every stored contact whose fresh decision is something else. Reported rows (suppressed,
-- duplicates, ...) are only reported. -> drift (contacts), and a sample of their keys.
WITH fresh_drift AS (
    UPDATE syncd_plan AS p SET action = 'drift'
    WHERE p.action IN ('add', 'update', 'optout_status', 'optout_list', 'delete', 'exclude',
                       'import')
      AND NOT EXISTS (
          SELECT 1 FROM syncd.plan_rows AS r
          WHERE r.plan_id = $1::bigint AND r.key = p.key AND r.action = p.action
            AND r.reason = p.reason AND r.fingerprint IS NOT DISTINCT FROM p.fingerprint)
    RETURNING p.key
), stored_drift AS (
    SELECT r.key FROM syncd.plan_rows AS r
    WHERE r.plan_id = $1::bigint
      AND r.action IN ('add', 'update', 'optout_status', 'optout_list', 'delete', 'exclude',
                       'import')
      AND NOT EXISTS (
          SELECT 1 FROM syncd_plan AS p
          WHERE p.key = r.key AND p.action = r.action AND p.reason = r.reason
            AND p.fingerprint IS NOT DISTINCT FROM r.fingerprint)
), drifted AS (
    SELECT key FROM fresh_drift UNION SELECT key FROM stored_drift
)
SELECT (SELECT count(*) FROM drifted) AS drift,
       (SELECT coalesce(array_agg(key ORDER BY key), '{}')
        FROM (SELECT key FROM drifted ORDER BY key LIMIT 5) AS sample) AS sample;

-- name: mark_plan_applied
-- $1 plan_id, $2 run_id. Once only: -> the plan's id, or none when it was applied before by a
-- run that did not fail (a failed or interrupted apply leaves the plan applicable again).
UPDATE syncd.plans AS p SET applied_run = $2::bigint, applied_at = now()
WHERE p.id = $1::bigint
  AND (p.applied_run IS NULL
       OR EXISTS (SELECT 1 FROM syncd.runs AS r
                  WHERE r.id = p.applied_run AND r.status IN ('failed', 'interrupted')))
RETURNING id;
