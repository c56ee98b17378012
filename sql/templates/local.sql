-- Templates of syncd.db.local: every statement that names the user's table or columns, and the
-- expressions over one row of it (alias `src`). Rendered by syncd.db.templates: a placeholder
-- takes only a quoted identifier or another rendered block, never data; values are `$n`
-- parameters. Key normalisation and fingerprints are the pg_temp functions of
-- sql/queries/local.sql, so the local rows, the export and the writeback join agree by
-- construction.

-- name: local_scan
-- CREATE TEMP TABLE syncd_local: one scan of the user's table.
-- $1 text[]: the profile field names; $2 text: the channel (email | phone).
-- Columns: key_raw, key, key_valid, opt_out, vals, vals_fp, fingerprint, and wb_<source> (the
-- local writeback column as text; NULL when that writeback is not configured).
-- The OFFSET 0 fences evaluate each expression once per row, not once per use.
-- {{table}} ident: the user's table, schema-qualified
-- {{key_raw}} fragment: local_key_raw of the match column
-- {{key}} fragment: local_email_key / local_phone_key of the match column
-- {{opt_out}} fragment: local_opt_out, or local_no_opt_out
-- {{vals}} fragment: local_vals of the profile fields
-- {{wb_email_status}} fragment: local_text_column of the writeback column, or local_no_writeback
-- {{wb_phone_status}} fragment: as wb_email_status
-- {{wb_email_availability}} fragment: as wb_email_status
-- {{wb_list_status}} fragment: as wb_email_status
CREATE TEMP TABLE syncd_local AS
SELECT v.*, pg_temp.syncd_fp(v.vals_fp, v.opt_out) AS fingerprint
FROM (
    SELECT s.*, pg_temp.syncd_key_valid($2::text, s.key) AS key_valid,
           pg_temp.syncd_vals_fp($1::text[], s.vals) AS vals_fp
    FROM (
        SELECT {{key_raw}} AS key_raw, {{key}} AS key,
               {{opt_out}} AS opt_out, {{vals}} AS vals,
               {{wb_email_status}} AS wb_email_status,
               {{wb_phone_status}} AS wb_phone_status,
               {{wb_email_availability}} AS wb_email_availability,
               {{wb_list_status}} AS wb_list_status
        FROM {{table}} AS src
        OFFSET 0
    ) AS s
    OFFSET 0
) AS v;

-- name: local_writeback
-- UPDATE the writeback columns from the mirror where they differ, for the keys the plan flagged
-- (syncd_plan.writeback). $1 text: the job. -> UPDATE n
-- {{table}} ident: the user's table, schema-qualified
-- {{assignments}} fragment: local_assignment per writeback column, joined
-- {{key}} fragment: local_email_key / local_phone_key of the match column
-- {{local_values}} fragment: local_text_column per writeback column, joined
-- {{remote_values}} fragment: m.<source> per writeback column, joined (same order)
UPDATE {{table}} AS src SET {{assignments}}
FROM syncd.remote_contacts AS m
WHERE m.job = $1::text AND m.key = {{key}}
  AND m.key IN (SELECT p.key FROM syncd_plan AS p WHERE p.writeback)
  AND ROW({{local_values}}) IS DISTINCT FROM ROW({{remote_values}});

