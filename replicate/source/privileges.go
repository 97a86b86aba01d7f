package source

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
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
	// Tables are the plan's tables that cannot be copied without it; none
	// for a privilege on the database.
	Tables []schema.TableName
}

func (g Grant) String() string { return g.Statement + "  -- " + g.Need }

// MissingGrants returns the privileges pgveil's role lacks to copy the
// plan's tables: USAGE on their schemas, SELECT on each table, and TEMPORARY
// on the database when a where is evaluated in pgveil's process (it reads
// the columns a where uses through a temporary view). Tables that do not
// exist are skipped: validation reports them. The streaming itself needs
// no table privilege (the walsender reads the WAL), so a role that lacks
// one of these keeps streaming the tables it has, and only a copy fails.
//
// copyOnly, when not nil, limits the check to the tables it holds: a table
// already in the replica under the same rules is not copied again.
func MissingGrants(ctx context.Context, conn *pgx.Conn, plan *transform.Plan, spec *PublicationSpec, copyOnly map[schema.TableName]bool) ([]Grant, error) {
	var role string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil {
		return nil, schema.WrapSQL(err, "reading pgveil's role")
	}
	to := " TO " + schema.QuoteIdent(role)
	var (
		out     []Grant
		schemas = map[string]int{} // index in out of the schema's USAGE
	)
	for _, tp := range plan.Tables() {
		t := tp.Table
		name := schema.TableName{Schema: t.Schema, Name: t.Name}
		if copyOnly != nil && !copyOnly[name] {
			continue
		}
		q := t.QualifiedName()
		// Table-level SELECT: column grants are not enough, because the
		// copy reads large tables by ctid range and its where may read
		// columns no rule publishes.
		var usage, selectOK bool
		err := conn.QueryRow(ctx, `
SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE'), pg_catalog.has_table_privilege(c.oid, 'SELECT')
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name).Scan(&usage, &selectOK)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, schema.WrapSQL(err, "reading the privileges on %s", q)
		}
		if !usage {
			i, seen := schemas[t.Schema]
			if !seen {
				i = len(out)
				schemas[t.Schema] = i
				out = append(out, Grant{Object: schema.QuoteIdent(t.Schema), Need: "to read the tables of schema " + schema.QuoteIdent(t.Schema),
					Statement: "GRANT USAGE ON SCHEMA " + schema.QuoteIdent(t.Schema) + to})
			}
			out[i].Tables = append(out[i].Tables, name)
			// Without USAGE the table cannot even be named: SELECT is
			// asked for once USAGE is there.
			continue
		}
		if !selectOK {
			out = append(out, Grant{Object: q, Need: "the copy of " + q + " reads it",
				Statement: "GRANT SELECT ON TABLE " + q + to, Tables: []schema.TableName{name}})
		}
	}
	inProcess := false
	if spec != nil {
		for _, pt := range spec.Tables {
			inProcess = inProcess || pt.InProcessFilter != ""
		}
	}
	if inProcess {
		g, err := MissingTemporary(ctx, conn)
		if err != nil {
			return nil, err
		}
		if g != nil {
			out = append(out, *g)
		}
	}
	return out, nil
}

// MissingTemporary returns the grant of TEMPORARY on the database when
// pgveil's role lacks it (a where is planned and evaluated through a
// temporary view), nil when it has it.
func MissingTemporary(ctx context.Context, conn *pgx.Conn) (*Grant, error) {
	var (
		temp     bool
		db, role string
	)
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.has_database_privilege(current_database(), 'TEMPORARY'), current_database(), current_user").Scan(&temp, &db, &role); err != nil {
		return nil, schema.WrapSQL(err, "reading the privileges on the database")
	}
	if temp {
		return nil, nil
	}
	return &Grant{Object: schema.QuoteIdent(db), Need: "a where is checked and evaluated by pgveil through a temporary view",
		Statement: fmt.Sprintf("GRANT TEMPORARY ON DATABASE %s TO %s", schema.QuoteIdent(db), schema.QuoteIdent(role))}, nil
}
