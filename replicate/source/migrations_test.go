package source

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
)

// With the migration triggers installed, production's migrations drop and
// retype columns a publication's column list or row filter names, which
// PostgreSQL 15 refuses without them; the publication comes out as it
// was, less the dropped columns, and unpublished columns stay unpublished.
func TestMigrationTriggers(t *testing.T) {
	conn, _ := shared.NewDBWith(t, `
CREATE TABLE "Shop Orders" (id int PRIMARY KEY, total int, secret text, note text);
CREATE TABLE people (id int PRIMARY KEY, email text, score int, secret text);
CREATE TABLE untouched (id int PRIMARY KEY, a int, b text);
CREATE PUBLICATION pv FOR TABLE ONLY "Shop Orders" (id, total, note), ONLY people (id, email, score) WHERE (id > 0),
  ONLY untouched (id, a);`)
	ctx := context.Background()
	code := func(sql string) string {
		_, err := conn.Exec(ctx, sql)
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return pe.Code
		}
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return ""
	}
	// Without the triggers PostgreSQL refuses both (the failing test's
	// control): the triggers are what makes them work below.
	if c := code(`ALTER TABLE people DROP COLUMN email`); c != "2BP01" {
		t.Fatalf("DROP COLUMN without the triggers: SQLSTATE %q, want 2BP01", c)
	}
	if c := code(`ALTER TABLE people ALTER COLUMN id TYPE bigint`); c != "0A000" {
		t.Fatalf("ALTER COLUMN ... TYPE of a row filter's column without the triggers: SQLSTATE %q, want 0A000", c)
	}

	pgtest.MustExec(t, conn, MigrationTriggersSQL("pv"))
	pgtest.MustExec(t, conn, MigrationTriggersSQL("pv")) // again: it replaces, changes nothing

	for _, sql := range []string{
		`ALTER TABLE people DROP COLUMN email`,
		`alter table people alter column id type bigint, alter column score set data type bigint`,
		// A migration tool's file: several statements in one string, a
		// quoted name.
		`BEGIN; ALTER TABLE "Shop Orders" DROP COLUMN note; ALTER TABLE "Shop Orders" ALTER COLUMN total TYPE numeric(12,2); COMMIT;`,
		// Statements that touch no listed column are left alone.
		`ALTER TABLE untouched ADD COLUMN c int`,
		`ALTER TABLE untouched DROP COLUMN b`,
	} {
		if c := code(sql); c != "" {
			t.Fatalf("%s: SQLSTATE %s with the triggers installed", sql, c)
		}
	}
	got := publishedTables(t, conn, "pv")
	want := map[string]string{
		"Shop Orders": "id,total | ",
		"people":      "id,score | (id > 0)",
		"untouched":   "id,a | ",
	}
	for table, w := range want {
		if got[table] != w {
			t.Errorf("%s: published %q, want %q", table, got[table], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("published tables: %v", got)
	}
	// A failed migration leaves the publication as it was.
	if c := code(`ALTER TABLE people DROP COLUMN score, DROP COLUMN nosuch`); c != "42703" {
		t.Errorf("a failing migration: SQLSTATE %q, want 42703", c)
	}
	if p := publishedTables(t, conn, "pv")["people"]; p != "id,score | (id > 0)" {
		t.Errorf("people after a failed migration: %q", p)
	}
	var types []string
	rows, err := conn.Query(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '"Shop Orders"'::regclass AND attname = 'total'
UNION ALL SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'people'::regclass AND attname = 'id'`)
	if err != nil {
		t.Fatal(err)
	}
	if types, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(types) != 2 || types[0] != "numeric(12,2)" || types[1] != "bigint" {
		t.Errorf("the migrations' types: %v", types)
	}
}
