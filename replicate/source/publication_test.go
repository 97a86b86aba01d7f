package source

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/internal/rulestest"
	"pgveil/schema"
)

// Every rule shape guarantee 5 is about, one table each.
const shapesSchema = `
CREATE TABLE public.dropped_col (id int PRIMARY KEY, email text, secret text);
CREATE TABLE public.where_ident (id int PRIMARY KEY, tenant int, name text);
CREATE TABLE public.where_nonident (id int PRIMARY KEY, name text, deleted_at timestamptz);
CREATE TABLE public.full_ident (a int, b text, note text);
ALTER TABLE public.full_ident REPLICA IDENTITY FULL;
CREATE TABLE public.composite (order_id int, line int, qty int, memo text, PRIMARY KEY (order_id, line));
CREATE TABLE public.by_index (id int NOT NULL, code text NOT NULL, name text, secret text);
CREATE UNIQUE INDEX by_index_code ON public.by_index (code);
ALTER TABLE public.by_index REPLICA IDENTITY USING INDEX by_index_code;
CREATE TABLE public.parted (id int, k int, v text, secret text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE public.parted_low PARTITION OF public.parted FOR VALUES FROM (0) TO (100);
CREATE TABLE public.parted_high PARTITION OF public.parted FOR VALUES FROM (100) TO (1000);
CREATE TABLE public.no_identity (at timestamptz, payload text);
`

const shapesRules = `
  dropped_col: {columns: {id: hash, email: {fake: email}, secret: drop}}
  where_ident: {where: "id > 100 OR id = 1", columns: {id: keep, tenant: keep, name: keep}}
  where_nonident: {where: "deleted_at IS NULL", columns: {id: keep, name: {fake: name}, deleted_at: drop}}
  full_ident: {columns: {a: keep, b: keep, note: drop}}
  composite: {where: "line < 1000", columns: {order_id: keep, line: keep, qty: keep, memo: drop}}
  by_index: {where: "code <> 'internal'", columns: {id: keep, code: keep, name: keep, secret: drop}}
  parted: {where: "k >= 0", columns: {id: keep, k: keep, v: keep, secret: drop}}
`

// productionWrites are the statements production runs on every table:
// INSERT, UPDATE of a key column, UPDATE of a non-key column, DELETE.
var productionWrites = map[string][]string{
	"dropped_col": {
		"INSERT INTO public.dropped_col VALUES (1, 'a@x', 's'), (2, 'b@x', 's')",
		"UPDATE public.dropped_col SET id = 10 WHERE id = 1",
		"UPDATE public.dropped_col SET email = 'c@x', secret = 't'",
		"DELETE FROM public.dropped_col WHERE id = 10",
	},
	"where_ident": {
		"INSERT INTO public.where_ident VALUES (1, 1, 'a'), (200, 2, 'b')",
		"UPDATE public.where_ident SET id = 300 WHERE id = 200",
		"UPDATE public.where_ident SET name = 'c', tenant = NULL",
		"DELETE FROM public.where_ident WHERE id = 1",
	},
	"where_nonident": {
		"INSERT INTO public.where_nonident VALUES (1, 'a', NULL), (2, 'b', now())",
		"UPDATE public.where_nonident SET id = 3 WHERE id = 2",
		"UPDATE public.where_nonident SET deleted_at = now() WHERE id = 1",
		"DELETE FROM public.where_nonident WHERE id = 3",
	},
	"full_ident": {
		"INSERT INTO public.full_ident VALUES (1, 'a', 'n'), (2, 'b', 'n')",
		"UPDATE public.full_ident SET a = 3 WHERE a = 2",
		"UPDATE public.full_ident SET note = 'm'",
		"DELETE FROM public.full_ident WHERE a = 1",
	},
	"composite": {
		"INSERT INTO public.composite VALUES (1, 1, 5, 'm'), (1, 2, 6, 'm')",
		"UPDATE public.composite SET line = 3 WHERE line = 2",
		"UPDATE public.composite SET qty = 7, memo = 'n'",
		"DELETE FROM public.composite WHERE line = 1",
	},
	"by_index": {
		"INSERT INTO public.by_index VALUES (1, 'a', 'n', 's'), (2, 'b', 'n', 's')",
		"UPDATE public.by_index SET code = 'c' WHERE code = 'b'",
		"UPDATE public.by_index SET name = 'm', id = 5, secret = 't'",
		"DELETE FROM public.by_index WHERE code = 'a'",
	},
	"parted": {
		"INSERT INTO public.parted VALUES (1, 5, 'v', 's'), (2, 150, 'v', 's')",
		"UPDATE public.parted SET k = 6 WHERE id = 1",
		"UPDATE public.parted SET k = 160 WHERE id = 1", // moves to the other partition
		"UPDATE public.parted SET v = 'w', secret = 't'",
		"DELETE FROM public.parted WHERE id = 2",
	},
}

