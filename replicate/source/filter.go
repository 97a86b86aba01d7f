package source

import (
	"context"
	"errors"
	"fmt"
	"pgveil/schema"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Limits of one Filter query: rows per statement, and PostgreSQL's limit
// on the number of bind parameters of a statement.
const (
	filterBatch     = 1000
	maxBindParams   = 65535
	filterOrdColumn = "__pgveil_ord"
)

// ErrUnchangedValue is returned (wrapped) by Filter.Match when a column
// the filter needs holds an unchanged TOAST value, which carries no data,
// and the row does not carry the key values Match would fetch it by.
var ErrUnchangedValue = errors.New("value is an unchanged TOAST value (no data)")

// filterPrefix starts every name a filter statement adds next to the
// table's own columns; no column the filter reads may start with it.
const filterPrefix = "__pgveil_"

// Filter evaluates a table's in-process filter (a `where` that could not
// be pushed down into the publication) on raw, unmasked rows, by asking the
// source server: the values came from it, so nothing leaves production's
// trust boundary. It is immutable and safe for concurrent use (each call
// needs its own connection, as pgx connections are not).
type Filter struct {
	table   string // qualified, for messages
	expr    string
	columns []string
	types   []string
	// collates are " COLLATE x" for the columns declared with a
	// collation other than their type's, else "": each value the
	// statements bind or read back is compared as in the table.
	collates  []string
	alias     string // the VALUES list's alias: table(__pgveil_ord, columns...)
	aliasName string // the table's name, which both statements' rows take
	perStmt   int    // rows per statement
	// keys and keyTypes are the table's key columns, by which a row
	// holding an unchanged TOAST value is read back from the source; from
	// is the table as a FROM item (ONLY unless partitioned, as the copy
	// reads it).
	keys     []string
	keyTypes []string
	from     string
}

// FilterError is a failed evaluation of an in-process filter. It holds the
// SQLSTATE but never the server's message, which may quote a row value.
type FilterError struct {
	Table string // qualified table name
	Code  string // SQLSTATE
}

// SQLState is the error's SQLSTATE, as pgconn.PgError has it.
func (e *FilterError) SQLState() string { return e.Code }

// Error names the table and the SQLSTATE.
func (e *FilterError) Error() string {
	return fmt.Sprintf("%s: evaluating the where filter failed in PostgreSQL (SQLSTATE %s; the server's message is not shown because it may hold a row value)", e.Table, e.Code)
}

// NewFilter returns the filter of pt.InProcessFilter on table t. Its
// columns are pt.FilterColumns, cast to pt.FilterTypes (the exact SQL
// types) or, when those are missing, to the catalog type of each column.
func NewFilter(t *schema.Table, pt PublishedTable) (*Filter, error) {
	if t == nil {
		return nil, errors.New("in-process filter: no table")
	}
	q := t.QualifiedName()
	if strings.TrimSpace(pt.InProcessFilter) == "" {
		return nil, fmt.Errorf("%s: no in-process filter", q)
	}
	if pt.FilterTypes != nil && len(pt.FilterTypes) != len(pt.FilterColumns) {
		return nil, fmt.Errorf("%s: in-process filter: %d column types for %d columns", q, len(pt.FilterTypes), len(pt.FilterColumns))
	}
	f := &Filter{table: q, expr: pt.InProcessFilter, perStmt: filterBatch}
	cols := make([]string, 0, len(pt.FilterColumns)+1)
	cols = append(cols, filterOrdColumn)
	for i, name := range pt.FilterColumns {
		c := t.Column(name)
		if c == nil {
			return nil, fmt.Errorf("%s: in-process filter: column %s not in the table", q, schema.QuoteIdent(name))
		}
		if strings.HasPrefix(name, filterPrefix) {
			return nil, fmt.Errorf("%s: in-process filter: column name %s is reserved by pgveil (names starting with %s)", q, name, filterPrefix)
		}
		typ := c.Type.String()
		if pt.FilterTypes != nil && pt.FilterTypes[i] != "" {
			typ = pt.FilterTypes[i]
		}
		coll := ""
		if i < len(pt.FilterCollations) && pt.FilterCollations[i] != "" {
			coll = " COLLATE " + pt.FilterCollations[i]
		}
		f.columns = append(f.columns, name)
		f.types = append(f.types, typ)
		f.collates = append(f.collates, coll)
		cols = append(cols, schema.QuoteIdent(name))
	}
	f.aliasName = t.Name
	f.alias = schema.QuoteIdent(t.Name) + "(" + strings.Join(cols, ", ") + ")"
	for _, c := range t.Columns {
		if c.PrimaryKey {
			f.keys = append(f.keys, c.Name)
			f.keyTypes = append(f.keyTypes, c.Type.String())
		}
	}
	f.from = "ONLY " + q
	if t.Partitioned {
		f.from = q
	}
	// The statement that reads unchanged values back binds, per row, its
	// ordinal, a fetch flag, each column's value and unchanged flag, and
	// the key: size batches for it.
	if n := 1 + 2*len(f.columns) + len(f.keys); maxBindParams/n < f.perStmt {
		f.perStmt = maxBindParams / n
	}
	return f, nil
}

// Columns are the columns the filter reads, in the order Match's rows
// hold them.
func (f *Filter) Columns() []string { return f.columns }

// Keys are the table's key columns, whose values Match's rows hold after
// those of Columns() so that an unchanged TOAST value can be read back.
func (f *Filter) Keys() []string { return f.keys }

// query is the statement evaluating the filter on n rows.
func (f *Filter) query(n int) string {
	var b strings.Builder
	b.WriteString("SELECT " + filterOrdColumn + ", (\n" + f.expr + "\n) FROM (VALUES ")
	p := 1
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + strconv.Itoa(i+1))
		for j, typ := range f.types {
			b.WriteString(", CAST($" + strconv.Itoa(p) + " AS " + typ + ")" + f.collates[j])
			p++
		}
		b.WriteString(")")
	}
	b.WriteString(") AS " + f.alias + " ORDER BY " + filterOrdColumn)
	return b.String()
}

