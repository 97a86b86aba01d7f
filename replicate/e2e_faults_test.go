package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"pgveil/internal/pgtest"
)

// An idle pipeline confirms the server's WAL end, so production does not
// keep WAL for nothing.
func TestReplicateIdleConfirmsWALEnd(t *testing.T) {
	e := newE2E(t, `CREATE TABLE t (id int PRIMARY KEY);`, "  t:\n    columns: {id: keep}\n")
	e.start()
	e.sync()
	var now pglogrepl.LSN
	if err := e.src.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	e.eventually("the slot confirming the WAL end "+now.String(), func() (bool, string) {
		var confirmed pglogrepl.LSN
		err := e.src.QueryRow(context.Background(), `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 's1' AND database = current_database()`).Scan(&confirmed)
		return err == nil && confirmed >= now, fmt.Sprintf("confirmed %s, error %v", confirmed, err)
	})
}

// A copy interrupted half-way starts again from scratch: no half table, no
// duplicate.
func TestReplicateInterruptedSnapshot(t *testing.T) {
	e := newE2E(t, `CREATE TABLE big (id int PRIMARY KEY, v text);`, "  big:\n    columns: {id: hash, v: {fake: sentence}}\n")
	e.exec(`INSERT INTO big SELECT g, 'value ' || g FROM generate_series(1, 150000) g`)
	e.start()
	// Stop once the target's COPY of big has rows in: half-way, however
	// fast the machine. (One fast enough to have copied the table by the
	// time it is looked at gives a whole table, which is right too.)
	e.eventually("the copy of big under way", func() (bool, string) {
		if strings.Contains(e.logs.String(), `msg="table copied" table=public.big `) {
			return true, "big copied"
		}
		var loading int64
		err := e.dst.QueryRow(context.Background(), `SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy
WHERE datname = current_database() AND relid = to_regclass('public.big')`).Scan(&loading)
		return err == nil && loading > 0, fmt.Sprintf("%d rows loading, error %v", loading, err)
	})
	e.stop()
	var copied int64
	if err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM public.big`).Scan(&copied); err != nil {
		t.Fatal(err)
	}
	t.Logf("rows in the replica after the interruption: %d", copied)
	if copied != 0 && copied != 150000 {
		t.Errorf("after the interruption the replica holds %d rows: a half table", copied)
	}
	e.exec(`UPDATE big SET v = v || '!' WHERE id % 10 = 0`)
	e.start()
	e.sync()
	e.verify()
	if copied == 0 && !strings.Contains(e.logs.String(), "dropping the slot of an unfinished initial copy") {
		t.Error("the restart did not start the copy again")
	}
}

// The analytics server goes away and comes back; the production server
// restarts: the pipeline retries, loses nothing and duplicates nothing.
func TestReplicateServerRestarts(t *testing.T) {
	e := newE2E(t, `CREATE TABLE t (id int PRIMARY KEY, v int);`, "  t:\n    columns: {id: keep, v: keep}\n")
	e.exec(`INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000) g`)
	e.start()
	e.sync()
	ctx := context.Background()

	an := clusters.Target.Get(t)
	retries := strings.Count(e.logs.String(), "retrying")
	if err := an.Kill(); err != nil {
		t.Fatal(err)
	}
	e.exec(`UPDATE t SET v = v + 1 WHERE id % 2 = 0`)
	e.exec(`INSERT INTO t SELECT g, 1 FROM generate_series(1001, 1500) g`)
	// The pipeline fails on the dead target and retries meanwhile.
	e.eventually("a retry while the analytics server is down", func() (bool, string) {
		n := strings.Count(e.logs.String(), "retrying")
		return n > retries, fmt.Sprintf("%d retries logged, %d before the kill", n, retries)
	})
	if err := an.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	e.dst.Close(ctx)
	var err error
	if e.dst, err = testConnect(ctx, e.dstDSN); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.verify()

	pc := clusters.Source.Get(t)
	e.src.Close(ctx)
	if err := pc.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if e.src, err = testConnect(ctx, e.srcDSN); err != nil {
		t.Fatal(err)
	}
	e.exec(`DELETE FROM t WHERE id % 3 = 0`)
	e.sync()
	e.verify()
	if !strings.Contains(e.logs.String(), "retrying") {
		t.Error("no retry in the log")
	}
}

// A value a rule cannot mask stops the pipeline with the table, column and
// LSN, never the value; on_error: null writes NULL instead.
func TestReplicateUnmaskableValue(t *testing.T) {
	e := newE2E(t, `CREATE TABLE payments (id int PRIMARY KEY, details jsonb);`,
		`  payments:
    columns: {id: keep, details: {json: {"$.amount": {noise: 0.1}}}}
