package source

import (
	"context"
	"fmt"
	"pgveil/schema"
	"strings"

	"github.com/jackc/pgx/v5"
)

// MigrationTriggersSQL returns the SQL that installs, in production, two
// event triggers that let ordinary migrations drop and retype columns of
// a publication with column lists (publication_mode column_lists), where
// PostgreSQL 15 would refuse them: the column list (and a row filter)
// depends on the columns it names.
//
// Before an ALTER TABLE whose text drops a column or changes a type, the
// first trigger takes the tables of the publication that the statement
// names (by name, in its text) and that have a column list or a row
// filter out of the publication; after the statement, the second puts
// them back with the same column list, less the columns that no longer
// exist, and the same row filter. Both run in the migration's own
// transaction, so no other transaction, and no change pgveil decodes,
// ever sees the tables out of the publication: at commit the publication
// is as before, less the dropped columns. Columns that were not published
// stay unpublished throughout.
//
// What it does not do, the migration does as without it: a statement
// that names the table in a way the text search misses (through a
// variable in a DO block, say) fails as it would without the triggers;
// a row filter on a column the migration drops makes it fail. The
// publication step waits for its locks at most 5 seconds, then steps
// aside with a warning (the migration then meets PostgreSQL's refusal).
//
// The functions are SECURITY DEFINER: whoever installs them (a superuser:
// only a superuser may create event triggers) owns them, so that a
// migration running as the tables' owner may change the publication. They
// act only on tables the session may alter (it is their owner or a member
// of it), and pass what they took out to each other through a table only
// they can read and write (never through anything a session can set), with
// the row filter as PostgreSQL's expression tree, not as text.
func MigrationTriggersSQL(publication string) string {
	pub := schema.QuoteLiteral(publication)
	var b strings.Builder
	fmt.Fprintf(&b, `CREATE SCHEMA IF NOT EXISTS pgveil;
REVOKE ALL ON SCHEMA pgveil FROM PUBLIC;
-- What the first trigger took out of the publication, for the second, in
-- the same transaction. Only the triggers' functions (run as their owner)
-- read and write it: nothing a session sets can reach the statements they
-- run. The row filter is kept as PostgreSQL's expression tree, so that it
-- comes back under the columns' names as they are after the statement.
CREATE TABLE IF NOT EXISTS pgveil.publication_aside (
  pid int NOT NULL, xid xid8 NOT NULL, relid oid NOT NULL, attrs int2[], qual pg_node_tree);
REVOKE ALL ON pgveil.publication_aside FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgveil.publication_aside() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgveil$
DECLARE
  q text := lower(current_query());
  r record;
  rels text := '';
  timeout text := current_setting('lock_timeout');
BEGIN
  -- Only statements that may drop or retype a column.
  IF q !~ '\mdrop\M|\mtype\M' THEN
    RETURN;
  END IF;
  PERFORM set_config('lock_timeout', '5s', true);
  BEGIN
    -- Tables of the publication with a column list or a row filter that
    -- the statement names and that the session may alter (as their owner,
    -- or a member of it): no one else makes the triggers lock a table.
    FOR r IN
      SELECT pr.prrelid, pr.prattrs::int2[] AS attrs, pr.prqual
      FROM pg_publication_rel pr
      JOIN pg_publication p ON p.oid = pr.prpubid
      JOIN pg_class c ON c.oid = pr.prrelid
      WHERE p.pubname = %[1]s
        AND (pr.prattrs IS NOT NULL OR pr.prqual IS NOT NULL)
        AND pg_has_role(session_user, c.relowner, 'MEMBER')
        AND q ~ ('\m' || regexp_replace(lower(c.relname), '([^a-z0-9_])', '\\\1', 'g') || '\M')
    LOOP
      INSERT INTO pgveil.publication_aside VALUES (pg_backend_pid(), pg_current_xact_id(), r.prrelid, r.attrs, r.prqual);
      rels := rels || CASE WHEN rels = '' THEN '' ELSE ', ' END || 'ONLY ' || r.prrelid::regclass::text;
    END LOOP;
    IF rels <> '' THEN
      EXECUTE format('ALTER PUBLICATION %%I DROP TABLE %%s', %[1]s, rels);
    END IF;
  EXCEPTION WHEN lock_not_available THEN
    -- The block's inserts are undone with it.
    RAISE WARNING 'pgveil: publication %%s was not changed for this migration (its tables were locked for more than 5s)', %[1]s;
  END;
  PERFORM set_config('lock_timeout', timeout, true);
END
$pgveil$;

CREATE OR REPLACE FUNCTION pgveil.publication_back() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgveil$
DECLARE
  r record;
  cols text;
  item text;
  items text[] := '{}';
BEGIN
  FOR r IN
    DELETE FROM pgveil.publication_aside
    WHERE pid = pg_backend_pid() AND xid = pg_current_xact_id()
    RETURNING relid, attrs, qual
  LOOP
    CONTINUE WHEN NOT EXISTS (SELECT FROM pg_class WHERE oid = r.relid);
    item := 'ONLY ' || r.relid::regclass::text;
    IF r.attrs IS NOT NULL THEN
      SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_attribute a
      WHERE a.attrelid = r.relid AND NOT a.attisdropped AND a.attnum = ANY (r.attrs);
      -- Every listed column dropped: leave the table out; pgveil reports it.
      CONTINUE WHEN cols IS NULL;
      item := item || ' (' || cols || ')';
    END IF;
    IF r.qual IS NOT NULL THEN
      item := item || ' WHERE (' || pg_get_expr(r.qual, r.relid) || ')';
    END IF;
    items := items || item;
  END LOOP;
  IF cardinality(items) > 0 THEN
    EXECUTE format('ALTER PUBLICATION %%I ADD TABLE %%s', %[1]s, array_to_string(items, ', '));
  END IF;
END
$pgveil$;

REVOKE ALL ON FUNCTION pgveil.publication_aside(), pgveil.publication_back() FROM PUBLIC;
DROP EVENT TRIGGER IF EXISTS pgveil_publication_aside;
DROP EVENT TRIGGER IF EXISTS pgveil_publication_back;
CREATE EVENT TRIGGER pgveil_publication_aside ON ddl_command_start
  WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION pgveil.publication_aside();
CREATE EVENT TRIGGER pgveil_publication_back ON ddl_command_end
  WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION pgveil.publication_back();
`, pub)
	return b.String()
}

// MigrationTriggersInstalled reports whether production has the enabled
// migration triggers of MigrationTriggersSQL.
func MigrationTriggersInstalled(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_event_trigger
WHERE evtname IN ('pgveil_publication_aside', 'pgveil_publication_back') AND evtenabled <> 'D'`).Scan(&n)
	if err != nil {
		return false, schema.WrapSQL(err, "reading production's event triggers")
	}
	return n == 2, nil
}
