-- Templates of syncd.db.events: the writeback of contacts an event worker fetched with
-- getContact, into the user's table. Rendered by syncd.db.templates (a placeholder takes only a
-- quoted identifier or another rendered block; values are `$n` parameters). The key is
-- syncd.email_key, the schema's twin of pg_temp.syncd_email_key (a test holds them equal), as
-- the event worker's session has no pg_temp functions.

-- name: event_writeback
-- UPDATE the writeback columns of the local rows of the fetched contacts where they differ.
-- $1 text[]: the keys; $2, $3, $4 text[]: their email_status, email_availability and
-- list_status (aligned with $1). -> key of every row changed.
-- {{table}} ident: the user's table, schema-qualified
-- {{assignments}} fragment: local_assignment per written column (value u.<source>), joined
-- {{key}} fragment: event_email_key of the match column
-- {{local_values}} fragment: local_text_column per written column, joined
-- {{remote_values}} fragment: u.<source> per written column, joined (same order)
UPDATE {{table}} AS src SET {{assignments}}
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
     AS u(key, email_status, email_availability, list_status)
WHERE {{key}} = u.key
  AND ROW({{local_values}}) IS DISTINCT FROM ROW({{remote_values}})
RETURNING u.key;

-- name: event_email_key
-- An email address normalised to its key (syncd.email_key).
-- {{value}} fragment: local_text_column of the column
syncd.email_key({{value}})
