-- Templates of syncd.demo: the demo database, dropped and created on the local server.

-- name: demo_drop_database
-- {{database}} ident: the demo database
DROP DATABASE IF EXISTS {{database}} WITH (FORCE);

-- name: demo_create_database
-- {{database}} ident: the demo database
CREATE DATABASE {{database}};
