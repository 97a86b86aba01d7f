package transform

import (
	"fmt"
	"pgveil/schema"
	"sort"
	"sync/atomic"
)

// Plan masks the rows of every replicated table. It is built by the rules
// package from the YAML rules and the source catalog, and is immutable and
// safe for concurrent use once built.
type Plan struct {
	tables []*TablePlan
	byName map[schema.TableName]*TablePlan
}

// TablePlan masks the rows of one table.
type TablePlan struct {
	Table *schema.Table // the source table as the catalog described it
	// Where is the table's row filter (SQL), or "".
	Where string
	// Columns are the published columns, in attribute order: the columns a
	// row passed to Mask holds, and the columns the replica gets.
	Columns []ColumnPlan
	// Dropped are the columns left out of the publication and the replica.
	Dropped []string
	// NulledErrors counts values written as NULL because their rule could
	// not mask them and the column has on_error: null.
	NulledErrors atomic.Int64
}

// ColumnPlan is one published column and its transformer.
type ColumnPlan struct {
	Column      schema.Column
	Rule        Rule
	Transformer Transformer
}

// NewPlan returns a plan of the given tables.
func NewPlan(tables []*TablePlan) *Plan {
	p := &Plan{tables: tables, byName: make(map[schema.TableName]*TablePlan, len(tables))}
	for _, t := range tables {
		p.byName[schema.TableName{Schema: t.Table.Schema, Name: t.Table.Name}] = t
	}
	return p
}

// Tables returns the table plans in the order of the rules file.
func (p *Plan) Tables() []*TablePlan { return p.tables }

// Table returns the plan of schema.name, or nil when the table is not
// replicated.
func (p *Plan) Table(schemaName, name string) *TablePlan {
	return p.byName[schema.TableName{Schema: schemaName, Name: name}]
}

// Summary counts the columns using each transformer, dropped ones included.
func (p *Plan) Summary() map[string]int {
	m := map[string]int{}
	for _, t := range p.tables {
		for _, c := range t.Columns {
			m[c.Rule.Name]++
		}
		m["drop"] += len(t.Dropped)
	}
	return m
}

// SortedSummary is Summary as "name: count" pairs ordered by name.
func (p *Plan) SortedSummary() []string {
	m := p.Summary()
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%s: %d", n, m[n])
	}
	return out
}

// ColumnNames returns the published column names, in order.
func (t *TablePlan) ColumnNames() []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Column.Name
	}
	return names
}

// MaskError reports a value a transformer could not mask. It names the
// table and column and never holds the value.
type MaskError struct {
	Column string // schema.table.column
	Rule   string
	Err    error
}

func (e *MaskError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Column, e.Rule, e.Err)
}

func (e *MaskError) Unwrap() error { return e.Err }

// Mask appends to dst the masked form of row, which holds the published
// columns in the order of Columns. NULL stays NULL and unchanged TOAST
// values stay unchanged. On error dst is returned as it was.
func (t *TablePlan) Mask(dst, row []schema.Value) ([]schema.Value, error) {
	if len(row) != len(t.Columns) {
		return dst, fmt.Errorf("%s: row has %d columns, the plan %d", t.Table.QualifiedName(), len(row), len(t.Columns))
	}
	n := len(dst)
	for i, v := range row {
		if v.State != schema.Present {
			dst = append(dst, v)
			continue
		}
		c := &t.Columns[i]
		out, err := c.Transformer.Transform(v)
		if err != nil {
			if c.Rule.OnError == "null" {
				t.NulledErrors.Add(1)
				dst = append(dst, schema.Value{State: schema.Null})
				continue
			}
			return dst[:n], &MaskError{Column: c.Column.QualifiedName(), Rule: c.Rule.Name, Err: err}
		}
		dst = append(dst, out)
	}
	return dst, nil
}
