// Package pgtest is the one test harness of pgveil's packages: throwaway
// clusters for one test (New) or shared by a package's tests (Shared,
// Pair), a fresh database per test, connections closed when the test
// ends, a context with a timeout, the standard TestMain (Main), the tests'
// masking secret, and the pgveil process a test runs (StartProcess).
//
// Only tests import it: it imports "testing", and the pgveil binary must
// not link it (TestBinaryLinksNoTestCode). The demo and the benchmarks
// start clusters with internal/cluster and processes with
// internal/process, which this package builds on.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/cluster"
	"pgveil/internal/process"
	"pgveil/schema"
)

// Secret is the masking secret of every test: 32 bytes, as the rules
// require. A test that checks nothing raw leaks looks for it too.
const Secret = "0123456789abcdef0123456789abcdef"

// Cluster and Options are internal/cluster's, named here so that tests
// need one import.
type (
	Cluster = cluster.Cluster
	Options = cluster.Options
)

// BinDir is cluster.BinDir: where initdb, postgres, pg_dump and psql are.
func BinDir() (string, error) { return cluster.BinDir() }

// Exec is cluster.Exec: sql run on a new connection to dsn.
func Exec(ctx context.Context, dsn, sql string) error { return cluster.Exec(ctx, dsn, sql) }

// How long the helpers wait for their own set-up work. Generous: on a
// loaded machine running several clusters, initdb or a database's
// creation may take many times what it takes on an idle one, and a wait
// only ends early when something is wrong anyway.
const (
	// setupWait bounds New and Shared.Get (initdb and the start).
	setupWait = 5 * time.Minute
	// dbWait bounds creating or dropping a test's database.
	dbWait = 3 * time.Minute
	// testWait bounds a test's own statements (Context, MustExec, the
	// connections of Connect and ConnectAs).
	testWait = 2 * time.Minute
)

// Stopper is what Main stops after the tests: a Shared cluster or a Pair.
type Stopper interface{ Stop() }

var (
	_ Stopper = (*Shared)(nil)
	_ Stopper = (*Pair)(nil)
)

// Main is the standard TestMain: it runs the package's tests, stops the
// shared clusters, and exits with the tests' status.
func Main(m *testing.M, shared ...Stopper) {
	code := m.Run()
	for _, s := range shared {
		s.Stop()
	}
	os.Exit(code)
}

// Context is a context for a test's own statements: it ends after two
// minutes or when the test ends.
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	t.Cleanup(cancel)
	return ctx
}

// Connect opens a connection to dsn, closed when the test ends.
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return connectConfig(t, cfg)
}

// ConnectAs opens a connection to dsn as role (the test clusters trust
// local connections), closed when the test ends.
func ConnectAs(t testing.TB, dsn, role string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = role
	return connectConfig(t, cfg)
}

func connectConfig(t testing.TB, cfg *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting as %s: %v", cfg.User, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// MustExec runs sql (the simple protocol: several statements at once, no
// parameters) and fails the test with the statement when it fails.
func MustExec(t testing.TB, conn *pgx.Conn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s\n-> %v", sql, err)
	}
}

// New starts a cluster for one test and stops it when the test ends. It
// fails the test (never skips it) when PostgreSQL is not installed.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupWait)
	defer cancel()
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// Shared starts one cluster on first use and hands it to every test of a
// package; Main stops it after the tests.
type Shared struct {
	Options Options
	once    sync.Once
	c       *Cluster
	err     error
	n       int
	mu      sync.Mutex
}

// Get returns the shared cluster, starting it on first use.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupWait)
		defer cancel()
		s.c, s.err = cluster.Start(ctx, s.Options)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.c
}

// NewDB creates a fresh database on the shared cluster for one test, and
// drops it (with its slots) when the test ends. It returns the DSN.
func (s *Shared) NewDB(t testing.TB) string {
	t.Helper()
	c := s.Get(t)
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("t%d_%s", s.n, sanitize(t.Name()))
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), dbWait)
	defer cancel()
	dsn, err := c.CreateDB(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dbWait)
		defer cancel()
		if err := c.DropDB(ctx, name); err != nil {
			t.Logf("pgtest: dropping %s: %v", name, err)
		}
	})
	return dsn
}

// NewDBWith is NewDB with sql (when not empty) run in the new database:
// it returns a connection to it, closed when the test ends, and its DSN.
func (s *Shared) NewDBWith(t testing.TB, sql string) (*pgx.Conn, string) {
	t.Helper()
	dsn := s.NewDB(t)
	conn := Connect(t, dsn)
	if sql != "" {
		MustExec(t, conn, sql)
	}
	return conn, dsn
}

// Stop stops the shared cluster if it was started.
func (s *Shared) Stop() {
	if s.c != nil {
		s.c.Stop()
	}
}

// Pair is the two clusters of a replication test, shared by a package's
// tests: Source plays production (wal_level=logical, as every cluster
// here), Target the analytics database.
type Pair struct {
	Source, Target Shared
}

// Stop stops both clusters.
func (p *Pair) Stop() {
	p.Source.Stop()
	p.Target.Stop()
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}

// StartProcess starts cmd with its output captured (see
// internal/process) and kills and reaps it when the test ends, if it is
// still running then.
func StartProcess(t testing.TB, cmd *exec.Cmd) *process.Process {
	t.Helper()
	p, err := process.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	return p
}

// WaitUntil polls cond until it holds, for up to two minutes; it fails
// the test, with the process's output, when the time runs out or the
// process exits first.
func WaitUntil(t testing.TB, p *process.Process, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := p.WaitUntil(ctx, cond); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
}

// WaitLog waits, as WaitUntil, until the process's output holds text.
func WaitLog(t testing.TB, p *process.Process, text string) {
	t.Helper()
	WaitUntil(t, p, func() bool { return strings.Contains(p.Output(), text) })
}

// StopFunc makes a function a Stopper: what else Main must clean up
// after the tests (a binary they built).
type StopFunc func()

// Stop calls f.
func (f StopFunc) Stop() { f() }

// Table parses "schema.name" (no quoting) into a table name, for tests
// that name tables in short.
func Table(s string) schema.TableName {
	schemaName, name, _ := strings.Cut(s, ".")
	return schema.TableName{Schema: schemaName, Name: name}
}
