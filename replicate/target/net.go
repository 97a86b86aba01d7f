package target

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"pgveil/schema"
	"pgveil/transform"
)

// Net changes. Within one target transaction, the changes to a table with
// a primary key need not be applied one by one: the target has no foreign
// keys, triggers or unique constraints besides the key, and a reader sees
// only the committed end state, so what matters is each key's last state.
// The Applier keeps, per table and key, that state (deleted, a full row,
// or some columns updated) and writes each table's states as at most three
// statements (DELETE, INSERT ... ON CONFLICT, UPDATE per set of columns)
// whose rows travel as one binary text array per column (netSource): a
// batch of thousands of changes costs a handful of statements instead of
// thousands.

// netKind is the state of a key.
type netKind uint8

const (
	netDelete  netKind = iota + 1 // the row is gone
	netFull                       // the row is this, whatever it was
	netPartial                    // the columns not Unchanged take these values, if the row exists
)

type netRow struct {
	kind netKind
	row  []schema.Value // netFull, netPartial: the table's columns; netPartial has Unchanged ones
	key  []schema.Value // the key
	// filter and frow: the row filter the last change must pass, and the
	// raw values it reads (netFull, netPartial).
	filter RowFilter
	frow   []schema.Value
}

// netTable is the pending states of one table's keys.
type netTable struct {
	t     *transform.TablePlan
	ti    *tableInfo
	rows  map[string]*netRow
	order []string // keys in first-seen order, so that statements are stable
}

// netKey encodes key values as a map key: distinct for distinct texts,
// with NULL apart from every text.
func netKey(buf []byte, key []schema.Value) []byte {
	buf = buf[:0]
	for _, v := range key {
		if v.State == schema.Null {
			buf = append(buf, 'n')
			continue
		}
		buf = append(buf, 'v')
		buf = strconv.AppendInt(buf, int64(len(v.Text)), 10)
		buf = append(buf, ':')
		buf = append(buf, v.Text...)
	}
	return buf
}

// hold copies v's bytes into the applier's arena, so that the state
// outlives the decoder's buffers.
func (a *Applier) hold(v schema.Value) schema.Value {
	if v.Text == nil {
		return v
	}
	if cap(a.arena)-len(a.arena) < len(v.Text) {
		a.arena = make([]byte, 0, max(64<<10, len(v.Text)))
	}
	start := len(a.arena)
	a.arena = append(a.arena, v.Text...)
	v.Text = a.arena[start:len(a.arena):len(a.arena)]
	return v
}

func (a *Applier) holdRow(row []schema.Value) []schema.Value {
	out := make([]schema.Value, len(row))
	for i, v := range row {
		out[i] = a.hold(v)
		a.bytes += len(v.Text)
	}
	return out
}

// netOf returns the pending states of t.
func (a *Applier) netOf(t *transform.TablePlan, ti *tableInfo) *netTable {
	nt := a.net[t]
	if nt == nil {
		nt = &netTable{t: t, ti: ti, rows: map[string]*netRow{}}
		a.net[t] = nt
		a.netOrder = append(a.netOrder, nt)
	}
	return nt
}

func (nt *netTable) get(a *Applier, key []schema.Value) (string, *netRow) {
	a.keyText = netKey(a.keyText, key)
	k := string(a.keyText)
	return k, nt.rows[k]
}

func (nt *netTable) set(a *Applier, k string, r *netRow) {
	if _, ok := nt.rows[k]; !ok {
		nt.order = append(nt.order, k)
		a.netRows++
	}
	nt.rows[k] = r
}

// netFullRow records that the row with row's key is now row (if it
// passes c's filter).
func (a *Applier) netFullRow(nt *netTable, key, row []schema.Value, c *Change) {
	k, _ := nt.get(a, key)
	r := &netRow{kind: netFull, row: a.holdRow(row), key: a.holdRow(key)}
	a.setFilter(r, c)
	nt.set(a, k, r)
}

// setFilter makes c's row filter the one r must pass.
func (a *Applier) setFilter(r *netRow, c *Change) {
	r.filter, r.frow = nil, nil
	if c != nil && c.Filter != nil {
		r.filter, r.frow = c.Filter, a.holdRow(c.FilterRow)
	}
}

// netDeleteKey records that the row with key is gone.
func (a *Applier) netDeleteKey(nt *netTable, key []schema.Value) {
	k, _ := nt.get(a, key)
	nt.set(a, k, &netRow{kind: netDelete, key: a.holdRow(key)})
}

