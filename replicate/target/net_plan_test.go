package target

import (
	"strings"
	"testing"
)

// The net statements are prepared, and after five runs the server may keep
// a generic plan, made without knowing how many rows the arrays hold. On a
// large table that plan must still reach each row through the key, not
// read the whole table: the replica's tables are large and a batch's rows
// are few in comparison.
func TestNetPlansUseTheKey(t *testing.T) {
	t.Parallel()
	tb := table("app", "big", pk("id", "bigint"), pk("part", "integer"), c("v", "text"), c("w", "jsonb"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	for _, sql := range []string{
		`INSERT INTO app.big SELECT g, g % 3, 'value ' || g, '{}' FROM generate_series(1, 200000) g`,
		`ANALYZE app.big`,
		`SET plan_cache_mode = force_generic_plan`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	a := NewApplier(conn, "slot")
	ti, err := a.info(tb)
	if err != nil {
		t.Fatal(err)
	}
	arr := func(vals ...string) string {
		return "'{" + strings.Join(vals, ",") + "}'"
	}
	for _, tc := range []struct {
		name, sql, args string
	}{
		{"delete", ti.netDeleteSQL(), arr("1", "2") + ", " + arr("1", "2")},
		{"update", ti.netUpdateSQL("\x00\x00\x01\x00"), arr("1", "2") + ", " + arr("1", "2") + ", " + arr("a", "b")},
		{"upsert", ti.netUpsertSQL(), arr("1") + ", " + arr("1") + ", " + arr("a") + ", " + arr(`"{}"`)},
	} {
		if _, err := conn.Exec(ctx, "PREPARE "+tc.name+" AS "+tc.sql); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		plan := strings.Join(query(t, conn, "EXPLAIN EXECUTE "+tc.name+"("+tc.args+")"), "\n")
		if strings.Contains(plan, "Seq Scan on big") {
			t.Errorf("%s reads the whole table:\n%s", tc.name, plan)
		}
		t.Logf("%s:\n%s", tc.name, plan)
	}
}
