package replicate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"pgveil/internal/rulestest"
	"pgveil/replicate/pgcopy"
	"pgveil/schema"
	"pgveil/transform"
)

// copyMaskerPlan is a table with a column of each kind copyMasker treats
// apart (keep, null) and masked ones of the types whose COPY text has
// escapes (text, json, arrays, bytea).
func copyMaskerPlan(t *testing.T) *transform.TablePlan {
	t.Helper()
	cols := []schema.Column{
		{Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true, NotNull: true},
		{Name: "kept", Type: schema.MustType("text")},
		{Name: "gone", Type: schema.MustType("text")},
		{Name: "name", Type: schema.MustType("text")},
		{Name: "doc", Type: schema.MustType("jsonb")},
		{Name: "doc_kept", Type: schema.MustType("json")},
		{Name: "tags", Type: schema.MustType("text[]")},
		{Name: "blob", Type: schema.MustType("bytea")},
		{Name: "short", Type: schema.MustType("text")},
	}
	cat := &schema.Catalog{Tables: schema.Tables{}}
	cat.Tables.Add(&schema.Table{Schema: "public", Name: "t", Columns: cols})
	plan := rulestest.Compile(t, cat, `
  t:
    columns:
      id: hash
      kept: keep
      gone: "null"
      name: {fake: name}
      doc: {json: {"$.a": {fake: email}, "$..b": hash}}
      doc_kept: keep
      tags: hash
      blob: hash
      short: {truncate: 2}
`)
	return plan.Table("public", "t")
}

// copyMaskerRows are rows of that table with the values COPY text must
// get right: tabs, newlines, backslashes, \N as text, NULL against the
// empty string, arrays, bytea, json with escapes.
func copyMaskerRows(rng *rand.Rand, n int) [][]schema.Value {
	texts := []string{"", `\N`, "\\", "a\tb", "line\nnext\r\n", "back\\slash\\N", "é\x01\v\f\b", "Jane O'Hara", "\\.", "NULL"}
	docs := []string{`{"a": "x@y.z", "b": 1}`, `{"a": "q\"uote\\\\\n\t", "c": {"b": "tab\there"}}`, `[]`, `{"b": [1, {"b": "\\N"}]}`, `"\\\\"`}
	arrays := []string{`{}`, `{a,"b c","d\"e","f\\g",NULL,""}`, `{"tab\there","nl\nx"}`}
	blobs := []string{`\x`, `\x00ff5c09`, `\x5c4e`}
	pick := func(vs []string) schema.Value {
		if rng.IntN(6) == 0 {
			return schema.SQLNull()
		}
		return schema.Text(vs[rng.IntN(len(vs))])
	}
	rows := make([][]schema.Value, n)
	for i := range rows {
		rows[i] = []schema.Value{
			schema.Text(strings.Repeat("1", 1+rng.IntN(9))),
			pick(texts), pick(texts), pick(texts), pick(docs), pick(docs), pick(arrays), pick(blobs), pick(texts),
		}
	}
	return rows
}

// TestCopyMaskerIsMask: the snapshot's row path (kept fields passed
// through, null ones unread, the others decoded field by field) writes
// byte for byte what decoding whole rows, Plan.Mask and AppendRow write.
func TestCopyMaskerIsMask(t *testing.T) {
	tp := copyMaskerPlan(t)
	m := newCopyMasker(tp)
	if want := []columnCopy{maskField, passField, nullField, maskField, maskField, passField, maskField, maskField, maskField}; !bytesEq(m.how, want) {
		t.Fatalf("column treatments %v, want %v", m.how, want)
	}
	var in []byte
	for _, row := range copyMaskerRows(rand.New(rand.NewPCG(1, 2)), 3000) {
		var err error
		if in, err = pgcopy.AppendRow(in, row); err != nil {
			t.Fatal(err)
		}
	}
	// Before: Next, Mask, AppendRow.
	var want []byte
	rd := pgcopy.NewReader(bytes.NewReader(in))
	var row, masked []schema.Value
	for {
		var err error
		if row, err = rd.Next(row); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if masked, err = tp.Mask(masked[:0], row); err != nil {
			t.Fatal(err)
		}
		if want, err = pgcopy.AppendRow(want, masked); err != nil {
			t.Fatal(err)
		}
	}
	// Now: NextRaw, appendRow.
	var got []byte
	rd = pgcopy.NewReader(bytes.NewReader(in))
	var raw [][]byte
	for {
		var err error
		if raw, err = rd.NextRaw(raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if got, err = m.appendRow(got, rd, raw); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("line %d differs (%d bytes against %d)", i+1, len(gl[i]), len(wl[i]))
			}
		}
		t.Fatalf("%d lines, want %d", len(gl), len(wl))
	}
}

