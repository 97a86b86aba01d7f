package source

import (
	"context"
	"fmt"
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
// migration running as the tables' owner may change the publication.
func MigrationTriggersSQL(publication string) string {
	pub := quoteLiteral(publication)
	var b strings.Builder
	fmt.Fprintf(&b, `CREATE SCHEMA IF NOT EXISTS pgveil;
REVOKE ALL ON SCHEMA pgveil FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgveil.publication_aside() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgveil$
DECLARE
  q text := lower(current_query());
  saved jsonb := '[]';
  r record;
  timeout text := current_setting('lock_timeout');
BEGIN
  -- Only statements that may drop or retype a column.
  IF q !~ '\mdrop\M|\mtype\M' THEN
    RETURN;
  END IF;
  FOR r IN
    SELECT pr.prrelid, pr.prattrs::int2[] AS attrs, pg_get_expr(pr.prqual, pr.prrelid) AS qual
    FROM pg_publication_rel pr
    JOIN pg_publication p ON p.oid = pr.prpubid
    JOIN pg_class c ON c.oid = pr.prrelid
    WHERE p.pubname = %[1]s
      AND (pr.prattrs IS NOT NULL OR pr.prqual IS NOT NULL)
      AND q ~ ('\m' || regexp_replace(lower(c.relname), '([^a-z0-9_])', '\\\1', 'g') || '\M')
  LOOP
    saved := saved || jsonb_build_object('oid', r.prrelid, 'attrs', to_jsonb(r.attrs), 'qual', r.qual);
  END LOOP;
  IF saved = '[]' THEN
    RETURN;
  END IF;
  PERFORM set_config('lock_timeout', '5s', true);
  BEGIN
    EXECUTE format('ALTER PUBLICATION %%I DROP TABLE %%s', %[1]s,
      (SELECT string_agg('ONLY ' || (e->>'oid')::oid::regclass::text, ', ') FROM jsonb_array_elements(saved) e));
  EXCEPTION WHEN lock_not_available THEN
    PERFORM set_config('lock_timeout', timeout, true);
    RAISE WARNING 'pgveil: publication %%s was not changed for this migration (its tables were locked for more than 5s)', %[1]s;
    RETURN;
  END;
  PERFORM set_config('lock_timeout', timeout, true);
  PERFORM set_config('pgveil.publication_aside', saved::text, true);
END
$pgveil$;

CREATE OR REPLACE FUNCTION pgveil.publication_back() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgveil$
DECLARE
  saved text := current_setting('pgveil.publication_aside', true);
  e jsonb;
  cols text;
  item text;
  items text[] := '{}';
BEGIN
  IF saved IS NULL OR saved = '' THEN
    RETURN;
  END IF;
  PERFORM set_config('pgveil.publication_aside', '', true);
  FOR e IN SELECT * FROM jsonb_array_elements(saved::jsonb) LOOP
    CONTINUE WHEN NOT EXISTS (SELECT FROM pg_class WHERE oid = (e->>'oid')::oid);
    item := 'ONLY ' || (e->>'oid')::oid::regclass::text;
    IF jsonb_typeof(e->'attrs') = 'array' THEN
      SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_attribute a
      WHERE a.attrelid = (e->>'oid')::oid AND NOT a.attisdropped
        AND a.attnum IN (SELECT x::int2 FROM jsonb_array_elements_text(e->'attrs') x);
      -- Every listed column dropped: leave the table out; pgveil reports it.
      CONTINUE WHEN cols IS NULL;
      item := item || ' (' || cols || ')';
    END IF;
    IF e->>'qual' IS NOT NULL THEN
      item := item || ' WHERE (' || (e->>'qual') || ')';
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
		return false, wrapSQL(err, "reading production's event triggers")
	}
	return n == 2, nil
}

// quoteLiteral quotes s as a SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
