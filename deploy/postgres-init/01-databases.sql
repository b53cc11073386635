-- govshare: databases and roles of the compose stack.
--
-- Run by the postgres image's entrypoint (psql, as the superuser, ON_ERROR_STOP) from
-- /docker-entrypoint-initdb.d, ONLY on the first start of an empty data volume. Changing the
-- passwords later means ALTER ROLE by hand (see deploy/README.md).
--
-- The passwords come from the postgres service's environment (GOVSHARE_DB_PASSWORD,
-- AIRFLOW_DB_PASSWORD), read with psql's \getenv (psql >= 15) and quoted as literals with :'var'.

\set ON_ERROR_STOP on

\getenv govshare_db_password GOVSHARE_DB_PASSWORD
\getenv airflow_db_password AIRFLOW_DB_PASSWORD

\if :{?govshare_db_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'GOVSHARE_DB_PASSWORD is not set in the postgres service environment'; END $$;
\endif
\if :{?airflow_db_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'AIRFLOW_DB_PASSWORD is not set in the postgres service environment'; END $$;
\endif

-- The hub's registry.
CREATE ROLE govshare LOGIN PASSWORD :'govshare_db_password';
CREATE DATABASE govshare OWNER govshare ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE govshare FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE govshare TO govshare;

-- Airflow's metadata.
CREATE ROLE airflow LOGIN PASSWORD :'airflow_db_password';
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE airflow TO airflow;