`)
	e.exec(`INSERT INTO payments VALUES (1, '{"amount": 10}')`)
	e.start()
	e.sync()
	e.exec(`INSERT INTO payments VALUES (2, '{"amount": "SECRET-NOT-A-NUMBER"}')`)
	select {
	case err := <-e.done:
		e.cancel = nil
		var fe *FatalError
		if !errors.As(err, &fe) {
			t.Fatalf("got %v, want a FatalError", err)
		}
		msg := err.Error()
		for _, want := range []string{"public.payments.details", "LSN", "on_error: null"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q lacks %q", msg, want)
			}
		}
		if strings.Contains(msg, "SECRET") || strings.Contains(e.logs.String(), "SECRET") {
			t.Errorf("the value leaked: %s", msg)
		}
	case <-time.After(patience):
		t.Fatalf("the pipeline did not stop\n%s", e.logs.String())
	}
	// The column opts into NULL: the stream goes on.
	e.rulesYML = strings.Replace(e.rulesYML, `{json: {"$.amount": {noise: 0.1}}}`, `{json: {"$.amount": {noise: 0.1}}, on_error: null}`, 1)
	e.start()
	e.sync()
	var isNull bool
	if err := e.dst.QueryRow(context.Background(), `SELECT details IS NULL FROM public.payments WHERE id = 2`).Scan(&isNull); err != nil || !isNull {
		t.Errorf("row 2: null=%v, err=%v", isNull, err)
	}
}

// A slot dropped behind pgveil's back stops it with a message that says
// how to re-copy; it never silently copies over the replica.
func TestReplicateSlotGone(t *testing.T) {
	e := newE2E(t, `CREATE TABLE t (id int PRIMARY KEY);`, "  t:\n    columns: {id: keep}\n")
	e.exec(`INSERT INTO t VALUES (1)`)
	e.start()
	e.sync()
	e.sync() // through the stream: the initial copy's checkpoint is written
	e.stop()
	e.waitSlotInactive()
	e.exec(`SELECT pg_drop_replication_slot('s1')`)
	e.startExpectingStop("does not exist", "pgveil resync")

	// The way back the message gives (docs/operations.md): delete the
	// checkpoint row and start; every table is copied again.
	e.exec(`INSERT INTO t SELECT g FROM generate_series(2, 30) g`)
	if _, err := e.dst.Exec(context.Background(), `DELETE FROM pgveil.checkpoint WHERE slot = 's1'`); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.sync()
	e.verify()
	if n := e.count("public.t"); n != 30 {
		t.Errorf("after starting over: %d rows, want 30", n)
	}
}

// The first start holds the rules to what validate does: a column no rule
// names stops it (nothing is published or copied); once replicating, a
// new column is only reported (TestReplicate).
func TestReplicateFirstStartNeedsEveryColumn(t *testing.T) {
	e := newE2E(t, `CREATE TABLE t (id int PRIMARY KEY, secret text);`, "  t:\n    columns: {id: keep}\n")
	e.exec(`INSERT INTO t VALUES (1, 'x')`)
	e.start()
	select {
	case err := <-e.done:
		e.cancel = nil
		var fe *FatalError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "no rule") {
			t.Fatalf("got %v", err)
		}
	case <-time.After(patience):
		t.Fatalf("pgveil did not stop\n%s", e.logs.String())
	}
	var exists bool
	e.dst.QueryRow(context.Background(), `SELECT to_regclass('public.t') IS NOT NULL`).Scan(&exists)
	if exists {
		t.Error("the table was set up in the replica")
	}
}

// TestReplicateSlotInvalidated: while pgveil is stopped production writes
// more WAL than max_slot_wal_keep_size lets the slot keep; the slot is
// invalidated (wal_status = lost) and pgveil stops with a clear error,
// changing nothing; StartOver (pgveil resync) and a start bring the
// replica back.
func TestReplicateSlotInvalidated(t *testing.T) {
	t.Parallel()
	prod := pgtest.New(t, pgtest.Options{Settings: map[string]string{"max_slot_wal_keep_size": "32MB", "max_wal_size": "64MB", "min_wal_size": "32MB"}})
	dsn, err := prod.CreateDB(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	e := newE2EWith(t, dsn, `CREATE TABLE t (id int PRIMARY KEY, pad text);`, "  t:\n    columns: {id: keep, pad: {truncate: 3}}\n")
	e.exec(`INSERT INTO t VALUES (1, 'one')`)
	e.start()
	e.sync()
	e.sync()
	e.stop()
	e.waitSlotInactive()
	// About 100 MB of WAL, then checkpoints: the slot falls behind.
	for i := range 5 {
		e.exec(fmt.Sprintf(`INSERT INTO t SELECT g, md5(g::text) || repeat('x', 2000) FROM generate_series(%d, %d) g`, 2+i*10000, 1+(i+1)*10000))
		e.exec(`SELECT pg_switch_wal(); CHECKPOINT`)
	}
	var status string
	if err := e.src.QueryRow(context.Background(), `SELECT wal_status FROM pg_replication_slots WHERE slot_name = 's1'`).Scan(&status); err != nil || status != "lost" {
		t.Fatalf("wal_status = %q (%v), want lost", status, err)
	}
	e.startExpectingStop("wal_status = lost", "pgveil resync")
	e.waitSlotInactive() // StartOver refuses while that start's connection is there
	r, err := StartOver(context.Background(), e.src, e.dst, "s1", false)
	if err != nil || !r.SlotDropped || !r.CheckpointCleared || r.WALStatus != "lost" {
		t.Fatalf("StartOver = %+v, %v", r, err)
	}
	e.start()
	e.sync()
	e.sync()
	e.verify()
	if n := e.count("public.t"); n != 50001 {
		t.Errorf("after starting over: %d rows, want 50001", n)
	}
}

// startExpectingStop starts the pipeline and expects it to stop with a
// FatalError saying each of parts, leaving the replica's one row of
// public.t as it was.
func (e *e2e) startExpectingStop(parts ...string) {
	e.t.Helper()
	e.start()
	select {
	case err := <-e.done:
		e.cancel = nil
		var fe *FatalError
		if !errors.As(err, &fe) {
			e.t.Fatalf("got %v, want a FatalError", err)
		}
		for _, part := range parts {
			if !strings.Contains(err.Error(), part) {
				e.t.Fatalf("got %v, want it to say %q", err, part)
			}
		}
	case <-time.After(patience):
		e.t.Fatalf("pgveil did not stop\n%s", e.logs.String())
	}
	if n := e.count("public.t"); n != 1 {
		e.t.Errorf("the replica changed: %d rows", n)
	}
}
