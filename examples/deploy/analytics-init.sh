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
SQL