// netPartialUpdate records an update of the present columns of row on the
// row with key (unmoved). It merges with the key's earlier state.
func (a *Applier) netPartialUpdate(nt *netTable, key, row []schema.Value, c *Change) {
	k, prev := nt.get(a, key)
	switch {
	case prev == nil:
		r := &netRow{kind: netPartial, row: a.holdRow(row), key: a.holdRow(key)}
		a.setFilter(r, c)
		nt.set(a, k, r)
	case prev.kind == netDelete:
		// Updating a deleted row changes nothing.
	default: // full or partial: the present columns win
		for i, v := range row {
			if v.State != schema.Unchanged {
				prev.row[i] = a.hold(v)
				a.bytes += len(v.Text)
			}
		}
		a.setFilter(prev, c)
	}
}

// netMove records an update that moves a row with Unchanged columns from
// oldKey to newKey. It can only be done in memory when the old row's full
// state is known here; otherwise it reports false and the caller writes
// the table's states and sends the move as a statement.
func (a *Applier) netMove(nt *netTable, oldKey, newKey, row []schema.Value, c *Change) bool {
	k, prev := nt.get(a, oldKey)
	switch {
	case prev != nil && prev.kind == netDelete:
		return true // moving a row that is not there changes nothing
	case prev == nil || prev.kind != netFull:
		return false
	}
	merged := prev.row
	for i, v := range row {
		if v.State != schema.Unchanged {
			merged[i] = a.hold(v)
			a.bytes += len(v.Text)
		}
	}
	nt.set(a, k, &netRow{kind: netDelete, key: a.holdRow(oldKey)})
	k2, _ := nt.get(a, newKey)
	r := &netRow{kind: netFull, row: merged, key: a.holdRow(newKey)}
	a.setFilter(r, c)
	nt.set(a, k2, r)
	return true
}

// writeNet queues the statements writing every table's pending states.
func (a *Applier) writeNet(ctx context.Context) error {
	for _, nt := range a.netOrder {
		if err := a.writeNetTable(ctx, nt); err != nil {
			return err
		}
	}
	return nil
}

// writeNetTable queues the statements writing one table's pending states
// and forgets them.
func (a *Applier) writeNetTable(ctx context.Context, nt *netTable) error {
	if len(nt.order) == 0 {
		return nil
	}
	ti := nt.ti
	if err := a.netFilter(ctx, nt); err != nil {
		return err
	}
	var dels, fulls []*netRow
	partials := map[string][]*netRow{}
	var masks []string
	for _, k := range nt.order {
		r := nt.rows[k]
		switch r.kind {
		case netDelete:
			dels = append(dels, r)
		case netFull:
			fulls = append(fulls, r)
		case netPartial:
			a.markPresent(ti, r.row, false)
			m := string(a.setMask)
			if !strings.Contains(m, "\x01") {
				continue // only the key is present: nothing to write
			}
			if partials[m] == nil {
				masks = append(masks, m)
			}
			partials[m] = append(partials[m], r)
		}
	}
	a.netRows -= len(nt.order)
	clear(nt.rows)
	nt.order = nt.order[:0]

	if len(dels) > 0 {
		err := a.writeArrays(ctx, stmtKey{table: nt.t, kind: stmtNetDelete}, ti.netDeleteSQL, dels, ti.key, true,
			queued{op: OpDelete, table: ti.label, rows: len(dels)})
		if err != nil {
			return fmt.Errorf("delete from %s: %w", ti.label, err)
		}
	}
	if len(fulls) > 0 {
		err := a.writeArrays(ctx, stmtKey{table: nt.t, kind: stmtNetUpsert}, ti.netUpsertSQL, fulls, ti.all, false,
			queued{op: OpInsert, table: ti.label, rows: len(fulls), upsert: true})
		if err != nil {
			return fmt.Errorf("insert into %s: %w", ti.label, err)
		}
	}
	for _, m := range masks {
		rows := partials[m]
		err := a.writeArrays(ctx, stmtKey{table: nt.t, kind: stmtNetUpdate, cols: m}, func() string { return ti.netUpdateSQL(m) }, rows, ti.updateColumns(m), false,
			queued{op: OpUpdate, table: ti.label, rows: len(rows)})
		if err != nil {
			return fmt.Errorf("update of %s: %w", ti.label, err)
		}
	}
	return nil
}

