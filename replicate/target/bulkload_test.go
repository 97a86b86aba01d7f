package target

import (
	"context"
	"errors"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
)

// catalogOf describes what a load must keep of app.t: its constraints
// (name, kind, columns), its indexes, its grants and its policies. It
// reads the catalog only (pg_get_indexdef would wait for the load's lock):
// it also shows what others see while a load runs.
const catalogOf = `
SELECT 'constraint ' || conname || ' ' || contype::text || ' ' || conkey::text || ' index ' || conindid::regclass::text FROM pg_constraint WHERE conrelid = 'app.t'::regclass
UNION ALL SELECT 'index ' || indexrelid::regclass::text || ' ' || indkey::text || ' unique ' || indisunique || ' primary ' || indisprimary FROM pg_index WHERE indrelid = 'app.t'::regclass
UNION ALL SELECT 'acl ' || coalesce(relacl::text, '') || ' rls ' || relrowsecurity FROM pg_class WHERE oid = 'app.t'::regclass
UNION ALL SELECT 'policy ' || polname FROM pg_policy WHERE polrelid = 'app.t'::regclass
ORDER BY 1`

// The bulk load drops the primary key, loads, and builds it again: the
// table comes out with the key, the constraint and index names a first
// copy gives (Setup's CREATE TABLE), its grants and its policies, and the
// key enforced. A key something depends on (a self-referencing foreign
// key) stays, and the load still works.
func TestCopyInBulkLoadKeepsKeyNamesAndGrants(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), pk("k", "text"), c("v", "text"))
	ctx := pgtest.Context(t)
	dsn := shared.NewDB(t)
	conn := pgtest.Connect(t, dsn)
	reader := "r_" + dbName(t, dsn)
	pgtest.MustExec(t, conn, `CREATE ROLE `+reader+` NOLOGIN`)
	if err := Setup(ctx, conn, plan(tb), nil, []string{reader}); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, conn, `ALTER TABLE app.t ENABLE ROW LEVEL SECURITY; CREATE POLICY p ON app.t USING (true)`)
	before := query(t, conn, catalogOf)
	if !strings.Contains(strings.Join(before, "\n"), "constraint t_pkey p {1,2} index app.t_pkey") {
		t.Fatalf("Setup's key is not as expected: %q", before)
	}

	for i, load := range []string{"2\tb\tx\n1\ta\ty\n", "3\tc\tz\n"} {
		if _, err := CopyIn(ctx, conn, tb, strings.NewReader(load)); err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		equal(t, "catalog after a load", query(t, conn, catalogOf), before)
	}
	equal(t, "rows", query(t, conn, `SELECT id, k, v FROM app.t`), []string{"3|c|z"})
	if _, err := conn.Exec(ctx, `INSERT INTO app.t VALUES (3, 'c', 'again')`); schemaState(err) != "23505" {
		t.Errorf("the rebuilt key does not hold: %v", err)
	}

	// The key is built from the loaded rows: a duplicate fails the load,
	// value-free, and leaves the table as it was.
	_, err := CopyIn(ctx, conn, tb, strings.NewReader("5\tSECRET\tv\n5\tSECRET\tw\n"))
	var se *ServerError
	if err == nil || strings.Contains(err.Error(), "SECRET") || !errors.As(err, &se) || se.Code != "23505" || !strings.Contains(err.Error(), "primary key") {
		t.Errorf("duplicate key: %v", err)
	}
	equal(t, "after a duplicate key", query(t, conn, `SELECT id, k, v FROM app.t`), []string{"3|c|z"})
	equal(t, "catalog after a duplicate key", query(t, conn, catalogOf), before)

	// A foreign key needs the key's index: the key stays through the load.
	pgtest.MustExec(t, conn, `ALTER TABLE app.t ADD COLUMN pid integer, ADD COLUMN pk text; ALTER TABLE app.t ADD CONSTRAINT self FOREIGN KEY (pid, pk) REFERENCES app.t`)
	withFK := query(t, conn, catalogOf)
	if _, err := CopyIn(ctx, conn, tb, strings.NewReader("4\td\tv\n")); err != nil {
		t.Fatalf("load with a self-referencing foreign key: %v", err)
	}
	equal(t, "catalog with a foreign key", query(t, conn, catalogOf), withFK)
	equal(t, "rows with a foreign key", query(t, conn, `SELECT id, k, v FROM app.t`), []string{"4|d|v"})
}