// runWrites runs production's writes and returns the first failure.
func runWrites(ctx context.Context, conn *pgx.Conn, table string) error {
	for _, s := range productionWrites[table] {
		if _, err := conn.Exec(ctx, s); err != nil {
			return errors.New(s + ": " + err.Error())
		}
	}
	_, err := conn.Exec(ctx, "DELETE FROM public."+table)
	return err
}

// publishedTables is pg_publication_tables: table -> columns and filter.
func publishedTables(t *testing.T, conn *pgx.Conn, pub string) map[string]string {
	t.Helper()
	rows, err := conn.Query(pgtest.Context(t), `
SELECT tablename::text, array_to_string(attnames, ','), coalesce(rowfilter, '')
FROM pg_publication_tables WHERE pubname = $1`, pub)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, cols, filter string
		if err := rows.Scan(&name, &cols, &filter); err != nil {
			t.Fatal(err)
		}
		out[name] = cols + " | " + filter
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func noteWith(pt *PublishedTable, part string) bool {
	for _, n := range pt.Notes {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

// THE key test: whatever the rules, the publication pgveil makes keeps
// every production write working.
func TestPublicationKeepsProductionWritable(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, shapesSchema)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)
	srv := readServer(t, conn)
	plan := rulestest.Compile(t, cat, shapesRules)

	spec, err := PlanPublication(ctx, conn, srv, cat, plan, "pgveil", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Tables) != 7 || spec.Name != "pgveil" {
		t.Fatalf("spec = %+v", spec)
	}
	type want struct {
		cols, filterCols, extra []string
		rowFilter, inProcess    string
		note                    string
	}
	wants := map[string]want{
		"dropped_col":    {cols: []string{"id", "email"}},
		"where_ident":    {cols: []string{"id", "tenant", "name"}, rowFilter: "id > 100 OR id = 1", note: "pushed down"},
		"where_nonident": {cols: []string{"id", "name", "deleted_at"}, filterCols: []string{"deleted_at"}, extra: []string{"deleted_at"}, inProcess: "deleted_at IS NULL", note: "where uses non-identity column(s) deleted_at"},
		"full_ident":     {extra: []string{"note"}, note: "REPLICA IDENTITY FULL: no column list"},
		"composite":      {cols: []string{"order_id", "line", "qty"}, rowFilter: "line < 1000"},
		"by_index":       {cols: []string{"id", "code", "name"}, rowFilter: "code <> 'internal'"},
		"parted":         {cols: []string{"id", "k", "v"}, rowFilter: "k >= 0"},
	}
	for _, pt := range spec.Tables {
		w, ok := wants[pt.Name.Name]
		if !ok {
			t.Errorf("unexpected table %v", pt.Name)
			continue
		}
		if !slices.Equal(pt.Columns, w.cols) || (pt.Columns == nil) != (w.cols == nil) ||
			!slices.Equal(pt.FilterColumns, w.filterCols) || !slices.Equal(pt.Extra, w.extra) ||
			pt.RowFilter != w.rowFilter || pt.InProcessFilter != w.inProcess {
			t.Errorf("%s:\n got %+v\nwant %+v", pt.Name.Name, pt, w)
		}
		if w.note != "" && !noteWith(&pt, w.note) {
			t.Errorf("%s: notes %q lack %q", pt.Name.Name, pt.Notes, w.note)
		}
	}
	if pt := spec.Table(pgtest.Table("public.where_nonident")); !slices.Equal(pt.FilterTypes, []string{"timestamp with time zone"}) {
		t.Errorf("where_nonident FilterTypes = %q", pt.FilterTypes)
	}

	changed, err := EnsurePublication(ctx, conn, spec, cat)
	if err != nil || !changed {
		t.Fatalf("EnsurePublication = %v, %v", changed, err)
	}
	got := publishedTables(t, conn, "pgveil")
	wantPub := map[string]string{
		"dropped_col":    "id,email | ",
		"where_ident":    "id,tenant,name | ((id > 100) OR (id = 1))",
		"where_nonident": "id,name,deleted_at | ",
		"full_ident":     "a,b,note | ",
		"composite":      "order_id,line,qty | (line < 1000)",
		"by_index":       "id,code,name | (code <> 'internal'::text)",
		"parted":         "id,k,v | (k >= 0)",
	}
	if !reflect.DeepEqual(got, wantPub) {
		t.Errorf("pg_publication_tables:\n got %v\nwant %v", got, wantPub)
	}
	var viaRoot, ins, upd, del, trunc bool
	if err := conn.QueryRow(ctx, "SELECT pubviaroot, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = 'pgveil'").Scan(&viaRoot, &ins, &upd, &del, &trunc); err != nil {
		t.Fatal(err)
	}
	if !viaRoot || !ins || !upd || !del || !trunc {
		t.Errorf("publication options: via root %v, insert %v, update %v, delete %v, truncate %v", viaRoot, ins, upd, del, trunc)
	}

	for table := range productionWrites {
		if err := runWrites(ctx, conn, table); err != nil {
			t.Errorf("production write failed with pgveil's publication: %v", err)
		}
	}

	// Nothing to do the second time.
	changed, err = EnsurePublication(ctx, conn, spec, cat)
	if err != nil || changed {
		t.Errorf("EnsurePublication again = %v, %v; want false, nil", changed, err)
	}
	checkLocks(t, conn, spec)
}

// checkLocks checks that the columns the spec says production cannot
// drop or retype are the ones the live publication locks, and that they
// are exactly those whose DROP COLUMN PostgreSQL refuses (each tried in a
// savepoint that is rolled back); partition keys are left out (PostgreSQL
// refuses to drop them anyway).
func checkLocks(t *testing.T, conn *pgx.Conn, spec *PublicationSpec) {
	t.Helper()
	ctx := pgtest.Context(t)
	locked, exists, err := PublicationLocks(ctx, conn, spec.Name)
	if err != nil || !exists {
		t.Fatalf("PublicationLocks = %v, %v, %v", locked, exists, err)
	}
	if want := spec.LockedColumns(); !reflect.DeepEqual(locked, want) {
		t.Errorf("locked columns:\n got %v\nwant %v (the spec's)", locked, want)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, pt := range spec.Tables {
		q := pt.Name.QualifiedName()
		var cols []string
		if err := tx.QueryRow(ctx, `SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
  AND attnum <> ALL (coalesce((SELECT partattrs::int2[] FROM pg_partitioned_table WHERE partrelid = $1::regclass), '{}'))`, q).Scan(&cols); err != nil {
			t.Fatal(err)
		}
		for _, c := range cols {
			if _, err := tx.Exec(ctx, "SAVEPOINT drop_one"); err != nil {
				t.Fatal(err)
			}
			_, dropErr := tx.Exec(ctx, "ALTER TABLE "+q+" DROP COLUMN "+schema.QuoteIdent(c))
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT drop_one"); err != nil {
				t.Fatal(err)
			}
			if want := slices.Contains(locked[q], c); (dropErr != nil) != want {
				t.Errorf("DROP COLUMN %s.%s: %v; locked: %v", q, c, dropErr, want)
			}
		}
	}
}

// publication_mode migration_safe: every table is published whole, with
// no row filter, every `where` is evaluated by pgveil, and what no rule
// publishes is Extra (removed by pgveil). Production's writes work, and so
// do the migrations PostgreSQL refuses on a column a column list or row
// filter names: DROP COLUMN and ALTER COLUMN ... TYPE on a kept, a
// dropped, a key and a filtered column.
func TestPublicationMigrationSafe(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, shapesSchema)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)
	spec, err := PlanPublication(ctx, conn, readServer(t, conn), cat, rulestest.Compile(t, cat, shapesRules), "pgveil", false)
	if err != nil {
		t.Fatal(err)
	}
	if spec.ColumnLists {
		t.Error("the spec says column_lists")
	}
	wants := map[string]struct {
		extra     []string
		inProcess string
	}{
		"dropped_col":    {extra: []string{"secret"}},
		"where_ident":    {inProcess: "id > 100 OR id = 1"},
		"where_nonident": {extra: []string{"deleted_at"}, inProcess: "deleted_at IS NULL"},
		"full_ident":     {extra: []string{"note"}},
		"composite":      {extra: []string{"memo"}, inProcess: "line < 1000"},
		"by_index":       {extra: []string{"secret"}, inProcess: "code <> 'internal'"},
		"parted":         {extra: []string{"secret"}, inProcess: "k >= 0"},
	}
	for _, pt := range spec.Tables {
		w := wants[pt.Name.Name]
		if pt.Columns != nil || pt.RowFilter != "" || pt.InProcessFilter != w.inProcess || !slices.Equal(pt.Extra, w.extra) {
			t.Errorf("%s: got %+v, want no column list, no row filter, extra %v, in-process filter %q", pt.Name.Name, pt, w.extra, w.inProcess)
		}
		if w.inProcess != "" && !noteWith(&pt, "publication_mode migration_safe") {
			t.Errorf("%s: notes %q do not say why the where is not pushed down", pt.Name.Name, pt.Notes)
		}
		if len(w.extra) > 0 && !noteWith(&pt, "published whole") {
			t.Errorf("%s: notes %q do not say the dropped columns travel", pt.Name.Name, pt.Notes)
		}
	}
	if changed, err := EnsurePublication(ctx, conn, spec, cat); err != nil || !changed {
		t.Fatalf("EnsurePublication = %v, %v", changed, err)
	}
	for name, pub := range publishedTables(t, conn, "pgveil") {
		if _, filter, _ := strings.Cut(pub, " | "); filter != "" {
			t.Errorf("%s has row filter %q", name, filter)
		}
	}
	for table := range productionWrites {
		if err := runWrites(ctx, conn, table); err != nil {
			t.Errorf("production write failed with pgveil's publication: %v", err)
		}
	}
	for _, migration := range []string{
		"ALTER TABLE public.dropped_col DROP COLUMN email",           // kept (faked) column
		"ALTER TABLE public.dropped_col DROP COLUMN secret",          // dropped column
		"ALTER TABLE public.where_ident ALTER COLUMN id TYPE bigint", // key, used by the where
		"ALTER TABLE public.where_nonident ALTER COLUMN deleted_at TYPE timestamp",
		"ALTER TABLE public.composite ALTER COLUMN line TYPE bigint",
		"ALTER TABLE public.by_index ALTER COLUMN name TYPE varchar(200)",
		"ALTER TABLE public.by_index DROP COLUMN name",
		"ALTER TABLE public.parted ALTER COLUMN v TYPE varchar(50)",
		"ALTER TABLE public.full_ident DROP COLUMN b",
	} {
		if _, err := conn.Exec(ctx, migration); err != nil {
			t.Errorf("migration failed with pgveil's publication: %s: %v", migration, err)
		}
	}
	for _, table := range []string{"where_ident", "where_nonident", "composite", "parted"} {
		if err := runWrites(ctx, conn, table); err != nil {
			t.Errorf("production write failed after the migrations: %v", err)
		}
	}
	if locked := spec.LockedColumns(); len(locked) > 0 {
		t.Errorf("migration_safe locks %v", locked)
	}
	checkLocks(t, conn, spec)
}

