-- Queries of syncd.db.source: what the catalog says about the job's local table or view.

-- name: describe_relation
-- The relation named by $1 (text: an already quoted, optionally schema-qualified name, resolved
-- with the search_path like any query would); no row when it does not exist. to_regclass()
-- only parses the name, so a hostile name is just a name that does not exist.
SELECT c.oid,
       n.nspname AS schema,
       c.relname AS name,
       c.relkind::text AS relkind,
       has_table_privilege(c.oid, 'UPDATE') AS can_update,
       has_table_privilege(c.oid, 'INSERT') AS can_insert,
       (pg_relation_is_updatable(c.oid, true) & 4) = 4 AS updatable
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1);

-- name: describe_columns
-- The live columns of relation $1 (oid), in table order, with the base type of domains.
SELECT a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       coalesce(b.typname, t.typname)::text AS base_type,
       a.attnotnull AS not_null,
       (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS has_default,
       has_column_privilege(a.attrelid, a.attnum, 'SELECT') AS can_select,
       has_column_privilege(a.attrelid, a.attnum, 'UPDATE')
           AND (c.relkind IN ('r', 'p') OR pg_column_is_updatable(a.attrelid, a.attnum, true))
           AS can_update,
       has_column_privilege(a.attrelid, a.attnum, 'INSERT') AS can_insert
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;
