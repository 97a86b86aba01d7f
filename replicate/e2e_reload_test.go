package replicate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pgveil/rules"
)

// Rules change while pgveil runs: the changed table is copied again and
// switched in at once (a reader never sees it half masked), the others
// keep streaming, a new table is copied, a removed one leaves the replica,
// and invalid rules are refused with the old ones kept.
func TestReplicateReloadRules(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, note text);
CREATE TABLE ticks (id int PRIMARY KEY, v bigint NOT NULL);
CREATE TABLE extra (id int PRIMARY KEY, label text);`,
		`  people:
    columns: {id: keep, email: keep, note: keep}
  ticks:
    columns: {id: keep, v: keep}
`)
	e.exec(`INSERT INTO people SELECT g, 'p' || g || '@raw.example', 'note ' || g FROM generate_series(1, 20000) g;
INSERT INTO ticks SELECT g, 0 FROM generate_series(1, 10) g;
INSERT INTO extra SELECT g, 'x' FROM generate_series(1, 5) g;`)
	e.start()
	e.sync()
	e.verify()

	// Traffic on both tables the whole time.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var ticks atomic.Int64
	trafficDone := make(chan error, 1)
	go func() {
		conn, err := testConnect(context.Background(), e.srcDSN)
		if err != nil {
			trafficDone <- err
			return
		}
		defer conn.Close(context.Background())
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := conn.Exec(context.Background(), `UPDATE ticks SET v = v + 1 WHERE id = $1`, 1+i%10); err != nil {
				trafficDone <- err
				return
			}
			if _, err := conn.Exec(context.Background(), `UPDATE people SET note = note || '.' WHERE id = $1`, 1+i%20000); err != nil {
				trafficDone <- err
				return
			}
			ticks.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
		trafficDone <- nil
	}()
	// A reader watches people: it must see all raw or all masked emails.
	mixed := make(chan string, 1)
	readerDone := make(chan struct{})
	reader, err := testConnect(context.Background(), e.dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	go func() {
		defer close(readerDone)
		for ctx.Err() == nil {
			var raw, total int64
			err := reader.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE email LIKE '%@raw.example'), count(*) FROM public.people`).Scan(&raw, &total)
			if err == nil && raw != 0 && raw != total {
				select {
				case mixed <- "a reader saw half the table masked":
				default:
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// Invalid rules are refused and the old ones stay: a rule for a
	// column the source lacks only shows against the live catalog.
	good := e.rulesYML
	e.rulesYML = strings.Replace(good, "note: keep", "note: keep, nosuch: keep", 1)
	err = e.p.Reload(context.Background(), e.config())
	e.rulesYML = good
	var rp rules.Problems
	if err == nil || !errors.As(err, &rp) || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("a rule for a missing column: %v", err)
	}

	// New rules: people masked, note dropped, extra added.
	e.rulesYML = strings.Replace(e.rulesYML, "email: keep, note: keep", "email: {fake: {kind: email, unique: true}}, note: drop", 1) +
		"  extra:\n    columns: {id: keep, label: {redact: hidden}}\n"
	before := ticks.Load()
	if err := e.p.Reload(context.Background(), e.config()); err != nil {
		t.Fatal(err)
	}
	// The re-copy runs under traffic: wait for traffic since the reload
	// began, however slowly the traffic's connection is served.
	e.eventually("traffic during the re-copy", func() (bool, string) {
		select {
		case err := <-trafficDone:
			t.Fatalf("the traffic stopped: %v", err)
		default:
		}
		n := ticks.Load()
		return n > before, fmt.Sprintf("%d rounds of traffic since the reload", n-before)
	})
	e.sync()
	stop()
	<-readerDone
	if err := <-trafficDone; err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-mixed:
		t.Fatal(m)
	default:
	}
	e.sync()
	e.verify()
	var hasNote bool
	e.dst.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'people' AND column_name = 'note')`).Scan(&hasNote)
	if hasNote {
		t.Error("the dropped column is still in the replica")
	}
	if n := e.count("public.extra"); n != 5 {
		t.Errorf("extra: %d rows", n)
	}
	if e.stats.Resyncs.Load() == 0 {
		t.Error("no re-copy was switched in")
	}

	// A table removed from the rules leaves the replica.
	e.rulesYML = e.rulesYML[:strings.Index(e.rulesYML, "  extra:")]
	if err := e.p.Reload(context.Background(), e.config()); err != nil {
		t.Fatal(err)
	}
	e.sync()
	var exists bool
	e.dst.QueryRow(context.Background(), `SELECT to_regclass('public.extra') IS NOT NULL`).Scan(&exists)
	if exists {
		t.Error("a table no rule names is still in the replica")
	}
	e.verify()
}

// A column's type changes in production: pgveil copies the table again
// with the new type, the others streaming meanwhile.
func TestReplicateColumnTypeChange(t *testing.T) {
	e := newE2E(t, `CREATE TABLE m (id int PRIMARY KEY, v integer, label varchar(10));`,
		"  m:\n    columns: {id: keep, v: {noise: 0.1}, label: {truncate: 3}}\n")
	e.exec(`INSERT INTO m SELECT g, g * 1000, 'label' || g FROM generate_series(1, 100) g`)
	e.start()
	e.sync()
	// A published column's type cannot change while a column list names
	// it (PostgreSQL 15): the migration steps the table out of the
	// publication for its own transaction (docs/operations.md).
	e.exec(`BEGIN;
