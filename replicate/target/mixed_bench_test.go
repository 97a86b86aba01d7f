package target

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"github.com/jackc/pglogrepl"

	"pgveil/transform"
)

// mixedTables are three tables shaped like the example's customers,
// orders and events, which the catch-up bench changes.
func mixedTables() (customers, orders, events *transform.TablePlan) {
	customers = table("app", "customers", pk("id", "bigint"), c("account_id", "bigint"), c("email", "text"), c("full_name", "text"),
		c("phone", "text"), c("street", "text"), c("city", "text"), c("zip", "text"), c("country", "character(2)"),
		c("birth_date", "date"), c("profile", "jsonb"), c("created_at", "timestamp with time zone"), c("deleted_at", "timestamp with time zone"))
	orders = table("app", "orders", pk("id", "bigint"), c("account_id", "bigint"), c("customer_id", "bigint"), c("status", "text"),
		c("total", "numeric(12,2)"), c("currency", "character(3)"), c("shipping_address", "text"), c("created_at", "timestamp with time zone"))
	events = table("app", "events", pk("id", "bigint"), c("account_id", "bigint"), c("user_id", "bigint"), c("kind", "text"),
		c("ip", "inet"), c("properties", "jsonb"), c("occurred_at", "timestamp with time zone"))
	return customers, orders, events
}

// backendCPU returns the CPU time, in clock ticks, the server process
// with pid has used (Linux only).
func backendCPU(tb testing.TB, pid uint32) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		tb.Skip("no /proc: ", err)
	}
	// The fields after the command (which may hold spaces) start after
	// the last ')': state is field 3, utime 14 and stime 15.
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+2:])
	ut, _ := strconv.ParseInt(string(f[11]), 10, 64)
	st, _ := strconv.ParseInt(string(f[12]), 10, 64)
	return ut + st
}

// BenchmarkApplyMixed applies the catch-up bench's mix (per source
// transaction: 5 inserts into events, 3 full-row updates of customers,
// 2 of orders, 2 deletes of events), 100 source transactions per target
// transaction, and reports the target backend's CPU microseconds per
// change (server-µs/change) beside the client's time; "fkeys" adds the
// example's deferred foreign keys from events and orders (checked at
// commit, one query per inserted event).
func BenchmarkApplyMixed(b *testing.B) {
	b.Run("plain", func(b *testing.B) { applyMixed(b, false) })
	b.Run("fkeys", func(b *testing.B) { applyMixed(b, true) })
}

func applyMixed(b *testing.B, fkeys bool) {
	customers, orders, events := mixedTables()
	ctx, _, conn := setupDB(b, plan(customers, orders, events), nil)
	const seed = 20_000
	sqls := []string{
		`INSERT INTO app.customers SELECT g, g % 50, 'c' || g || '@example.com', 'Jane Doe ' || g, '+33 6 12 34 56 78', g || ' rue de la Paix', 'Paris', '75011', 'FR', '1980-01-01', jsonb_build_object('lang', 'fr', 'n', g), now(), NULL FROM generate_series(1, 20000) g`,
		`INSERT INTO app.orders SELECT g, g % 50, g, 'pending', 12.34, 'EUR', g || ' rue de la Paix, Paris', now() FROM generate_series(1, 20000) g`,
		`INSERT INTO app.events SELECT g, g % 50, g, 'view', '10.0.0.1', jsonb_build_object('email', 'b' || g || '@bench.example', 'n', g), now() FROM generate_series(1, 20000) g`,
	}
	if fkeys {
		sqls = append(sqls,
			`CREATE TABLE app.accounts (id bigint PRIMARY KEY)`,
			`INSERT INTO app.accounts SELECT generate_series(0, 49)`,
			`ALTER TABLE app.events ADD FOREIGN KEY (account_id) REFERENCES app.accounts DEFERRABLE INITIALLY DEFERRED`,
			`ALTER TABLE app.orders ADD FOREIGN KEY (customer_id) REFERENCES app.customers DEFERRABLE INITIALLY DEFERRED`,
			`ALTER TABLE app.customers ADD FOREIGN KEY (account_id) REFERENCES app.accounts DEFERRABLE INITIALLY DEFERRED`)
	}
	for _, sql := range append(sqls, `VACUUM ANALYZE`) {
		if _, err := conn.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	a := NewApplier(conn, "bench")
	const perSource, sourcePerTx = 12, 100
	nextEvent, oldEvent := int64(seed), int64(0)
	n := 0
	var lsn pglogrepl.LSN
	pid := conn.PgConn().PID()
	cpu0 := backendCPU(b, pid)
	for b.Loop() {
		if err := a.Begin(ctx); err != nil {
			b.Fatal(err)
		}
		for s := range sourcePerTx {
			x := n*sourcePerTx + s
			for range 5 {
				nextEvent++
				id := strconv.FormatInt(nextEvent, 10)
				row := vals(id, "1", id, "bench", "10.0.0.2", `{"n": `+id+`, "email": "b`+id+`@bench.example"}`, "2026-12-03 10:11:12.123456+00")
				if err := a.Apply(ctx, &Change{Op: OpInsert, Table: events, Row: row}); err != nil {
					b.Fatal(err)
				}
			}
			for j := range 3 {
				id := strconv.Itoa(1 + (x*3+j)*7919%seed)
				row := vals(id, "7", "c"+id+"@example.com", "Jane Doe "+id, "+49 30 "+id, id+" rue de la Paix", "Bench "+strconv.Itoa(x), "75011", "FR",
					"1980-01-01", `{"n": `+id+`, "lang": "fr"}`, "2026-12-03 10:11:12.123456+00", null)
				if err := a.Apply(ctx, &Change{Op: OpUpdate, Table: customers, Row: row}); err != nil {
					b.Fatal(err)
				}
			}
			for j := range 2 {
				id := strconv.Itoa(1 + (x*2+j)*104729%seed)
				row := vals(id, "7", id, "shipped", "12.34", "EUR", id+" rue de la Paix, Paris", "2026-12-03 10:11:12.123456+00")
				if err := a.Apply(ctx, &Change{Op: OpUpdate, Table: orders, Row: row}); err != nil {
					b.Fatal(err)
				}
			}
			for range 2 {
				oldEvent++
				if err := a.Apply(ctx, &Change{Op: OpDelete, Table: events, Key: vals(strconv.FormatInt(oldEvent, 10))}); err != nil {
					b.Fatal(err)
				}
			}
		}
		lsn++
		if err := a.Commit(ctx, Position{LSN: lsn}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	changes := float64(n * sourcePerTx * perSource)
	ticks := float64(backendCPU(b, pid) - cpu0)
	b.ReportMetric(ticks*1e6/100/changes, "server-µs/change")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/changes, "µs/change")
	b.ReportMetric(0, "ns/op")

}
