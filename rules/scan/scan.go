// Package scan proposes masking rules for a database: it reads the
// catalog, samples a few values of each column and recognises emails,
// phone numbers, names, addresses, IBANs, card numbers, IP addresses,
// birth dates, free text, secrets and personal keys inside JSON. The
// result is a deny-by-default rules file that pgveil loads as it is, with
// a comment on each masking rule saying why.
//
// Sampled values are only looked at: they are never printed, stored, put
// in a reason, an error or a log.
package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/source"
	"pgveil/transform"
)

// Table is one table to propose rules for.
type Table struct {
	Schema, Name string
	Columns      []Column
}

// Ruled is a table with a proposal for each of its columns, in order.
type Ruled struct {
	Table     *Table
	Proposals []Proposal
}

// Propose proposes a rule for every column of every table. Primary keys
// are hashed where hash fits their type; a foreign key to a hashed column
// is hashed too, so that joins still work. Dates and timestamps in tables
// that hold or reference people are coarsened: they are quasi-identifiers.
func Propose(tables []*Table) []Ruled {
	type colID struct{ schema, table, column string }
	out := make([]Ruled, len(tables))
	byID := map[colID]*Proposal{}
	for i, t := range tables {
		out[i] = Ruled{Table: t, Proposals: make([]Proposal, len(t.Columns))}
		for j, c := range t.Columns {
			p := &out[i].Proposals[j]
			switch {
			case c.PrimaryKey && hashable(c):
				*p = Proposal{Rule: "hash", Reason: "primary key: a keyed pseudonym of the same type, still joins"}
			case c.PrimaryKey:
				*p = Proposal{Rule: "keep", Reason: "primary key of type " + c.Type.String() + ", which hash does not fit: check it is not personal"}
			default:
				*p = Classify(t.Name, c)
			}
			byID[colID{t.Schema, t.Name, c.Name}] = p
		}
	}
	// Foreign keys follow the key they reference (chains of them too).
	for changed := true; changed; {
		changed = false
		for i, t := range tables {
			for j, c := range t.Columns {
				p := &out[i].Proposals[j]
				if c.Ref == nil || c.PrimaryKey && p.Rule == "hash" || strings.HasPrefix(p.Reason, "references ") || !hashable(c) {
					continue
				}
				if ref := byID[colID{c.Ref.Schema, c.Ref.Table, c.Ref.Column}]; ref != nil && ref.Rule == "hash" {
					*p = Proposal{Rule: "hash", Reason: "references " + sqlName(c.Ref.Schema, c.Ref.Table) + "." +
						transform.QuoteIdent(c.Ref.Column) + ", which is hashed: same pseudonym, joins still work"}
					changed = true
				}
			}
		}
	}
	// Tables about people, and tables that reference them.
	type tid struct{ schema, name string }
	person := map[tid]bool{}
	for i, t := range tables {
		for _, p := range out[i].Proposals {
			switch p.cat {
			case catEmail, catPhone, catFirstName, catLastName, catFullName, catBirth, catGovID, catStreet, catAddress, catUsername:
				person[tid{t.Schema, t.Name}] = true
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, t := range tables {
			if person[tid{t.Schema, t.Name}] {
				continue
			}
			for _, c := range t.Columns {
				if c.Ref != nil && person[tid{c.Ref.Schema, c.Ref.Table}] {
					person[tid{t.Schema, t.Name}] = true
					changed = true
					break
				}
			}
		}
	}
	for i, t := range tables {
		if !person[tid{t.Schema, t.Name}] {
			continue
		}
		for j, c := range t.Columns {
			p := &out[i].Proposals[j]
			if p.Rule != "keep" || c.PrimaryKey || !isTime(c.Type) {
				continue
			}
			if c.Type.Kind == transform.KindDate {
				*p = Proposal{Rule: "{truncate: month}", Reason: "date of a person's event: quasi-identifier, kept to the month"}
			} else {
				*p = Proposal{Rule: "{truncate: day}", Reason: "time of a person's event: quasi-identifier, kept to the day"}
			}
		}
	}
	return out
}

// Header holds what Write puts before the tables.
type Header struct {
	// Comment lines (without "# ") at the top of the file.
	Comment []string
	// Tenancy, when set, is written as a commented tenancy section, and
	// the table its column references gets a commented tenant key.
	Tenancy *TenantHint
}

// Write writes a pgveil rules file: source, target and secret from the
// environment, then every table with a rule for every column, and a
// comment on each rule that masks (or that is notable).
func Write(w io.Writer, h Header, ruled []Ruled) error {
	var b strings.Builder
	for _, l := range h.Comment {
		b.WriteString("# " + oneLine(l) + "\n")
	}
	b.WriteString("source:\n  dsn: ${SOURCE_DSN}\ntarget:\n  dsn: ${TARGET_DSN}\nsecret: ${PGVEIL_SECRET}\n")
	if h.Tenancy != nil {
		b.WriteString(tenancyComment(*h.Tenancy))
	}
	b.WriteString("\ntables:\n")
	if len(ruled) == 0 {
		b.WriteString("  {}\n")
	}
	for i, r := range ruled {
		if i > 0 {
			b.WriteString("\n")
		}
		name := transform.QuoteIdent(r.Table.Name)
		if r.Table.Schema != "public" {
			name = sqlName(r.Table.Schema, r.Table.Name)
		}
		b.WriteString("  " + yamlKey(name) + ":\n")
		if t := h.Tenancy; t != nil && t.Ref != nil && t.Ref.Schema == r.Table.Schema && t.Ref.Table == r.Table.Name {
			b.WriteString("    # tenant: {column: " + yamlKey(transform.QuoteIdent(t.Ref.Column)) + "}   # with the tenancy section: this table's own tenant key\n")
		}
		b.WriteString("    columns:\n")
		width := 0
		keys := make([]string, len(r.Table.Columns))
		for j, c := range r.Table.Columns {
			keys[j] = yamlKey(transform.QuoteIdent(c.Name))
			if r.Proposals[j].Reason != "" {
				width = max(width, len(keys[j])+2+len(r.Proposals[j].Rule))
			}
		}
		width = min(width, 60)
		for j := range r.Table.Columns {
			p := r.Proposals[j]
			line := "      " + keys[j] + ": " + p.Rule
			if p.Reason != "" {
				line += strings.Repeat(" ", max(3, width-len(keys[j])-2-len(p.Rule)+3)) + "# " + oneLine(p.Reason)
			}
			b.WriteString(line + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

func sqlName(schema, name string) string {
	return transform.QuoteIdent(schema) + "." + transform.QuoteIdent(name)
}

var plainKey = regexp.MustCompile(`^[a-z_][a-z0-9_$.]*$`)

// yamlKey quotes a key where YAML needs it.
func yamlKey(s string) string {
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~":
	default:
		if plainKey.MatchString(s) {
			return s
		}
	}
	q, _ := json.Marshal(s)
	return string(q)
}

// Options tune Read.
type Options struct {
	// Schemas limits the scan to these schemas; empty: every schema.
	Schemas []string
	// Sample is the number of rows sampled per table (0: none).
	Sample int
	// StatementTimeout bounds each sampling query, as PostgreSQL reads
	// it ("30s").
	StatementTimeout string
	// Skipped, when set, is told of each table that could not be sampled
	// (without the error's text, which could quote data).
	Skipped func(table string, sqlState string)
}

// Read reads the tables, their columns, keys and foreign keys from the
// catalog, and samples opt.Sample rows of each in read-only transactions.
func Read(ctx context.Context, conn *pgx.Conn, opt Options) ([]*Table, *source.Catalog, error) {
	names, err := source.ListTables(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	if len(opt.Schemas) > 0 {
		names = slices.DeleteFunc(names, func(n transform.TableName) bool { return !slices.Contains(opt.Schemas, n.Schema) })
	}
	cat, err := source.ReadCatalog(ctx, conn, names)
	if err != nil {
		return nil, nil, err
	}
	refs, err := foreignKeys(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	var tables []*Table
	for _, n := range names {
		ct := cat.Tables[n]
		if ct == nil {
			continue
		}
		t := &Table{Schema: n.Schema, Name: n.Name}
		for _, c := range ct.Columns {
			col := Column{Name: c.Name, Type: c.Type, PrimaryKey: c.PrimaryKey, Unique: c.Unique}
			if r, ok := refs[[3]string{n.Schema, n.Name, c.Name}]; ok {
				col.Ref = &r
			}
			t.Columns = append(t.Columns, col)
		}
		if opt.Sample > 0 {
			if code, err := sample(ctx, conn, t, opt); err != nil {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				if opt.Skipped != nil {
					opt.Skipped(sqlName(t.Schema, t.Name), code)
				}
			}
		}
		tables = append(tables, t)
	}
	return tables, cat, nil
}

// sampled reports whether a column's values are worth sampling.
func sampled(t transform.Type) bool {
	switch t.Kind {
	case transform.KindText, transform.KindJSON, transform.KindJSONB, transform.KindInet:
		return true
	}
	return false
}

// sample reads up to opt.Sample rows of the text, JSON and inet columns.
// On failure it returns the SQLSTATE only.
func sample(ctx context.Context, conn *pgx.Conn, t *Table, opt Options) (string, error) {
	var cols []int
	var exprs []string
	for i, c := range t.Columns {
		if sampled(c.Type) {
			cols = append(cols, i)
			exprs = append(exprs, transform.QuoteIdent(c.Name)+"::text")
		}
	}
	if len(cols) == 0 {
		return "", nil
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return sqlState(err), fmt.Errorf("sampling: %s", sqlState(err))
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	timeout := opt.StatementTimeout
	if timeout == "" {
		timeout = "30s"
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", timeout); err != nil {
		return sqlState(err), fmt.Errorf("sampling: %s", sqlState(err))
	}
	q := fmt.Sprintf("SELECT %s FROM %s LIMIT %d", strings.Join(exprs, ", "), sqlName(t.Schema, t.Name), opt.Sample)
	rows, err := tx.Query(ctx, q)
	if err != nil {
		return sqlState(err), fmt.Errorf("sampling: %s", sqlState(err))
	}
	defer rows.Close()
	vals := make([]*string, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return "", fmt.Errorf("sampling: cannot read a row")
		}
		for i, v := range vals {
			if v != nil {
				c := &t.Columns[cols[i]]
				c.Samples = append(c.Samples, *v)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return sqlState(err), fmt.Errorf("sampling: %s", sqlState(err))
	}
	return "", nil
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return "SQLSTATE " + pe.Code
	}
	return "connection error"
}

// foreignKeys maps each column of a foreign key to the column it
// references.
func foreignKeys(ctx context.Context, conn *pgx.Conn) (map[[3]string]Ref, error) {
	rows, err := conn.Query(ctx, `
SELECT n.nspname::text, c.relname::text, a.attname::text, fn.nspname::text, fc.relname::text, fa.attname::text
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid
JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
CROSS JOIN LATERAL unnest(k.conkey, k.confkey) AS u(col, fcol)
JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.col
JOIN pg_catalog.pg_attribute fa ON fa.attrelid = k.confrelid AND fa.attnum = u.fcol
WHERE k.contype = 'f'
ORDER BY k.oid`)
	if err != nil {
		return nil, fmt.Errorf("reading foreign keys: %w", err)
	}
	out := map[[3]string]Ref{}
	for rows.Next() {
		var s, t, c string
		var r Ref
		if err := rows.Scan(&s, &t, &c, &r.Schema, &r.Table, &r.Column); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading foreign keys: %w", err)
		}
		if _, ok := out[[3]string{s, t, c}]; !ok {
			out[[3]string{s, t, c}] = r
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading foreign keys: %w", err)
	}
	return out, nil
}
