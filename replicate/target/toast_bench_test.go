package target

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
)

// BenchmarkWideRowToast finds where the columns growth curve's
// non-linear cost lies (BENCHMARKS.md, "Snapshot CPU"): the analytics
// server's CPU a row to COPY FREEZE 20,000 rows of 10 and of 200 columns
// (text and integer by turns, as internal/bench's wide tables), holding
// the source's values ('value g of i', about 19 bytes) or 32-character
// hashes (what the hash rule writes), into a table as pgveil creates it,
// one WITH (toast_tuple_target = 8160), and one whose text columns are
// STORAGE MAIN. One op is the whole set; the figures are logged.
func BenchmarkWideRowToast(b *testing.B) {
	for b.Loop() {
		wideRowToast(b)
	}
}

func wideRowToast(t *testing.B) {
	ctx := pgtest.Context(t)
	conn, _ := shared.NewDBWith(t, "SELECT 1")
	defer conn.Close(ctx)
	var pid int
	conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
	cpu := func() time.Duration {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond
	}
	for _, c := range []int{10, 200} {
		cols, exprs, raw := []string{"id bigint"}, []string{"g"}, []string{"g"}
		for i := 1; i < c; i++ {
			if i%2 == 1 {
				cols = append(cols, fmt.Sprintf("t%d text", i))
				exprs = append(exprs, fmt.Sprintf("md5(g::text || '%d')", i))
				raw = append(raw, fmt.Sprintf("'value ' || g || ' of %d'", i))
			} else {
				cols = append(cols, fmt.Sprintf("n%d integer", i))
				exprs = append(exprs, fmt.Sprintf("(g * %d) %% 100000", i))
				raw = append(raw, fmt.Sprintf("(g * %d) %% 100000", i))
			}
		}
		def := strings.Join(cols, ", ")
		pgtest.MustExec(t, conn, fmt.Sprintf("CREATE TABLE src%d (%s); INSERT INTO src%[1]d SELECT %[3]s FROM generate_series(1, 20000) g", c, def, strings.Join(exprs, ", ")))
		pgtest.MustExec(t, conn, fmt.Sprintf("CREATE TABLE raw%d (%s); INSERT INTO raw%[1]d SELECT %[3]s FROM generate_series(1, 20000) g", c, def, strings.Join(raw, ", ")))
		for _, src := range []string{"raw", "src"} {
			var buf bytes.Buffer
			if _, err := conn.PgConn().CopyTo(ctx, &buf, fmt.Sprintf("COPY %s%d TO STDOUT", src, c)); err != nil {
				t.Fatal(err)
			}
			for _, variant := range []string{"default", "toast_tuple_target=8160", "storage main"} {
				name := fmt.Sprintf("d%d_%s_%d", c, src, len(variant))
				ddl := fmt.Sprintf("CREATE TABLE %s (%s)", name, def)
				switch variant {
				case "toast_tuple_target=8160":
					ddl += " WITH (toast_tuple_target = 8160)"
				case "storage main":
					for i := 1; i < c; i += 2 {
						ddl += fmt.Sprintf("; ALTER TABLE %s ALTER t%d SET STORAGE MAIN", name, i)
					}
				}
				pgtest.MustExec(t, conn, ddl)
				var spent time.Duration
				for range 3 {
					pgtest.MustExec(t, conn, "BEGIN; TRUNCATE "+name)
					before := cpu()
					if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(buf.Bytes()), "COPY "+name+" FROM STDIN (FREEZE)"); err != nil {
						t.Fatal(err)
					}
					pgtest.MustExec(t, conn, "COMMIT")
					spent += cpu() - before
				}
				var size int64
				conn.QueryRow(ctx, "SELECT pg_total_relation_size($1::regclass)", name).Scan(&size)
				t.Logf("%3d columns, %s values, %-24s %6.1f µs/row, %d MB", c, map[string]string{"raw": "source", "src": "hashed"}[src], variant, float64(spent.Microseconds())/3/20000, size>>20)
			}
		}
	}
}
