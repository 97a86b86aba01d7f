package target

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgveil/internal/demo"
	"pgveil/internal/pgtest"
)

// BenchmarkCopyFormats measures what the target server spends to load the
// examples/saas tables from COPY text and from COPY binary, as the
// snapshot loads them (TRUNCATE, COPY ... FREEZE, in one transaction,
// no index): the server's CPU microseconds a row, read from its backend's
// /proc entry, for each table and format. It answers whether binary COPY
// would cut the target's parsing enough to pay for encoding it
// (BENCHMARKS.md, "Snapshot CPU"). PGVEIL_COPY_ROWS sets the rows seeded
// (default 200000).
func BenchmarkCopyFormats(b *testing.B) {
	ctx := pgtest.Context(b)
	schemaSQL, err := os.ReadFile("../../examples/saas/schema.sql")
	if err != nil {
		b.Fatal(err)
	}
	conn, _ := shared.NewDBWith(b, string(schemaSQL))
	scale := 200000
	if s := os.Getenv("PGVEIL_COPY_ROWS"); s != "" {
		if scale, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := demo.Seed(ctx, conn, demo.Options{Scale: scale}); err != nil {
		b.Fatal(err)
	}
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	cpu := func() time.Duration { // the backend's user+system time
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatal(err)
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	tables := []string{"accounts", "users", "customers", "orders", "payments", "support_tickets", "events"}
	data := map[string][]byte{}
	perTable := map[string]int64{}
	var rows int64
	for _, t := range tables {
		pgtest.MustExec(b, conn, "CREATE TABLE load_"+t+" (LIKE "+t+")")
		for _, format := range []string{"text", "binary"} {
			var buf bytes.Buffer
			tag, err := conn.PgConn().CopyTo(ctx, &buf, "COPY "+t+" TO STDOUT (FORMAT "+format+")")
			if err != nil {
				b.Fatal(err)
			}
			data[t+"/"+format] = buf.Bytes()
			if format == "text" {
				rows += tag.RowsAffected()
				perTable[t] = tag.RowsAffected()
			}
		}
	}
	load := func(t, format string) {
		if _, err := conn.Exec(ctx, "BEGIN; TRUNCATE load_"+t); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(data[t+"/"+format]), "COPY load_"+t+" FROM STDIN (FORMAT "+format+", FREEZE)"); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
			b.Fatal(err)
		}
	}
	spent := map[string]time.Duration{}
	for b.Loop() {
		// Both formats in turn, so that the machine's load hits both alike.
		for _, format := range []string{"text", "binary"} {
			for _, t := range tables {
				before := cpu()
				load(t, format)
				spent[t+"/"+format] += cpu() - before
				spent[format] += cpu() - before
			}
		}
	}
	n := float64(b.N)
	for _, format := range []string{"text", "binary"} {
		b.ReportMetric(float64(spent[format].Microseconds())/n/float64(rows), format+"-µs/row")
		var size int
		for _, t := range tables {
			size += len(data[t+"/"+format])
			b.Logf("%-16s %-6s %7d rows %5.2f µs/row, %5.1f bytes/row", t, format, perTable[t],
				float64(spent[t+"/"+format].Microseconds())/n/float64(perTable[t]), float64(len(data[t+"/"+format]))/float64(perTable[t]))
		}
		b.ReportMetric(float64(size)/float64(rows), format+"-B/row")
	}
}