ALTER PUBLICATION p1 DROP TABLE m;
ALTER TABLE m ALTER COLUMN v TYPE bigint, ALTER COLUMN label TYPE varchar(40);
ALTER PUBLICATION p1 ADD TABLE m (id, v, label);
COMMIT;`)
	e.exec(`UPDATE m SET v = v * 10000000, label = label || ' a much longer label' WHERE id % 2 = 0`)
	e.waitReplica("the replica's column type", `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.m'::regclass AND attname = 'v'`, "bigint")
	e.sync()
	e.verify()
}

// A table leaves the publication behind pgveil's back (DROP COLUMN ...
// CASCADE does that): pgveil publishes it again and copies it again, so
// the changes it missed are not lost.
func TestReplicateTableDroppedFromPublication(t *testing.T) {
	e := newE2E(t, `CREATE TABLE w (id int PRIMARY KEY, v int, extra text);`,
		"  w:\n    columns: {id: keep, v: keep, extra: keep}\n")
	e.exec(`INSERT INTO w SELECT g, g, 'x' FROM generate_series(1, 50) g`)
	e.start()
	e.sync()
	e.exec(`ALTER TABLE w DROP COLUMN extra CASCADE`) // removes w from the publication
	e.exec(`UPDATE w SET v = -v WHERE id <= 10`)      // not published: missed
	// No reload: pgveil notices by itself, goes on without the dropped
	// column (its rule now names nothing) and copies the table again.
	e.waitReplica("the missed changes", `SELECT count(*) FROM public.w WHERE v < 0`, "10")
	e.sync()
	e.verify()
}

// A column renamed in production is a new, unruled column to pgveil: it
// is not replicated (its rule names the old name) and the drift is
// reported; renaming the rule and reloading copies the table again under
// the new name.
func TestReplicateColumnRenamed(t *testing.T) {
	e := newE2E(t, `CREATE TABLE r (id int PRIMARY KEY, label text, v int);`,
		"  r:\n    columns: {id: keep, label: {truncate: 3}, v: keep}\n")
	e.exec(`INSERT INTO r SELECT g, 'label' || g, g FROM generate_series(1, 40) g`)
	e.start()
	e.sync()
	e.exec(`ALTER TABLE r RENAME COLUMN label TO title`)
	e.exec(`UPDATE r SET title = 'RENAMED-SECRET', v = -v WHERE id <= 5`)
	e.sync()
	var leaked int64
	e.dst.QueryRow(context.Background(), `SELECT count(*) FROM public.r WHERE label LIKE 'REN%'`).Scan(&leaked)
	if leaked != 0 {
		t.Error("a renamed column's values reached the replica under the old rule")
	}
	if !strings.Contains(e.logs.String(), "title") {
		t.Errorf("the renamed column was not reported:\n%s", e.logs.String())
	}
	e.verify() // the columns that still have rules are right

	// The rule follows the rename; the table is copied again.
	e.rulesYML = strings.Replace(e.rulesYML, "label:", "title:", 1)
	if err := e.p.Reload(context.Background(), e.config()); err != nil {
		t.Fatal(err)
	}
	e.waitReplica("the renamed column", `SELECT count(*) FROM information_schema.columns WHERE table_name = 'r' AND column_name = 'title'`, "1")
	e.sync()
	e.verify()
	var masked int64
	e.dst.QueryRow(context.Background(), `SELECT count(*) FROM public.r WHERE title = 'REN'`).Scan(&masked)
	if masked != 5 {
		t.Errorf("%d renamed rows masked under the new rule, want 5", masked)
	}
}

// waitReplica waits until query, on the replica, returns want (as text),
// and fails the test with what it returns otherwise.
func (e *e2e) waitReplica(what, query, want string) {
	e.t.Helper()
	e.eventually(what, func() (bool, string) {
		var got *string
		err := e.dst.QueryRow(context.Background(), "SELECT ("+query+")::text").Scan(&got)
		shown := "NULL"
		if got != nil {
			shown = *got
		}
		return err == nil && got != nil && *got == want, fmt.Sprintf("the replica gives %q, want %q (error %v)", shown, want, err)
	})
}
