package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"pgveil/replicate"
	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

func runVerify(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "verify")
	file := configFlag(fs)
	table := fs.String("table", "", "compare only this `table` (name or schema.name)")
	sample := fs.Int("sample", 0, "compare a random sample of `N` source rows per table, looked up by key in the replica (0: compare every row)")
	wait := fs.Duration("wait", 60*time.Second, "how long to wait for the replica to reach the source's position")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	if *sample < 0 || *wait < 0 {
		fmt.Fprintln(e.stderr, "pgveil verify: --sample and --wait cannot be negative")
		return exitUsage
	}
	cfg, reg, code := loadRules(e, *file)
	if code >= 0 {
		return code
	}
	var only []string
	if *table != "" {
		tr, err := findTableRule(cfg, *table)
		if err != nil {
			fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
			return exitProblems
		}
		only = []string{tr.Schema, tr.Name}
	}
	src, err := openSource(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
		return exitProblems
	}
	defer src.Close(context.Background())
	prep, err := replicate.PrepareRunning(ctx, src, cfg, reg)
	if err != nil {
		n := printPrepareError(e, "verify", cfg, err, nil)
		fmt.Fprintf(e.stderr, "%d problem%s\n", n, plural(n))
		return exitProblems
	}
	tables := prep.Plan.Tables()
	if only != nil {
		tp := prep.Plan.Table(only[0], only[1])
		if tp == nil {
			fmt.Fprintf(e.stderr, "pgveil verify: table %s is not in the source\n", *table)
			return exitProblems
		}
		tables = []*transform.TablePlan{tp}
	}
	tgt, err := openTarget(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
		return exitProblems
	}
	defer tgt.Close(context.Background())
	// A second source connection holds the snapshot; src reads each table
	// in a transaction of its own that imports it.
	snap, err := openSource(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
		return exitProblems
	}
	defer snap.Close(context.Background())

	v := &verifier{src: src, snap: snap, tgt: tgt, slot: cfg.Source.Slot, wait: *wait, sample: *sample, cat: prep.Catalog}
	checks := make([]*tableCheck, len(tables))
	for i, tp := range tables {
		checks[i] = &tableCheck{tp: tp}
	}
	lsn, err := v.round(ctx, checks, false)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
		return exitProblems
	}
	// The replica moves on while the tables are compared: a difference
	// may be a change applied after the source's snapshot. Look again at
	// the tables that differ, at newer positions; a row counts only if it
	// differed every time (changes in flight touch other rows each time),
	// and in sample mode the second look at the same rows is the one
	// reported.
	looked := false
	for look := 2; look <= verifyLooks; look++ {
		var again []*tableCheck
		for _, c := range checks {
			if !c.diff.OK() {
				again = append(again, c)
			}
		}
		if len(again) == 0 || v.sample > 0 && look > 2 {
			break
		}
		verb := "s differ"
		if len(again) == 1 {
			verb = " differs"
		}
		fmt.Fprintf(e.stderr, "%d table%s at source position %s; looking again at a newer position\n", len(again), verb, lsn)
		prev := make([]replicate.TableDiff, len(again))
		for i, c := range again {
			prev[i] = c.diff
		}
		looked = true
		if lsn, err = v.round(ctx, again, true); err != nil {
			fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
			return exitProblems
		}
		for i, c := range again {
			c.diff = c.diff.Within(prev[i])
		}
	}
	bad := printVerify(e, checks, v.sample > 0)
	if looked && v.sample == 0 {
		fmt.Fprintln(e.stderr, "(tables looked at again show the counts of the last look; a row counts as a difference only if it differed at every look)")
	}
	if bad > 0 {
		verb := "differ"
		if bad == 1 {
			verb = "differs"
		}
		fmt.Fprintf(e.stdout, "verify: %d of %d table%s %s (source position %s)\n", bad, len(checks), plural(len(checks)), verb, lsn)
		return exitProblems
	}
	fmt.Fprintf(e.stdout, "verify: %d table%s OK (source position %s)\n", len(checks), plural(len(checks)), lsn)
	return exitOK
}

// verifyLooks is how many times verify compares a table that differs.
const verifyLooks = 3

// verifier compares tables of the replica with the re-masked source.
type verifier struct {
	// src reads the tables; snap holds the snapshot they are read under
	// (an idle transaction that holds no table's lock).
	src, snap, tgt *pgx.Conn
	slot           string
	wait           time.Duration
	sample         int
	cat            *schema.Catalog
}

// tableCheck is one table's comparison. In sample mode diff.Source counts
// the rows sampled, and Target and Extra are not computed.
type tableCheck struct {
	tp   *transform.TablePlan
	diff replicate.TableDiff
	// keys are the key values of the sampled source rows, kept in memory
	// for the second look (never printed).
	keys [][]schema.Value
}

