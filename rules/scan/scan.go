// Package scan proposes masking rules for a database: it reads the
// catalog, samples a few values of each column and recognises emails,
// phone numbers, people's names (by dictionaries and by how names are
// written), addresses and places, IBANs, card numbers, IP addresses,
// identifiers by their shape, images and documents by their magic bytes,
// birth dates, free text, secrets and personal keys inside JSON. It reads
// which tables are about people, which columns are derived from others,
// and the reference model (pgveil/rules/refs), so that every reference
// gets its key's rule. The result is a deny-by-default rules file that
// pgveil loads as it is, with a comment on each masking rule saying why.
//
// Sampled values are only looked at: they are never printed, stored, put
// in a reason, an error or a log.
package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/rules/refs"
	"pgveil/schema"
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
	// References are the table's inferred references to keys of other
	// scanned tables: Write declares them under `references:`, so that
	// validate checks them and the replica gets them as foreign keys
	// (Metabase's joins), as it does production's declared ones.
	References []refs.Ref
	// NotJoins are the columns Write declares `none` under references:
	// personal columns that reference a key kept raw (its type does not
	// fit hash), masked on their own rather than lowered to keep.
	NotJoins []NotJoin
}

// NotJoin is a column declared not a join, and why (names only).
type NotJoin struct{ Column, Why string }

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
		name := schema.QuoteIdent(r.Table.Name)
		if r.Table.Schema != "public" {
			name = schema.Qualified(r.Table.Schema, r.Table.Name)
		}
		b.WriteString("  " + yamlKey(name) + ":\n")
		if t := h.Tenancy; t != nil && t.Ref != nil && t.Ref.Table == (schema.TableName{Schema: r.Table.Schema, Name: r.Table.Name}) {
			b.WriteString("    # tenant: {column: " + yamlKey(schema.QuoteIdent(t.Ref.Name)) + "}   # with the tenancy section: this table's own tenant key\n")
		}
		writeReferences(&b, r.References, r.NotJoins)
		b.WriteString("    columns:\n")
		width := 0
		keys := make([]string, len(r.Table.Columns))
		for j, c := range r.Table.Columns {
			keys[j] = yamlKey(schema.QuoteIdent(c.Name))
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

// writeReferences declares inferred references, each with what inferred
// it (names and the share of sampled values found, never a value). A
// name that would need quoting is left as a comment for the user to
// write: the references syntax takes plain names.
func writeReferences(b *strings.Builder, rs []refs.Ref, none []NotJoin) {
	if len(rs) == 0 && len(none) == 0 {
		return
	}
	b.WriteString("    references:   # joins no constraint declares, inferred by scan: check them\n")
	for _, n := range none {
		line := "      " + n.Column + ": none"
		if !plainName.MatchString(n.Column) {
			line = "      " + yamlKey(schema.QuoteIdent(n.Column)) + ": none"
		}
		b.WriteString(line + "   # " + oneLine(n.Why) + "\n")
	}
	for _, r := range rs {
		to := r.To.Table.Schema + "." + r.To.Table.Name + "." + r.To.Name
		line := "      " + r.From.Name + ": " + to
		if !plainName.MatchString(r.From.Name) || !plainName.MatchString(r.To.Table.Schema) ||
			!plainName.MatchString(r.To.Table.Name) || !plainName.MatchString(r.To.Name) {
			line = "      # " + yamlKey(schema.QuoteIdent(r.From.Name)) + " -> " + r.To.String() + " (write it with plain names)"
		}
		b.WriteString(line + "   # " + oneLine(r.Why) + "\n")
	}
}

var plainName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

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

// Read reads the tables, their columns and keys from the catalog, the
// columns derived from others (DerivedColumns), and samples opt.Sample
// rows of each in read-only transactions.
func Read(ctx context.Context, conn *pgx.Conn, opt Options) ([]*Table, *schema.Catalog, error) {
	names, err := schema.ListTables(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	if len(opt.Schemas) > 0 {
		names = slices.DeleteFunc(names, func(n schema.TableName) bool { return !slices.Contains(opt.Schemas, n.Schema) })
	}
	cat, err := schema.ReadCatalog(ctx, conn, names)
	if err != nil {
		return nil, nil, err
	}
	derived, err := DerivedColumns(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	from := map[refs.Column]Derived{}
	for _, d := range derived {
		from[d.Column] = d
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
			id := refs.Column{Table: n, Name: c.Name}
			if d, ok := from[id]; ok {
				col.DerivedFrom, col.DerivedHow = d.Inputs, d.How
			}
			t.Columns = append(t.Columns, col)
		}
		if opt.Sample > 0 {
			if code, err := sample(ctx, conn, t, opt); err != nil {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				if opt.Skipped != nil {
					opt.Skipped(schema.Qualified(t.Schema, t.Name), code)
				}
			}
		}
		tables = append(tables, t)
	}
	return tables, cat, nil
}

// sampleBytes is how much of a bytea value is read: enough for the magic
// bytes of images and documents, never the content.
const sampleBytes = 16

// sampleChars is how much of a text value is read: enough to recognise
// its shape (JSON documents are read whole, to be parsed).
const sampleChars = 500

// sample reads up to opt.Sample rows of the columns worth sampling: text,
// JSON, inet, numbers (card numbers stored as numbers) and the first
// bytes of bytea. On failure it returns the SQLSTATE only.
func sample(ctx context.Context, conn *pgx.Conn, t *Table, opt Options) (string, error) {
	var cols []int
	var exprs []string
	for i, c := range t.Columns {
		ok, binary := sampledType(c.Type)
		switch {
		case !ok:
			continue
		case binary:
			exprs = append(exprs, fmt.Sprintf("substring(%s from 1 for %d)", schema.QuoteIdent(c.Name), sampleBytes))
		case c.Type.Kind == schema.KindJSON || c.Type.Kind == schema.KindJSONB:
			exprs = append(exprs, schema.QuoteIdent(c.Name)+"::text")
		default:
			exprs = append(exprs, fmt.Sprintf("left(%s::text, %d)", schema.QuoteIdent(c.Name), sampleChars))
		}
		cols = append(cols, i)
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
	q := fmt.Sprintf("SELECT %s FROM %s LIMIT %d", strings.Join(exprs, ", "), schema.Qualified(t.Schema, t.Name), opt.Sample)
	rows, err := tx.Query(ctx, q)
	if err != nil {
		return sqlState(err), fmt.Errorf("sampling: %s", sqlState(err))
	}
	defer rows.Close()
	vals := make([][]byte, len(cols))
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
				c.Samples = append(c.Samples, string(v))
			}
		}
	}
	if err := rows.Err(); err != nil {
		return sqlState(err), fmt.Errorf("sampling: %s", sqlState(err))
	}
	return "", nil
}

func sqlState(err error) string {
	if code := schema.SQLState(err); code != "" {
		return "SQLSTATE " + code
	}
	return "connection error"
}