// writeArrays queues the statement key (prepared from sql on first use)
// with one parameter per column of cols: the rows' values of that column
// as a binary text[] (appendTextArray). fromKey takes the values from the
// rows' keys (cols is then ti.key) instead of their full rows.
func (a *Applier) writeArrays(ctx context.Context, key stmtKey, sql func() string, rows []*netRow, cols []int, fromKey bool, q queued) error {
	name, err := a.stmt(ctx, key, sql)
	if err != nil {
		return err
	}
	a.arrays = a.arrays[:0]
	a.offsets = a.offsets[:0]
	for j, col := range cols {
		var ok bool
		a.arrays, ok = appendTextArray(a.arrays, len(rows), func(i int) schema.Value {
			if fromKey {
				return rows[i].key[j]
			}
			return rows[i].row[col]
		})
		if !ok {
			// The states never hold one where a statement reads it:
			// sending it as empty text would write a wrong value.
			return errors.New("a value marked unchanged reached a statement that writes it")
		}
		a.offsets = append(a.offsets, len(a.arrays))
	}
	a.params = a.params[:0]
	from := 0
	for _, to := range a.offsets {
		a.params = append(a.params, a.arrays[from:to:to])
		from = to
	}
	for len(a.binary) < len(cols) {
		a.binary = append(a.binary, 1)
	}
	a.batch.ExecPrepared(name, a.params, a.binary[:len(cols)], nil)
	a.queued = append(a.queued, q)
	return nil
}

// textOID is the type OID of text, the element type of the arrays the net
// statements read.
const textOID = 25

// appendTextArray appends, in the binary format of a one-dimensional
// text[] (array_recv), the n values value returns. Binary, because the
// server then copies each element as it is, with no quoting to parse: the
// text array costs the server far less than the JSON array it replaces
// (see netSource). It reports false, having appended a partial array, if
// a value is Unchanged (it has no text).
func appendTextArray(b []byte, n int, value func(int) schema.Value) ([]byte, bool) {
	hasNull := uint32(0)
	for i := range n {
		if value(i).State == schema.Null {
			hasNull = 1
			break
		}
	}
	b = binary.BigEndian.AppendUint32(b, 1) // dimensions
	b = binary.BigEndian.AppendUint32(b, hasNull)
	b = binary.BigEndian.AppendUint32(b, textOID)
	b = binary.BigEndian.AppendUint32(b, uint32(n)) // length
	b = binary.BigEndian.AppendUint32(b, 1)         // lower bound
	for i := range n {
		v := value(i)
		switch v.State {
		case schema.Null:
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		case schema.Unchanged:
			return b, false
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.Text)))
		b = append(b, v.Text...)
	}
	return b, true
}

// netFilter evaluates the row filters of the table's pending rows, in one
// call per filter (a table's filter is the same, but a new Relation
// message gives it a new instance), and turns the rows that fail into
// deletes by key.
func (a *Applier) netFilter(ctx context.Context, nt *netTable) error {
	var order []RowFilter
	rows := map[RowFilter][]*netRow{}
	for _, k := range nt.order {
		r := nt.rows[k]
		if r.filter == nil || r.kind == netDelete {
			continue
		}
		if rows[r.filter] == nil {
			order = append(order, r.filter)
		}
		rows[r.filter] = append(rows[r.filter], r)
	}
	for _, f := range order {
		group := rows[f]
		frows := make([][]schema.Value, len(group))
		for i, r := range group {
			frows[i] = r.frow
		}
		pass, err := f.Match(ctx, frows)
		if err != nil {
			return err
		}
		for i, r := range group {
			if !pass[i] {
				r.kind, r.row = netDelete, nil
			} else if a.tenancy != nil {
				if err := a.noteTenant(nt.t, r.row); err != nil {
					return err
				}
			}
			r.filter, r.frow = nil, nil
		}
	}
	return nil
}

// The net statements read their rows from one parameter per column, a
// text[] sent in binary form, unnested side by side and cast to the
// column's type (netSource): every value goes through its type's input
// function, as a text parameter would.
//
// Measured (BenchmarkNetSources, 300 full-row upserts of a 13-column
// table with a jsonb column, server CPU per row): one JSON array read by
// json_populate_recordset cost 12.7-14.0 µs, of which 4.7-5.3 µs reading
// the JSON alone; the text arrays 7.3-8.7 µs, 1.7 µs reading them. COPY
// into a temporary staging table then INSERT ... SELECT cost the same
// 8.0-8.3 µs, but takes a round trip of its own per table (COPY cannot
// travel in a pipelined batch) and a temporary table per table and
// connection, so the arrays won.
const (
	netRec = "pgveil_v"
	netDst = "pgveil_dst"
	netArr = "pgveil_a"
)

