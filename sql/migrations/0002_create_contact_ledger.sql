-- 0002: the contact ledger. One row per (job, key) holding everything syncd knows of a contact,
-- replacing syncd.pushed (what syncd pushed), syncd.remote_contacts (the mirror) and
-- syncd.suppressions. Their data is carried over; the mirror stays queryable as a view under
-- its documented name. Keys are re-normalised with the canonical rules (email trimmed of all
-- Unicode whitespace and lower-cased, phone `+` and digits), so a phone stored without its `+`
-- meets Selzy's `+79...` from now on.

-- The canonical key of a raw email / phone (the same rules as pg_temp.syncd_email_key and
-- syncd_phone_key of sql/queries/local.sql, which a test holds equal to syncd.reconcile.keys).
CREATE FUNCTION syncd.email_key(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(btrim(coalesce(raw, ''),
        E' \t\n\r\u000B\u000C\u0085\u00A0\u1680\u180E\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u200B\u200C\u200D\u2028\u2029\u202F\u205F\u2060\u3000\uFEFF')) $$;
CREATE FUNCTION syncd.phone_key(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif('+' || regexp_replace(coalesce(raw, ''), '[^0-9]', '', 'g'), '+'), '') $$;

-- What a job is about: recorded by every run, so that stored knowledge keyed by list (the
-- suppressions carried over from 0001) can be given to the job that owns that list.
ALTER TABLE syncd.jobs ADD COLUMN list_id bigint, ADD COLUMN match text;

CREATE TABLE syncd.contacts (
    job                          text NOT NULL,
    key                          text NOT NULL,   -- canonical key of the job's match channel
    -- the local side, as the last real run saw it
    local_fp                     bigint,          -- fingerprint of the mapped values and opt-out; NULL: not in the local table at the last run
    local_changed_at             timestamptz,     -- when local_fp last changed (NULL: absent)
    -- what syncd last pushed and Selzy accepted
    pushed_fp                    bigint,          -- NULL: nothing of syncd's is in Selzy
    pushed_action                text,
    pushed_at                    timestamptz,
    pushed_run                   bigint,
    -- a push in flight: written before the batch is sent, settled when its answer is recorded;
    -- left set by a crash, it means the contact *may* exist in Selzy with these values
    intent_action                text,
    intent_fp                    bigint,
    intent_run                   bigint,
    intent_at                    timestamptz,
    -- Selzy, as the last export showed it (both channels)
    remote_seen                  boolean NOT NULL DEFAULT false,  -- in the last export
    email                        text,
    email_status                 text,
    email_availability           text,
    email_list_ids               text,
    email_unsubscribed_list_ids  text,
    phone                        text,
    phone_status                 text,
    phone_list_ids               text,
    phone_unsubscribed_list_ids  text,
    list_status                  text NOT NULL DEFAULT 'absent'  -- this list, via the match channel
                                 CHECK (list_status IN ('subscribed', 'unsubscribed', 'absent')),
    remote_first_seen_at         timestamptz,
    remote_changed_at            timestamptz,
    remote_run                   bigint,
    -- consent: the first suppression seen on the match channel for this list; kept for good
    suppressed_reason            text,
    suppressed_at                timestamptz,
    -- rejections of syncd's values by Selzy, and quarantine
    rejections                   integer NOT NULL DEFAULT 0,  -- consecutive runs rejected
    rejected_fp                  bigint,
    rejected_run                 bigint,
    last_code                    text,
    last_message                 text,
    quarantined_at               timestamptz,
    PRIMARY KEY (job, key)
);
-- The few rows a crash left in flight, found without scanning the ledger.
CREATE INDEX contacts_intent_idx ON syncd.contacts (job) WHERE intent_action IS NOT NULL;

-- Suppressions of 0001 were kept per (list, channel, key), not per job: they wait here until a
-- run of the job owning that list and channel takes them into its ledger (then they are gone).
CREATE TABLE syncd.suppressions_carried (
    list_id        bigint NOT NULL,
    channel        text NOT NULL,
    key            text NOT NULL,
    reason         text NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    PRIMARY KEY (list_id, channel, key)
);

-- Carry the mirror and the pushed rows over, re-keyed canonically. A key that two old spellings
-- now share keeps the row pushed last (and the mirror row changed last).
INSERT INTO syncd.contacts (
    job, key, remote_seen, email, email_status, email_availability, email_list_ids,
    email_unsubscribed_list_ids, phone, phone_status, phone_list_ids, phone_unsubscribed_list_ids,
    list_status, remote_first_seen_at, remote_changed_at, remote_run)
SELECT DISTINCT ON (m.job, k.key)
       m.job, k.key, true, m.email, m.email_status, m.email_availability, m.email_list_ids,
       m.email_unsubscribed_list_ids, m.phone, m.phone_status, m.phone_list_ids,
       m.phone_unsubscribed_list_ids, m.list_status, m.first_seen_at, m.changed_at, m.run_id
FROM syncd.remote_contacts AS m
CROSS JOIN LATERAL (
    SELECT CASE WHEN m.key LIKE '%@%' THEN syncd.email_key(m.key) ELSE syncd.phone_key(m.key) END
) AS k(key)
WHERE k.key <> ''
ORDER BY m.job, k.key, m.changed_at DESC;

INSERT INTO syncd.contacts AS c (
    job, key, pushed_fp, pushed_at, pushed_run, rejections, rejected_fp, rejected_run, last_code,
    last_message, quarantined_at)
SELECT DISTINCT ON (p.job, k.key)
       p.job, k.key, p.fingerprint, p.pushed_at, p.run_id, p.rejections, p.rejected_fingerprint,
       CASE WHEN p.rejected_fingerprint IS NOT NULL THEN p.run_id END, p.last_code, p.last_message,
       p.quarantined_at
FROM syncd.pushed AS p
CROSS JOIN LATERAL (
    SELECT CASE WHEN p.key LIKE '%@%' THEN syncd.email_key(p.key) ELSE syncd.phone_key(p.key) END
) AS k(key)
WHERE k.key <> ''
ORDER BY p.job, k.key, p.pushed_at DESC NULLS LAST
ON CONFLICT (job, key) DO UPDATE SET
    pushed_fp = EXCLUDED.pushed_fp,
    pushed_at = EXCLUDED.pushed_at,
    pushed_run = EXCLUDED.pushed_run,
    rejections = EXCLUDED.rejections,
    rejected_fp = EXCLUDED.rejected_fp,
    rejected_run = EXCLUDED.rejected_run,
    last_code = EXCLUDED.last_code,
    last_message = EXCLUDED.last_message,
    quarantined_at = EXCLUDED.quarantined_at;

INSERT INTO syncd.suppressions_carried (list_id, channel, key, reason, first_seen_at)
SELECT s.list_id, s.channel,
       CASE WHEN s.channel = 'email' THEN syncd.email_key(s.key) ELSE syncd.phone_key(s.key) END,
       min(s.reason), min(s.first_seen_at)
FROM syncd.suppressions AS s
WHERE (CASE WHEN s.channel = 'email' THEN syncd.email_key(s.key)
            ELSE syncd.phone_key(s.key) END) <> ''
GROUP BY 1, 2, 3;

DROP TABLE syncd.remote_contacts;
DROP TABLE syncd.pushed;
DROP TABLE syncd.suppressions;

-- The remote mirror (PRODUCT.md): each contact of the job's list as the last export showed it,
-- under the name and columns 0001 gave it.
CREATE VIEW syncd.remote_contacts AS
SELECT job, key, email, email_status, email_availability, email_list_ids,
       email_unsubscribed_list_ids, phone, phone_status, phone_list_ids,
       phone_unsubscribed_list_ids, list_status, remote_first_seen_at AS first_seen_at,
       remote_changed_at AS changed_at, remote_run AS run_id
FROM syncd.contacts
WHERE remote_seen;
