package source

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"pgveil/transform"
)

// Grant is a privilege on production that the rules need and pgveil's
// role lacks, with the statement (as setup-sql prints it) that gives it.
// It holds names only, never values.
type Grant struct {
	// Object is what the privilege is on: a qualified, quoted table, a
	// schema or the database.
	Object string
	// Need says what pgveil does with it, for messages.
	Need string
	// Statement is the GRANT a superuser (or the object's owner) runs in
	// the production database.
	Statement string
}

func (g Grant) String() string { return g.Statement + "  -- " + g.Need }

// MissingGrants returns the privileges pgveil's role lacks to copy the
// plan's tables: USAGE on their schemas, SELECT on each table (or on
// every column the copy reads, for column-level grants), and TEMPORARY
// on the database when a where is evaluated in pgveil's process (it reads
// the columns a where uses through a temporary view). Tables that do not
// exist are skipped: validation reports them. The streaming itself needs
// no table privilege (the walsender reads the WAL), so a role that lacks
// one of these keeps streaming the tables it has, and only a copy fails.
func MissingGrants(ctx context.Context, conn *pgx.Conn, plan *transform.Plan, spec *PublicationSpec) ([]Grant, error) {
	var role string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil {
		return nil, wrapSQL(err, "reading pgveil's role")
	}
	to := " TO " + transform.QuoteIdent(role)
	var (
		out     []Grant
		schemas = map[string]bool{}
	)
	for _, tp := range plan.Tables() {
		t := tp.Table
		q := t.QualifiedName()
		var exists, usage bool
		err := conn.QueryRow(ctx, `
SELECT c.oid IS NOT NULL, pg_catalog.has_schema_privilege(n.oid, 'USAGE')
FROM pg_catalog.pg_namespace n
LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = $2 AND c.relkind IN ('r', 'p')
WHERE n.nspname = $1`, t.Schema, t.Name).Scan(&exists, &usage)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !exists) {
			continue
		}
		if err != nil {
			return nil, wrapSQL(err, "reading the privileges on %s", q)
		}
		if !usage {
			if !schemas[t.Schema] {
				schemas[t.Schema] = true
				out = append(out, Grant{Object: transform.QuoteIdent(t.Schema), Need: "to read the tables of schema " + transform.QuoteIdent(t.Schema),
					Statement: "GRANT USAGE ON SCHEMA " + transform.QuoteIdent(t.Schema) + to})
			}
			// Without USAGE the table cannot even be named: SELECT is
			// checked once USAGE is there.
			continue
		}
		cols := make([]string, len(tp.Columns))
		for i, c := range tp.Columns {
			cols[i] = c.Column.Name
		}
		var ok bool
		err = conn.QueryRow(ctx, `
SELECT pg_catalog.has_table_privilege(c.oid, 'SELECT')
    OR (cardinality($3::text[]) > 0 AND
        (SELECT bool_and(pg_catalog.has_column_privilege(c.oid, col, 'SELECT')) FROM unnest($3::text[]) col))
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name, cols).Scan(&ok)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, wrapSQL(err, "reading the privileges on %s", q)
		}
		if !ok {
			out = append(out, Grant{Object: q, Need: "the copy of " + q + " reads it",
				Statement: "GRANT SELECT ON TABLE " + q + to})
		}
	}
	inProcess := false
	if spec != nil {
		for _, pt := range spec.Tables {
			inProcess = inProcess || pt.InProcessFilter != ""
		}
	}
	if inProcess {
		var temp bool
		if err := conn.QueryRow(ctx, "SELECT pg_catalog.has_database_privilege(current_database(), 'TEMPORARY')").Scan(&temp); err != nil {
			return nil, wrapSQL(err, "reading the privileges on the database")
		}
		if !temp {
			var db string
			if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
				return nil, wrapSQL(err, "reading the database's name")
			}
			out = append(out, Grant{Object: transform.QuoteIdent(db), Need: "a where evaluated by pgveil reads its columns through a temporary view",
				Statement: fmt.Sprintf("GRANT TEMPORARY ON DATABASE %s%s", transform.QuoteIdent(db), to)})
		}
	}
	return out, nil
}
