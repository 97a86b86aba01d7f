package rules

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"
)

func testCatalog() schema.Tables {
	ty := schema.MustType
	cat := schema.Tables{}
	cat.Add(&schema.Table{Schema: "public", Name: "customers", Columns: []schema.Column{
		{Name: "id", Type: ty("bigint"), NotNull: true, PrimaryKey: true},
		{Name: "email", Type: ty("text"), Unique: true},
		{Name: "full_name", Type: ty("text")},
		{Name: "birth_date", Type: ty("date")},
		{Name: "notes", Type: ty("text")},
		{Name: "profile", Type: ty("jsonb")},
		{Name: "created_at", Type: ty("timestamptz")},
	}})
	cat.Add(&schema.Table{Schema: "public", Name: "orders", Columns: []schema.Column{
		{Name: "id", Type: ty("bigint"), NotNull: true, PrimaryKey: true},
		{Name: "customer_id", Type: ty("bigint")},
		{Name: "total", Type: ty("numeric(10,2)")},
		{Name: "code", Type: ty("varchar(8)"), Unique: true},
	}, Generated: []string{"total_with_tax"}})
	cat.Add(&schema.Table{Schema: "Sales", Name: "Order Items", Columns: []schema.Column{
		{Name: "Line", Type: ty("integer"), PrimaryKey: true},
		{Name: "SKU", Type: ty("text")},
	}})
	return cat
}

