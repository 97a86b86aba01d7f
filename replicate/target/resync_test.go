package target

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"

	"github.com/jackc/pgx/v5"
)

// Staging names stay valid UTF-8 within 63 bytes, and distinct, whatever
// the table's name: a cut inside a character stopped pgveil.
func TestStagingName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 40) // 80 bytes: byte 40 is the start of a character, byte 41 is not
	odd := "a" + long               // byte 40 falls inside a character
	names := []struct{ schema, name string }{
		{"public", "address"},
		{"public", long},
		{"public", odd},
		{"public", odd + "x"}, // the same kept prefix as odd
		{"other", odd},
		{"public", strings.Repeat("表", 21)}, // 63 bytes, the longest a name can be
		{"public", strings.Repeat("x", 63)},
	}
	seen := map[string]string{}
	for _, n := range names {
		got := stagingName(n.schema, n.name)
		if !utf8.ValidString(got) || len(got) > 63 {
			t.Errorf("%s.%s: staging name %q (%d bytes, valid UTF-8 %v)", n.schema, n.name, got, len(got), utf8.ValidString(got))
		}
		if !strings.HasPrefix(n.name, got[14:]) || len(n.name) > 40 && len(got[14:]) < 37 {
			t.Errorf("%s.%s: staging name %q keeps too little of the name", n.schema, n.name, got)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("%s.%s and %s have the same staging name %q", n.schema, n.name, prev, got)
		}
		seen[got] = n.schema + "." + n.name
	}
	if got := stagingName("public", "address"); got[14:] != "address" {
		t.Errorf("a short name is kept whole: %q", got)
	}
}

