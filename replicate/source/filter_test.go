package source

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/internal/rulestest"
	"pgveil/schema"
)

const filterSchema = `
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN public.label AS varchar(30);
CREATE TABLE public.people (
	id int PRIMARY KEY,
	name text,
	deleted_at timestamptz,
	score numeric(6,2),
	tags text[],
	m public.mood,
	lbl public.label,
	flags bit(4)
);
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Orders" ("OrderID" int PRIMARY KEY, "Customer Name" text, "select" int);
CREATE FUNCTION public.always() RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
`

// planFilter plans one table's rules and returns its Filter.
func planFilter(t *testing.T, conn *pgx.Conn, cat *schema.Catalog, rules string) (*Filter, *PublishedTable) {
	t.Helper()
	ctx := pgtest.Context(t)
	spec, err := PlanPublication(ctx, conn, readServer(t, conn), cat, rulestest.Compile(t, cat, rules), "pgveil", true)
	if err != nil {
		t.Fatal(err)
	}
	pt := &spec.Tables[0]
	if pt.InProcessFilter == "" {
		t.Fatalf("%v: not filtered in process: %+v", pt.Name, pt)
	}
	f, err := NewFilter(cat.Tables[pt.Name], *pt)
	if err != nil {
		t.Fatal(err)
	}
	return f, pt
}

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, filterSchema)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)

	// deleted_at is dropped by the rules but the filter needs it.
	f, pt := planFilter(t, conn, cat, `
  people:
    where: "deleted_at IS NULL AND name <> 'O''Brien ☃' AND (score IS NULL OR score > 1.5) AND coalesce(m, 'ok') <> 'sad' AND coalesce(lbl, '') NOT LIKE 'x%' AND NOT (coalesce(tags, '{}') @> '{vip}')"
    columns: {id: keep, name: {fake: name}, deleted_at: drop, score: keep, tags: keep, m: keep, lbl: keep, flags: keep}
`)
	if want := []string{"name", "deleted_at", "score", "tags", "m", "lbl"}; !slices.Equal(f.Columns(), want) || !slices.Equal(pt.FilterColumns, want) {
		t.Fatalf("Columns = %q, want %q", f.Columns(), want)
	}
	if !slices.Contains(pt.Columns, "deleted_at") || !slices.Equal(pt.Extra, []string{"deleted_at"}) {
		t.Errorf("deleted_at must be published (for the filter) and dropped by pgveil: %+v", pt)
	}
	txt := schema.Text
	null := schema.SQLNull()
	type row struct {
		vals []schema.Value
		want bool
	}
	cases := []row{
		{[]schema.Value{txt("Ann"), null, txt("2.00"), txt("{a,b}"), txt("ok"), txt("l")}, true},
		{[]schema.Value{txt("Ann"), txt("2024-01-02 03:04:05+00"), txt("2.00"), null, null, null}, false}, // deleted
		{[]schema.Value{txt("O'Brien ☃"), null, null, null, null, null}, false},                           // quoted, unicode
		{[]schema.Value{txt("O'Brien"), null, null, null, null, null}, true},
		{[]schema.Value{null, null, null, null, null, null}, false}, // NULL <> '...' is NULL: false
		{[]schema.Value{txt(""), null, txt("1.00"), null, null, null}, false},
		{[]schema.Value{txt("quoted \\ back$lash"), null, txt("1.51"), null, null, null}, true},
		{[]schema.Value{txt("Zoë 😀"), null, null, txt(`{"a b","c,d",vip}`), null, null}, false},
		{[]schema.Value{txt("Zoë 😀"), null, null, txt(`{"a b","c,d",NULL}`), null, null}, true},
		{[]schema.Value{txt("x"), null, null, null, txt("sad"), null}, false},
		{[]schema.Value{txt("x"), null, null, null, txt("happy"), txt("xylophone")}, false},
		{[]schema.Value{txt("x"), null, null, null, txt("happy"), txt("ylophone")}, true},
	}
	rows := make([][]schema.Value, len(cases))
	for i, c := range cases {
		rows[i] = c.vals
	}
	got, err := f.Match(ctx, conn, rows)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("row %d %v: %v, want %v", i, c.vals, got[i], c.want)
		}
	}

	// Many rows: several statements, results in order.
	many := make([][]schema.Value, 2503)
	for i := range many {
		deleted := null
		if i%3 == 0 {
			deleted = txt("2024-01-01")
		}
		many[i] = []schema.Value{txt(fmt.Sprintf("n%d", i)), deleted, txt(fmt.Sprintf("%d.25", i%4)), null, null, null}
	}
	got, err = f.Match(ctx, conn, many)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if want := i%3 != 0 && i%4 >= 2; g != want {
			t.Fatalf("row %d: %v, want %v", i, g, want)
		}
	}
	if got, err := f.Match(ctx, conn, nil); err != nil || len(got) != 0 {
		t.Errorf("no rows: %v, %v", got, err)
	}

	// Rows of the wrong width, unchanged TOAST values.
	if _, err := f.Match(ctx, conn, [][]schema.Value{{txt("a")}}); err == nil {
		t.Error("short row: no error")
	}
	unchanged := []schema.Value{txt("a"), null, null, {State: schema.Unchanged}, null, null}
	if _, err := f.Match(ctx, conn, [][]schema.Value{unchanged}); !errors.Is(err, ErrUnchangedValue) || !strings.Contains(err.Error(), "tags") {
		t.Errorf("unchanged value without a key: %v", err)
	}
}