func testKeys(t testing.TB) *transform.Keys {
	k, err := transform.NewKeys([]byte(pgtest.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func compileString(t *testing.T, src string) (*transform.Plan, Problems, Problems) {
	t.Helper()
	cfg, ps := parseString(t, src)
	if len(ps) > 0 {
		t.Fatalf("parse problems:\n%v", ps)
	}
	plan, warnings, err := cfg.Compile(testCatalog(), testKeys(t), testRegistry())
	errs := problemsOf(t, err)
	if err != nil && plan != nil {
		t.Errorf("Compile returned a plan along with errors")
	}
	for _, w := range warnings {
		if !w.Warning {
			t.Errorf("non-warning among the warnings: %v", w)
		}
	}
	return plan, warnings, errs
}

func TestCompile(t *testing.T) {
	src := head + `  public.customers:
    where: "deleted_at IS NULL"
    columns:
      created_at: keep
      notes: drop
      email: {fake: email}
      id: hash
      full_name: {fake: {kind: name}}
      birth_date: {truncate: year}
      profile: {json: {"$.ssn": drop, "$.name": {fake: name}}}
  orders:
    columns:
      id: keep
      customer_id: hash
      total: drop
      code: {null: }
  '"Sales"."Order Items"':
    columns: {'"Line"': hash, '"SKU"': keep}
`
	plan, warnings, errs := compileString(t, src)
	if len(errs) > 0 {
		t.Fatalf("errors:\n%v", errs)
	}
	checkProblems(t, warnings, []want{"12:14: public.customers.email: warning: values may collide on a unique column; set unique: true"})

	tables := plan.Tables()
	if len(tables) != 3 {
		t.Fatalf("%d tables, want 3", len(tables))
	}
	type tableWant struct {
		schema, name, where string
		columns, rules      []string
		dropped             []string
	}
	wants := []tableWant{
		{"public", "customers", "deleted_at IS NULL",
			[]string{"id", "email", "full_name", "birth_date", "profile", "created_at"},
			[]string{"hash", "fake", "fake", "truncate", "json", "keep"},
			[]string{"notes"}},
		{"public", "orders", "", []string{"id", "customer_id", "code"}, []string{"keep", "hash", "null"}, []string{"total"}},
		{"Sales", "Order Items", "", []string{"Line", "SKU"}, []string{"hash", "keep"}, nil},
	}
	for i, w := range wants {
		tp := tables[i]
		var rules []string
		for _, c := range tp.Columns {
			rules = append(rules, c.Rule.Name)
		}
		if tp.Table.Schema != w.schema || tp.Table.Name != w.name || tp.Where != w.where ||
			!reflect.DeepEqual(tp.ColumnNames(), w.columns) || !reflect.DeepEqual(rules, w.rules) || !reflect.DeepEqual(tp.Dropped, w.dropped) {
			t.Errorf("table %d = %s.%s where %q columns %q rules %q dropped %q; want %+v",
				i, tp.Table.Schema, tp.Table.Name, tp.Where, tp.ColumnNames(), rules, tp.Dropped, w)
		}
		if plan.Table(w.schema, w.name) != tp {
			t.Errorf("plan.Table(%q, %q) is not table %d", w.schema, w.name, i)
		}
	}
	if got := tables[0].Columns[1].Rule; got.Line != 12 || got.Col != 14 || got.Args.String("kind", "") != "email" {
		t.Errorf("email rule = %+v", got)
	}

	// Masking: a hashed key is the same in every table (joins survive),
	// kept values are kept, null gives NULL.
	customer, err := tables[0].Mask(nil, []schema.Value{
		schema.Text("42"), schema.Text("a@b.c"), schema.Text("Ann"), schema.Text("1990-02-03"),
		schema.Text(`{"ssn": "1"}`), schema.Text("2024-01-01 00:00:00+00"),
	})
	if err != nil {
		t.Fatal(err)
	}
	order, err := tables[1].Mask(nil, []schema.Value{schema.Text("7"), schema.Text("42"), schema.Text("AB123")})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(customer[0].Text, []byte("42")) || !bytes.Equal(customer[0].Text, order[1].Text) {
		t.Errorf("hash of 42: customers.id %q, orders.customer_id %q", customer[0].Text, order[1].Text)
	}
	if string(order[0].Text) != "7" || !order[2].IsNull() {
		t.Errorf("orders row masked to %v", order)
	}
	if got := plan.SortedSummary(); strings.Join(got, ",") != "drop: 2,fake: 2,hash: 3,json: 1,keep: 3,null: 1,truncate: 1" {
		t.Errorf("summary %q", got)
	}
}

func TestCompileProblems(t *testing.T) {
	src := head + `  customers:
    columns:
      id: drop
      emial: {fake: email}
      full_name: {fake: name}
      birth_date: {fake: email}
      profile: {json: {"$.a": keep, "$.b": {truncate: year}}}
  custmers:
    columns: {id: keep}
  sales.orders:
    columns: {id: keep}
  orders:
    columns:
      id: keep
      customer_id: hash
      total: keep
      CODE: hash
      total_: keep
      total_with_tax: keep
`
	plan, warnings, errs := compileString(t, src)
	if plan != nil {
		t.Errorf("plan despite errors")
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	checkProblems(t, errs, []want{
		"7:3: public.customers.email: column has no rule; deny by default: add a rule (for example drop)",
		"7:3: public.customers.notes: column has no rule; deny by default: add a rule (for example drop)",
		"7:3: public.customers.created_at: column has no rule; deny by default: add a rule (for example drop)",
		"9:11: public.customers.id: a primary key column is always published",
		"10:7: public.customers.emial: column not found; did you mean email?",
		"12:19: public.customers.birth_date: fake applies to text columns, not to date",
		"13:44: public.customers.profile: at $.b: truncate to a unit applies to dates, not to text",
		"14:3: public.custmers: table not found in the source database; did you mean public.customers?",
		"16:3: sales.orders: table not found in the source database; did you mean public.orders?",
		"23:13: public.orders.code: character varying(8) is too short for a unique hash",
		"24:7: public.orders.total_: column not found",
		"25:7: public.orders.total_with_tax: generated column: PostgreSQL does not publish generated columns, so the replica cannot have it; remove its rule (a view on the replica can compute it)",
	})
	for _, p := range errs {
		if p.Column == "total_" && p.Msg != "column not found" {
			t.Errorf("a column that has a rule was suggested: %v", p)
		}
	}
}

func TestCompileWarningsWithErrors(t *testing.T) {
	src := head + `  customers:
    columns:
      id: hash
      email: {fake: email}
      full_name: keep
      birth_date: keep
      notes: keep
      profile: keep
`
	_, warnings, errs := compileString(t, src)
	checkProblems(t, warnings, []want{"10:14: public.customers.email: warning: values may collide"})
	checkProblems(t, errs, []want{
		"7:3: public.customers.created_at: column has no rule",
		"10:14: public.customers.email: warning: values may collide"})
	if len(errs.Errors()) != 1 {
		t.Errorf("errors: %v", errs.Errors())
	}

	// unique: true silences the warning.
	src = strings.Replace(src, "{fake: email}", "{fake: {kind: email, unique: true}}", 1) + "      created_at: keep\n"
	plan, warnings, errs := compileString(t, src)
	if plan == nil || len(warnings) != 0 || len(errs) != 0 {
		t.Errorf("plan %v, warnings %v, errors %v", plan, warnings, errs)
	}
}

func TestCompileKeysFromSecret(t *testing.T) {
	cfg, ps := parseString(t, head+"  orders: {columns: {id: hash, customer_id: hash, total: keep, code: keep}}\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	plan, _, err := cfg.Compile(testCatalog(), nil, testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	byKeys, _, err := cfg.Compile(testCatalog(), testKeys(t), testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	row := []schema.Value{schema.Text("1"), schema.Text("2"), schema.Text("3"), schema.Text("4")}
	a, _ := plan.Tables()[0].Mask(nil, row)
	b, _ := byKeys.Tables()[0].Mask(nil, row)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("keys derived from the secret differ from NewKeys(secret)")
	}

	cfg.Secret = "short"
	if _, _, err := cfg.Compile(testCatalog(), nil, testRegistry()); err == nil || errorsAs(err, new(Problems)) {
		t.Errorf("Compile with a short secret and no keys: %v", err)
	}
}

func TestCompileAllowingUnruledSurvivesDrops(t *testing.T) {
	src := "source: {dsn: x}\ntarget: {dsn: y}\nsecret: " + pgtest.Secret + "\ntables:\n  gone:\n    columns: {id: keep}\n  t:\n    columns: {id: keep, old: keep}\n"
	cfg, err := Parse("f.yaml", []byte(src), nil, transform.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	cat := schema.Tables{}
	cat.Add(&schema.Table{Schema: "public", Name: "t", Columns: []schema.Column{
		{Name: "id", Type: schema.MustType("int"), PrimaryKey: true}, {Name: "added", Type: schema.MustType("text")}}})
	if _, _, err := cfg.Compile(cat, nil, transform.Builtin()); err == nil {
		t.Fatal("strict compile accepted a missing table and column")
	}
	plan, warnings, err := cfg.CompileAllowingUnruled(cat, nil, transform.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 3 || plan.Table("public", "gone") != nil || len(plan.Table("public", "t").Columns) != 1 {
		t.Errorf("warnings %v, plan %v", warnings, plan.Table("public", "t").ColumnNames())
	}
	kinds := map[string]int{}
	for _, w := range warnings {
		kinds[w.Kind]++
		if w.Kind == KindMissing && !cfg.Names(w) {
			t.Errorf("Names(%v) = false for a name the rules hold", w)
		}
	}
	if kinds[KindMissing] != 2 || kinds[KindUnruled] != 1 {
		t.Errorf("warning kinds %v, want 2 missing and 1 unruled", kinds)
	}
	if cfg.Names(Problem{Table: "public.t", Column: "added"}) || cfg.Names(Problem{Table: "public.other"}) {
		t.Error("Names is true for names the rules do not hold")
	}
}
