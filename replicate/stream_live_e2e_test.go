package replicate

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
)

// Big transactions applied as they stream (stream_live.go), end to end:
// the source streams anything over 64 kB.

const liveSchema = `CREATE TABLE big (id int PRIMARY KEY, name text, note text);
CREATE TABLE small (id int PRIMARY KEY, v int);`

const liveRules = `  big:
    columns: {id: keep, name: {fake: name}, note: hash}
  small:
    columns: {id: keep, v: keep}
`

// liveTx opens a source transaction on a connection of its own.
func (e *e2e) liveTx() pgx.Tx {
	e.t.Helper()
	conn, err := testConnect(context.Background(), e.srcDSN)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return tx
}

func txExec(t *testing.T, tx pgx.Tx, sql string) {
	t.Helper()
	if _, err := tx.Exec(context.Background(), sql); err != nil {
		t.Fatalf("source: %v\n%s", err, sql)
	}
}

// txCommit commits a source transaction opened by liveTx.
func txCommit(t *testing.T, tx pgx.Tx) {
	t.Helper()
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// waitApplyingLive waits until a target session writes table while its
// source transaction is still open: only the live path does that.
func (e *e2e) waitApplyingLive(table string) {
	e.t.Helper()
	e.eventually("the open transaction applied live", func() (bool, string) {
		var n int
		err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE c.relname = $1 AND l.mode = 'RowExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()`, table).Scan(&n)
		return err == nil && n > 0, fmt.Sprintf("%d sessions writing %s, error %v", n, table, err)
	})
}

func bigRows(from, to int, name string) string {
	return fmt.Sprintf(`INSERT INTO big SELECT g, '%s ' || g, repeat('n', 40) || g FROM generate_series(%d, %d) g`, name, from, to)
}

func TestReplicateLiveStream(t *testing.T) {
	e := newE2E(t, liveSchema, liveRules)
	e.start()
	e.sync()

	// Commit: applied while open, invisible until the source commits,
	// while plain transactions keep committing beside it.
	tx := e.liveTx()
	txExec(t, tx, bigRows(1, 20000, "kept"))
	e.waitApplyingLive("big")
	e.exec(`INSERT INTO small VALUES (1, 1)`)
	e.sync()
	if n := e.count("public.big"); n != 0 {
		t.Fatalf("%d rows of an open transaction visible", n)
	}
	txExec(t, tx, bigRows(20001, 25000, "kept"))
	txCommit(t, tx)
	e.sync()
	e.verify()
	if n := e.count("public.big"); n != 25000 {
		t.Errorf("%d rows after the commit, want 25000", n)
	}

	// Abort.
	tx = e.liveTx()
	txExec(t, tx, bigRows(100001, 120000, "aborted"))
	e.waitApplyingLive("big")
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.verify()

	// Savepoints rolled back, nested, with an update of committed rows.
	tx = e.liveTx()
	txExec(t, tx, bigRows(200001, 210000, "kept"))
	txExec(t, tx, `SAVEPOINT a`)
	txExec(t, tx, bigRows(210001, 220000, "rolled back"))
	txExec(t, tx, `SAVEPOINT b`)
	txExec(t, tx, `UPDATE big SET name = 'rolled back' WHERE id <= 5000`)
	e.waitApplyingLive("big")
	txExec(t, tx, `ROLLBACK TO SAVEPOINT a`)
	txExec(t, tx, `SAVEPOINT c`)
	txExec(t, tx, bigRows(220001, 225000, "kept"))
	txExec(t, tx, `RELEASE SAVEPOINT c`)
	txCommit(t, tx)
	e.sync()
	e.verify()
	if n := e.count("public.big"); n != 40000 {
		t.Errorf("%d rows, want 40000", n)
	}

	// Interleaved: a second big transaction while one is live is spilled
	// and committed first; then the live one.
	live, spilled := e.liveTx(), e.liveTx()
	txExec(t, live, bigRows(300001, 320000, "kept"))
	e.waitApplyingLive("big")
	txExec(t, spilled, `INSERT INTO small SELECT g, g FROM generate_series(1000, 21000) g`)
	txExec(t, live, bigRows(320001, 325000, "kept"))
	e.exec(`UPDATE small SET v = 2 WHERE id = 1`)
	txCommit(t, spilled)
	e.sync()
	if n := e.count("public.small"); n != 20002 {
		t.Errorf("small: %d rows after the spilled transaction's commit, want 20002", n)
	}
	txCommit(t, live)
	e.sync()
	e.verify()

	if got := e.stats.StreamedLive.Load(); got != 3 {
		t.Errorf("%d transactions applied live, want 3 (the commits, save the spilled one)", got)
	}
	if strings.Contains(e.logs.String(), "applied at its commit instead") {
		t.Errorf("the live path fell back:\n%s", e.logs.String())
	}
}

// A stop while a transaction is live rolls it back; the next start
// streams it again from the checkpoint and applies it once.
func TestReplicateLiveStreamRestart(t *testing.T) {
	e := newE2E(t, liveSchema, liveRules)
	e.start()
	e.sync()
	tx := e.liveTx()
	txExec(t, tx, bigRows(1, 20000, "kept"))
	e.waitApplyingLive("big")
	e.exec(`INSERT INTO small VALUES (1, 1)`)
	e.sync() // the checkpoint moves past the live transaction's start
	e.stop()
	e.waitSlotInactive()
	e.start()
	txExec(t, tx, `UPDATE big SET name = 'again ' || id WHERE id % 2 = 0`)
	txExec(t, tx, bigRows(20001, 30000, "kept"))
	e.waitApplyingLive("big")
	txCommit(t, tx)
	e.sync()
	e.verify()
	if n := e.count("public.big"); n != 30000 {
		t.Errorf("%d rows, want 30000", n)
	}
	if got := e.stats.StreamedLive.Load(); got != 1 {
		t.Errorf("%d transactions applied live after the restart, want 1", got)
	}
}

// The replication session's logical_decoding_work_mem is lowered to
// decodingWorkMem, never raised (the test clusters' 64kB stays).
func TestDecodingWorkMemOnlyLowers(t *testing.T) {
	ctx := context.Background()
	conn, err := testConnect(ctx, clusters.Source.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, c := range []struct{ was, want string }{{"64MB", decodingWorkMem}, {"64kB", "64kB"}} {
		if _, err := conn.Exec(ctx, "SET logical_decoding_work_mem = '"+c.was+"'"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, decodingWorkMemSQL); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := conn.QueryRow(ctx, "SHOW logical_decoding_work_mem").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("from %s: %s, want %s", c.was, got, c.want)
		}
	}
}

// A big transaction deleting rows a replica foreign key references is
// not applied live: production does not enforce the reference (the rules
// declare it), so it let a referencing row in beside the delete; on the
// replica, the main group's deferred check of that row would wait for the
// live transaction's delete at the group's commit, and the stream with
// it. Applied at its commit instead, the delete breaks the key, which is
// left out.
func TestReplicateLiveStreamReferencedTable(t *testing.T) {
	e := newE2E(t, `CREATE TABLE parent (id int PRIMARY KEY, v text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL);
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 5000) g;`,
		"  parent:\n    columns: {id: keep, v: keep}\n  child:\n    references: {parent_id: parent.id}\n    columns: {id: keep, parent_id: keep}\n")
	e.start()
	e.sync()
	var fks int
	if err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'public.child'::regclass`).Scan(&fks); err != nil || fks != 1 {
		t.Fatalf("the replica has %d foreign keys on child (%v): the test needs one", fks, err)
	}
	tx := e.liveTx()
	// The referenced row first: the changes after it make the live
	// Applier send it long before the referencing row arrives.
	txExec(t, tx, `DELETE FROM parent WHERE id = 4000`)
	txExec(t, tx, `DELETE FROM parent WHERE id > 1000`) // over 64 kB: streamed
	e.eventually("the delete streamed", func() (bool, string) {
		var n int64
		err := e.src.QueryRow(context.Background(), `SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots WHERE slot_name = 's1'`).Scan(&n)
		return err == nil && n > 0, fmt.Sprintf("%d streamed, error %v", n, err)
	})
	e.exec(`INSERT INTO child VALUES (1, 4000)`) // no constraint in production
	e.sync()
	txCommit(t, tx)
	e.sync()
	e.verify()
}

// A main group's change that waits on the live transaction's locks (here
// through a unique index added to the replica by hand, which production
// lacks) would stop the stream for good: the wait is bounded, the attempt
// restarts at the checkpoint, and from then on big transactions are
// applied at their commit. The replica ends equal to production.
func TestReplicateLiveStreamLockWait(t *testing.T) {
	e := newE2E(t, liveSchema, liveRules)
	e.stream = func(o *StreamOptions) { o.LiveLockWait = 500 * time.Millisecond }
	e.start()
	e.sync()
	if _, err := e.dst.Exec(context.Background(), `CREATE UNIQUE INDEX small_v ON public.small (v)`); err != nil {
		t.Fatal(err)
	}

	tx := e.liveTx()
	txExec(t, tx, `INSERT INTO small VALUES (1, 7)`)
	txExec(t, tx, bigRows(1, 20000, "kept"))
	// The live transaction holds the replica's small_v entry for 7.
	e.eventually("the live transaction holding v = 7", func() (bool, string) {
		_, err := e.dst.Exec(context.Background(), `BEGIN; SET LOCAL lock_timeout = '50ms'; INSERT INTO public.small VALUES (-1, 7); ROLLBACK`)
		_, _ = e.dst.Exec(context.Background(), `ROLLBACK`)
		return schema.IsLockTimeout(err), fmt.Sprintf("probe: %v", err)
	})
	// Production commits a row with the same v beside it: its apply
	// waits on the live transaction, for LiveLockWait, then the attempt
	// restarts and applies it (the big transaction is now spilled).
	e.exec(`INSERT INTO small VALUES (2, 7)`)
	e.eventually("the restart after the lock wait, and the row applied", func() (bool, string) {
		restarted := strings.Contains(e.logs.String(), "a change waited on a big transaction applied as it streamed")
		got := e.replicaStrings(`SELECT id || ':' || v FROM public.small ORDER BY id`)
		return restarted && strings.Join(got, ",") == "2:7", fmt.Sprintf("restarted %v, replica's small %v", restarted, got)
	})
	e.exec(`DELETE FROM small WHERE id = 2`)
	e.sync()
	txCommit(t, tx)
	e.sync()
	if got := e.replicaStrings(`SELECT id || ':' || v FROM public.small ORDER BY id`); strings.Join(got, ",") != "1:7" {
		t.Errorf("replica's small: %v, want 1:7", got)
	}
	if n := e.count("public.big"); n != 20000 {
		t.Errorf("replica's big holds %d rows, want 20000", n)
	}
}