// The test can detect the failure mode: a naive publication (column list
// without the key, row filter on a non-identity column, a table without
// replica identity) makes production's UPDATE fail, and EnsurePublication
// refuses each of them, changing nothing.
func TestNaivePublicationsBreakProduction(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, shapesSchema)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)

	naive := []struct {
		table, ddl string
		spec       PublishedTable
		problem    string
	}{
		{"dropped_col", "CREATE PUBLICATION naive FOR TABLE public.dropped_col (email)",
			PublishedTable{Name: pgtest.Table("public.dropped_col"), Columns: []string{"email"}},
			"the column list leaves out replica identity column id"},
		{"where_nonident", "CREATE PUBLICATION naive FOR TABLE public.where_nonident WHERE (deleted_at IS NULL)",
			PublishedTable{Name: pgtest.Table("public.where_nonident"), RowFilter: "deleted_at IS NULL"},
			"the row filter uses deleted_at, which is not a replica identity column"},
		{"by_index", "CREATE PUBLICATION naive FOR TABLE public.by_index (id, name)",
			PublishedTable{Name: pgtest.Table("public.by_index"), Columns: []string{"id", "name"}},
			"leaves out replica identity column code"},
		{"full_ident", "CREATE PUBLICATION naive FOR TABLE public.full_ident (a, b)",
			PublishedTable{Name: pgtest.Table("public.full_ident"), Columns: []string{"a", "b"}},
			"REPLICA IDENTITY FULL and the column list leaves out note"},
		{"parted", "CREATE PUBLICATION naive FOR TABLE public.parted WHERE (v <> 'x') WITH (publish_via_partition_root = true)",
			PublishedTable{Name: pgtest.Table("public.parted"), RowFilter: "v <> 'x'"},
			"row filter uses v"},
		{"no_identity", "CREATE PUBLICATION naive FOR TABLE public.no_identity",
			PublishedTable{Name: pgtest.Table("public.no_identity")},
			"no replica identity"},
	}
	updates := map[string]string{
		"dropped_col":    "UPDATE public.dropped_col SET email = 'x'",
		"where_nonident": "UPDATE public.where_nonident SET name = 'x'",
		"by_index":       "UPDATE public.by_index SET name = 'x'",
		"full_ident":     "UPDATE public.full_ident SET b = 'x'",
		"parted":         "UPDATE public.parted SET v = 'x'",
		"no_identity":    "UPDATE public.no_identity SET payload = 'x'",
	}
	pgtest.MustExec(t, conn, `
INSERT INTO public.dropped_col VALUES (1, 'a', 's');
INSERT INTO public.where_nonident VALUES (1, 'a', NULL);
INSERT INTO public.by_index VALUES (1, 'a', 'n', 's');
INSERT INTO public.full_ident VALUES (1, 'a', 'n');
INSERT INTO public.parted VALUES (1, 5, 'v', 's'), (2, 500, 'v', 's');
INSERT INTO public.no_identity VALUES (now(), 'p');
`)
	for _, n := range naive {
		update := updates[n.table]
		if _, err := conn.Exec(ctx, update); err != nil {
			t.Fatalf("%s before any publication: %v", update, err)
		}
		pgtest.MustExec(t, conn, n.ddl)
		_, err := conn.Exec(ctx, update)
		if err == nil || !strings.Contains(err.Error(), "cannot update table") {
			t.Errorf("%s: with a naive publication (%s), UPDATE gave %v; want it to fail", n.table, n.ddl, err)
		}
		pgtest.MustExec(t, conn, "DROP PUBLICATION naive")

		spec := &PublicationSpec{Name: "pgveil", Tables: []PublishedTable{n.spec}}
		changed, err := EnsurePublication(ctx, conn, spec, cat)
		var unsafe *UnsafeError
		if changed || !errors.As(err, &unsafe) || !strings.Contains(err.Error(), n.problem) {
			t.Errorf("%s: EnsurePublication(naive) = %v, %v; want an UnsafeError holding %q", n.table, changed, err, n.problem)
		}
		var pubs int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_publication").Scan(&pubs); err != nil || pubs != 0 {
			t.Errorf("%s: %d publications after a refusal (%v)", n.table, pubs, err)
		}
		if _, err := conn.Exec(ctx, update); err != nil {
			t.Errorf("%s after the refusal: %v", update, err)
		}
	}

	// A partition without replica identity is caught through its root.
	pgtest.MustExec(t, conn, "ALTER TABLE public.parted_high REPLICA IDENTITY NOTHING")
	spec := &PublicationSpec{Name: "pgveil", Tables: []PublishedTable{{Name: pgtest.Table("public.parted"), Columns: []string{"id", "k", "v"}}}}
	_, err := EnsurePublication(ctx, conn, spec, cat)
	if err == nil || !strings.Contains(err.Error(), "partition public.parted_high: no replica identity") {
		t.Errorf("EnsurePublication with an identity-less partition: %v", err)
	}
}

