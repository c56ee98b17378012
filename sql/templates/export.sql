-- Templates of syncd.db.export_load: the session's staging table for one list export.
-- `pg_temp.` makes sure a user's permanent table of the same name is never the one dropped. The
-- table is not analysed: it is only ever read whole, once, by a sequential scan (stage_remote).

-- name: export_drop_table
-- {{table}} ident: the staging table (unqualified)
DROP TABLE IF EXISTS pg_temp.{{table}};

-- name: export_create_table
-- One text column per header field of the export, in file order.
-- {{table}} ident: the staging table (unqualified)
-- {{columns}} fragment: export_text_column per header field, joined
CREATE TEMP TABLE {{table}} ({{columns}});

-- name: export_text_column
-- {{column}} ident: a header field of the export
{{column}} text
