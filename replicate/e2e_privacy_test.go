package replicate

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Issue 17, finding 2: rows of an inheritance child no rule names never
// reach the replica through its parent: not by the initial copy, not by a
// re-copy, and verify does not count them as missing.
func TestInheritanceChildNeverReplicated(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL);
CREATE TABLE people_archive (archived_at timestamptz) INHERITS (people);
INSERT INTO people SELECT g, 'p' || g || '@example.com' FROM generate_series(1, 50) g;
INSERT INTO people_archive (id, email, archived_at) SELECT g, 'ARCHIVED-' || g || '@example.com', now() FROM generate_series(1001, 1020) g;`,
		`  people:
    columns: {id: keep, email: keep}
`)
	e.start()
	e.sync()
	leaked := func(what string) {
		t.Helper()
		var n int
		if err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM public.people WHERE email LIKE 'ARCHIVED-%' OR id > 1000`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows of the unlisted child people_archive are in the replica", what, n)
		}
	}
	leaked("after the initial copy")
	if n := e.count("public.people"); n != 50 {
		t.Errorf("people: %d rows, want 50", n)
	}
	e.verify()
	e.exec(`UPDATE people_archive SET email = 'ARCHIVED-x@example.com' WHERE id = 1001; INSERT INTO people VALUES (51, 'p51@example.com')`)
	e.sync()
	leaked("after changes to both")
	// A rule change copies people again: still without the child's rows.
	e.rulesYML = "  people:\n    columns: {id: keep, email: {hash: {}}}\n  pgveil_marker:\n    columns: {id: keep, n: keep}\n"
	if err := e.p.Reload(context.Background(), e.config()); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if n := e.count("public.people"); n != 51 {
		t.Errorf("people after the re-copy: %d rows, want 51", n)
	}
	e.verify()
}

// Issue 17, finding 1: a where evaluated by pgveil that reads a TOASTed
// column an UPDATE did not change (pgoutput sends it as unchanged, with no
// data) must not let the row in. The value is read back from the source,
// or taken from the old row under REPLICA IDENTITY FULL; before, it was
// taken as NULL, which passes NOT coalesce(..., false).
func TestWhereOnUnchangedToastValue(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE members (id int PRIMARY KEY, name text NOT NULL, consent jsonb NOT NULL);
ALTER TABLE members ALTER COLUMN consent SET STORAGE EXTERNAL;
CREATE TABLE guests (name text NOT NULL, consent jsonb NOT NULL);
ALTER TABLE guests ALTER COLUMN consent SET STORAGE EXTERNAL;
ALTER TABLE guests REPLICA IDENTITY FULL;
INSERT INTO members SELECT g, 'm' || g, jsonb_build_object('opt_out', g % 2 = 0, 'pad', repeat('x', 5000)) FROM generate_series(1, 10) g;
INSERT INTO guests SELECT 'g' || g, jsonb_build_object('opt_out', g % 2 = 0, 'pad', repeat('x', 5000)) FROM generate_series(1, 10) g;`,
		`  members:
    where: "NOT coalesce((consent->>'opt_out')::boolean, false)"
    columns: {id: keep, name: keep, consent: drop}
  guests:
    where: "NOT coalesce((consent->>'opt_out')::boolean, false)"
    columns: {name: keep, consent: drop}
`)
	e.start()
	e.sync()
	if n := e.count("public.members"); n != 5 {
		t.Fatalf("members after the copy: %d rows, want the 5 that did not opt out", n)
	}
	// Unrelated updates, one row at a time and in one statement (a batch
	// of the applier), on rows in and out of the replica.
	e.exec(`UPDATE members SET name = name || '-x' WHERE id = 2`)
	e.exec(`UPDATE members SET name = name || '-y' WHERE id BETWEEN 3 AND 10`)
	e.exec(`UPDATE guests SET name = name || '-x'`)
	e.sync()
	in := e.replicaStrings(`SELECT name FROM public.members UNION ALL SELECT name FROM public.guests ORDER BY 1`)
	want := []string{"g1-x", "g3-x", "g5-x", "g7-x", "g9-x", "m1", "m3-y", "m5-y", "m7-y", "m9-y"}
	if len(in) != len(want) {
		t.Fatalf("replica holds %q, want %q (rows that opted out must stay out)", in, want)
	}
	for i := range want {
		if in[i] != want[i] {
			t.Fatalf("replica holds %q, want %q", in, want)
		}
	}
	// The same holds when consent changes afterwards, both ways.
	e.exec(`UPDATE members SET consent = consent || '{"opt_out": true}' WHERE id = 3;
UPDATE members SET consent = consent || '{"opt_out": false}' WHERE id = 4;
UPDATE members SET name = 'again' WHERE id IN (3, 4)`)
	e.sync()
	var has3, has4 bool
	if err := e.dst.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM public.members WHERE id = 3), EXISTS (SELECT FROM public.members WHERE id = 4)`).Scan(&has3, &has4); err != nil {
		t.Fatal(err)
	}
	if has3 || !has4 {
		t.Errorf("after consent changes: row 3 (opted out) present %v, row 4 (opted in) present %v", has3, has4)
	}
	e.verify()
}

// A column the where reads that production drops cannot be taken as
// NULL either (NOT coalesce(opt_out, false) would pass every row): pgveil
// restarts on the Relation message, and the where, planned anew, stops it
// with the rules' error, before any row it excluded gets in.
func TestWhereColumnDroppedInProduction(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE members (id int PRIMARY KEY, name text NOT NULL, opt_out boolean);
INSERT INTO members SELECT g, 'm' || g, g % 2 = 0 FROM generate_series(1, 10) g;`,
		`  members:
    where: "NOT coalesce(opt_out, false)"
    columns: {id: keep, name: keep, opt_out: drop}
`)
	e.start()
	e.sync()
	e.exec(`ALTER TABLE members DROP COLUMN opt_out; UPDATE members SET name = name || '-x'`)
	select {
	case err := <-e.done:
		e.cancel = nil
		if err == nil || !strings.Contains(err.Error(), "public.members: where") || !strings.Contains(err.Error(), "opt_out") {
			t.Fatalf("pgveil stopped with %v, want the where's error naming opt_out", err)
		}
	case <-time.After(patience):
		t.Fatalf("pgveil did not stop\n%s", e.logs.String())
	}
	var n, excluded int
	if err := e.dst.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE id % 2 = 0) FROM public.members`).Scan(&n, &excluded); err != nil {
		t.Fatal(err)
	}
	if excluded != 0 || n > 5 {
		t.Errorf("replica holds %d rows, %d of them excluded by the where", n, excluded)
	}
}