func TestEnsurePublicationAlters(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, shapesSchema+`
CREATE TABLE public.stray (id int PRIMARY KEY);
CREATE PUBLICATION pgveil FOR TABLE public.dropped_col, public.stray WITH (publish = 'insert');
`)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)
	srv := readServer(t, conn)

	ensure := func(rules string) (bool, *PublicationSpec) {
		t.Helper()
		spec, err := PlanPublication(ctx, conn, srv, cat, rulestest.Compile(t, cat, rules), "pgveil", true)
		if err != nil {
			t.Fatal(err)
		}
		changed, err := EnsurePublication(ctx, conn, spec, cat)
		if err != nil {
			t.Fatal(err)
		}
		return changed, spec
	}
	v1 := `
  dropped_col: {columns: {id: hash, email: keep, secret: drop}}
  composite: {columns: {order_id: keep, line: keep, qty: keep, memo: drop}}
`
	if changed, _ := ensure(v1); !changed {
		t.Error("existing publication with other tables and options: changed = false")
	}
	want := map[string]string{"dropped_col": "id,email | ", "composite": "order_id,line,qty | "}
	if got := publishedTables(t, conn, "pgveil"); !reflect.DeepEqual(got, want) {
		t.Errorf("v1: %v, want %v", got, want)
	}
	var upd bool
	if err := conn.QueryRow(ctx, "SELECT pubupdate AND pubdelete AND pubtruncate AND pubviaroot FROM pg_publication WHERE pubname = 'pgveil'").Scan(&upd); err != nil || !upd {
		t.Errorf("options not set: %v %v", upd, err)
	}
	if changed, _ := ensure(v1); changed {
		t.Error("same rules: changed = true")
	}

	// Rules change: a column dropped, a where added, a table added.
	v2 := `
  dropped_col: {columns: {id: hash, email: drop, secret: drop}}
  composite: {where: "order_id > 5", columns: {order_id: keep, line: keep, qty: keep, memo: drop}}
  parted: {columns: {id: keep, k: keep, v: keep, secret: drop}}
`
	if changed, _ := ensure(v2); !changed {
		t.Error("v2: changed = false")
	}
	want = map[string]string{"dropped_col": "id | ", "composite": "order_id,line,qty | (order_id > 5)", "parted": "id,k,v | "}
	if got := publishedTables(t, conn, "pgveil"); !reflect.DeepEqual(got, want) {
		t.Errorf("v2: %v, want %v", got, want)
	}
	if changed, _ := ensure(v2); changed {
		t.Error("v2 again: changed = true (the row filter must compare as PostgreSQL deparses it)")
	}
	// Only the filter changes.
	v3 := strings.Replace(v2, "order_id > 5", "order_id > 6", 1)
	if changed, _ := ensure(v3); !changed {
		t.Error("v3: changed = false")
	}
	if got := publishedTables(t, conn, "pgveil")["composite"]; got != "order_id,line,qty | (order_id > 6)" {
		t.Errorf("v3 composite: %s", got)
	}
	for _, table := range []string{"dropped_col", "composite", "parted"} {
		if err := runWrites(ctx, conn, table); err != nil {
			t.Errorf("production write failed: %v", err)
		}
	}

	// An empty spec empties the publication.
	changed, err := EnsurePublication(ctx, conn, &PublicationSpec{Name: "pgveil"}, cat)
	if err != nil || !changed {
		t.Errorf("empty spec: %v, %v", changed, err)
	}
	if got := publishedTables(t, conn, "pgveil"); len(got) != 0 {
		t.Errorf("empty spec: %v", got)
	}

	// FOR ALL TABLES is refused.
	pgtest.MustExec(t, conn, "CREATE PUBLICATION everything FOR ALL TABLES")
	_, err = EnsurePublication(ctx, conn, &PublicationSpec{Name: "everything", Tables: []PublishedTable{{Name: pgtest.Table("public.stray")}}}, cat)
	if err == nil || !strings.Contains(err.Error(), "FOR ALL TABLES") {
		t.Errorf("FOR ALL TABLES: %v", err)
	}

	// A table re-created since the catalog was read.
	pgtest.MustExec(t, conn, "DROP TABLE public.stray; CREATE TABLE public.stray (id int PRIMARY KEY)")
	_, err = EnsurePublication(ctx, conn, &PublicationSpec{Name: "pgveil", Tables: []PublishedTable{{Name: pgtest.Table("public.stray")}}}, cat)
	if err == nil || !strings.Contains(err.Error(), "public.stray: the table was re-created") {
		t.Errorf("stale catalog: %v", err)
	}
}

