package target

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"pgveil/schema"
)

func TestCastType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ typ, want string }{
		{"bigint", "bigint"},
		{"varchar(3)", "character varying"},
		{"char(2)", "bpchar"}, // "character" alone would be character(1)
		{"character", "bpchar"},
		{"char(2)[]", "bpchar[]"},
		{"numeric(12,2)", "numeric"},
		{"timestamp(3) with time zone", "timestamp with time zone"},
		{"bit(3)", "bit varying"}, // "bit" alone would be bit(1)
		{"bit varying(5)", "bit varying"},
		{"bit(3)[]", "bit varying[]"},
		{"public.geometry(Point,4326)", "public.geometry"},
		{`public."odd(name)"`, `public."odd(name)"`},
		{"text[][]", "text[][]"},
		{"public.mood", "public.mood"},
		{"jsonb", "jsonb"},
	} {
		if got := castType(schema.MustType(tc.typ)); got != tc.want {
			t.Errorf("castType(%s) = %q, want %q", tc.typ, got, tc.want)
		}
	}
}

func TestAppendTextArray(t *testing.T) {
	t.Parallel()
	vs := []schema.Value{schema.Text("ab"), schema.SQLNull(), {State: schema.Present}}
	b, ok := appendTextArray(nil, len(vs), func(i int) schema.Value { return vs[i] })
	if !ok {
		t.Fatal("not ok")
	}
	u := func(at int) uint32 { return binary.BigEndian.Uint32(b[at:]) }
	if u(0) != 1 || u(4) != 1 || u(8) != textOID || u(12) != 3 || u(16) != 1 {
		t.Fatalf("header %x", b[:20])
	}
	// "ab", NULL (-1), and a present empty value: length 0, not NULL.
	if u(20) != 2 || string(b[24:26]) != "ab" || u(26) != 0xffffffff || u(30) != 0 || len(b) != 34 {
		t.Fatalf("elements %x", b[20:])
	}
	b, _ = appendTextArray(nil, 0, nil)
	if u(4) != 0 || u(12) != 0 || len(b) != 20 {
		t.Fatalf("empty array %x", b)
	}
	// An Unchanged value has no text: it must not pass for an empty one.
	vs = []schema.Value{schema.Text("a"), {State: schema.Unchanged}}
	if _, ok := appendTextArray(nil, len(vs), func(i int) schema.Value { return vs[i] }); ok {
		t.Error("an unchanged value was encoded")
	}
}

// The typed modifiers apply as the column's input function applies them:
// the arrays' text is cast to the type without them and the assignment to
// the column checks them, so a value too long is an error (not cut short),
// a character(n) value keeps its length and numeric and timestamp
// precisions round. Every net statement (upsert, update of some columns,
// delete, in-memory key move) goes through the arrays with a composite key
// of typed columns.
func TestApplyNetTypedColumns(t *testing.T) {
	t.Parallel()
	tb := table("app", "typed", pk("cc", "char(2)"), pk("d", "date"), c("b", "bit(3)"), c("v", "varchar(4)"),
		c("ch", "char(3)"), c("n", "numeric(5,2)"), c("ts", "timestamp(3) with time zone"), c("iv", "interval"),
		c("e", "public.mood"), c("js", "json"), c("big", "text"))
	ctx, _, conn := setupDB(t, plan(tb), moodEnum)
	a := NewApplier(conn, "slot")
	applyTx(t, ctx, a, Position{LSN: 1},
		ins(tb, "FR", "2024-02-29", "101", "abcd", "x", "1.005", "2024-02-29 13:14:15.123456+00", "1 day", "happy", `{"a":  1}`, "long"),
		ins(tb, "DE", "2024-03-01", null, "", "yz ", null, null, null, null, null, null),
		ins(tb, "IT", "2024-03-02", "000", "a", "a", "0", "2024-01-01 00:00:00+00", "0", "ok", "[]", "kept"),
	)
	// A partial update (big unchanged), a full update, a key move in
	// memory of a row inserted in the same transaction, and a delete.
	applyTx(t, ctx, a, Position{LSN: 2},
		upd(tb, nil, "FR", "2024-02-29", "111", "dcba", "yy", "2.5", "2025-01-01 01:02:03.9999+00", "2 hours", "sad", `{"b": 2}`, unch),
		ins(tb, "ES", "2024-03-03", "010", "m", "m", "1", "2024-01-01 00:00:00+00", "1 day", "ok", "{}", "moved"),
		upd(tb, k("ES", "2024-03-03"), "PT", "2024-03-04", "011", "n", "n", "2", "2024-01-01 00:00:00+00", "1 day", "ok", "{}", unch),
		del(tb, "IT", "2024-03-02"),
	)
	equal(t, "rows", query(t, conn, `SELECT cc, length(cc), d, b, v, ch, octet_length(ch), n, ts, iv, e, js, big FROM app.typed ORDER BY cc`), []string{
		"DE|2|2024-03-01|NULL||yz |3|NULL|NULL|NULL|NULL|NULL|NULL",
		`FR|2|2024-02-29|111|dcba|yy |3|2.50|2025-01-01 01:02:04+00|02:00:00|sad|{"b": 2}|long`,
		"PT|2|2024-03-04|011|n|n  |3|2.00|2024-01-01 00:00:00+00|1 day|ok|{}|moved",
	})

	for _, tc := range []struct {
		name string
		bad  *Change
		op   string
	}{
		{"varchar too long", ins(tb, "NL", "2024-03-05", "000", "SECRET", "a", "0", null, null, null, null, null), "insert or update of app.typed"},
		{"char too long", upd(tb, nil, "FR", "2024-02-29", unch, unch, "SECRET", unch, unch, unch, unch, unch, unch), "update of app.typed"},
		{"bit of the wrong length", ins(tb, "NL", "2024-03-05", "10101", "a", "a", "0", null, null, null, null, null), "insert or update of app.typed"},
		{"bad date in a key", del(tb, "FR", "SECRET"), "delete from app.typed"},
	} {
		if err := a.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		err := a.Apply(ctx, tc.bad)
		if err == nil {
			err = a.Commit(ctx, Position{LSN: 99})
		}
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		var se *ServerError
		if msg := err.Error(); !strings.Contains(msg, tc.op) || strings.Contains(msg, "SECRET") || strings.Contains(msg, "10101") || !errors.As(err, &se) {
			t.Errorf("%s: error %q should be a server error naming %q and no value", tc.name, msg, tc.op)
		}
		_ = a.Rollback(ctx)
	}
	if pos, _, _ := ReadCheckpoint(ctx, conn, "slot"); pos.LSN != 2 {
		t.Errorf("checkpoint at %v after the failures, want 2", pos.LSN)
	}
}