// A re-copied table's constraints and their indexes carry the names a
// first copy gives them, not the staging table's: PostgreSQL's choice,
// with long and non-ASCII names cut within 63 bytes and a taken name
// numbered.
func TestSwitchKeepsFirstCopyNames(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	dsn := shared.NewDB(t)
	conn := pgtest.Connect(t, dsn)
	tables := []*transform.TablePlan{
		table("app", "address", pk("id", "integer"), c("v", "text")),
		table("app", strings.Repeat("ü", 31), pk("a", "integer"), pk("b", "text"), c("v", "text")),
		table("app", "taken", pk("id", "integer")),
	}
	// A relation that already has the name PostgreSQL picks first for
	// taken's key: a first copy gets taken_pkey1.
	for _, q := range []string{`CREATE SCHEMA app`, `CREATE TABLE app.taken_pkey ()`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := Setup(ctx, conn, plan(tables...), nil, nil); err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{"address": "1\tx\n", "taken": "1\n"}
	for _, tb := range tables {
		r, ok := rows[tb.Table.Name]
		if !ok {
			r = "1\tx\ty\n"
		}
		if _, err := CopyIn(ctx, conn, tb, strings.NewReader(r)); err != nil {
			t.Fatal(err)
		}
	}
	const names = `SELECT conrelid::regclass::text || ' constraint ' || conname FROM pg_constraint WHERE connamespace = 'app'::regnamespace
UNION ALL SELECT indrelid::regclass::text || ' index ' || indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
	WHERE c.relnamespace = 'app'::regnamespace ORDER BY 1`
	first := query(t, conn, names)
	if !strings.Contains(strings.Join(first, "\n"), "taken_pkey1") {
		t.Fatalf("the test's premise: a first copy names taken's key taken_pkey1: %q", first)
	}

	recopy(t, ctx, conn, tables, func(name string) string {
		if r, ok := rows[name]; ok {
			return r
		}
		return "2\tx\ty\n"
	})
	equal(t, "names after a re-copy", query(t, conn, names), first)
	equal(t, "staging schema after the switch", query(t, conn, `SELECT count(*) FROM pg_class WHERE relnamespace = 'pgveil_staging'::regnamespace`), []string{"0"})
}

// Replica tables keep a row inline until it fills a page, after a first
// copy and after a re-copy alike (replicaStorage).
func TestReplicaTablesKeepRowsInline(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	conn := pgtest.Connect(t, shared.NewDB(t))
	tb := table("app", "wide", pk("id", "integer"), c("v", "text"))
	if err := Setup(ctx, conn, plan(tb), nil, nil); err != nil {
		t.Fatal(err)
	}
	const opts = `SELECT coalesce(array_to_string(reloptions, ','), '') FROM pg_class WHERE oid = 'app.wide'::regclass`
	equal(t, "first copy's storage", query(t, conn, opts), []string{"toast_tuple_target=8160"})
	recopy(t, ctx, conn, []*transform.TablePlan{tb}, func(string) string { return "1\tx\n" })
	equal(t, "re-copy's storage", query(t, conn, opts), []string{"toast_tuple_target=8160"})
	// A 3 kB row of values that do not compress stays in the heap.
	pgtest.MustExec(t, conn, `INSERT INTO app.wide SELECT 2, string_agg(md5(g::text), '') FROM generate_series(1, 100) g`)
	equal(t, "toasted values", query(t, conn, `SELECT count(*) FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid, LATERAL (SELECT 1) x WHERE c.oid = 'app.wide'::regclass AND pg_relation_size(t.oid) > 0`), []string{"0"})
}

// The staging schema's DROP waits at most lockTimeout for a lock held on
// a staging table (an earlier attempt's loader), and says it was a lock
// timeout, which the pipeline retries; it never queues for good.
func TestPrepareStagingLockTimeout(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"))
	ctx, dsn, conn := setupDB(t, plan(tb), nil)
	st := []*transform.TablePlan{StagingPlan(tb)}
	if err := PrepareStaging(ctx, conn, st, nil); err != nil {
		t.Fatal(err)
	}
	loader := pgtest.Connect(t, dsn)
	tx, err := loader.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `LOCK TABLE `+tableIdent(st[0])+` IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	// Without a lock timeout the DROP would wait for the test's end.
	wctx, cancel := context.WithTimeout(ctx, 50*time.Second)
	defer cancel()
	err = PrepareStaging(wctx, conn, st, nil)
	if !schema.IsLockTimeout(err) {
		t.Fatalf("staging under a loader's lock: %v, want a lock timeout", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := PrepareStaging(ctx, conn, st, nil); err != nil {
		t.Fatalf("staging once the lock is gone: %v", err)
	}
}

// A switch that meets a reader's lock on the live table fails, after
// lockTimeout, with an error schema.IsLockTimeout recognises through the
// applier's wrapping: the pipeline then tries the switch again later
// rather than stopping.
func TestSwitchLockTimeoutIsRecognised(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"))
	ctx, dsn, conn := setupDB(t, plan(tb), nil)
	st := StagingPlan(tb)
	if err := PrepareStaging(ctx, conn, []*transform.TablePlan{st}, nil); err != nil {
		t.Fatal(err)
	}
	reader := pgtest.Connect(t, dsn)
	tx, err := reader.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM app.t`); err != nil {
		t.Fatal(err)
	}
	a := NewApplier(conn, "s")
	if err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range SwitchSQL(tb, st, nil, "h") {
		if err = a.Exec(ctx, q); err != nil {
			break
		}
	}
	if !schema.IsLockTimeout(err) {
		t.Fatalf("switch under a reader's lock: %v, want a lock timeout", err)
	}
}

// recopy re-copies tables as a resync does: each into a staging table
// (the COPY text rows(name) gives), then all switched in in one
// transaction, committed.
func recopy(t *testing.T, ctx context.Context, conn *pgx.Conn, tables []*transform.TablePlan, rows func(name string) string) {
	t.Helper()
	var staging []*transform.TablePlan
	for _, tb := range tables {
		staging = append(staging, StagingPlan(tb))
	}
	if err := PrepareStaging(ctx, conn, staging, nil); err != nil {
		t.Fatal(err)
	}
	for i, st := range staging {
		if _, err := CopyIn(ctx, conn, st, strings.NewReader(rows(tables[i].Table.Name))); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	for i, tb := range tables {
		for _, q := range SwitchSQL(tb, staging[i], nil, "h") {
			if _, err := tx.Exec(ctx, q); err != nil {
				t.Fatalf("switching %s: %s: %v", tb.Table.QualifiedName(), firstWords(q), err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