// An unchanged TOAST value is read back from the source by the row's key,
// never taken as NULL: NOT (coalesce(tags, '{}') @> '{vip}') is true for
// NULL, and would let the excluded vip row in.
func TestFilterReadsUnchangedValuesBack(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, filterSchema)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)
	pgtest.MustExec(t, conn, `INSERT INTO public.people (id, name, tags) VALUES (1, 'vip', '{vip}'), (2, 'plain', '{a}')`)

	f, _ := planFilter(t, conn, cat, `
  people:
    where: "NOT (coalesce(tags, '{}') @> '{vip}')"
    columns: {id: keep, name: keep, deleted_at: keep, score: keep, tags: keep, m: keep, lbl: keep, flags: keep}
`)
	if !slices.Equal(f.Columns(), []string{"tags"}) || !slices.Equal(f.Keys(), []string{"id"}) {
		t.Fatalf("Columns %q, Keys %q", f.Columns(), f.Keys())
	}
	u := schema.Value{State: schema.Unchanged}
	txt := schema.Text
	rows := [][]schema.Value{
		{u, txt("1")},            // vip in the source: excluded
		{u, txt("2")},            // passes
		{u, txt("3")},            // gone from the source: fails closed
		{u, u},                   // no key to read it by: fails closed
		{txt("{vip}"), txt("2")}, // a sent value is used as sent
		{txt("{b}"), txt("1")},
		{schema.SQLNull(), txt("1")},
	}
	got, err := f.Match(ctx, conn, rows)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true, false, false, false, true, true}; !slices.Equal(got, want) {
		t.Fatalf("Match = %v, want %v", got, want)
	}
	// Batches of one statement each still agree.
	for i, row := range rows {
		one, err := f.Match(ctx, conn, [][]schema.Value{row})
		if err != nil || one[0] != got[i] {
			t.Errorf("row %d alone: %v, %v; in a batch %v", i, one, err, got[i])
		}
	}
}

