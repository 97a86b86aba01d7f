package replicate

import (
	"context"
	"testing"

	"pgveil/replicate/source"
)

// Under publication_mode column_lists, with the migration triggers that
// setup-sql installs, production drops and retypes listed columns while
// pgveil streams under traffic; pgveil follows, the replica ends equal to
// the masked source, and the unpublished column never reaches it.
func TestColumnListsMigrationsWithTriggers(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, score int, note text, secret text);
INSERT INTO people SELECT g, 'p' || g || '@example.com', g, 'n' || g, 'CANARY-' || g FROM generate_series(1, 2000) g;`,
		`  people:
    columns: {id: keep, email: {hash: {}}, score: keep, note: keep, secret: drop}
`)
	e.mode = "column_lists"
	e.exec(source.MigrationTriggersSQL("p1"))
	e.start()
	e.sync()
	e.verify()

	stopTraffic := e.loop(`UPDATE people SET score = score + 1, email = 'u' || $1::int || '@example.com' WHERE id = $2`, func(i int) []any { return []any{i, 1 + i%2000} })
	// The migrations PostgreSQL 15 refuses on listed columns without the
	// triggers: each succeeds at once.
	e.exec(`ALTER TABLE people DROP COLUMN note`)
	e.exec(`INSERT INTO people (id, email, score, secret) VALUES (5001, 'new@example.com', 1, 'CANARY-new')`)
	e.exec(`ALTER TABLE people ALTER COLUMN score TYPE bigint`)
	e.exec(`UPDATE people SET score = score * 10 WHERE id <= 100`)
	if err := stopTraffic(); err != nil {
		t.Fatal(err)
	}
	// The rules follow production (as its team would after the migration).
	e.rulesYML = "  people:\n    columns: {id: keep, email: {hash: {}}, score: keep, secret: drop}\n  pgveil_marker:\n    columns: {id: keep, n: keep}\n"
	if err := e.p.Reload(context.Background(), e.config()); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.verify()
	var canary bool
	if err := e.dst.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'people' AND column_name = 'secret')`).Scan(&canary); err != nil || canary {
		t.Errorf("the dropped column is in the replica (err %v)", err)
	}
}

// Under column_lists nothing the rules do not publish may leave
// production: a publication widened behind pgveil's back (by hand, or by
// anything else) is narrowed again within seconds.
func TestColumnListsPublicationWidenedIsNarrowed(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, secret text);
CREATE TABLE other (id int PRIMARY KEY, v text);
INSERT INTO people SELECT g, 'p' || g || '@example.com', 'CANARY-' || g FROM generate_series(1, 100) g;`,
		`  people:
    columns: {id: keep, email: {hash: {}}, secret: drop}
`)
	e.mode = "column_lists"
	e.start()
	e.sync()
	// people published whole: its secret would leave production.
	published := func() string {
		var s string
		if err := e.src.QueryRow(context.Background(), `SELECT string_agg(tablename || ':' || coalesce(array_to_string(attnames, ','), '*'), ' ' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'p1'`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := published()
	e.exec(`ALTER PUBLICATION p1 SET TABLE people, pgveil_marker (id, n)`)
	e.eventually("the publication narrowed again", func() (bool, string) {
		got := published()
		return got == want, got
	})
	e.exec(`INSERT INTO people VALUES (101, 'x@example.com', 'CANARY-after')`)
	e.sync()
	e.verify()
}