func boolParam(b bool) []byte {
	if b {
		return []byte("t")
	}
	return []byte("f")
}

// fetchQuery is the statement evaluating the filter on n rows, some of
// which hold unchanged values: each row binds its fetch flag, each
// column's value and unchanged flag, then its key. A row with the flag set
// is joined to the source table by key and takes its unchanged columns
// from there; if the row is gone the filter's answer is false.
func (f *Filter) fetchQuery(n int) string {
	const src = filterPrefix + "src"
	var b strings.Builder
	b.WriteString("SELECT " + filterOrdColumn + ", CASE WHEN " + filterPrefix + "fetch AND NOT " + filterPrefix + "found THEN false ELSE (\n" + f.expr + "\n) END FROM (\n")
	b.WriteString("SELECT v." + filterOrdColumn + ", v." + filterPrefix + "fetch, " + src + ".ctid IS NOT NULL")
	for i, typ := range f.types {
		c := strconv.Itoa(i)
		b.WriteString(", CASE WHEN v." + filterPrefix + "u" + c + " THEN CAST(" + src + "." + schema.QuoteIdent(f.columns[i]) + " AS " + typ + ")" + f.collates[i] + " ELSE v." + filterPrefix + "v" + c + " END")
	}
	b.WriteString(" FROM (VALUES ")
	p := 1
	arg := func(typ string) string {
		s := "CAST($" + strconv.Itoa(p) + " AS " + typ + ")"
		p++
		return s
	}
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + strconv.Itoa(i+1) + ", " + arg("boolean"))
		for j, typ := range f.types {
			b.WriteString(", " + arg(typ) + f.collates[j] + ", " + arg("boolean"))
		}
		for _, typ := range f.keyTypes {
			b.WriteString(", " + arg(typ))
		}
		b.WriteString(")")
	}
	b.WriteString(") AS v(" + filterOrdColumn + ", " + filterPrefix + "fetch")
	for i := range f.types {
		c := strconv.Itoa(i)
		b.WriteString(", " + filterPrefix + "v" + c + ", " + filterPrefix + "u" + c)
	}
	for i := range f.keys {
		b.WriteString(", " + filterPrefix + "k" + strconv.Itoa(i))
	}
	b.WriteString(")\nLEFT JOIN " + f.from + " AS " + src + " ON v." + filterPrefix + "fetch")
	for i, k := range f.keys {
		b.WriteString(" AND " + src + "." + schema.QuoteIdent(k) + " = v." + filterPrefix + "k" + strconv.Itoa(i))
	}
	// The derived table takes the table's name and columns, so that the
	// where reads the same names as in the other statement.
	b.WriteString("\n) AS " + schema.QuoteIdent(f.aliasName) + "(" + filterOrdColumn + ", " + filterPrefix + "fetch, " + filterPrefix + "found")
	for _, c := range f.columns {
		b.WriteString(", " + schema.QuoteIdent(c))
	}
	b.WriteString(") ORDER BY " + filterOrdColumn)
	return b.String()
}

