package target

import (
	"slices"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/transform"
)

// When production's foreign keys cannot be read, the replica keeps the
// deferred, validated keys it has that still hold under the rules, and
// DropForeignKeys leaves them in place.
func TestPresentForeignKeysKeptWithoutProduction(t *testing.T) {
	ctx := pgtest.Context(t)
	conn := pgtest.Connect(t, shared.NewDB(t))
	if _, err := conn.Exec(ctx, `CREATE TABLE a (id integer PRIMARY KEY);
CREATE TABLE b (id integer PRIMARY KEY, a_id integer, c_id integer);
CREATE TABLE c (id integer PRIMARY KEY);
ALTER TABLE b ADD CONSTRAINT b_a_id_fkey FOREIGN KEY (a_id) REFERENCES a (id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE b ADD CONSTRAINT b_c_id_fkey FOREIGN KEY (c_id) REFERENCES c (id);`); err != nil {
		t.Fatal(err)
	}
	names := func(f *ForeignKeys) []string {
		var out []string
		for _, k := range f.Keys() {
			out = append(out, k.Name)
		}
		return out
	}
	plan := transform.NewPlan([]*transform.TablePlan{
		fkTable("a", "", "*id:integer:keep"),
		fkTable("b", "", "*id:integer:keep", "a_id:integer:keep", "c_id:integer:keep"),
		fkTable("c", "", "*id:integer:keep"),
	})
	f, err := PresentForeignKeys(ctx, conn, plan)
	if err != nil {
		t.Fatal(err)
	}
	// b_c_id_fkey is not deferred: pgveil never made it so, and drops it.
	if got := names(f); !slices.Equal(got, []string{"b_a_id_fkey"}) {
		t.Fatalf("kept %q, want the deferred key alone", got)
	}
	if err := DropForeignKeys(ctx, conn, f, plan, nil, false); err != nil {
		t.Fatal(err)
	}
	var left []string
	rows, _ := conn.Query(ctx, `SELECT conname::text FROM pg_constraint WHERE contype = 'f' ORDER BY 1`)
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		left = append(left, n)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if !slices.Equal(left, []string{"b_a_id_fkey"}) {
		t.Errorf("the replica has %q after DropForeignKeys, want b_a_id_fkey kept", left)
	}

	// Rules under which the key no longer holds (the two sides masked
	// differently): not kept.
	masked := transform.NewPlan([]*transform.TablePlan{
		fkTable("a", "", "*id:integer:hash"),
		fkTable("b", "", "*id:integer:keep", "a_id:integer:keep", "c_id:integer:keep"),
	})
	if f, err := PresentForeignKeys(ctx, conn, masked); err != nil || len(f.Keys()) != 0 {
		t.Errorf("under rules that break it: kept %q (%v), want none", names(f), err)
	}
}
