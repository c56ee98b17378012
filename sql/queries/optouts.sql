-- Queries of syncd.db.optouts: the fast opt-out pass's own writes to syncd's tables (the read of
-- the user's table is the optout_candidates template, sql/templates/optouts.sql). A pass that
-- finds nothing to push writes nothing.

-- name: optout_job_id
-- $1 job. -> id (syncd.jobs.id: the job lock's key), no row before the job's first run. Read
-- only, unlike ensure_job: a pass must not write when it has nothing to do.
SELECT id FROM syncd.jobs WHERE name = $1::text;

-- name: optout_decisions
-- $1 job, $2 run_id (the pass's), $3 keys (text[]), $4 reasons (text[], aligned: decision.py's
-- codes). The pass's decisions into the ledger before anything is pushed, as ledger_sync does
-- for a full run: `decision`, and `decided_run` when the decision changed; plus one 'decision'
-- history row per contact whose decision changed. Every CTE reads the statement's snapshot, so
-- `before` holds the decisions as they were. -> INSERT n (history rows).
WITH u AS (
    SELECT d.key, d.reason FROM unnest($3::text[], $4::text[]) AS d(key, reason)
), before AS (
    SELECT c.key, c.decision
    FROM syncd.contacts AS c
    JOIN u ON u.key = c.key
    WHERE c.job = $1::text
), updated AS (
    UPDATE syncd.contacts AS c
    SET decision = u.reason,
        decided_run = CASE WHEN c.decision IS NOT DISTINCT FROM u.reason THEN c.decided_run
                           ELSE $2::bigint END
    FROM u
    WHERE c.job = $1::text AND c.key = u.key
    RETURNING c.key
)
INSERT INTO syncd.history (job, key, run_id, kind, action, reason)
SELECT $1::text, u.key, $2::bigint, 'decision', split_part(u.reason, ':', 1), u.reason
FROM u
JOIN before AS b ON b.key = u.key
WHERE b.decision IS DISTINCT FROM u.reason
  AND u.key IN (SELECT key FROM updated);
