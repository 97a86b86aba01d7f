package source

import (
	"slices"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"
)

func TestDecideViews(t *testing.T) {
	customer := schema.TableName{Schema: "public", Name: "customer"}
	store := schema.TableName{Schema: "public", Name: "store"}
	plan := transform.NewPlan([]*transform.TablePlan{
		{Table: &schema.Table{Schema: "public", Name: "customer", Generated: []string{"full"}},
			Columns: []transform.ColumnPlan{{Column: schema.Column{Name: "id"}}, {Column: schema.Column{Name: "name"}}, {Column: schema.Column{Name: "store_id"}}},
			Dropped: []string{"email"}},
		{Table: &schema.Table{Schema: "public", Name: "store"}, Columns: []transform.ColumnPlan{{Column: schema.Column{Name: "id"}}}},
	})
	col := func(n schema.TableName, c string) ViewRead { return ViewRead{Relation: n, RelKind: "r", Column: c} }
	view := func(name string, mat bool, reads ...ViewRead) *View {
		return &View{Name: schema.TableName{Schema: "public", Name: name}, Materialized: mat, Reads: reads}
	}
	ref := func(name, kind string) ViewRead {
		return ViewRead{Relation: schema.TableName{Schema: "public", Name: name}, RelKind: kind}
	}
	views := []*View{
		// Listed before the view it reads: the decisions come after it.
		view("over", false, ref("list", "v"), col(customer, "id")),
		view("list", false, col(customer, "id"), col(customer, "name"), col(store, "id")),
		view("emails", false, col(customer, "id"), col(customer, "email")),
		view("over_emails", false, ref("emails", "v")),
		view("counts", true, ViewRead{Relation: customer, RelKind: "r"}),
		view("over_counts", false, ref("counts", "m")),
		view("generated", false, col(customer, "full")),
		view("unruled", false, col(customer, "phone")),
		view("other_table", false, col(schema.TableName{Schema: "public", Name: "payment_p1"}, "id")),
		view("udf", false, col(customer, "id"), ViewRead{Object: "function public.group_concat(text)", Function: true}),
		view("typed", false, col(customer, "id"), ViewRead{Object: "type public.mood", Type: true}),
		view("outside", false, ViewRead{Relation: schema.TableName{Schema: "other", Name: "v"}, RelKind: "v"}),
		view("seq", false, ViewRead{Relation: schema.TableName{Schema: "public", Name: "s"}, RelKind: "S"}),
	}
	ds := DecideViews(views, plan)
	got := map[string]*ViewDecision{}
	pos := map[string]int{}
	for i, d := range ds {
		got[d.View.Name.Name] = d
		pos[d.View.Name.Name] = i
	}
	if len(ds) != len(views) {
		t.Fatalf("%d decisions for %d views", len(ds), len(views))
	}
	want := map[string]string{
		"over":        "",
		"list":        "",
		"emails":      `reads public.customer.email, which its rule drops`,
		"over_emails": `reads public.emails, which is kept out: reads public.customer.email`,
		"counts":      "",
		"over_counts": "",
		"generated":   `reads public.customer."full", a generated column`,
		"unruled":     `reads public.customer.phone, which no rule replicates`,
		"other_table": `reads public.payment_p1, which no rule replicates`,
		"udf":         `calls function public.group_concat(text), which pgveil does not replicate`,
		"typed":       "",
		"outside":     `reads other.v, a view outside the replicated schemas`,
		"seq":         `reads public.s (relkind S)`,
	}
	for name, w := range want {
		d := got[name]
		if w == "" && d.KeptOut != "" || w != "" && !strings.HasPrefix(d.KeptOut, w) {
			t.Errorf("%s: kept out %q, want %q", name, d.KeptOut, w)
		}
	}
	if pos["over"] < pos["list"] || pos["over_counts"] < pos["counts"] {
		t.Errorf("a view comes before a view it reads: %v", pos)
	}
	if d := got["over"]; len(d.Tables) != 2 || d.Tables[0] != customer || d.Tables[1] != store || len(d.Views) != 1 {
		t.Errorf("over reads tables %v, views %v; want customer and store, through list", d.Tables, d.Views)
	}
	if !got["over_counts"].ReadsMaterialized || got["over"].ReadsMaterialized {
		t.Error("ReadsMaterialized is wrong")
	}
	a, b := *views[1], *views[1]
	b.Definition = "SELECT 2"
	if a.Hash() == b.Hash() {
		t.Error("a changed definition keeps its hash")
	}
}

