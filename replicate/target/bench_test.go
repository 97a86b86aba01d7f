package target

import (
	"fmt"
	"pgveil/schema"
	"strconv"
	"testing"

	"github.com/jackc/pglogrepl"
)

// BenchmarkApply applies 10,000 inserts into a 10-column table, in
// transactions of 100 changes, and reports the rate in changes/s.
func BenchmarkApply(b *testing.B) {
	tb := table("app", "bench", pk("id", "bigint"), c("email", "text"), c("name", "text"), c("phone", "text"),
		c("born", "date"), c("zip", "text"), c("total", "numeric(12,2)"), c("created", "timestamptz"),
		c("active", "boolean"), c("notes", "text"))
	ctx, _, conn := setupDB(b, plan(tb), nil)
	a := NewApplier(conn, "bench")
	const changes, perTx = 10_000, 100
	rows := make([][]schema.Value, changes)
	for i := range rows {
		rows[i] = vals("", fmt.Sprintf("user%d@example.com", i), "Jane Doe", "+33 6 12 34 56 78", "1980-01-01",
			"75011", "1234.56", "2024-05-06 07:08:09.123456+00", "t", "some notes about this customer")
	}
	var lsn pglogrepl.LSN
	n := 0
	for b.Loop() {
		for i := 0; i < changes; i += perTx {
			if err := a.Begin(ctx); err != nil {
				b.Fatal(err)
			}
			for j := i; j < i+perTx; j++ {
				rows[j][0] = schema.Text(strconv.Itoa(n*changes + j))
				if err := a.Apply(ctx, &Change{Op: OpInsert, Table: tb, Row: rows[j]}); err != nil {
					b.Fatal(err)
				}
			}
			lsn++
			if err := a.Commit(ctx, Position{LSN: lsn}); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	b.ReportMetric(float64(changes*n)/b.Elapsed().Seconds(), "changes/s")
}
