package transform

import (
	"errors"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

func testPlan(t testing.TB, k *Keys) *TablePlan {
	t.Helper()
	cat := schema.Tables{}
	tbl := &schema.Table{Schema: "public", Name: "customers", Columns: []schema.Column{
		{Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true, NotNull: true},
		{Name: "email", Type: schema.MustType("text")},
		{Name: "age", Type: schema.MustType("integer")},
		{Name: "notes", Type: schema.MustType("text")},
	}}
	cat.Add(tbl)
	r := Builtin()
	tp := &TablePlan{Table: tbl}
	for _, c := range tbl.Columns {
		rule := map[string]Rule{"id": {Name: "hash"}, "email": {Name: "fake", Args: Args{"kind": "email"}}, "age": {Name: "truncate", Args: Args{"length": int64(10)}}, "notes": {Name: "drop"}}[c.Name]
		tr, err := r.Build(rule, c, k)
		if err != nil {
			t.Fatal(err)
		}
		if IsDrop(tr) {
			tp.Dropped = append(tp.Dropped, c.Name)
			continue
		}
		tp.Columns = append(tp.Columns, ColumnPlan{Column: c, Rule: rule, Transformer: tr})
	}
	return tp
}

func TestPlanMask(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tp := testPlan(t, k)
	if got := strings.Join(tp.ColumnNames(), ","); got != "id,email,age" {
		t.Fatalf("columns %s", got)
	}
	out, err := tp.Mask(nil, []schema.Value{schema.Text("1"), schema.SQLNull(), {State: schema.Unchanged}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].String() == "1" || out[1].State != schema.Null || out[2].State != schema.Unchanged {
		t.Errorf("got %v", out)
	}
	out2, _ := tp.Mask(nil, []schema.Value{schema.Text("1"), schema.Text("a@b.c"), schema.Text("37")})
	if out2[0].String() != out[0].String() || out2[2].String() != "30" || !strings.Contains(out2[1].String(), "@") {
		t.Errorf("got %v", out2)
	}

	// Errors name the column, never the value, and leave dst as it was.
	dst := []schema.Value{schema.Text("kept")}
	dst, err = tp.Mask(dst, []schema.Value{schema.Text("1"), schema.Text("x"), schema.Text("CANARY-77")})
	var me *MaskError
	if !errors.As(err, &me) || me.Column != "public.customers.age" || len(dst) != 1 {
		t.Fatalf("err %v, dst %v", err, dst)
	}
	if strings.Contains(err.Error(), "CANARY") {
		t.Errorf("error leaks the value: %v", err)
	}
	// The pipeline says where; the column's own error is left as it was.
	if at := me.At("in the initial copy"); !strings.HasPrefix(at.Error(), "cannot mask a value in the initial copy: public.customers.age: ") ||
		!strings.HasSuffix(at.Error(), "(fix the rule, or add on_error: null to the column)") || me.Where != "" || strings.Contains(at.Error(), "CANARY") {
		t.Errorf("At: %q (was %q)", at, me)
	}
	if _, err := tp.Mask(nil, []schema.Value{schema.Text("1")}); err == nil {
		t.Error("short row accepted")
	}
}

func TestPlanLookupAndSummary(t *testing.T) {
	tp := testPlan(t, testKeys(t, pgtest.Secret))
	p := NewPlan([]*TablePlan{tp})
	if p.Table("public", "customers") != tp || p.Table("public", "orders") != nil {
		t.Error("lookup")
	}
	if got := strings.Join(p.SortedSummary(), ", "); got != "drop: 1, fake: 1, hash: 1, truncate: 1" {
		t.Errorf("summary %s", got)
	}
}

// BenchmarkMaskRow masks a typical 10-column row.
func BenchmarkMaskRow(b *testing.B) {
	k := testKeys(b, pgtest.Secret)
	r := Builtin()
	cols := []struct {
		name, typ string
		rule      Rule
		val       string
	}{
		{"id", "bigint", Rule{Name: "hash"}, "1234567"},
		{"account_id", "bigint", Rule{Name: "hash"}, "42"},
		{"email", "text", Rule{Name: "fake", Args: Args{"kind": "email"}}, "alice.smith@mail.com"},
		{"full_name", "text", Rule{Name: "fake", Args: Args{"kind": "name"}}, "Alice Smith"},
		{"phone", "text", Rule{Name: "partial", Args: Args{"keep_last": int64(2)}}, "+33612345678"},
		{"birth_date", "date", Rule{Name: "truncate", Args: Args{"unit": "year"}}, "1984-07-12"},
		{"zip", "text", Rule{Name: "truncate", Args: Args{"length": int64(3)}}, "75011"},
		{"plan", "text", Rule{Name: "keep"}, "enterprise"},
		{"created_at", "timestamp with time zone", Rule{Name: "keep"}, "2024-03-15 13:45:12.123456+00"},
		{"balance", "numeric(12,2)", Rule{Name: "noise", Args: Args{"ratio": 0.05}}, "1520.75"},
	}
	tbl := &schema.Table{Schema: "public", Name: "customers"}
	var row []schema.Value
	for _, c := range cols {
		tbl.Columns = append(tbl.Columns, schema.Column{Name: c.name, Type: schema.MustType(c.typ)})
		row = append(row, schema.Text(c.val))
	}
	schema.Tables{}.Add(tbl)
	tp := &TablePlan{Table: tbl}
	for i, c := range cols {
		tr, err := r.Build(c.rule, tbl.Columns[i], k)
		if err != nil {
			b.Fatal(err)
		}
		tp.Columns = append(tp.Columns, ColumnPlan{Column: tbl.Columns[i], Rule: c.rule, Transformer: tr})
	}
	dst := make([]schema.Value, 0, len(cols))
	b.ReportAllocs()
	for range b.N {
		var err error
		if dst, err = tp.Mask(dst[:0], row); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeep(b *testing.B) {
	tr := build(b, testKeys(b, pgtest.Secret), "text", Rule{Name: "keep"})
	v := schema.Text("alice.smith@mail.com")
	b.ReportAllocs()
	for range b.N {
		if _, err := tr.Transform(v); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPlanOnErrorNull(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tp := testPlan(t, k)
	tp.Columns[0].Rule.OnError = "null" // id: hash on bigint, fed a value that is not an integer
	out, err := tp.Mask(nil, []schema.Value{schema.Text("not-a-number"), schema.Text("a@b.c"), schema.Text("33")})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].State != schema.Null || tp.NulledErrors.Load() != 1 {
		t.Errorf("got %v, nulled %d", out, tp.NulledErrors.Load())
	}
}

// TestKeptAndNulled: the snapshot passes a column through undecoded only
// when its rule is keep, and writes NULL without reading it only when its
// rule is null; every other rule (a wrapped keep included) is masked.
func TestKeptAndNulled(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	r := Builtin()
	col := schema.Column{Name: "c", Type: schema.MustType("text")}
	for _, tt := range []struct {
		rule         Rule
		kept, nulled bool
	}{
		{Rule{Name: "keep"}, true, false},
		{Rule{Name: "null"}, false, true},
		{Rule{Name: "hash"}, false, false},
		{Rule{Name: "truncate", Args: Args{"length": int64(3)}}, false, false},
		{Rule{Name: "partial", Args: Args{"keep_last": int64(2)}}, false, false},
	} {
		tr, err := r.Build(tt.rule, col, k)
		if err != nil {
			t.Fatalf("%s: %v", tt.rule.Name, err)
		}
		c := ColumnPlan{Column: col, Rule: tt.rule, Transformer: tr}
		if c.Kept() != tt.kept || c.Nulled() != tt.nulled {
			t.Errorf("%s: Kept %v, Nulled %v; want %v, %v", tt.rule.Name, c.Kept(), c.Nulled(), tt.kept, tt.nulled)
		}
		// What Kept and Nulled promise is what the transformer does.
		v := schema.Text(`{"a": 1}`)
		out, err := tr.Transform(v)
		if err != nil {
			t.Fatalf("%s: %v", tt.rule.Name, err)
		}
		if tt.kept && out.String() != v.String() || tt.nulled && out.State != schema.Null {
			t.Errorf("%s: transformed to %v", tt.rule.Name, out)
		}
	}
}

// TestMaskColumnIsMask: masking column by column gives Mask's row.
func TestMaskColumnIsMask(t *testing.T) {
	tp := testPlan(t, testKeys(t, pgtest.Secret))
	row := []schema.Value{schema.Text("42"), schema.Text("a@b.c"), schema.SQLNull()}
	want, err := tp.Mask(nil, row)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range row {
		got, err := tp.MaskColumn(i, v)
		if err != nil || got.State != want[i].State || got.String() != want[i].String() {
			t.Errorf("column %d: %v (%v), Mask gives %v", i, got, err, want[i])
		}
	}
	if _, err := tp.MaskColumn(2, schema.Text("CANARY")); err == nil || strings.Contains(err.Error(), "CANARY") {
		t.Errorf("error %v", err)
	}
}
