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

// MaskError is a value its rule could not mask: the one error type of
// masking, from the transformer up to the pipeline. It never holds the
// value. A transformer gives the Reason alone (what was expected, never
// what was found); Plan.Mask adds the column and rule; the pipeline adds
// Where in the stream. Replication stops on it rather than skip the row,
// which would lose data silently (replicate's transient: retrying masks
// the value again); a column can opt into NULL with on_error: null.
type MaskError struct {
	Column string // schema.table.column; empty from a transformer alone
	Rule   string
	Reason string
	// Where says where in replication the value was met: "in the initial
	// copy", "in the transaction committed at LSN 0/16B3748"; empty
	// outside replication (preview, verify, tests).
	Where string
}

func (e *MaskError) Error() string {
	if e.Column == "" {
		return e.Reason
	}
	msg := e.Column + ": " + e.Rule + ": " + e.Reason
	if e.Where == "" {
		return msg
	}
	return "cannot mask a value " + e.Where + ": " + msg + " (fix the rule, or add on_error: null to the column)"
}

// At returns a copy of e that says where in replication it was met.
func (e *MaskError) At(where string) *MaskError {
	c := *e
	c.Where = where
	return &c
}

// Mask appends to dst the masked form of row, which holds the published
// columns in the order of Columns. NULL stays NULL and unchanged TOAST
// values stay unchanged. On error dst is returned as it was.
func (t *TablePlan) Mask(dst, row []schema.Value) ([]schema.Value, error) {
	if len(row) != len(t.Columns) {
		return dst, fmt.Errorf("%s: row has %d columns, the plan %d", t.Table.QualifiedName(), len(row), len(t.Columns))
	}
	n := len(dst)
	for i, v := range row {
		out, err := t.MaskColumn(i, v)
		if err != nil {
			return dst[:n], err
		}
		dst = append(dst, out)
	}
	return dst, nil
}

// MaskColumn masks v, a value of the i-th column of Columns, as Mask masks
// it in a row: NULL stays NULL, an unchanged TOAST value stays unchanged,
// a value the rule cannot mask is a *MaskError (or NULL, counted, with
// on_error: null). It lets a caller mask only the columns that need it
// (see ColumnPlan.Kept).
func (t *TablePlan) MaskColumn(i int, v schema.Value) (schema.Value, error) {
	if v.State != schema.Present {
		return v, nil
	}
	c := &t.Columns[i]
	out, err := c.Transformer.Transform(v)
	if err != nil {
		if c.Rule.OnError == "null" {
			t.NulledErrors.Add(1)
			return schema.Value{State: schema.Null}, nil
		}
		// A transformer's own MaskError holds its reason alone;
		// another error's text is its reason (transformers keep
		// values out of their errors).
		return schema.Value{}, &MaskError{Column: c.Column.QualifiedName(), Rule: c.Rule.Name, Reason: err.Error()}
	}
	return out, nil
}

// Kept reports whether the column's rule is keep: its masked value is
// always the value itself, so a caller may pass it through in whatever
// encoding it arrived, without decoding it.
func (c *ColumnPlan) Kept() bool {
	_, ok := c.Transformer.(keep)
	return ok
}

// Nulled reports whether the column's rule is null: its masked value is
// always NULL, so a caller need not read or decode the value.
func (c *ColumnPlan) Nulled() bool {
	_, ok := c.Transformer.(null)
	return ok
}