// Filter casts to each column's exact type (bit(4), a domain), quotes
// mixed-case names, and handles a filter with no columns.
func TestFilterTypesAndNames(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, filterSchema)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)

	f, _ := planFilter(t, conn, cat, `
  people:
    where: "flags = B'1010' OR lbl = 'exact'"
    columns: {id: keep, name: keep, deleted_at: keep, score: keep, tags: keep, m: keep, lbl: keep, flags: keep}
`)
	got, err := f.Match(ctx, conn, [][]schema.Value{
		{schema.Text("exact"), schema.Text("1010")},
		{schema.Text("other"), schema.Text("1011")},
		{schema.Text("exact"), schema.SQLNull()},
	})
	if err != nil || !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("typed filter: %v, %v", got, err)
	}

	f, pt := planFilter(t, conn, cat, `
  '"Sales"."Orders"':
    where: "\"Customer Name\" ILIKE '%acme%' AND \"select\" > 0"
    columns: {'"OrderID"': keep, '"Customer Name"': drop, select: keep}
`)
	if !slices.Equal(pt.FilterColumns, []string{"Customer Name", "select"}) || !slices.Equal(pt.Columns, []string{"OrderID", "Customer Name", "select"}) {
		t.Errorf("Orders: %+v", pt)
	}
	got, err = f.Match(ctx, conn, [][]schema.Value{
		{schema.Text("ACME Corp"), schema.Text("1")},
		{schema.Text("Initech"), schema.Text("1")},
	})
	if err != nil || !slices.Equal(got, []bool{true, false}) {
		t.Errorf("mixed-case names: %v, %v", got, err)
	}

	// No columns at all (a user-defined function cannot be a row filter).
	f, pt = planFilter(t, conn, cat, `
  people:
    where: "public.always()"
    columns: {id: keep, name: keep, deleted_at: keep, score: keep, tags: keep, m: keep, lbl: keep, flags: keep}
`)
	if len(pt.FilterColumns) != 0 {
		t.Errorf("FilterColumns = %q", pt.FilterColumns)
	}
	got, err = f.Match(ctx, conn, make([][]schema.Value, 1500))
	if err != nil || len(got) != 1500 || slices.Contains(got, false) {
		t.Errorf("no-column filter: %d results, %v", len(got), err)
	}
}

// A failed evaluation reports the SQLSTATE and never the value.
func TestFilterErrorHoldsNoValue(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, filterSchema)
	ctx := pgtest.Context(t)
	cat := readAll(t, conn)
	f, _ := planFilter(t, conn, cat, `
  people:
    where: "name::int > 0"
    columns: {id: keep, name: keep, deleted_at: keep, score: keep, tags: keep, m: keep, lbl: keep, flags: keep}
`)
	const secret = "Jane-Doe-SSN-078-05-1120"
	_, err := f.Match(ctx, conn, [][]schema.Value{{schema.Text("12")}, {schema.Text(secret)}})
	var fe *FilterError
	if !errors.As(err, &fe) || fe.Code != "22P02" || fe.Table != "public.people" {
		t.Fatalf("Match = %v, want a FilterError with SQLSTATE 22P02", err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
		t.Errorf("the error leaks the value: %v", err)
	}
	// The connection is still usable.
	got, err := f.Match(ctx, conn, [][]schema.Value{{schema.Text("12")}, {schema.Text("-1")}})
	if err != nil || !slices.Equal(got, []bool{true, false}) {
		t.Errorf("after an error: %v, %v", got, err)
	}
	// Invalid input for the column's own type is reported the same way.
	f2, _ := planFilter(t, conn, cat, `
  people:
    where: "score > 1"
    columns: {id: keep, name: keep, deleted_at: keep, score: keep, tags: keep, m: keep, lbl: keep, flags: keep}
`)
	_, err = f2.Match(ctx, conn, [][]schema.Value{{schema.Text(secret)}})
	if !errors.As(err, &fe) || strings.Contains(err.Error(), secret) {
		t.Errorf("bad input: %v", err)
	}
}

func TestNewFilterErrors(t *testing.T) {
	tbl := &schema.Table{Schema: "public", Name: "t", Columns: []schema.Column{{Name: "id", Type: schema.MustType("int")}}}
	for _, pt := range []PublishedTable{
		{},
		{InProcessFilter: "x > 1", FilterColumns: []string{"x"}},
		{InProcessFilter: "id > 1", FilterColumns: []string{"id"}, FilterTypes: []string{"integer", "text"}},
	} {
		if _, err := NewFilter(tbl, pt); err == nil || !strings.Contains(err.Error(), "public.t") {
			t.Errorf("NewFilter(%+v) = %v", pt, err)
		}
	}
	f, err := NewFilter(tbl, PublishedTable{InProcessFilter: "id > 1", FilterColumns: []string{"id"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT __pgveil_ord, (\nid > 1\n) FROM (VALUES (1, CAST($1 AS integer)), (2, CAST($2 AS integer))) AS t(__pgveil_ord, id) ORDER BY __pgveil_ord"
	if q := f.query(2); q != want {
		t.Errorf("query:\n%s\nwant\n%s", q, want)
	}
}
