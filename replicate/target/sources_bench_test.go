package target

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"pgveil/replicate/pgcopy"
	"pgveil/schema"
	"pgveil/transform"
)

// The JSON path the arrays replaced, kept here to measure against:
// json_populate_recordset over one JSON array parameter, json and jsonb
// columns read with ->> and cast.
func jsonValue(ti *tableInfo, t *schema.Type, i int) string {
	if (t.Kind == schema.KindJSON || t.Kind == schema.KindJSONB) && !t.IsArray() {
		return "(pgveil_e->>" + schema.QuoteLiteral(ti.names[i]) + ")::" + t.String()
	}
	return "pgveil_v." + ti.cols[i]
}

func jsonSelect(ti *tableInfo, types []schema.Type) string {
	vals := make([]string, len(ti.cols))
	for i := range ti.cols {
		vals[i] = jsonValue(ti, &types[i], i)
	}
	return "SELECT " + strings.Join(vals, ", ") + " FROM json_array_elements($1::json) AS pgveil_e, json_populate_record(NULL::" + ti.name + ", pgveil_e) AS pgveil_v"
}

func appendJSONRows(ti *tableInfo, rows [][]schema.Value) []byte {
	b := []byte{'['}
	for r, row := range rows {
		if r > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		for i, v := range row {
			if i > 0 {
				b = append(b, ',')
			}
			b = transform.AppendJSONString(b, ti.names[i])
			b = append(b, ':')
			if v.State == schema.Null {
				b = append(b, "null"...)
			} else {
				b = transform.AppendJSONString(b, v.Text)
			}
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func arrayParams(ti *tableInfo, rows [][]schema.Value) (params [][]byte, formats []int16) {
	for i := range ti.cols {
		p, _ := appendTextArray(nil, len(rows), func(j int) schema.Value { return rows[j][i] })
		params = append(params, p)
		formats = append(formats, 1)
	}
	return params, formats
}

// BenchmarkNetSources replays one kind of batch (300 full-row updates of
// existing customers) through each way of handing the rows to the server,
// and reports the backend's CPU microseconds per row.
func BenchmarkNetSources(b *testing.B) {
	customers, _, _ := mixedTables()
	ctx, _, conn := setupDB(b, plan(customers), nil)
	const seed, batch = 20_000, 300
	if _, err := conn.Exec(ctx, `INSERT INTO app.customers SELECT g, g % 50, 'c' || g || '@example.com', 'Jane Doe ' || g, '+33 6 12 34 56 78', g || ' rue de la Paix', 'Paris', '75011', 'FR', '1980-01-01', jsonb_build_object('lang', 'fr', 'n', g), now(), NULL FROM generate_series(1, 20000) g`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE app.customers`); err != nil {
		b.Fatal(err)
	}
	a := NewApplier(conn, "bench")
	ti, _ := a.info(customers)
	var types []schema.Type
	for _, c := range customers.Columns {
		types = append(types, c.Column.Type)
	}
	rowsAt := func(n int) [][]schema.Value {
		rows := make([][]schema.Value, batch)
		for j := range rows {
			id := strconv.Itoa(1 + (n*batch+j)*7919%seed)
			rows[j] = vals(id, "7", "c"+id+"@example.com", "Jane Doe "+id, "+49 30 "+id, id+" rue de la Paix", "Bench "+strconv.Itoa(n), "75011", "FR",
				"1980-01-01", `{"n": `+id+`, "lang": "fr"}`, "2026-12-03 10:11:12.123456+00", null)
		}
		return rows
	}
	pg := conn.PgConn()
	nprep := 0
	prepare := func(b *testing.B, sql string) string {
		nprep++
		name := "s" + strconv.Itoa(nprep)
		if _, err := pg.Prepare(ctx, name, sql, nil); err != nil {
			b.Fatal(err)
		}
		return name
	}
	run := func(b *testing.B, each func(n int, rows [][]schema.Value)) {
		pid := pg.PID()
		cpu0 := backendCPU(b, pid)
		n := 0
		for b.Loop() {
			if err := pg.Exec(ctx, "BEGIN").Close(); err != nil {
				b.Fatal(err)
			}
			each(n, rowsAt(n))
			if err := pg.Exec(ctx, "COMMIT").Close(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(backendCPU(b, pid)-cpu0)*1e6/100/float64(n*batch), "server-µs/row")
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n*batch), "µs/row")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("json", func(b *testing.B) {
		name := prepare(b, "INSERT INTO "+ti.name+" ("+strings.Join(ti.cols, ", ")+") "+jsonSelect(ti, types)+ti.onConflictSQL())
		run(b, func(n int, rows [][]schema.Value) {
			if res := pg.ExecPrepared(ctx, name, [][]byte{appendJSONRows(ti, rows)}, nil, nil).Read(); res.Err != nil {
				b.Fatal(res.Err)
			}
		})
	})
	b.Run("arrays", func(b *testing.B) {
		name := prepare(b, ti.netUpsertSQL())
		run(b, func(n int, rows [][]schema.Value) {
			params, formats := arrayParams(ti, rows)
			if res := pg.ExecPrepared(ctx, name, params, formats, nil).Read(); res.Err != nil {
				b.Fatal(res.Err)
			}
		})
	})
	// The same rows, all present, written by UPDATE ... FROM instead of
	// an upsert.
	b.Run("update-arrays", func(b *testing.B) {
		mask := strings.Repeat("\x01", len(ti.cols))
		mask = "\x00" + mask[1:]
		name := prepare(b, ti.netUpdateSQL(mask))
		cols := ti.updateColumns(mask)
		run(b, func(n int, rows [][]schema.Value) {
			var params [][]byte
			var formats []int16
			for _, i := range cols {
				p, _ := appendTextArray(nil, len(rows), func(j int) schema.Value { return rows[j][i] })
				params = append(params, p)
				formats = append(formats, 1)
			}
			if res := pg.ExecPrepared(ctx, name, params, formats, nil).Read(); res.Err != nil {
				b.Fatal(res.Err)
			}
		})
	})
	b.Run("copy", func(b *testing.B) {
		if err := pg.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS pgveil_stage (LIKE "+ti.name+") ON COMMIT DELETE ROWS").Close(); err != nil {
			b.Fatal(err)
		}
		sql := "INSERT INTO " + ti.name + " (" + strings.Join(ti.cols, ", ") + ") SELECT " + strings.Join(ti.cols, ", ") + " FROM pgveil_stage" + ti.onConflictSQL()
		name := prepare(b, sql)
		run(b, func(n int, rows [][]schema.Value) {
			var buf []byte
			for _, r := range rows {
				buf, _ = pgcopy.AppendRow(buf, r)
			}
			if _, err := pg.CopyFrom(ctx, bytes.NewReader(buf), "COPY pgveil_stage FROM STDIN"); err != nil {
				b.Fatal(err)
			}
			if res := pg.ExecPrepared(ctx, name, nil, nil, nil).Read(); res.Err != nil {
				b.Fatal(res.Err)
			}
		})
	})
	b.Run("json-again", func(b *testing.B) {
		name := prepare(b, "INSERT INTO "+ti.name+" ("+strings.Join(ti.cols, ", ")+") "+jsonSelect(ti, types)+ti.onConflictSQL())
		run(b, func(n int, rows [][]schema.Value) {
			if res := pg.ExecPrepared(ctx, name, [][]byte{appendJSONRows(ti, rows)}, nil, nil).Read(); res.Err != nil {
				b.Fatal(res.Err)
			}
		})
	})
	b.Run("parse-json", func(b *testing.B) {
		name := prepare(b, "SELECT count(*) FROM ("+jsonSelect(ti, types)+" OFFSET 0) x")
		run(b, func(n int, rows [][]schema.Value) {
			if res := pg.ExecPrepared(ctx, name, [][]byte{appendJSONRows(ti, rows)}, nil, nil).Read(); res.Err != nil {
				b.Fatal(res.Err)
			}
		})
	})
	b.Run("parse-arrays", func(b *testing.B) {
		name := prepare(b, "SELECT count(*) FROM (SELECT * FROM "+ti.netSource(ti.all)+" OFFSET 0) x")
		run(b, func(n int, rows [][]schema.Value) {
			params, formats := arrayParams(ti, rows)
			if res := pg.ExecPrepared(ctx, name, params, formats, nil).Read(); res.Err != nil {
				b.Fatal(res.Err)
			}
		})
	})
}