// ReadViews on PostgreSQL itself: the columns a view reads, a whole-table
// read, a view over a view, a user function, and the definition's names
// schema-qualified whatever the search_path.
func TestReadViews(t *testing.T) {
	conn, _ := shared.NewDBWith(t, `
CREATE TABLE customer (id int PRIMARY KEY, name text, email text);
CREATE FUNCTION shout(text) RETURNS text LANGUAGE sql AS 'SELECT upper($1)';
CREATE VIEW list AS SELECT id, name FROM customer;
CREATE VIEW counts AS SELECT count(*) AS n FROM customer;
CREATE VIEW over AS SELECT name FROM list;
CREATE VIEW loud AS SELECT shout(email) FROM customer;
CREATE MATERIALIZED VIEW m AS SELECT id FROM customer;
CREATE MATERIALIZED VIEW killer AS SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = 'pgveil';
CREATE MATERIALIZED VIEW sleeper AS SELECT id FROM customer WHERE pg_sleep(0) IS NOT NULL;
CREATE MATERIALIZED VIEW xml AS SELECT query_to_xml('SELECT 1', true, false, '');
CREATE MATERIALIZED VIEW plus AS SELECT id + 1 AS n, count(*) OVER () AS total, now() AS at FROM customer;
CREATE SCHEMA other; CREATE VIEW other.v AS SELECT 1 AS one;`)
	vs, err := ReadViews(pgtest.Context(t), conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	// The volatile calls, built-ins included, and only those.
	volatile := map[string]string{}
	for _, v := range vs {
		volatile[v.Name.Name] = strings.Join(v.Volatile, " ")
	}
	for name, want := range map[string]string{"killer": "pg_terminate_backend(integer,bigint)", "sleeper": "pg_sleep(double precision)",
		"xml": "query_to_xml(text,boolean,boolean,text)", "plus": "", "m": "", "list": "", "loud": "public.shout(text)"} {
		if volatile[name] != want {
			t.Errorf("%s: volatile calls %q, want %q", name, volatile[name], want)
		}
	}
	for _, d := range DecideViews(vs, transform.NewPlan(nil)) {
		if name := d.View.Name.Name; d.View.Materialized && volatile[name] != "" && !strings.Contains(d.KeptOut, "volatile function") {
			t.Errorf("%s is not kept out for its volatile call: %q", name, d.KeptOut)
		}
	}
	vs = slices.DeleteFunc(vs, func(v *View) bool { return slices.Contains([]string{"killer", "sleeper", "xml", "plus"}, v.Name.Name) })
	got := map[string]string{}
	for _, v := range vs {
		var reads []string
		for _, r := range v.Reads {
			switch {
			case r.Object != "":
				reads = append(reads, r.Object)
			default:
				reads = append(reads, r.Relation.Name+"."+r.Column+"("+r.RelKind+")")
			}
		}
		got[v.Name.Name] = strings.Join(reads, " ")
		if v.Name.Name == "list" && (!strings.Contains(v.Definition, "FROM public.customer") || strings.HasSuffix(v.Definition, ";")) {
			t.Errorf("list's definition is not schema-qualified, or ends with ;: %q", v.Definition)
		}
		if v.Name.Name == "m" && !v.Materialized {
			t.Error("m is not materialized")
		}
	}
	want := map[string]string{
		"list":   "customer.id(r) customer.name(r)",
		"counts": "customer.(r)",
		"over":   "list.name(v)",
		"loud":   "function public.shout(text) customer.email(r)",
		"m":      "customer.id(r)",
	}
	if len(got) != len(want) {
		t.Errorf("views read: %v, want %v (not other.v)", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s reads %q, want %q", k, got[k], w)
		}
	}
}
