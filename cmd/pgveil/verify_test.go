package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/internal/syncbuf"
	"pgveil/replicate"
)

func TestVerify(t *testing.T) {
	s := newSite(t)
	p := s.start()
	s.streaming(p)
	stopWrites := s.noOpWrites()

	began := time.Now()
	code, out, errOut := s.cli("verify", "-c", s.config, "--wait", verifyWait)
	t.Logf("synced replica (%v):\n%s%s", time.Since(began).Round(time.Millisecond), out, errOut)
	if code != exitOK {
		t.Fatalf("synced: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, re := range []string{
		`(?m)^TABLE +SOURCE +REPLICA +MISSING +EXTRA +DIFFERENT +RESULT$`,
		`(?m)^public\.customers +2000 +2000 +0 +0 +0 +OK$`,
		`(?m)^public\.orders +3000 +3000 +0 +0 +0 +OK$`,
		`(?m)^verify: 7 tables OK \(source position [0-9A-F]+/[0-9A-F]+\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s", re)
		}
	}

	// While production changes.
	s.exec(`UPDATE customers SET city = 'Hamburg' WHERE id % 3 = 0`)
	s.exec(`DELETE FROM events WHERE id % 10 = 0`)
	began = time.Now()
	code, out, errOut = s.cli("verify", "-c", s.config, "--sample", "50", "--wait", verifyWait)
	t.Logf("--sample 50 (%v):\n%s%s", time.Since(began).Round(time.Millisecond), out, errOut)
	if code != exitOK || !regexp.MustCompile(`(?m)^TABLE +SAMPLED +MISSING +DIFFERENT +RESULT$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^public\.customers +50 +0 +0 +OK$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^public\.payments +0 +0 +0 +OK$`).MatchString(out) {
		t.Errorf("--sample 50: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// While production inserts and prunes events as fast as it can: the
	// replica moves on while verify reads it, which must not count.
	stopBusy := s.busyWrites()
	code, out, errOut = s.cli("verify", "-c", s.config, "--wait", verifyWait)
	stopBusy()
	t.Logf("busy production:\n%s%s", out, errOut)
	if code != exitOK || !strings.Contains(out, "verify: 7 tables OK") {
		t.Errorf("busy production: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	checkVerifyLinesAddUp(t, out)

	// Production idle: the checkpoint does not move, the slot's confirmed
	// position does (within pgveil's status interval, 10 seconds, and
	// what a loaded machine adds).
	stopWrites()
	began = time.Now()
	code, out, _ = s.cli("verify", "-c", s.config, "--table", "public.customers", "--wait", verifyWait)
	t.Logf("idle, --table public.customers (%v):\n%s", time.Since(began).Round(time.Millisecond), out)
	if code != exitOK || !strings.Contains(out, "verify: 1 table OK") || strings.Count(out, "\n") != 3 {
		t.Errorf("--table customers: exit %d\n%s", code, out)
	}

	// Corrupt the replica while pgveil is stopped: one row changed, one
	// deleted, one that production never had.
	s.terminate(p)
	for _, q := range []string{
		`UPDATE public.orders SET status = 'tampered' WHERE id = 10`,
		`DELETE FROM public.orders WHERE id = 20`,
		`INSERT INTO public.orders (id, account_id, customer_id, status, total, currency, shipping_address, created_at)
		 VALUES (999999, 1, 1, 'bogus', 1, 'EUR', 'nowhere', now())`,
	} {
		if _, err := s.dst.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	p = s.start()
	s.sync(p)
	stopWrites = s.noOpWrites()
	code, out, errOut = s.cli("verify", "-c", s.config, "--wait", verifyWait)
	t.Logf("corrupted replica:\n%s%s", out, errOut)
	if code != exitProblems ||
		!regexp.MustCompile(`(?m)^public\.orders +3000 +3000 +1 +1 +1 +DIFF$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^public\.customers +\d+ +\d+ +0 +0 +0 +OK$`).MatchString(out) ||
		!strings.Contains(out, "verify: 1 of 7 tables differs") ||
		!strings.Contains(errOut, "1 table differs at source position") {
		t.Errorf("corrupted: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// A sample as large as the table finds the changed and the missing
	// row (not the extra one: a sample starts from the source).
	code, out, errOut = s.cli("verify", "-c", s.config, "--table", "orders", "--sample", "5000", "--wait", verifyWait)
	t.Logf("corrupted, --table orders --sample 5000:\n%s%s", out, errOut)
	if code != exitProblems || !regexp.MustCompile(`(?m)^public\.orders +3000 +1 +1 +DIFF$`).MatchString(out) || strings.Count(out, "\n") != 3 {
		t.Errorf("corrupted, sample: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	stopWrites()

	// pgveil stopped: the replica cannot reach the source's position. Its
	// walsender lets go of the slot after pgveil has gone: once it has,
	// verify finds pgveil not connected.
	s.terminate(p)
	waitSlotIdle(t, s)
	s.exec(`UPDATE customers SET city = 'Köln' WHERE id = 1`)
	code, _, errOut = s.cli("verify", "-c", s.config, "--wait", "1s")
	if code != exitProblems || !strings.Contains(errOut, "the replica did not reach source position") || !strings.Contains(errOut, "pgveil not connected") {
		t.Errorf("stopped: exit %d, %s", code, errOut)
	}
	code, _, errOut = s.cli("verify", "-c", s.config, "--table", "invoices")
	if code != exitProblems || !strings.Contains(errOut, "table invoices is not in the rules") {
		t.Errorf("--table invoices: exit %d, %s", code, errOut)
	}
}

// verifyWait is how long verify may wait for the replica to reach the
// source's position where the test expects it to: pgveil applies and
// confirms within seconds, but a loaded machine may take much longer
// than verify's default minute.
const verifyWait = "3m"

// busyWrites keeps production inserting bursts of events and deleting the
// oldest, as fast as it can, until stopped.
func (s *site) busyWrites() (stop func()) {
	return s.keepWriting(`INSERT INTO events (account_id, user_id, kind, properties)
SELECT 1 + g % 20, 1 + g % 200, 'busy', jsonb_build_object('email', 'b' || g || '@mail.example') FROM generate_series(1, 50) g;
DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT 25)`, 0)
}

// noOpWrites keeps production writing, until stopped, updates that change
// no value: the replica applies them, so its checkpoint soon passes any
// position verify waits for, and what verify compares stays the same.
func (s *site) noOpWrites() (stop func()) {
	return s.keepWriting(`UPDATE accounts SET plan = plan WHERE id = 1`, 100*time.Millisecond)
}

// keepWriting runs sql on production every pause until stopped (stop
// may be called more than once; the test's end calls it too).
func (s *site) keepWriting(sql string, pause time.Duration) (stop func()) {
	s.t.Helper()
	conn, err := pgx.Connect(s.t.Context(), s.srcDSN)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil && ctx.Err() == nil {
			if _, err = conn.Exec(ctx, sql); ctx.Err() != nil {
				err = nil
			}
			time.Sleep(pause)
		}
		conn.Close(context.Background())
		done <- err
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				s.t.Errorf("production writes: %v", err)
			}
		})
	}
	s.t.Cleanup(stop)
	return stop
}

// verify holds a table's lock only while it reads that table: while it
// waits for a table a migration holds, production alters a table it has
// already compared, at once (guarantee 5: a migration never waits for the
// whole verify).
func TestVerifyHoldsOneTableAtATime(t *testing.T) {
	s := newSite(t)
	p := s.start()
	s.streaming(p)
	ctx := context.Background()
	holder := pgtest.Connect(t, s.srcDSN)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// events comes last in the rules: verify reads the others first.
	if _, err := tx.Exec(ctx, `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := s.cli("verify", "-c", s.config, "--wait", verifyWait)
		done <- result{code, out, errOut}
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var waiting bool
		if err := s.src.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks WHERE relation = 'events'::regclass AND NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("verify ended before reaching events: exit %d\n%s%s", r.code, r.out, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("verify never waited for events")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.exec(`SET lock_timeout = '20s'; ALTER TABLE accounts ADD COLUMN migrated int; RESET lock_timeout`)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != exitOK || !strings.Contains(r.out, "verify: 7 tables OK") {
		t.Errorf("verify: exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
	}
}

// checkVerifyLinesAddUp checks that every table line of verify's output
// is true on its face: REPLICA is SOURCE - MISSING + EXTRA (the counts of
// one look), or the line says how many rows changed while verify read
// the table. (Under traffic verify once printed more replica rows than
// source rows, 0 extra and OK, explained only by a footnote.)
func checkVerifyLinesAddUp(t *testing.T, out string) {
	t.Helper()
	line := regexp.MustCompile(`(?m)^(\S+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(OK|DIFF)(.*)$`)
	ms := line.FindAllStringSubmatch(out, -1)
	if len(ms) == 0 {
		t.Fatalf("no table line in:\n%s", out)
	}
	for _, m := range ms {
		n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
		if n(3) != n(2)-n(4)+n(5) && !regexp.MustCompile(`^ \(\d+ rows? changed during the check, not counted\)$`).MatchString(m[8]) {
			t.Errorf("%s: %d source rows, %d in the replica, %d missing, %d extra, and no word of rows changed during the check:\n%s", m[1], n(2), n(3), n(4), n(5), out)
		}
	}
}

// A table that rows were inserted into while verify read it, looked at
// again, says so on its own line.
func TestPrintVerifyUnderTraffic(t *testing.T) {
	first := replicate.TableDiff{Table: "public.events", Source: 100, Target: 103, Extra: 3,
		Keys: map[string]replicate.DiffKind{"a": replicate.DiffExtra, "b": replicate.DiffExtra, "c": replicate.DiffExtra}}
	last := replicate.TableDiff{Table: "public.events", Source: 101, Target: 104, Extra: 3,
		Keys: map[string]replicate.DiffKind{"d": replicate.DiffExtra, "e": replicate.DiffExtra, "f": replicate.DiffExtra}}
	calm := replicate.TableDiff{Table: "public.accounts", Source: 5, Target: 5, Keys: map[string]replicate.DiffKind{}}
	stdout := &syncbuf.Buffer{}
	printVerify(&env{stdout: stdout, stderr: stdout}, []replicate.TableDiff{calm, last.Within(first)}, false)
	out := stdout.String()
	t.Logf("\n%s", out)
	checkVerifyLinesAddUp(t, out)
	if !regexp.MustCompile(`(?m)^public\.events +101 +104 +0 +0 +0 +OK \(3 rows changed during the check, not counted\)$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^public\.accounts +5 +5 +0 +0 +0 +OK$`).MatchString(out) {
		t.Errorf("output:\n%s", out)
	}
}
