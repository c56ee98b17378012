-- The key and fingerprint rules, as session-local SQL functions (schema pg_temp) so that the local
-- source, the export, the writeback join and the import all use the very same expressions.
-- The statements that name the user's table and columns are templates (sql/templates/local.sql).

-- name: create_key_functions
-- No parameters. Creates, on this connection only:
--   pg_temp.syncd_email_key(raw)      -> syncd.email_key: trimmed of all Unicode whitespace
--                                        (no-break and zero-width too), lower-cased ('' for NULL)
--   pg_temp.syncd_phone_key(raw)      -> syncd.phone_key: '+' and the digits, whether or not the
--                                        value has a '+' ('' when it has no digit)
--   pg_temp.syncd_key_valid(ch, key)  -> whether a normalised key is usable for channel ch
--   pg_temp.syncd_vals_fp(names, vals)-> fingerprint of the mapped field names and values: a 64-bit
--                                        hash of their array literals, which quote every element
--                                        that needs it ('{a,b}' vs '{"a,b"}'), so no two
--                                        different lists of values serialise alike
--   pg_temp.syncd_fp(vals_fp, opt_out)-> the contact's fingerprint (what syncd.pushed keeps):
--                                        vals_fp itself unless the contact opted out
-- Single-expression SQL functions: the planner inlines them, so they cost what the expression
-- costs. An inlined function must not be declared less volatile than its body: array_out (the
-- text[] -> text cast) is STABLE, so syncd_vals_fp is declared STABLE, not IMMUTABLE (declared
-- IMMUTABLE it would run as a separate SQL function call per row, several times slower).
CREATE OR REPLACE FUNCTION pg_temp.syncd_email_key(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT syncd.email_key(raw) $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_phone_key(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT syncd.phone_key(raw) $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_key_valid(channel text, key text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN channel = 'email' THEN key ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'
                      ELSE key ~ '^\+[0-9]{7,15}$' END $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_vals_fp(names text[], vals text[]) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT hashtextextended(names::text || vals::text, 0) $$;
CREATE OR REPLACE FUNCTION pg_temp.syncd_fp(vals_fp bigint, opt_out boolean) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN opt_out THEN hashtextextended(vals_fp::text || ':opt_out', 0)
                      ELSE vals_fp END $$;

-- name: analyze_local
-- No parameters. Statistics for the planner after syncd_local was filled: the join columns only
-- (sampling the value arrays too costs more than it tells the planner).
ANALYZE syncd_local (key, key_valid);

-- name: writeback_hash_joins
-- No parameters; in the writeback's transaction. The writeback joins your table (no index on
-- the key expression) with the ledger's rows Selzy showed: only hash joins are safe there. Its
-- estimate of those rows comes from the ledger's statistics, which a run that just rewrote the
-- ledger outdates — after a first sync, (auto)analyze has seen no contact in Selzy yet, so the
-- planner expects one row and picks a nested loop that would scan a million rows a million
-- times.
SET LOCAL enable_nestloop = off;
