#!/usr/bin/env bash
# Production side of docker-compose.yml: the role pgveil connects as.
#
# The postgres image runs this once, when it initialises an empty data
# directory (/docker-entrypoint-initdb.d, after 10-schema.sql has created the
# tables), as the superuser, over the local socket. It needs
# PGVEIL_SOURCE_PASSWORD in the container's environment.
#
# What pgveil needs on production, and no more:
#   - LOGIN and REPLICATION, for the slot and the pgoutput stream;
#   - CREATE on the database, to create its publication;
#   - membership in the role that owns the replicated tables: PostgreSQL only
#     lets a table's owner add it to a publication or change its column list
#     and row filter, which pgveil does from the rules (and its prerequisite
#     check refuses to start otherwise). Ownership also allows writes, so the
#     tables belong to a NOLOGIN role, app_owner, and pgveil inherits it;
#     nobody logs in as app_owner;
#   - SELECT on the replicated tables, for the initial copy (implied by the
#     membership; granted explicitly so that it stays if the membership is
#     replaced by a publication created by the owner).
# It is not a superuser and cannot read tables that are not replicated.
#
# The tables are the ones examples/saas/pgveil.yaml lists (a test in
# internal/deploy checks that the two lists agree).

set -eo pipefail

: "${PGVEIL_SOURCE_PASSWORD:?PGVEIL_SOURCE_PASSWORD must be set (see .env.example)}"

replicated_tables="accounts users customers orders payments support_tickets events"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v pgveil_password="$PGVEIL_SOURCE_PASSWORD" -v tables="$replicated_tables" <<'SQL'
CREATE ROLE app_owner NOLOGIN;
SELECT format('ALTER TABLE public.%I OWNER TO app_owner', t)
FROM unnest(string_to_array(:'tables', ' ')) AS t
\gexec

CREATE ROLE pgveil LOGIN REPLICATION PASSWORD :'pgveil_password';
GRANT app_owner TO pgveil;
GRANT CONNECT, CREATE ON DATABASE :"DBNAME" TO pgveil;
GRANT USAGE ON SCHEMA public TO pgveil;
SELECT format('GRANT SELECT ON public.%I TO pgveil', t)
FROM unnest(string_to_array(:'tables', ' ')) AS t
\gexec
SQL
