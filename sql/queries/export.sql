-- Queries of syncd.db.export_load: the session's staging table for one list export.
-- {table} and {columns} are filled by syncd.db.export_load with identifiers quoted by
-- syncd.db.source.quote_ident, never with data; `pg_temp.` makes sure a user's permanent
-- table of the same name is never the one dropped. The table is not analysed: it is only
-- ever read whole, once, by a sequential scan (stage_remote).

-- name: export_drop_table
DROP TABLE IF EXISTS pg_temp.{table};

-- name: export_create_table
-- One text column per header field of the export, in file order.
CREATE TEMP TABLE {table} ({columns});