// EnsurePublication gives up quickly, changing nothing, when a lock it
// needs is held: production's lock queue is never blocked for long.
func TestEnsurePublicationLockTimeout(t *testing.T) {
	t.Parallel()
	conn, dsn := shared.NewDBWith(t, shapesSchema)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)
	other := pgtest.Connect(t, dsn)
	pgtest.MustExec(t, other, "BEGIN; LOCK TABLE public.dropped_col IN ACCESS EXCLUSIVE MODE")
	spec := &PublicationSpec{Name: "pgveil", Tables: []PublishedTable{{Name: pgtest.Table("public.dropped_col"), Columns: []string{"id", "email"}}}}
	_, err := EnsurePublication(ctx, conn, spec, cat)
	if schema.SQLState(err) != schema.CodeLockNotAvailable {
		t.Errorf("EnsurePublication with the table locked: %v, want a lock timeout", err)
	}
	pgtest.MustExec(t, other, "ROLLBACK")
	if changed, err := EnsurePublication(ctx, conn, spec, cat); err != nil || !changed {
		t.Errorf("after the lock is released: %v, %v", changed, err)
	}
}

func TestPlanPublicationWhere(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, `
CREATE TABLE public.t1 (id int PRIMARY KEY, name text, n int);
CREATE FUNCTION public.is_positive(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 0';
`)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)
	srv := readServer(t, conn)
	plan := func(where string) (*PublishedTable, error) {
		t.Helper()
		p := rulestest.Compile(t, cat, `
  t1: {where: "`+where+`", columns: {id: keep, name: drop, n: keep}}
`)
		spec, err := PlanPublication(ctx, conn, srv, cat, p, "pgveil", true)
		if err != nil {
			return nil, err
		}
		return &spec.Tables[0], nil
	}

	// Not valid SQL for the table: an error naming the table and holding
	// PostgreSQL's message.
	for where, msg := range map[string]string{
		"nope > 1":      `column \"nope\" does not exist`,
		"id >":          "syntax error",
		"n + 1":         "argument of WHERE must be type boolean",
		"t1 IS NULL":    "references a whole row",
		"id > 0) OR (1": "", // not valid either way
		// A verdict that could change without the row changing: a row
		// that ages out, or whose other table changes, would stay.
		"id < extract(epoch from now())": "must give the same answer for a row whenever it is evaluated",
		"id IN (SELECT 1)":               "cannot use subquery",
		"current_user = 'x'":             "must give the same answer for a row whenever it is evaluated",
	} {
		_, err := plan(where)
		if err == nil || !strings.Contains(err.Error(), "public.t1") || !strings.Contains(err.Error(), strings.ReplaceAll(msg, `\"`, `"`)) {
			t.Errorf("where %q: %v; want an error naming public.t1 and holding %q", where, err, msg)
		}
	}

	// On identity columns and allowed in a row filter: pushed down.
	pt, err := plan("id > 5")
	if err != nil || pt.RowFilter != "id > 5" || pt.InProcessFilter != "" || !slices.Equal(pt.Columns, []string{"id", "n"}) {
		t.Errorf("id > 5: %+v, %v", pt, err)
	}
	// A user-defined function: in process, although only identity
	// columns are used.
	for where, why := range map[string]string{
		"public.is_positive(id)": "User-defined or built-in mutable functions are not allowed",
	} {
		pt, err := plan(where)
		if err != nil || pt.RowFilter != "" || pt.InProcessFilter != where || !slices.Equal(pt.FilterColumns, []string{"id"}) ||
			!slices.Equal(pt.Columns, []string{"id", "n"}) || !noteWith(pt, why) || !noteWith(pt, "filtered in pgveil") {
			t.Errorf("%s: %+v, %v; want in process because %q", where, pt, err, why)
		}
	}
	// A dropped column: published for the filter, then dropped by pgveil.
	pt, err = plan("name IS NOT NULL AND n > 0")
	if err != nil || pt.InProcessFilter == "" || !slices.Equal(pt.FilterColumns, []string{"name", "n"}) ||
		!slices.Equal(pt.Columns, []string{"id", "name", "n"}) || !slices.Equal(pt.Extra, []string{"name"}) ||
		!noteWith(pt, "column(s) name published but not replicated") {
		t.Errorf("dropped column: %+v, %v", pt, err)
	}

	// Before PostgreSQL 15: no column lists, no row filters.
	old := *srv
	old.Version = 140010
	spec, err := PlanPublication(ctx, conn, &old, cat, rulestest.Compile(t, cat, `
  t1: {where: "id > 5", columns: {id: keep, name: drop, n: keep}}
`), "pgveil", true)
	if err != nil {
		t.Fatal(err)
	}
	pt = &spec.Tables[0]
	if pt.Columns != nil || pt.RowFilter != "" || pt.InProcessFilter != "id > 5" || !slices.Equal(pt.Extra, []string{"name"}) ||
		!noteWith(pt, "PostgreSQL 14.10 has no publication column lists") || !noteWith(pt, "no publication row filters") {
		t.Errorf("PostgreSQL 14: %+v", pt)
	}

	// Nothing of the planning stayed behind.
	var n int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_publication) + (SELECT count(*) FROM pg_class WHERE relname LIKE 'pgveil%')").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d objects left behind (%v)", n, err)
	}
}

