#!/usr/bin/env bash
# Analytics side of docker-compose.yml: the writer and the reader.
#
# The postgres image runs this once, when it initialises an empty data
# directory (/docker-entrypoint-initdb.d), as the superuser, over the local
# socket. It needs PGVEIL_TARGET_PASSWORD and METABASE_RO_PASSWORD in the
# container's environment.
#
#   - pgveil (the writer) owns the analytics database: it creates the
#     replicated schemas and tables, its own schema pgveil (checkpoint, table
#     states), and grants read access on the replicated tables to the roles
#     in target.readers. It is not a superuser. It has CREATEROLE because
#     examples/saas/pgveil.yaml has a tenancy section: it creates a role per
#     tenant (tenant_<account id>) as accounts appear, each seeing only its
#     rows (README, "Per-customer dashboards"). Without tenancy, leave it out.
#   - metabase_ro (the reader, target.readers in examples/saas/pgveil.yaml)
#     may connect and read what pgveil grants it, nothing else: no rights on
#     the schema pgveil, and its sessions are read-only by default.

set -eo pipefail

: "${PGVEIL_TARGET_PASSWORD:?PGVEIL_TARGET_PASSWORD must be set (see .env.example)}"
: "${METABASE_RO_PASSWORD:?METABASE_RO_PASSWORD must be set (see .env.example)}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v pgveil_password="$PGVEIL_TARGET_PASSWORD" -v reader_password="$METABASE_RO_PASSWORD" <<'SQL'
CREATE ROLE pgveil LOGIN CREATEROLE PASSWORD :'pgveil_password';
ALTER DATABASE :"DBNAME" OWNER TO pgveil;

CREATE ROLE metabase_ro LOGIN PASSWORD :'reader_password';
ALTER ROLE metabase_ro SET default_transaction_read_only = on;

REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"DBNAME" TO metabase_ro;
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;

-- Readers and tenants create nothing: not even large objects or WAL
-- messages, which these functions let every role write, in read-only
-- transactions too; and the per-table counters (exact row counts) are for
-- monitoring only. pgveil refuses to start otherwise. The same statements
-- as pgveil setup-sql --part target prints.
REVOKE EXECUTE ON FUNCTION pg_catalog.lo_creat(integer), pg_catalog.lo_create(oid), pg_catalog.lo_from_bytea(oid, bytea), pg_catalog.lo_import(text), pg_catalog.lo_import(text, oid), pg_catalog.lo_put(oid, bigint, bytea), pg_catalog.lowrite(integer, bytea), pg_catalog.lo_truncate(integer, integer), pg_catalog.lo_truncate64(integer, bigint), pg_catalog.lo_unlink(oid), pg_catalog.pg_logical_emit_message(boolean, text, text), pg_catalog.pg_logical_emit_message(boolean, text, bytea) FROM PUBLIC;
DO $lockdown$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname LIKE 'pg\_stat\_get\_%' AND p.proargtypes = '26'::oidvector
    AND p.proname NOT LIKE 'pg\_stat\_get\_db\_%' AND p.proname NOT LIKE '%function%' AND p.proname NOT LIKE '%subscription%' LOOP
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO pg_read_all_stats', f);
  END LOOP;
END
$lockdown$;

-- The reader keeps the per-table counters: it reads every row anyway, and
-- Metabase's sync reads pg_stat_user_tables (docs/operations.md, Metabase).
DO $readerstats$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname LIKE 'pg\_stat\_get\_%' AND p.proargtypes = '26'::oidvector
    AND p.proname NOT LIKE 'pg\_stat\_get\_db\_%' AND p.proname NOT LIKE '%function%' AND p.proname NOT LIKE '%subscription%' LOOP
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO "metabase_ro"', f);
  END LOOP;
END
$readerstats$;
SQL
