package replicate

import (
	"context"
	"testing"
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
