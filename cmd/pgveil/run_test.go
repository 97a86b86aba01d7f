package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/internal/process"
	"pgveil/replicate"
	"pgveil/rules"
)

// Integration tests of the pgveil binary against real clusters: signals,
// kill -9 at random moments, and the memory of a large transaction.

var (
	clusters = pgtest.Pair{Source: pgtest.Shared{Options: pgtest.Options{Settings: map[string]string{"logical_decoding_work_mem": "1MB"}}}}
	binOnce  sync.Once
	binPath  string
	binErr   error
)

func TestMain(m *testing.M) {
	pgtest.Main(m, &clusters, pgtest.StopFunc(func() {
		if binPath != "" {
			os.RemoveAll(filepath.Dir(binPath))
		}
	}))
}

// binary builds pgveil once for the package's tests.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pgveil-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "pgveil")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// canary is personal data that must never leave production unmasked.
const canary = "CANARY-Zoë-Müller"

type site struct {
	t        *testing.T
	dir      string
	srcDSN   string
	dstDSN   string
	src, dst *pgx.Conn
	config   string
	marker   int64
}

// newSite loads the example SaaS schema (examples/saas) into a fresh
// production database, seeds it with personal data, and runs pgveil with
// the example's own rules file.
func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{t: t, dir: t.TempDir(), srcDSN: clusters.Source.NewDB(t), dstDSN: clusters.Target.NewDB(t)}
	ctx := context.Background()
	var err error
	if s.src, err = pgx.Connect(ctx, s.srcDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.src.Close(context.Background()) })
	if s.dst, err = replicate.ConnectTarget(ctx, s.dstDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.dst.Close(context.Background()) })
	// The example grants the replica to metabase_ro.
	if _, err := s.dst.Exec(ctx, `DO $$ BEGIN CREATE ROLE metabase_ro; EXCEPTION WHEN duplicate_object THEN NULL; END $$`); err != nil {
		t.Fatal(err)
	}
	schema, err := os.ReadFile("../../examples/saas/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	s.exec(string(schema))
	s.exec(strings.ReplaceAll(`
INSERT INTO accounts (name, plan, country) SELECT 'Tenant ' || g, (ARRAY['free','team','business','enterprise'])[1 + g % 4], 'DE' FROM generate_series(1, 20) g;
INSERT INTO users (account_id, email, full_name, password_hash)
  SELECT 1 + g % 20, 'staff' || g || '@mail.example', $1 || ' staff ' || g, md5(g::text) FROM generate_series(1, 200) g;
INSERT INTO customers (account_id, email, full_name, phone, street, city, zip, country, birth_date, notes, profile)
  SELECT 1 + g % 20, 'c' || g || '@mail.example', $1 || ' ' || g, '+49 30 1234 ' || g, g || ' Hauptstrasse', 'Berlin', '10115', 'DE',
         date '1960-01-01' + g, $1, jsonb_build_object('ssn', $1, 'address', jsonb_build_object('street', $1))
  FROM generate_series(1, 2000) g;
INSERT INTO orders (account_id, customer_id, total, shipping_address) SELECT 1 + g % 20, 1 + g % 2000, g, $1 FROM generate_series(1, 3000) g;
INSERT INTO events (account_id, user_id, kind, ip, properties)
  SELECT 1 + g % 20, 1 + g % 200, 'view', ('192.168.' || (g % 200) || '.' || (g % 250))::inet, jsonb_build_object('email', 'e' || g || '@mail.example')
  FROM generate_series(1, 4000) g;`, "$1", "'"+canary+"'"))
	abs, err := filepath.Abs("../../examples/saas/pgveil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.config = abs
	return s
}

// dumpReplica is pg_dump of the analytics database.
func (s *site) dumpReplica() string {
	s.t.Helper()
	bin, err := pgtest.BinDir()
	if err != nil {
		s.t.Fatal(err)
	}
	dump, err := exec.Command(filepath.Join(bin, "pg_dump"), "--dbname", s.dstDSN).Output()
	if err != nil {
		s.t.Fatalf("pg_dump: %v", err)
	}
	return string(dump)
}

func (s *site) exec(sql string, args ...any) {
	s.t.Helper()
	if _, err := s.src.Exec(context.Background(), sql, args...); err != nil {
		s.t.Fatalf("source: %v", err)
	}
}

// start runs pgveil (its output captured; killed when the test ends).
func (s *site) start(extra ...string) *process.Process {
	s.t.Helper()
	cmd := exec.Command(binary(s.t), append([]string{"run", "-c", s.config, "--log-format", "json", "--log-level", "debug", "--spill-dir", s.dir}, extra...)...)
	cmd.Env = append(os.Environ(), "SOURCE_DSN="+s.srcDSN, "TARGET_DSN="+s.dstDSN, "PGVEIL_SECRET="+pgtest.Secret)
	return pgtest.StartProcess(s.t, cmd)
}

// terminate sends pgveil SIGTERM and waits for it to exit, failing the
// test with its log if it is still running after signalStopWait.
func (s *site) terminate(p *process.Process) {
	s.t.Helper()
	if err := p.Stop(syscall.SIGTERM, signalStopWait); errors.Is(err, process.ErrNotStopped) {
		s.t.Fatalf("pgveil still running %s after SIGTERM; its log:\n%s", signalStopWait, p.Output())
	}
}

// sync writes a marker in production (an account with a new id: ids are
// kept) and waits until the replica has it and the initial copy is
// complete: then every earlier source commit is applied.
func (s *site) sync(p *process.Process) {
	s.t.Helper()
	s.marker++
	id := 1000000 + s.marker
	s.exec(`INSERT INTO accounts (id, name, plan, country) VALUES ($1, 'marker', 'free', 'DE')`, id)
	deadline := time.Now().Add(siteSyncWait)
	var n int
	var copied bool
	var err error
	for time.Now().Before(deadline) {
		// The marker may come with the initial copy, while larger tables
		// are still loading: the checkpoint is written when all are in.
		err = s.dst.QueryRow(context.Background(), `SELECT count(*), EXISTS (SELECT FROM pgveil.checkpoint) FROM public.accounts WHERE id = $1`, id).Scan(&n, &copied)
		if err == nil && n == 1 && copied {
			return
		}
		select {
		case <-p.Done():
			s.t.Fatalf("pgveil exited: %v\n%s", p.Err(), p.Output())
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("the replica did not catch up within %s (marker %d: %d rows, checkpoint written %v, last error %v); pgveil's log:\n%s",
		siteSyncWait, id, n, copied, err, p.Output())
}

// Generous waits for what pgveil and the servers do: on a loaded machine
// running several clusters it can take many times what it takes on an
// idle one, and a wait only runs out when the test fails anyway.
const (
	// siteSyncWait bounds sync: pgveil applying every earlier source commit
	// (a million-row transaction included).
	siteSyncWait = 5 * time.Minute
	// signalStopWait bounds a clean stop after SIGTERM or SIGINT: what matters
	// is that pgveil stops, with status 0, rather than hanging.
	signalStopWait = time.Minute
)

// verify: the replica equals mask(production).
func (s *site) verify() {
	s.t.Helper()
	ctx := context.Background()
	env := map[string]string{"SOURCE_DSN": s.srcDSN, "TARGET_DSN": s.dstDSN, "PGVEIL_SECRET": pgtest.Secret}
	cfg, err := rules.Load(s.config, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	src, err := replicate.ConnectSource(ctx, s.srcDSN)
	if err != nil {
		s.t.Fatal(err)
	}
	defer src.Close(ctx)
	prep, err := replicate.Prepare(ctx, src, cfg, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	diffs, err := replicate.Compare(ctx, src, s.dst, prep.Plan)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, d := range diffs {
		if !d.OK() {
			s.t.Errorf("%s: source %d, replica %d, missing %d, extra %d, different %d", d.Table, d.Source, d.Target, d.Missing, d.Extra, d.Different)
		}
	}
}

// rawEmail matches the seeded emails' local parts: the example rules keep
// customers' email domains, never the part before the @.
var rawEmail = regexp.MustCompile(`(^|[^a-z0-9.])(c|staff|e|n|b)[0-9]*@mail\.example`)

func (s *site) noCanary(where string, text string) {
	s.t.Helper()
	for _, c := range []string{canary, pgtest.Secret} {
		if strings.Contains(text, c) {
			s.t.Errorf("%s contains %q", where, c)
		}
	}
	if m := rawEmail.FindString(text); m != "" {
		s.t.Errorf("%s contains a raw email: %q", where, m)
	}
}

func TestRunStopsCleanlyOnSignal(t *testing.T) {
	s := newSite(t)
	p := s.start()
	s.sync(p)
	s.exec(`UPDATE customers SET city = 'Elsewhere' WHERE id % 5 = 0`)
	s.sync(p)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		began := time.Now()
		if err := p.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done():
			if p.Err() != nil {
				t.Errorf("%v: exit %v\n%s", sig, p.Err(), p.Output())
			}
			t.Logf("%v: stopped after %v", sig, time.Since(began).Round(time.Millisecond))
		case <-time.After(signalStopWait):
			t.Fatalf("%v: still running after %s; its log:\n%s", sig, signalStopWait, p.Output())
		}
		s.noCanary("the log", p.Output())
		if sig == syscall.SIGTERM {
			s.exec(`DELETE FROM events WHERE id % 7 = 0`)
			p = s.start()
			s.sync(p)
		}
	}
	s.verify()
	// No raw personal data anywhere in a dump of the replica.
	dump := s.dumpReplica()
	if !strings.Contains(dump, "COPY public.customers") {
		t.Fatalf("the dump holds no customers table")
	}
	s.noCanary("a dump of the replica", dump)
}

// traffic inserts, updates and deletes in production until ctx ends.
func (s *site) traffic(ctx context.Context) error {
	conn, err := pgx.Connect(context.Background(), s.srcDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; ctx.Err() == nil; n++ {
		var q string
		if n%1000 == 0 {
			// A transaction big enough for production to stream it in
			// pieces (logical_decoding_work_mem is 1MB here): inserts
			// with a sub-transaction rolled back, applied as it
			// streams; every other one also deletes and updates rows of
			// tables with a foreign key on the replica, which sends it
			// to its spill, applied at its commit. One in four aborts.
			more, end := "", "COMMIT"
			if n%2000 == 0 {
				more = fmt.Sprintf(`DELETE FROM events WHERE kind = 'big' AND id %% 5 = %d; UPDATE orders SET total = total + 1 WHERE id %% 7 = %d;`, rng.IntN(5), rng.IntN(7))
			}
			if rng.IntN(4) == 0 {
				end = "ROLLBACK"
			}
			q = fmt.Sprintf(`BEGIN; INSERT INTO events (account_id, kind, properties) SELECT %d, 'big', '{"email": "big@mail.example"}' FROM generate_series(1, 6000); SAVEPOINT s; INSERT INTO events (account_id, kind) SELECT 1, 'undone' FROM generate_series(1, 500); ROLLBACK TO SAVEPOINT s; %s %s`,
				1+rng.IntN(19), more, end)
			if _, err := conn.Exec(context.Background(), q); err != nil {
				return fmt.Errorf("traffic: %w", err)
			}
			continue
		}
		switch rng.IntN(6) {
		case 0, 1:
			q = fmt.Sprintf(`INSERT INTO customers (account_id, email, full_name, notes) VALUES (%d, 'n%d@mail.example', '%s', '%s')`, 1+rng.IntN(19), rng.Int64(), canary, canary)
		case 2:
			q = fmt.Sprintf(`UPDATE customers SET city = 'U%d', deleted_at = CASE WHEN id %% 2 = 0 THEN now() END WHERE id %% 97 = %d`, rng.IntN(1000), rng.IntN(97))
		case 3:
			q = fmt.Sprintf(`DELETE FROM events WHERE id = %d`, 1+rng.IntN(4000))
		case 4:
			q = fmt.Sprintf(`BEGIN; INSERT INTO events (account_id, kind, properties) SELECT %d, 'batch', '{"email": "b@mail.example"}' FROM generate_series(1, 50); UPDATE orders SET status = 'shipped', total = total + 1 WHERE id %% 50 = %d; COMMIT`, 1+rng.IntN(19), rng.IntN(50))
		case 5:
			q = fmt.Sprintf(`UPDATE events SET id = id + 10000000 WHERE id = %d`, 1+rng.IntN(4000))
		}
		if _, err := conn.Exec(context.Background(), q); err != nil {
			return fmt.Errorf("traffic: %w", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// TestRunLargeTransactionMemory applies one transaction of a million rows
// and checks pgveil's peak memory.
func TestRunLargeTransactionMemory(t *testing.T) {
	s := newSite(t)
	p := s.start()
	s.sync(p)
	s.exec(`INSERT INTO events (account_id, kind, ip) SELECT 1 + g % 20, 'bulk', '10.1.2.3' FROM generate_series(1, 1000000) g`)
	s.sync(p)
	peak, err := p.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS %d MB", peak>>20)
	if peak > 200<<20 {
		t.Errorf("peak RSS %d MB, want under 200 MB", peak>>20)
	}
	if !strings.Contains(p.Output(), "snapshot copied") {
		t.Errorf("no initial copy in the log")
	}
	var n int64
	s.dst.QueryRow(context.Background(), `SELECT count(*) FROM public.events`).Scan(&n)
	if n != 1004000 {
		t.Errorf("replica has %d events", n)
	}
}
