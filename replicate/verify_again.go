package replicate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

// This file holds `pgveil verify`'s algorithm: compare the replica with
// the re-masked source under one source snapshot (Compare, or a sample
// looked up by key), after waiting for the replica to reach that
// snapshot, and look again at the tables that differ. The command only
// reads flags and prints the result.

// VerifyLooks is how many times Verify compares a table that differs.
const VerifyLooks = 3

// Verifier compares tables of the replica with the re-masked source.
type Verifier struct {
	// Source reads the tables; Snapshot holds the snapshot they are read
	// under (an idle transaction that holds no table's lock). Both are
	// source connections with the pipeline's session settings
	// (ConnectSource); Target is the replica's (ConnectTarget).
	Source, Snapshot, Target *pgx.Conn
	// Slot is pgveil's replication slot, whose checkpoint and confirmed
	// position say how far the replica has got.
	Slot string
	// Wait bounds how long each look waits for the replica to reach the
	// source's position.
	Wait time.Duration
	// Sample, when positive, compares about that many random source rows
	// per table, looked up by key in the replica, instead of every row.
	Sample int
	// Catalog is the source catalog the plan was compiled against (table
	// OIDs and row estimates).
	Catalog *schema.Catalog
	// LookingAgain, when set, is told before each further look how many
	// tables differed at the source position compared.
	LookingAgain func(tables int, at pglogrepl.LSN)
}

// Verified is what Verify found.
type Verified struct {
	// Tables holds one comparison per table, in the order given. A table
	// looked at again holds the counts of its last look, with only the
	// rows that differed at every look as Missing, Extra and Different,
	// and the rest as Changed. In sample mode Source counts the rows
	// sampled, and Target and Extra are not computed.
	Tables []TableDiff
	// LSN is the source position of the last look.
	LSN pglogrepl.LSN
}

// Bad is how many tables differ.
func (v Verified) Bad() int {
	n := 0
	for _, d := range v.Tables {
		if !d.OK() {
			n++
		}
	}
	return n
}

// Verify compares tables with the replica and looks again at those that
// differ (see lookAgain).
func (v *Verifier) Verify(ctx context.Context, tables []*transform.TablePlan) (Verified, error) {
	checks := make([]*tableCheck, len(tables))
	for i, tp := range tables {
		checks[i] = &tableCheck{tp: tp}
	}
	lsn, err := lookAgain(ctx, checks, v.Sample > 0, v.round, v.LookingAgain)
	out := Verified{LSN: lsn, Tables: make([]TableDiff, len(checks))}
	for i, c := range checks {
		out.Tables[i] = c.diff
	}
	return out, err
}

// tableCheck is one table's comparison.
type tableCheck struct {
	tp   *transform.TablePlan
	diff TableDiff
	// keys are the key values of the sampled source rows, kept in memory
	// for the second look (never printed).
	keys [][]schema.Value
}

// lookFunc compares checks at a new source position and returns it;
// again, in sample mode, looks at the rows sampled before rather than at
// a new sample.
type lookFunc func(ctx context.Context, checks []*tableCheck, again bool) (pglogrepl.LSN, error)

// lookAgain is verify's algorithm, apart from the databases. The replica
// moves on while the tables are compared: a difference may be a change
// applied after the source's snapshot. Look again at the tables that
// differ, at newer positions; a row counts only if it differed every time
// (changes in flight touch other rows each time), and in sample mode the
// second look at the same rows is the one reported.
func lookAgain(ctx context.Context, checks []*tableCheck, sample bool, look lookFunc, told func(int, pglogrepl.LSN)) (pglogrepl.LSN, error) {
	lsn, err := look(ctx, checks, false)
	if err != nil {
		return lsn, err
	}
	for n := 2; n <= VerifyLooks; n++ {
		var again []*tableCheck
		for _, c := range checks {
			if !c.diff.OK() {
				again = append(again, c)
			}
		}
		if len(again) == 0 || sample && n > 2 {
			break
		}
		if told != nil {
			told(len(again), lsn)
		}
		prev := make([]TableDiff, len(again))
		for i, c := range again {
			prev[i] = c.diff
		}
		if lsn, err = look(ctx, again, true); err != nil {
			return lsn, err
		}
		for i, c := range again {
			c.diff = c.diff.Within(prev[i])
		}
	}
	return lsn, nil
}