// round opens a REPEATABLE READ snapshot of the source, waits until the
// replica has applied every source commit the snapshot sees, and compares
// the tables. again, in sample mode, looks at the rows sampled before
// rather than at a new sample. It returns the source position compared.
//
// Each table is read in a transaction of its own that imports the
// snapshot, so that verify holds a table's lock only while it reads that
// table: a production migration waits for one table's read, never for the
// whole verify (guarantee 5).
func (v *verifier) round(ctx context.Context, checks []*tableCheck, again bool) (pglogrepl.LSN, error) {
	tx, err := v.snap.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
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
		err := replicate.InSnapshot(ctx, v.src, snapshot, func() error {
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
func (v *verifier) compare(ctx context.Context, c *tableCheck, again bool) error {
	if v.sample > 0 {
		return v.sampleTable(ctx, c, again)
	}
	diffs, err := replicate.Compare(ctx, v.src, v.tgt, transform.NewPlan([]*transform.TablePlan{c.tp}))
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
func (v *verifier) notRewritten(ctx context.Context, tp *transform.TablePlan) error {
	info := v.cat.Info[schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}]
	if info == nil {
		return nil
	}
	rewritten, err := replicate.Rewritten(ctx, v.src, info.OID)
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
func (v *verifier) waitFor(ctx context.Context, lsn pglogrepl.LSN) error {
	deadline := time.Now().Add(v.wait)
	for {
		pos, found, err := target.ReadCheckpoint(ctx, v.tgt, v.slot)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("the target holds no checkpoint of slot %s: pgveil has not finished its initial copy", v.slot)
		}
		if pos.LSN >= lsn {
			return nil
		}
		slot, err := replicate.ReadSlot(ctx, v.src, v.slot)
		if err != nil {
			return err
		}
		if !slot.Exists {
			return fmt.Errorf("replication slot %s does not exist: the replica cannot catch up", v.slot)
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
				lsn, v.wait, pos.LSN, v.slot, slot.ConfirmedFlushLSN, state)
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
func (v *verifier) sampleTable(ctx context.Context, c *tableCheck, again bool) error {
	tp := c.tp
	keyIdx := target.KeyColumns(tp)
	srcConn, tgtConn := v.src.PgConn(), v.tgt.PgConn()
	var rows [][]schema.Value
	if !again {
		var err error
		if rows, err = queryText(ctx, srcConn, v.sampleSQL(tp), nil); err != nil {
			return fmt.Errorf("sampling the source: %w", err)
		}
		c.keys = c.keys[:0]
		for _, row := range rows {
			c.keys = append(c.keys, verifyPick(row, keyIdx))
		}
	} else {
		q := lookupSQL(tp, keyIdx, tp.Where)
		for _, k := range c.keys {
			r, err := queryText(ctx, srcConn, q, k)
			if err != nil {
				return fmt.Errorf("reading the source: %w", err)
			}
			if len(r) > 0 { // gone (or filtered out) since: no longer sampled
				rows = append(rows, r[0])
			}
		}
	}
	d := replicate.TableDiff{Table: tp.Table.QualifiedName()}
	q := lookupSQL(tp, keyIdx, "")
	for _, row := range rows {
		masked, err := tp.Mask(nil, row)
		if err != nil {
			return err // a MaskError names the column, never the value
		}
		d.Source++
		got, err := queryText(ctx, tgtConn, q, verifyPick(masked, keyIdx))
		if err != nil {
			return fmt.Errorf("reading the replica: %w", err)
		}
		switch {
		case len(got) == 0:
			d.Missing++
		case !verifySameRow(got[0], masked):
			d.Different++
		}
	}
	c.diff = d
	return nil
}

// sampleSQL selects about v.sample random rows of a table that pass its
// row filter. A large table is first cut down with TABLESAMPLE SYSTEM
// (whole pages, about ten times the rows needed), so that ORDER BY
// random() sorts a few pages rather than the table.
func (v *verifier) sampleSQL(tp *transform.TablePlan) string {
	from := ""
	if _, info := v.cat.Table(schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}); info != nil && info.EstimatedRows > 0 {
		if pct := 100 * 10 * float64(v.sample) / float64(info.EstimatedRows); pct < 50 {
			from = " TABLESAMPLE SYSTEM (" + strconv.FormatFloat(pct, 'f', -1, 64) + ")"
		}
	}
	return replicate.SelectSQL(tp, from, tp.Where) + " ORDER BY random() LIMIT " + strconv.Itoa(v.sample)
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
	return replicate.SelectSQL(tp, "", strings.Join(conds, " AND "), where) + " LIMIT 1"
}

// verifyPick copies the values at idx.
func verifyPick(row []schema.Value, idx []int) []schema.Value {
	out := make([]schema.Value, len(idx))
	for j, i := range idx {
		out[j] = row[i]
		out[j].Text = append([]byte(nil), row[i].Text...)
	}
	return out
}

func verifySameRow(a, b []schema.Value) bool {
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

// printVerify prints one line of counts per table and returns how many
// tables differ.
func printVerify(e *env, checks []*tableCheck, sample bool) int {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if sample {
		fmt.Fprintln(tw, "TABLE\tSAMPLED\tMISSING\tDIFFERENT\tRESULT")
	} else {
		fmt.Fprintln(tw, "TABLE\tSOURCE\tREPLICA\tMISSING\tEXTRA\tDIFFERENT\tRESULT")
	}
	bad := 0
	for _, c := range checks {
		d := c.diff
		verdict := "OK"
		if !d.OK() {
			verdict = "DIFF"
			bad++
		}
		if sample {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", d.Table, d.Source, d.Missing, d.Different, verdict)
		} else {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", d.Table, d.Source, d.Target, d.Missing, d.Extra, d.Different, verdict)
		}
	}
	tw.Flush()
	return bad
}