// schemaState is the SQLSTATE of a server error, "" otherwise.
func schemaState(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

// blockingReader gives its rows, then waits until release is closed and
// fails with err: a load stopped mid-stream, before its commit.
type blockingReader struct {
	rows    string
	sent    bool
	waiting chan struct{}
	release chan struct{}
	err     error
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, r.rows), nil
	}
	close(r.waiting)
	<-r.release
	return 0, r.err
}

// A load stopped before its commit, with its rows sent and the key
// dropped: others see the previous table (its rows, key, grants) the
// whole time, and after the failure it is still there, unchanged, never
// a half table or one without its key.
func TestCopyInBulkLoadInterruptedLeavesPreviousTable(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"))
	ctx := pgtest.Context(t)
	dsn := shared.NewDB(t)
	conn := pgtest.Connect(t, dsn)
	reader := "r_" + dbName(t, dsn)
	pgtest.MustExec(t, conn, `CREATE ROLE `+reader+` NOLOGIN`)
	if err := Setup(ctx, conn, plan(tb), nil, []string{reader}); err != nil {
		t.Fatal(err)
	}
	if _, err := CopyIn(ctx, conn, tb, strings.NewReader("1\told\n2\told\n")); err != nil {
		t.Fatal(err)
	}
	before := query(t, conn, catalogOf)
	other := pgtest.Connect(t, dsn)
	// Whatever waits for the load's lock fails instead of hanging the test.
	pgtest.MustExec(t, other, `SET lock_timeout = '5s'; SET statement_timeout = '20s'`)

	stopped := errors.New("the source went away")
	r := &blockingReader{rows: "7\tnew\n8\tnew\n", waiting: make(chan struct{}), release: make(chan struct{}), err: stopped}
	done := make(chan error, 1)
	go func() {
		_, err := CopyIn(context.Background(), conn, tb, r)
		done <- err
	}()
	released := false
	defer func() {
		if !released {
			close(r.release)
		}
	}()
	select {
	case <-r.waiting:
	case err := <-done:
		t.Fatalf("the load ended early: %v", err)
	}
	// Mid-load: the catalog others see is the previous one, key included,
	// and the table is locked (readers wait for the end, not a half table).
	equal(t, "catalog seen mid-load", query(t, other, catalogOf), before)
	equal(t, "lock held mid-load", query(t, other, `SELECT mode FROM pg_locks WHERE relation = 'app.t'::regclass AND granted AND mode = 'AccessExclusiveLock'`), []string{"AccessExclusiveLock"})
	released = true
	close(r.release)
	if err := <-done; !errors.Is(err, stopped) {
		t.Fatalf("interrupted load: %v", err)
	}
	equal(t, "rows after the interrupted load", query(t, other, `SELECT id, v FROM app.t ORDER BY id`), []string{"1|old", "2|old"})
	equal(t, "catalog after the interrupted load", query(t, other, catalogOf), before)
	equal(t, "state", query(t, other, `SELECT state || ' ' || rows FROM pgveil.tables`), []string{"copied 2"})
}

// The load writes its rows frozen (COPY FREEZE, allowed after the
// TRUNCATE in the same transaction): every page all-frozen in the
// visibility map, sparing the target the freezing vacuum later.
func TestCopyInFreezes(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	pgtest.MustExec(t, conn, `CREATE EXTENSION pg_visibility`)
	var b strings.Builder
	for i := range 3000 {
		b.WriteString(itoa(i+1) + "\tsome text to fill a few pages\n")
	}
	if _, err := CopyIn(ctx, conn, tb, strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	equal(t, "pages all-frozen", query(t, conn, `SELECT count(*) > 1, bool_and(all_frozen) FROM pg_visibility_map('app.t')`), []string{"t|t"})
}
