-- The decision of syncd/reconcile/decision.py as one SQL expression, for a million contacts in
-- one statement. It must stay the same table as `decide()`: tests/integration/reconcile/
-- test_decision_sql.py runs every cell of the state space through both and compares.

-- name: create_decide_function
-- No parameters. Creates, on this connection only:
--   pg_temp.syncd_decide(local, opted_out, changed, membership, status, other_status,
--                        unsubscribed_elsewhere, suppressed_before, pushed, in_flight,
--                        quarantined, delete_mode, remote_only) -> reason code `action:why`
-- local: present | absent (duplicate losers and invalid keys are reported by build_plan itself);
-- membership: none | subscribed | unsubscribed. A single CASE: the planner inlines it.
CREATE OR REPLACE FUNCTION pg_temp.syncd_decide(
    local text, opted_out boolean, changed boolean, membership text, status text,
    other_status text, unsubscribed_elsewhere boolean, suppressed_before boolean,
    pushed boolean, in_flight boolean, quarantined boolean, delete_mode text, remote_only text
) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
SELECT CASE
    WHEN local = 'duplicate_loser' THEN 'duplicate:shadowed'
    WHEN local = 'invalid_key' THEN 'invalid_key:unusable'
    WHEN local = 'present' THEN CASE
        -- consent: an opt-out ends unmailable, never quarantined, never carrying profile data
        WHEN opted_out THEN CASE
            WHEN membership = 'subscribed'
                 AND coalesce(status, '') NOT IN ('unsubscribed', 'blocked') THEN CASE
                WHEN status IN ('active', 'inactive') THEN 'optout_status:opted_out'
                ELSE 'optout_list:opted_out' END
            WHEN membership = 'none' THEN 'suppressed:opted_out'
            ELSE 'none:unmailable' END
        WHEN membership = 'none' THEN CASE
            -- consent: never re-add an address unsubscribed or blocked, now or before
            WHEN coalesce(status, '') IN ('unsubscribed', 'blocked') THEN 'suppressed:status'
            WHEN suppressed_before THEN 'suppressed:remembered'
            WHEN quarantined THEN 'quarantined:rejected'
            ELSE 'add:new' END
        WHEN quarantined THEN 'quarantined:rejected'
        WHEN in_flight THEN 'update:unconfirmed'
        WHEN NOT pushed THEN 'update:adopt'
        WHEN changed THEN 'update:changed'
        ELSE 'none:in_step' END
    -- absent locally
    WHEN membership = 'none' THEN 'none:not_ours'
    WHEN pushed OR in_flight THEN CASE
        WHEN delete_mode = 'off' THEN 'keep:delete_off'
        -- consent: a suppression on any channel or list is never erased with delete=1
        WHEN coalesce(status, '') IN ('unsubscribed', 'blocked')
             OR coalesce(other_status, '') IN ('unsubscribed', 'blocked')
             OR membership = 'unsubscribed' OR unsubscribed_elsewhere OR suppressed_before
            THEN 'exclude:suppressed'
        WHEN delete_mode = 'exclude' THEN 'exclude:gone_locally'
        ELSE 'delete:gone_locally' END
    WHEN remote_only = 'keep' THEN 'keep:remote_only'
    WHEN remote_only = 'import' THEN 'import:remote_only'
    WHEN delete_mode = 'off' THEN 'keep:delete_off'
    WHEN coalesce(status, '') IN ('unsubscribed', 'blocked')
         OR coalesce(other_status, '') IN ('unsubscribed', 'blocked')
         OR membership = 'unsubscribed' OR unsubscribed_elsewhere OR suppressed_before
         OR delete_mode = 'exclude'
        THEN 'exclude:remote_only'
    ELSE 'delete:remote_only'
END
$$;
