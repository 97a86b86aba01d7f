package target

import (
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"
)

// A re-copy switches in tables whatever production named them: a name
// holding a dollar-quote tag of the switch's DO blocks ($views$, $pgveil$),
// quotes, a backslash, or a keyword. A name that closed a DO block's body
// early made the switch a syntax error, and the re-copy never finished.
func TestSwitchOddNames(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	conn := pgtest.Connect(t, shared.NewDB(t))
	tables := []*transform.TablePlan{
		table("app", "a$views$", pk("id", "integer")),
		table("app", "b$pgveil$", pk("id", "integer")),
		table("app", `c'"\$views$ x`, pk("id", "integer")),
		table("values", "time", pk("id", "integer")),
	}
	if err := Setup(ctx, conn, plan(tables...), nil, nil); err != nil {
		t.Fatal(err)
	}
	recopy(t, ctx, conn, tables, func(string) string { return "7\n" })
	for _, tb := range tables {
		equal(t, tb.Table.QualifiedName(), query(t, conn, `SELECT id::text FROM `+tableIdent(tb)), []string{"7"})
	}
}

// The statement that gives readers the per-table counters runs whatever
// the readers are named: a name holding its dollar-quote tag ended the DO
// block's body early.
func TestReaderStatsSQLOddNames(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	conn := pgtest.Connect(t, shared.NewDB(t))
	readers := []string{"r19$readerstats$", `r19 '%"`}
	for _, r := range readers {
		if _, err := conn.Exec(ctx, `DO $$ BEGIN CREATE ROLE `+schema.QuoteIdent(r)+`; EXCEPTION WHEN duplicate_object THEN NULL; END $$`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, ReaderStatsSQL(readers)); err != nil {
		t.Fatalf("%v\n%s", err, ReaderStatsSQL(readers))
	}
}
