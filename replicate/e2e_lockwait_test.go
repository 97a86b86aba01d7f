package replicate

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
)

// pgveil never waits on production's locks silently: while a session it
// does not control holds what pgveil waits for, the log says, every few
// seconds, what pgveil waits for and who holds it (never a query's text).
func TestReplicateSaysWhatItWaitsFor(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, name text);
INSERT INTO people SELECT g, 'n' || g FROM generate_series(1, 100) g;
CREATE TABLE scratch (id int);`, `
  people: {columns: {id: hash, name: drop}}
`)
	ctx := context.Background()
	holder := pgtest.Connect(t, e.srcDSN)
	var holderPID int
	if err := holder.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holderPID); err != nil {
		t.Fatal(err)
	}
	waitLog := func(what string, re *regexp.Regexp) {
		t.Helper()
		e.eventually(what, func() (bool, string) {
			return re.MatchString(e.logs.String()), "no such log line"
		})
	}
	secret := "SECRET-in-a-query-4111111111111111"

	// 1. An idle transaction that wrote: creating the slot waits for it.
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO scratch SELECT 1 WHERE '%s' <> ''`, secret)); err != nil {
		t.Fatal(err)
	}
	e.start()
	waitLog("the slot's wait said", regexp.MustCompile(fmt.Sprintf(
		`waiting for production: pgveil's session \d+ waits for a transaction that was open when it began creating a replication slot .*held by process %d \(.*idle in transaction, transaction open for \d`, holderPID)))
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	e.sync()

	// 2. A migration's lock while a table is to be copied again (its rules
	// changed). ACCESS EXCLUSIVE is logged for standbys, so the lock holder
	// has a transaction id: the re-copy's slot waits for it first (had the
	// slot been made, its COPY would wait on the table; see
	// TestReadLockWaitsNamesTheTable).
	e.stop()
	e.waitSlotInactive()
	e.rulesYML = strings.Replace(e.rulesYML, "name: drop", "name: {redact: x}", 1)
	tx, err = holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE people IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	e.start()
	waitLog("the re-copy's wait said", regexp.MustCompile(fmt.Sprintf(
		`waiting for production: pgveil's session \d+ waits for .*, held by process %d \(.*idle in transaction`, holderPID)))
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.verify()
	if t.Failed() {
		t.Logf("log:\n%s", e.logs.String())
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Error("the log holds a query's text")
	}
}

// A pgveil session whose statement waits for a table another session has
// locked is reported with the table and the holder.
func TestReadLockWaitsNamesTheTable(t *testing.T) {
	dsn := clusters.Source.NewDB(t)
	ctx := context.Background()
	admin := pgtest.Connect(t, dsn)
	if _, err := admin.Exec(ctx, `CREATE TABLE "Odd Name" (id int)`); err != nil {
		t.Fatal(err)
	}
	holder := pgtest.Connect(t, dsn)
	var holderPID int32
	if err := holder.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holderPID); err != nil {
		t.Fatal(err)
	}
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE "Odd Name" IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	// A session named as pgveil's are.
	waiter, err := testConnect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close(context.Background())
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go waiter.Exec(wctx, `SELECT count(*) FROM "Odd Name"`)
	var waits []LockWait
	deadline := time.Now().Add(patience)
	for len(waits) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the waiting session was never found")
		}
		if waits, err = ReadLockWaits(ctx, admin, "s1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w := waits[0]
	if len(waits) != 1 || w.Relation != `public."Odd Name"` || w.LockType != "relation" || w.HolderPID != holderPID || w.HolderState != "idle in transaction" || w.HolderXact < 0 {
		t.Errorf("waits = %+v", waits)
	}
	if got := w.String(); !strings.Contains(got, `waits for a lock on public."Odd Name", held by process `+fmt.Sprint(holderPID)+" (idle in transaction, transaction open for ") {
		t.Errorf("String = %q", got)
	}
}