// A first column that is an identity GENERATED ALWAYS (the usual primary
// key of a new schema) cannot be updated to itself: the check that
// production's writes still plan must not trip on it.
func TestEnsurePublicationIdentityAlways(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, `
CREATE TABLE ident_always (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, secret text);
INSERT INTO ident_always (name, secret) VALUES ('a', 'b');`)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)
	srv := readServer(t, conn)
	plan := rulestest.Compile(t, cat, `
  ident_always: {columns: {id: keep, name: {fake: name}, secret: drop}}
`)
	spec, err := PlanPublication(ctx, conn, srv, cat, plan, "pgveil", true)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := EnsurePublication(ctx, conn, spec, cat); err != nil || !changed {
		t.Fatalf("EnsurePublication = %v, %v", changed, err)
	}
	for _, q := range []string{"UPDATE ident_always SET name = 'c'", "DELETE FROM ident_always"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Errorf("%s after publishing: %v", q, err)
		}
	}
}

// A role that may only read the tables cannot change the publication:
// EnsurePublication changes nothing and hands back the statements for the
// owner; once the owner has run them, the role finds the publication in
// line and needs no more. When the rules change, it asks again.
func TestPublicationByOwner(t *testing.T) {
	t.Parallel()
	const role = "pgveil_select_only"
	admin, dsn := shared.NewDBWith(t, `
CREATE TABLE public.people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text, secret text);
CREATE TABLE public.visits (id bigint PRIMARY KEY, person_id bigint, at timestamptz);
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '`+role+`') THEN CREATE ROLE `+role+` LOGIN; END IF; END $$;
GRANT SELECT ON public.people, public.visits TO `+role+`;`)
	ctx := pgtest.Context(t)
	conn := pgtest.ConnectAs(t, dsn, role)

	columnLists := true
	ensure := func(rules string) (bool, error) {
		t.Helper()
		cat := readAll(t, conn)
		plan := rulestest.Compile(t, cat, rules)
		if ps := Check(readServer(t, conn), cat, plan, false); len(problemLines(ps)) > 0 && strings.Contains(problemLines(ps), "own") {
			t.Errorf("Check asks for ownership: %s", problemLines(ps))
		}
		spec, err := PlanPublication(ctx, conn, readServer(t, conn), cat, plan, "pgveil_owned", columnLists)
		if err != nil {
			t.Fatal(err)
		}
		return EnsurePublication(ctx, conn, spec, cat)
	}
	ownerRuns := func(err error, wantTables ...string) {
		t.Helper()
		var oe *OwnerNeededError
		if !errors.As(err, &oe) {
			t.Fatalf("err = %v, want an OwnerNeededError", err)
		}
		if !slices.Equal(oe.Tables, wantTables) || oe.Role != role || len(oe.Statements) == 0 {
			t.Fatalf("OwnerNeededError = %+v", oe)
		}
		for _, part := range append([]string{"GRANT", "pgveil_owned"}, oe.Statements...) {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("the message lacks %q:\n%s", part, err)
			}
		}
		for _, s := range oe.Statements {
			pgtest.MustExec(t, admin, s)
		}
	}
	rules := `
  people: {columns: {id: hash, email: {fake: email}, secret: drop}}
`
	_, err := ensure(rules)
	ownerRuns(err, "public.people")
	if got := publishedTables(t, admin, "pgveil_owned"); got["people"] != "id,email | " || len(got) != 1 {
		t.Errorf("after the owner's statements: %v", got)
	}
	if changed, err := ensure(rules); err != nil || changed {
		t.Fatalf("in line: EnsurePublication = %v, %v; want false, nil", changed, err)
	}
	// New rules: a table more. The role asks again, naming both tables
	// (SET TABLE lists every one).
	rules += `  visits: {columns: {id: keep, person_id: hash, at: keep}}
`
	_, err = ensure(rules)
	ownerRuns(err, "public.people", "public.visits")
	if changed, err := ensure(rules); err != nil || changed {
		t.Fatalf("in line again: EnsurePublication = %v, %v", changed, err)
	}
	// Production's writes still work with the owner's publication.
	pgtest.MustExec(t, admin, `INSERT INTO people (email, secret) VALUES ('a@b.c', 's'); UPDATE people SET email = 'd@e.f'; DELETE FROM people`)

	// The rules switch to migration_safe (as an upgrade's new default
	// does): the column lists are stricter than asked and send all pgveil
	// reads, so it may run with them, and says what to run to lift them.
	columnLists = false
	_, err = ensure(rules)
	var oe *OwnerNeededError
	if !errors.As(err, &oe) || !oe.Serves || !strings.Contains(oe.Warning(), "holds more than the rules ask (column lists") || !strings.Contains(oe.Warning(), "public.people, public.visits") {
		t.Fatalf("stricter publication: err = %v (%+v)", err, oe)
	}
	// A column list that lacks a column the rules replicate does not serve.
	rulesMore := strings.Replace(rules, "secret: drop", "secret: {redact: x}", 1)
	if _, err = ensure(rulesMore); !errors.As(err, &oe) || oe.Serves {
		t.Errorf("a column list lacking a replicated column: err = %v (serves: %v)", err, oe != nil && oe.Serves)
	}
	// Nor does a row filter: it may keep out rows the rules replicate.
	pgtest.MustExec(t, admin, `ALTER PUBLICATION pgveil_owned SET TABLE ONLY public.people (id, email), ONLY public.visits WHERE (id > 5)`)
	if _, err = ensure(rules); !errors.As(err, &oe) || oe.Serves {
		t.Errorf("a row filter: err = %v (serves: %v)", err, oe != nil && oe.Serves)
	}
	// Once the owner runs the statements, the tables are published whole.
	ownerRuns(err, "public.people", "public.visits")
	if got := publishedTables(t, admin, "pgveil_owned"); got["people"] != "id,email,secret | " || got["visits"] != "id,person_id,at | " {
		t.Errorf("migration_safe after the owner's statements: %v", got)
	}
	if changed, err := ensure(rules); err != nil || changed {
		t.Fatalf("migration_safe in line: EnsurePublication = %v, %v", changed, err)
	}
	// A publication that holds a table the rules do not name (the owner
	// ran a waiting rule change's statements before pgveil applied it)
	// serves the rules too: pgveil ignores that table's changes.
	peopleOnly := `
  people: {columns: {id: hash, email: {fake: email}, secret: drop}}
`
	if _, err = ensure(peopleOnly); !errors.As(err, &oe) || !oe.Serves {
		t.Errorf("a publication with a table more: err = %v (serves: %v)", err, oe != nil && oe.Serves)
	}
	// One that lacks a table of the rules does not.
	pgtest.MustExec(t, admin, `ALTER PUBLICATION pgveil_owned SET TABLE ONLY public.people`)
	if _, err = ensure(rules); !errors.As(err, &oe) || oe.Serves {
		t.Errorf("a publication lacking a table: err = %v (serves: %v)", err, oe != nil && oe.Serves)
	}
}