// round opens a REPEATABLE READ snapshot of the source, waits until the
// replica has applied every source commit the snapshot sees, and compares
// the tables. It is a lookFunc.
//
// Each table is read in a transaction of its own that imports the
// snapshot, so that verify holds a table's lock only while it reads that
// table: a production migration waits for one table's read, never for the
// whole verify (guarantee 5).
func (v *Verifier) round(ctx context.Context, checks []*tableCheck, again bool) (pglogrepl.LSN, error) {
	tx, err := v.Snapshot.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, fmt.Errorf("opening a source snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	// The snapshot is taken as this statement starts: every commit it sees
	// ends before the insert position read after. (The insert position,
	// not the write position: with synchronous_commit off a commit is
	// visible before its WAL is written.)
	var text string
	if err := tx.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&text); err != nil {
		return 0, fmt.Errorf("reading the source's WAL position: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(text)
	if err != nil {
		return 0, fmt.Errorf("reading the source's WAL position: %w", err)
	}
	var snapshot string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return 0, fmt.Errorf("exporting the source snapshot: %w", err)
	}
	if err := v.waitFor(ctx, lsn); err != nil {
		return lsn, err
	}
	for _, c := range checks {
		err := InSnapshot(ctx, v.Source, snapshot, func() error {
			if err := v.compare(ctx, c, again); err != nil {
				return err
			}
			return v.notRewritten(ctx, c.tp)
		})
		if err != nil {
			return lsn, fmt.Errorf("%s: %w", c.tp.Table.QualifiedName(), err)
		}
	}
	return lsn, nil
}

// compare compares one table, in sample mode or whole.
func (v *Verifier) compare(ctx context.Context, c *tableCheck, again bool) error {
	if v.Sample > 0 {
		return v.sampleTable(ctx, c, again)
	}
	diffs, err := Compare(ctx, v.Source, v.Target, transform.NewPlan([]*transform.TablePlan{c.tp}))
	if err != nil {
		return fmt.Errorf("comparing: %w", err)
	}
	if len(diffs) != 1 {
		return fmt.Errorf("comparing: %d results for 1 table", len(diffs))
	}
	c.diff = diffs[0]
	return nil
}

// notRewritten checks, in the transaction that read tp (its lock still
// held), that production did not rewrite the table since the snapshot
// was taken, which would make its rows look missing.
func (v *Verifier) notRewritten(ctx context.Context, tp *transform.TablePlan) error {
	info := v.Catalog.Info[schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}]
	if info == nil {
		return nil
	}
	rewritten, err := Rewritten(ctx, v.Source, info.OID)
	if err != nil {
		return err
	}
	if rewritten {
		return errors.New("production rewrote the table while verify read it (TRUNCATE, VACUUM FULL, CLUSTER or ALTER TABLE ... TYPE): its rows cannot be compared; run verify again")
	}
	return nil
}

