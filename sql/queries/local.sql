-- The key and fingerprint rules, as session-local SQL functions (schema pg_temp) so that the local
-- source, the export, the writeback join and the import all use the very same expressions.
-- The statements that name the user's table and columns are built in syncd/db/local.py only.

-- name: create_key_functions
-- No parameters. Creates, on this connection only:
--   pg_temp.syncd_email_key(raw)      -> trimmed, lower-cased email ('' for NULL)
--   pg_temp.syncd_phone_key(raw)      -> '+' (if the number starts with one) and the digits ('' for NULL)
--   pg_temp.syncd_key_valid(ch, key)  -> whether a normalised key is usable for channel ch
--   pg_temp.syncd_vals_fp(names, vals)-> fingerprint of the mapped field names and values
--   pg_temp.syncd_fp(vals_fp, opt_out)-> the contact's fingerprint (what syncd.pushed keeps):
--                                        vals_fp itself unless the contact opted out (one md5 a row)
-- Single-expression SQL functions: the planner inlines them, so they cost what the expression costs.
CREATE OR REPLACE FUNCTION pg_temp.syncd_email_key(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(btrim(coalesce(raw, ''), E' \t\r\n')) $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_phone_key(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN left(btrim(coalesce(raw, ''), E' \t\r\n'), 1) = '+' THEN '+' ELSE '' END
                 || regexp_replace(coalesce(raw, ''), '[^0-9]', '', 'g') $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_key_valid(channel text, key text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN channel = 'email' THEN key ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'
                      ELSE key ~ '^\+?[0-9]{7,15}$' END $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_vals_fp(names text[], vals text[]) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT md5(names::text || vals::text)::uuid $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_fp(vals_fp uuid, opt_out boolean) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN opt_out THEN md5(vals_fp::text || ':opt_out')::uuid ELSE vals_fp END $$;

-- name: analyze_local
-- No parameters. Statistics for the planner after syncd_local was filled.
ANALYZE syncd_local;

-- name: local_stats
-- No parameters. -> local_count (rows in the source), local_valid (rows with a usable key).
SELECT count(*) AS local_count, count(*) FILTER (WHERE key_valid) AS local_valid
FROM syncd_local;