// validate has the server parse and analyse (not run) the filter's
// statement, so that a filter that cannot work fails at plan time.
func (f *Filter) validate(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.PgConn().Prepare(ctx, "", f.query(1), nil); err != nil {
		if transient(err) {
			return fmt.Errorf("%s: checking the in-process filter: %w", f.table, err)
		}
		return schema.WrapSQL(err, "%s: where cannot be evaluated by pgveil (it may use only the table's own columns, unqualified or qualified by the table name)", f.table)
	}
	return nil
}

// Match evaluates the filter on rows and reports which rows pass. A row
// holds the values of Columns(), in PostgreSQL text format, optionally
// followed by those of Keys(). A NULL result counts as false.
//
// A value that is Unchanged (a TOAST value an UPDATE did not touch, which
// pgoutput sends without data) is read back from the source table by the
// row's key, never taken as NULL: a filter such as
// NOT coalesce((consent->>'opt_out')::boolean, false) would otherwise let
// an excluded row in. The value read is the row's current one, which a
// later change in the stream will show again, so the replica converges
// to the filter's verdict on the committed row. A row that no longer
// exists, or whose key is itself missing, fails the filter (it leaves or
// stays out of the replica; its DELETE follows in the stream). A row with
// an Unchanged value but no key values is an error wrapping
// ErrUnchangedValue.
//
// Match sends at most 1000 rows per statement (fewer when the filter needs
// many columns: a statement has at most 65535 parameters). Errors never
// hold a value: a server error is a *FilterError. The statements run on
// conn as it is, outside any transaction of Match's own: give conn a
// statement_timeout (for example with options=-c statement_timeout=30s in
// its DSN), since the filter is the rules' SQL and may call functions.
func (f *Filter) Match(ctx context.Context, conn *pgx.Conn, rows [][]schema.Value) ([]bool, error) {
	out := make([]bool, len(rows))
	for start := 0; start < len(rows); start += f.perStmt {
		end := min(start+f.perStmt, len(rows))
		if err := f.match(ctx, conn, rows[start:end], out[start:end]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// param is v as a bind parameter: nil for NULL, an empty slice (not nil)
// for an empty string.
func param(v schema.Value) []byte {
	if v.State == schema.Null || v.State == schema.Unchanged {
		return nil
	}
	if v.Text == nil {
		return []byte{}
	}
	return v.Text
}

func (f *Filter) match(ctx context.Context, conn *pgx.Conn, rows [][]schema.Value, out []bool) error {
	fetch := false
	for i, row := range rows {
		if len(row) != len(f.columns) && len(row) != len(f.columns)+len(f.keys) {
			return fmt.Errorf("%s: in-process filter: row has %d values, the filter needs %d (and %d key values to read unchanged ones back)", f.table, len(row), len(f.columns), len(f.keys))
		}
		for j, v := range row[:len(f.columns)] {
			if v.State != schema.Unchanged {
				continue
			}
			if len(row) == len(f.columns) || len(f.keys) == 0 {
				return fmt.Errorf("%s: in-process filter: row %d, column %s: %w", f.table, i, schema.QuoteIdent(f.columns[j]), ErrUnchangedValue)
			}
			fetch = true
		}
	}
	var params [][]byte
	query := ""
	if !fetch {
		params = make([][]byte, 0, len(rows)*len(f.columns))
		for _, row := range rows {
			for _, v := range row[:len(f.columns)] {
				params = append(params, param(v))
			}
		}
		query = f.query(len(rows))
	} else {
		params = make([][]byte, 0, len(rows)*(1+2*len(f.columns)+len(f.keys)))
		for _, row := range rows {
			need := slices.ContainsFunc(row[:len(f.columns)], func(v schema.Value) bool { return v.State == schema.Unchanged })
			params = append(params, boolParam(need))
			for _, v := range row[:len(f.columns)] {
				params = append(params, param(v), boolParam(v.State == schema.Unchanged))
			}
			for _, v := range row[len(f.columns):] {
				params = append(params, param(v))
			}
		}
		query = f.fetchQuery(len(rows))
	}
	rr := conn.PgConn().ExecParams(ctx, query, params, nil, nil, nil)
	seen := 0
	for rr.NextRow() {
		vals := rr.Values()
		if len(vals) != 2 {
			continue
		}
		ord, err := strconv.Atoi(string(vals[0]))
		if err != nil || ord < 1 || ord > len(rows) {
			continue
		}
		out[ord-1] = string(vals[1]) == "t"
		seen++
	}
	if _, err := rr.Close(); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return &FilterError{Table: f.table, Code: pe.Code}
		}
		return fmt.Errorf("%s: evaluating the in-process filter: %w", f.table, err)
	}
	if seen != len(rows) {
		return fmt.Errorf("%s: evaluating the in-process filter: %d results for %d rows", f.table, seen, len(rows))
	}
	return nil
}