// waitFor waits until the replica holds every source commit before lsn:
// its checkpoint has reached lsn, or, when pgveil is idle (its checkpoint
// moves only with commits of replicated tables), the slot's confirmed
// position has (pgveil confirms only what the target has committed).
func (v *Verifier) waitFor(ctx context.Context, lsn pglogrepl.LSN) error {
	deadline := time.Now().Add(v.Wait)
	for {
		pos, found, err := target.ReadCheckpoint(ctx, v.Target, v.Slot)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("the target holds no checkpoint of slot %s: pgveil has not finished its initial copy", v.Slot)
		}
		if pos.LSN >= lsn {
			return nil
		}
		slot, err := ReadSlot(ctx, v.Source, v.Slot)
		if err != nil {
			return err
		}
		if !slot.Exists {
			return fmt.Errorf("replication slot %s does not exist: the replica cannot catch up", v.Slot)
		}
		if slot.ConfirmedFlushLSN >= lsn {
			return nil
		}
		if !time.Now().Before(deadline) {
			state := "not connected"
			if slot.Active {
				state = "connected"
			}
			return fmt.Errorf("the replica did not reach source position %s within %s (checkpoint %s, slot %s confirmed %s, pgveil %s): is pgveil running? (--wait sets the wait)",
				lsn, v.Wait, pos.LSN, v.Slot, slot.ConfirmedFlushLSN, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sampleTable compares a random sample of a table's source rows (in the
// open snapshot) with the replica, looking each masked row up by its key.
// again looks at the rows sampled before, as they are now.
func (v *Verifier) sampleTable(ctx context.Context, c *tableCheck, again bool) error {
	tp := c.tp
	keyIdx := target.KeyColumns(tp)
	srcConn, tgtConn := v.Source.PgConn(), v.Target.PgConn()
	var rows [][]schema.Value
	if !again {
		var err error
		if rows, err = QueryText(ctx, srcConn, sampleSQL(tp, v.Sample, v.Catalog), nil); err != nil {
			return fmt.Errorf("sampling the source: %w", err)
		}
		c.keys = c.keys[:0]
		for _, row := range rows {
			c.keys = append(c.keys, pickValues(row, keyIdx))
		}
	} else {
		q := lookupSQL(tp, keyIdx, tp.Where)
		for _, k := range c.keys {
			r, err := QueryText(ctx, srcConn, q, k)
			if err != nil {
				return fmt.Errorf("reading the source: %w", err)
			}
			if len(r) > 0 { // gone (or filtered out) since: no longer sampled
				rows = append(rows, r[0])
			}
		}
	}
	d := TableDiff{Table: tp.Table.QualifiedName()}
	q := lookupSQL(tp, keyIdx, "")
	for _, row := range rows {
		masked, err := tp.Mask(nil, row)
		if err != nil {
			return err // a MaskError names the column, never the value
		}
		d.Source++
		got, err := QueryText(ctx, tgtConn, q, pickValues(masked, keyIdx))
		if err != nil {
			return fmt.Errorf("reading the replica: %w", err)
		}
		switch {
		case len(got) == 0:
			d.Missing++
		case !sameValues(got[0], masked):
			d.Different++
		}
	}
	c.diff = d
	return nil
}

// sampleSQL selects about n random rows of a table that pass its row
// filter. A large table is first cut down with TABLESAMPLE SYSTEM (whole
// pages, about ten times the rows needed), so that ORDER BY random()
// sorts a few pages rather than the table.
func sampleSQL(tp *transform.TablePlan, n int, cat *schema.Catalog) string {
	from := ""
	if _, info := cat.Table(schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}); info != nil && info.EstimatedRows > 0 {
		if pct := 100 * 10 * float64(n) / float64(info.EstimatedRows); pct < 50 {
			from = " TABLESAMPLE SYSTEM (" + strconv.FormatFloat(pct, 'f', -1, 64) + ")"
		}
	}
	return SelectSQL(tp, from, tp.Where) + " ORDER BY random() LIMIT " + strconv.Itoa(n)
}

// lookupSQL selects the row of a table whose key columns (keyIdx) equal
// the parameters $1...: by equality for a primary key, else the first row
// equal in every key column, NULLs included (as the replica applies
// changes).
func lookupSQL(tp *transform.TablePlan, keyIdx []int, where string) string {
	hasPK := false
	for _, c := range tp.Columns {
		hasPK = hasPK || c.Column.PrimaryKey
	}
	conds := make([]string, len(keyIdx))
	for j, k := range keyIdx {
		col := tp.Columns[k].Column
		name, p := schema.QuoteIdent(col.Name), "$"+strconv.Itoa(j+1)
		switch {
		case hasPK:
			conds[j] = name + " = " + p
		case target.NoEquality(col.Type):
			conds[j] = name + "::text IS NOT DISTINCT FROM " + p + "::text"
		default:
			conds[j] = name + " IS NOT DISTINCT FROM " + p
		}
	}
	return SelectSQL(tp, "", strings.Join(conds, " AND "), where) + " LIMIT 1"
}

// pickValues copies the values at idx.
func pickValues(row []schema.Value, idx []int) []schema.Value {
	out := make([]schema.Value, len(idx))
	for j, i := range idx {
		out[j] = row[i]
		out[j].Text = append([]byte(nil), row[i].Text...)
	}
	return out
}

// sameValues reports whether two rows hold the same values, NULLs equal.
func sameValues(a, b []schema.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].State != b[i].State || string(a[i].Text) != string(b[i].Text) {
			return false
		}
	}
	return true
}

// QueryText runs a query with text parameters (nil is NULL; their types
// are left to the server) and returns every row with its values in text
// format, as the pipeline reads them: the output functions' text under
// the pipeline's session settings.
func QueryText(ctx context.Context, conn *pgconn.PgConn, query string, params []schema.Value) ([][]schema.Value, error) {
	vals := make([][]byte, len(params))
	for i, p := range params {
		if p.State == schema.Present {
			vals[i] = p.Text
			if vals[i] == nil {
				vals[i] = []byte{}
			}
		}
	}
	res := conn.ExecParams(ctx, query, vals, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	rows := make([][]schema.Value, len(res.Rows))
	for i, r := range res.Rows {
		row := make([]schema.Value, len(r))
		for j, v := range r {
			if v == nil {
				row[j] = schema.SQLNull()
			} else {
				row[j] = schema.Bytes(v)
			}
		}
		rows[i] = row
	}
	return rows, nil
}