func bytesEq[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCopyMaskerErrors: a value the rules cannot mask stops the row with
// a MaskError naming the column and the initial copy, never the value;
// a row of the wrong width is an error; dst keeps its earlier rows.
func TestCopyMaskerErrors(t *testing.T) {
	tp := copyMaskerPlan(t)
	m := newCopyMasker(tp)
	rd := pgcopy.NewReader(strings.NewReader(""))
	dst := []byte("earlier\n")
	raw := [][]byte{[]byte("1"), []byte("k"), []byte("g"), []byte("n"), []byte(`{"a": "CANARY`), []byte("{}"), []byte("{}"), []byte(`\\x`), []byte("s")}
	out, err := m.appendRow(dst, rd, raw)
	var me *transform.MaskError
	if !errors.As(err, &me) || me.Column != "public.t.doc" || !strings.Contains(err.Error(), "in the initial copy") || strings.Contains(err.Error(), "CANARY") {
		t.Fatalf("error %v", err)
	}
	if string(out) != "earlier\n" {
		t.Fatalf("dst %q", out)
	}
	if _, err := m.appendRow(dst, rd, raw[:3]); err == nil {
		t.Fatal("a short row was accepted")
	}
}

// benchOrders is examples/saas's orders table with its rules (5 of its 8
// columns kept), or with every column kept.
func benchOrders(b *testing.B, keepAll bool) (*transform.TablePlan, []byte) {
	cols := []schema.Column{
		{Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true, NotNull: true},
		{Name: "account_id", Type: schema.MustType("bigint")},
		{Name: "customer_id", Type: schema.MustType("bigint")},
		{Name: "status", Type: schema.MustType("text")},
		{Name: "total", Type: schema.MustType("numeric(12,2)")},
		{Name: "currency", Type: schema.MustType("character(3)")},
		{Name: "shipping_address", Type: schema.MustType("text")},
		{Name: "created_at", Type: schema.MustType("timestamp with time zone")},
	}
	cat := &schema.Catalog{Tables: schema.Tables{}}
	cat.Tables.Add(&schema.Table{Schema: "public", Name: "orders", Columns: cols})
	rules := `
  orders:
    columns:
      id: keep
      account_id: keep
      customer_id: hash
      status: keep
      total: {noise: 0.05}
      currency: keep
      shipping_address: {fake: address}
      created_at: keep
`
	if keepAll {
		rules = "\n  orders:\n    columns:\n"
		for _, c := range cols {
			rules += "      " + c.Name + ": keep\n"
		}
	}
	tp := rulestest.Compile(b, cat, rules).Table("public", "orders")
	var in []byte
	for i := range 2000 {
		in = fmt.Appendf(in, "%d\t%d\t%d\tpaid\t%d.%02d\tEUR\tHauptstrasse %d, 10115 Berlin, Germany\t2025-%02d-%02d 10:11:12.%06d+00\n",
			i, i%100, i/3, 10+i%5000, i%100, i%200, 1+i%12, 1+i%28, i*37%1000000)
	}
	return tp, in
}

// BenchmarkSnapshotRows: one op is 2000 orders rows from COPY text to
// masked COPY text, by the row path before copyMasker (decode every field,
// Mask, encode every field) and by copyMasker.
func BenchmarkSnapshotRows(b *testing.B) {
	for _, keepAll := range []bool{false, true} {
		tp, in := benchOrders(b, keepAll)
		name := map[bool]string{false: "saas", true: "keep-all"}[keepAll]
		b.Run(name+"/decode-mask-encode", func(b *testing.B) {
			var row, masked []schema.Value
			out := make([]byte, 0, 2*len(in))
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				rd := pgcopy.NewReader(bytes.NewReader(in))
				out = out[:0]
				for {
					var err error
					if row, err = rd.Next(row); err != nil {
						break
					}
					masked, _ = tp.Mask(masked[:0], row)
					out, _ = pgcopy.AppendRow(out, masked)
				}
			}
		})
		b.Run(name+"/copyMasker", func(b *testing.B) {
			m := newCopyMasker(tp)
			var raw [][]byte
			out := make([]byte, 0, 2*len(in))
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				rd := pgcopy.NewReader(bytes.NewReader(in))
				out = out[:0]
				for {
					var err error
					if raw, err = rd.NextRaw(raw); err != nil {
						break
					}
					out, _ = m.appendRow(out, rd, raw)
				}
			}
		})
	}
}

// TestChunkReuse: written blocks are filled again, at most the free list's
// capacity of them is kept, and a block a huge row grew is not kept.
func TestChunkReuse(t *testing.T) {
	s := &snapshotter{free: make(chan []byte, 2)}
	a := s.newChunk()
	if len(a) != 0 || cap(a) != chunkCap {
		t.Fatalf("new block len %d cap %d", len(a), cap(a))
	}
	a = append(a, "rows"...)
	s.reuseChunk(a)
	if b := s.newChunk(); len(b) != 0 || &b[:1][0] != &a[0] {
		t.Fatal("a written block was not filled again")
	}
	for range 3 {
		s.reuseChunk(make([]byte, 10, chunkCap))
	}
	s.reuseChunk(make([]byte, 0, 2*chunkCap))
	if len(s.free) != 2 {
		t.Fatalf("%d blocks kept, want 2", len(s.free))
	}
	for range 2 {
		if b := s.newChunk(); cap(b) != chunkCap {
			t.Fatalf("kept a block of cap %d", cap(b))
		}
	}
}