-- name: local_import
-- INSERT the plan's `import` contacts with seq in [$4, $5] into the user's table and record
-- their fingerprint in the ledger as read back from the inserted rows (defaults included), so
-- the next run pushes nothing over Selzy's own field values.
-- $1 text: the job; $2 text[]: the profile field names; $3 bigint: the run id;
-- $4, $5 bigint: the first and last plan seq of the chunk. -> imported (one row, one column)
-- {{table}} ident: the user's table, schema-qualified
-- {{targets}} fragment: the columns filled, joined (the match column first)
-- {{values}} fragment: p.key, then the syncd_remote columns that fill the other targets, joined
-- {{key}} fragment: local_email_key / local_phone_key of the match column (alias src)
-- {{vals}} fragment: local_vals of the profile fields (alias src)
-- {{opt_out}} fragment: local_opt_out, or local_no_opt_out (alias src)
WITH inserted AS (
    INSERT INTO {{table}} AS src ({{targets}})
    SELECT {{values}}
    FROM syncd_plan AS p JOIN syncd_remote AS r ON r.key = p.key
    WHERE p.action = 'import' AND p.seq BETWEEN $4::bigint AND $5::bigint
    ORDER BY p.seq
    RETURNING {{key}} AS key,
        pg_temp.syncd_fp(pg_temp.syncd_vals_fp($2::text[], {{vals}}), {{opt_out}}) AS fingerprint
), recorded AS (
    INSERT INTO syncd.contacts AS c (job, key, pushed_fp, pushed_action, pushed_at,
                                     pushed_run, local_fp, local_changed_at)
    SELECT DISTINCT ON (key) $1::text, key, fingerprint, 'import', now(), $3::bigint,
           fingerprint, now()
    FROM inserted
    ORDER BY key, fingerprint
    ON CONFLICT (job, key) DO UPDATE SET
        pushed_fp = EXCLUDED.pushed_fp, pushed_action = EXCLUDED.pushed_action,
        pushed_at = EXCLUDED.pushed_at, pushed_run = EXCLUDED.pushed_run,
        local_fp = EXCLUDED.local_fp, local_changed_at = EXCLUDED.local_changed_at,
        rejections = 0, rejected_fp = NULL, rejected_run = NULL,
        last_code = NULL, last_message = NULL, quarantined_at = NULL
)
SELECT count(*) FROM inserted;

-- name: local_text_column
-- A column as text.
-- {{column}} ident: the column, qualified by its alias (src.<column>)
{{column}}::text

-- name: local_key_raw
-- The match column as text, '' for NULL.
-- {{column}} ident: the match column, qualified by its alias
coalesce({{column}}::text, '')

-- name: local_email_key
-- An email address normalised to its key (sql/queries/local.sql: pg_temp.syncd_email_key).
-- {{value}} fragment: local_text_column of the column
pg_temp.syncd_email_key({{value}})

-- name: local_phone_key
-- A phone number normalised to its key (sql/queries/local.sql: pg_temp.syncd_phone_key).
-- {{value}} fragment: local_text_column of the column
pg_temp.syncd_phone_key({{value}})

-- name: local_profile_value
-- A profile field's value as sent to Selzy: its text, '' for NULL.
-- {{value}} fragment: local_text_column of the column
coalesce({{value}}, '')

-- name: local_vals
-- The profile field values, in the order of the profile field names ($n text[] of the statement).
-- {{values}} fragment: per field local_profile_value, or local_email_key / local_phone_key for
-- the other channel's address (sent normalised), joined
ARRAY[{{values}}]::text[]

-- name: local_opt_out
-- The opt-out column; NULL counts as not opted out.
-- {{column}} ident: the opt_out column, qualified by its alias
coalesce({{column}}::boolean, false)

-- name: local_no_opt_out
-- The job has no opt_out_column: nobody opted out.
false

-- name: local_no_writeback
-- A writeback key the job does not map.
NULL::text

-- name: local_assignment
-- One writeback column set from the mirror.
-- {{column}} ident: the writeback column (unqualified: a SET target)
-- {{value}} ident: the mirror's column (m.<source>)
{{column}} = {{value}}

-- name: local_explain
-- `syncd explain`: the rows of the user's table whose key is $1, with what the sync would make
-- of them. $1 text: the canonical key; $2 text[]: the profile field names.
-- -> key_raw, opt_out, vals, shown (text[]: the configured columns, in the order given), and
-- fingerprint (as a duplicate group's winner is chosen: an opt-out in any row counts for all).
-- {{table}} ident: the user's table, schema-qualified
-- {{key_raw}} fragment: local_key_raw of the match column
-- {{key}} fragment: local_email_key / local_phone_key of the match column
-- {{opt_out}} fragment: local_opt_out, or local_no_opt_out
-- {{vals}} fragment: local_vals of the profile fields
-- {{shown}} fragment: local_text_column per configured column, joined
SELECT s.key_raw, s.opt_out, s.vals, s.shown,
       pg_temp.syncd_fp(pg_temp.syncd_vals_fp($2::text[], s.vals), bool_or(s.opt_out) OVER ())
           AS fingerprint
FROM (
    SELECT {{key_raw}} AS key_raw, {{opt_out}} AS opt_out, {{vals}} AS vals,
           ARRAY[{{shown}}]::text[] AS shown
    FROM {{table}} AS src
    WHERE {{key}} = $1::text
) AS s
ORDER BY s.key_raw;
