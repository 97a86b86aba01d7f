package replicate

import (
	"fmt"
	"log/slog"
	"slices"

	"pgveil/replicate/pgoutput"
	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

// relation maps a source relation, as the last Relation message described
// it, to the plan of its table.
type relation struct {
	oid   uint32
	name  schema.TableName
	table *transform.TablePlan // nil: not replicated
	// label is the table's schema.name, for the observer and messages:
	// worked out once per Relation message, not once per row.
	label string
	// planIdx[i] is the index in table.Columns of the relation's column
	// i, or -1 when the column is not replicated.
	planIdx []int
	// filter is the table's in-process row filter, with the relation
	// column index of each of its columns.
	filter    *source.Filter
	filterIdx []int
	keyIdx    []int // target.KeyColumns(table)
	// missing are plan columns the relation does not send (added in
	// production after these changes, or dropped since the plan was
	// built): NULL on insert, unchanged on update.
	missing []bool
	// deferFilter: the applier evaluates filter, through rowFilter, on
	// a batch of rows at once (tables with a key).
	deferFilter bool
	rowFilter   target.RowFilter
}

// columnWarnings logs what a Relation message shows that does not match
// the plan, once per table, column and kind for the life of a stream: a
// Relation message comes again after every DDL, VACUUM FULL or CLUSTER of
// the table, and would repeat it each time.
type columnWarnings struct {
	log  *slog.Logger
	seen map[[3]string]bool
	// sent are the plan's columns, by table, that a Relation message of
	// this stream carried: a column missing from a later one was dropped,
	// one missing before was not there yet (see newRelation).
	sent map[[2]string]bool
}

// Why a plan column is missing from a Relation message.
const (
	warnColumnDropped = "column of the rules no longer sent by the source (dropped in production?): new rows get NULL"
	warnColumnNotYet  = "column of the rules not in the source's changes yet: they were made before production added it; rows they insert get NULL, rows they update keep the replica's value"
)

// carried notes that a Relation message of table carried column.
func (w *columnWarnings) carried(table, column string) {
	if w.sent == nil {
		w.sent = map[[2]string]bool{}
	}
	w.sent[[2]string{table, column}] = true
}

func (w *columnWarnings) warn(msg, table, column string) {
	k := [3]string{msg, table, column}
	if w.seen[k] {
		return
	}
	if w.seen == nil {
		w.seen = map[[3]string]bool{}
	}
	w.seen[k] = true
	w.log.Warn(msg, "table", table, "column", column)
}

// newRelation builds the mapping and reports what does not match the
// plan. It never fails: a schema change must not stop replication of the
// other columns, but it is logged (without values).
func newRelation(m *pgoutput.Relation, lookup func(schemaName, name string) *transform.TablePlan, filters map[schema.TableName]*source.Filter, warnings *columnWarnings) *relation {
	r := &relation{oid: m.OID, name: schema.TableName{Schema: m.Namespace, Name: m.Name}}
	r.table = lookup(m.Namespace, m.Name)
	if r.table == nil {
		return r
	}
	r.label = r.table.Table.QualifiedName()
	byName := make(map[string]int, len(r.table.Columns))
	for i, c := range r.table.Columns {
		byName[c.Column.Name] = i
	}
	dropped := make(map[string]bool, len(r.table.Dropped))
	for _, d := range r.table.Dropped {
		dropped[d] = true
	}
	r.planIdx = make([]int, len(m.Columns))
	seen := make([]bool, len(r.table.Columns))
	for i, c := range m.Columns {
		j, ok := byName[c.Name]
		if !ok {
			r.planIdx[i] = -1
			if !dropped[c.Name] {
				warnings.warn("column not in the rules: not replicated until a rule names it", r.label, c.Name)
			}
			continue
		}
		r.planIdx[i] = j
		seen[j] = true
		warnings.carried(r.label, c.Name)
	}
	r.missing = make([]bool, len(r.table.Columns))
	for j, ok := range seen {
		if !ok {
			r.missing[j] = true
			// The plan comes from production's catalog as it is now, the
			// Relation message from the point of its history being
			// decoded: a column this stream has not seen yet is one those
			// changes predate (a stream resuming behind an ADD COLUMN the
			// rules now name), one it has seen is gone.
			table, column := r.label, r.table.Columns[j].Column.Name
			msg := warnColumnNotYet
			if warnings.sent[[2]string{table, column}] {
				msg = warnColumnDropped
			}
			warnings.warn(msg, table, column)
		}
	}
	if f := filters[r.name]; f != nil {
		r.filter = f
		for _, name := range slices.Concat(f.Columns(), f.Keys()) {
			idx := -1
			for i, c := range m.Columns {
				if c.Name == name {
					idx = i
				}
			}
			r.filterIdx = append(r.filterIdx, idx)
		}
	}
	r.keyIdx = target.KeyColumns(r.table)
	return r
}

// planRow returns the tuple's values in plan column order. Unchanged
// TOAST values and columns the relation lacks come back as Unchanged when
// update is set; on inserts a missing column is NULL.
func (r *relation) planRow(t pgoutput.Tuple, update bool) ([]schema.Value, error) {
	if len(t) != len(r.planIdx) {
		return nil, fmt.Errorf("%s: tuple has %d columns, the relation %d", r.label, len(t), len(r.planIdx))
	}
	row := make([]schema.Value, len(r.table.Columns))
	for j, miss := range r.missing {
		if miss {
			if update {
				row[j] = schema.Value{State: schema.Unchanged}
			} else {
				row[j] = schema.SQLNull()
			}
		}
	}
	for i, c := range t {
		j := r.planIdx[i]
		if j < 0 {
			continue
		}
		switch c.Kind {
		case pgoutput.KindText:
			row[j] = schema.Value{Text: c.Data}
		case pgoutput.KindNull:
			row[j] = schema.SQLNull()
		case pgoutput.KindUnchanged:
			row[j] = schema.Value{State: schema.Unchanged}
		default:
			return nil, fmt.Errorf("%s.%s: binary tuple data was not asked for", r.label, r.table.Columns[j].Column.Name)
		}
	}
	return row, nil
}

// filterRow returns the values the in-process filter needs: its columns
// then the table's key (source.Filter.Match). A TOAST value the change
// left unchanged is taken from old, the change's old row, when that holds
// it (REPLICA IDENTITY FULL sends whole old rows); otherwise it stays
// Unchanged and Match reads it back from the source. It is never taken as
// NULL: a where such as NOT coalesce(opt_out, false) would then let a row
// it excludes into the replica.
func (r *relation) filterRow(t, old pgoutput.Tuple) []schema.Value {
	out := make([]schema.Value, len(r.filterIdx))
	for k, i := range r.filterIdx {
		switch {
		case i < 0 || i >= len(t):
			// The source no longer sends the column (dropped in
			// production): the stream restarts on such a Relation
			// message before any change; should one get here, NULL could
			// pass the where, and reading it back fails instead.
			out[k] = schema.Value{State: schema.Unchanged}
		case t[i].Kind == pgoutput.KindNull:
			out[k] = schema.SQLNull()
		case t[i].Kind == pgoutput.KindUnchanged:
			if i < len(old) && old[i].Kind == pgoutput.KindText {
				out[k] = schema.Value{Text: old[i].Data}
			} else {
				out[k] = schema.Value{State: schema.Unchanged}
			}
		default:
			out[k] = schema.Value{Text: t[i].Data}
		}
	}
	return out
}

// key extracts the identity values from a masked row.
func (r *relation) key(masked []schema.Value) []schema.Value {
	k := make([]schema.Value, len(r.keyIdx))
	for i, j := range r.keyIdx {
		k[i] = masked[j]
	}
	return k
}