// castType is the type the text of column i is cast to: the column's type
// without its modifiers, so that the assignment to the column applies
// them as the type's input function would (a value too long for a
// varchar(n), or a bit string of the wrong length, is an error, not cut
// short or padded as an explicit cast would). character and bit without
// a length mean a length of 1, so they become bpchar and bit varying.
// The name of a type schema does not know keeps its modifiers (bit(3),
// geometry(Point,4326)): they are taken out of it too.
func castType(t schema.Type) string {
	t.Length, t.Precision, t.Scale, t.Mod = 0, 0, 0, ""
	if t.Kind == schema.KindOther {
		t.Name = withoutModifier(t.Name)
	}
	switch t.Name {
	case "character":
		t.Name = "bpchar"
	case "bit":
		t.Name = "bit varying"
	}
	return t.String()
}

// withoutModifier removes from a type name the first parenthesised part
// outside double quotes ("bit varying(5)" is "bit varying").
func withoutModifier(name string) string {
	quoted := false
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '"':
			quoted = !quoted
		case '(':
			if quoted {
				continue
			}
			end := strings.IndexByte(name[i:], ')')
			if end < 0 {
				return name
			}
			return strings.Join(strings.Fields(name[:i]+" "+name[i+end+1:]), " ")
		}
	}
	return name
}

// netSource is the FROM item giving, as pgveil_v, the columns cols
// (indexes of the table's columns) read from the parameters $1, $2, ...
// in that order.
func (ti *tableInfo) netSource(cols []int) string {
	var sel, args, names []string
	for j, i := range cols {
		sel = append(sel, netArr+"."+ti.cols[i]+"::"+ti.casts[i]+" AS "+ti.cols[i])
		args = append(args, "$"+strconv.Itoa(j+1)+"::text[]")
		names = append(names, ti.cols[i])
	}
	return "(SELECT " + strings.Join(sel, ", ") + " FROM unnest(" + strings.Join(args, ", ") + ") AS " + netArr + "(" + strings.Join(names, ", ") + ")) AS " + netRec
}

func (ti *tableInfo) netKeyMatch() string {
	var b strings.Builder
	for j, k := range ti.key {
		if j > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(netDst + "." + ti.cols[k] + " = " + netRec + "." + ti.cols[k])
	}
	return b.String()
}

// netUpsertSQL inserts the rows, updating those whose key exists.
func (ti *tableInfo) netUpsertSQL() string {
	vals := make([]string, len(ti.cols))
	for i, c := range ti.cols {
		vals[i] = netRec + "." + c
	}
	return "INSERT INTO " + ti.name + " (" + strings.Join(ti.cols, ", ") + ") SELECT " + strings.Join(vals, ", ") + " FROM " + ti.netSource(ti.all) + ti.onConflictSQL()
}

// netDeleteSQL deletes the rows whose keys the arrays list.
func (ti *tableInfo) netDeleteSQL() string {
	return "DELETE FROM " + ti.name + " AS " + netDst + " USING " + ti.netSource(ti.key) + " WHERE " + ti.netKeyMatch()
}

// updateColumns are the columns an update of the columns mask marks reads:
// the key, then the marked columns.
func (ti *tableInfo) updateColumns(mask string) []int {
	cols := slices.Clone(ti.key)
	for i := 0; i < len(mask); i++ {
		if mask[i] == 1 {
			cols = append(cols, i)
		}
	}
	return cols
}

// netUpdateSQL updates the columns mask marks, by key.
func (ti *tableInfo) netUpdateSQL(mask string) string {
	var set []string
	for i := 0; i < len(mask); i++ {
		if mask[i] == 1 {
			set = append(set, ti.cols[i]+" = "+netRec+"."+ti.cols[i])
		}
	}
	return "UPDATE " + ti.name + " AS " + netDst + " SET " + strings.Join(set, ", ") + " FROM " + ti.netSource(ti.updateColumns(mask)) + " WHERE " + ti.netKeyMatch()
}
