package source

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/transform"
)

// Limits of one Filter query: rows per statement, and PostgreSQL's limit
// on the number of bind parameters of a statement.
const (
	filterBatch     = 1000
	maxBindParams   = 65535
	filterOrdColumn = "__pgveil_ord"
)

// ErrUnchangedValue is returned (wrapped) by Filter.Match when a column
// the filter needs holds an unchanged TOAST value, which carries no data:
// the caller must fetch the value before filtering.
var ErrUnchangedValue = errors.New("value is an unchanged TOAST value (no data)")

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
	alias   string // the VALUES list's alias: table(__pgveil_ord, columns...)
	perStmt int    // rows per statement
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
func NewFilter(t *transform.Table, pt PublishedTable) (*Filter, error) {
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
			return nil, fmt.Errorf("%s: in-process filter: column %s not in the table", q, transform.QuoteIdent(name))
		}
		if name == filterOrdColumn {
			return nil, fmt.Errorf("%s: in-process filter: column name %s is reserved by pgveil", q, name)
		}
		typ := c.Type.String()
		if pt.FilterTypes != nil && pt.FilterTypes[i] != "" {
			typ = pt.FilterTypes[i]
		}
		f.columns = append(f.columns, name)
		f.types = append(f.types, typ)
		cols = append(cols, pgx.Identifier{name}.Sanitize())
	}
	f.alias = pgx.Identifier{t.Name}.Sanitize() + "(" + strings.Join(cols, ", ") + ")"
	if n := len(f.columns); n > 0 && maxBindParams/n < f.perStmt {
		f.perStmt = maxBindParams / n
	}
	return f, nil
}

// Columns are the columns Match needs, in the order its rows hold them.
func (f *Filter) Columns() []string { return f.columns }

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
		for _, typ := range f.types {
			b.WriteString(", CAST($" + strconv.Itoa(p) + " AS " + typ + ")")
			p++
		}
		b.WriteString(")")
	}
	b.WriteString(") AS " + f.alias + " ORDER BY " + filterOrdColumn)
	return b.String()
}

// validate has the server parse and analyse (not run) the filter's
// statement, so that a filter that cannot work fails at plan time.
func (f *Filter) validate(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.PgConn().Prepare(ctx, "", f.query(1), nil); err != nil {
		if transient(err) {
			return fmt.Errorf("%s: checking the in-process filter: %w", f.table, err)
		}
		return wrapSQL(err, "%s: where cannot be evaluated by pgveil (it may use only the table's own columns, unqualified or qualified by the table name)", f.table)
	}
	return nil
}

// Match evaluates the filter on rows, each holding the values of Columns()
// in PostgreSQL text format, and reports which rows pass. A NULL result
// counts as false. It sends at most 1000 rows per statement (fewer when
// the filter needs many columns: a statement has at most 65535
// parameters). Errors never hold a value: a server error is a
// *FilterError. The statements run on conn as it is, outside any
// transaction of Match's own: give conn a statement_timeout (for example
// with options=-c statement_timeout=30s in its DSN), since the filter is
// the rules' SQL and may call functions.
func (f *Filter) Match(ctx context.Context, conn *pgx.Conn, rows [][]transform.Value) ([]bool, error) {
	out := make([]bool, len(rows))
	for start := 0; start < len(rows); start += f.perStmt {
		end := min(start+f.perStmt, len(rows))
		if err := f.match(ctx, conn, rows[start:end], out[start:end]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (f *Filter) match(ctx context.Context, conn *pgx.Conn, rows [][]transform.Value, out []bool) error {
	params := make([][]byte, 0, len(rows)*len(f.columns))
	for i, row := range rows {
		if len(row) != len(f.columns) {
			return fmt.Errorf("%s: in-process filter: row has %d values, the filter needs %d", f.table, len(row), len(f.columns))
		}
		for j, v := range row {
			switch v.State {
			case transform.Null:
				params = append(params, nil)
			case transform.Unchanged:
				return fmt.Errorf("%s: in-process filter: row %d, column %s: %w", f.table, i, transform.QuoteIdent(f.columns[j]), ErrUnchangedValue)
			default:
				if v.Text == nil {
					params = append(params, []byte{}) // present and empty, not NULL
				} else {
					params = append(params, v.Text)
				}
			}
		}
	}
	rr := conn.PgConn().ExecParams(ctx, f.query(len(rows)), params, nil, nil, nil)
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
