package scan

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/rules/refs"
)

// pagilaSQL is testdata/pagila-shaped.sql (see its header).
func pagilaSQL(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/pagila-shaped.sql")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestScanPagilaDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := pgtest.New(t, pgtest.Options{})
	conn := pgtest.Connect(t, c.DSN("postgres"))
	if _, err := conn.Exec(ctx, strings.ReplaceAll(pagilaSQL(t), "$C", canary)); err != nil {
		t.Fatal(err)
	}
	// Store's manager and staff's store have no constraint: inferred.
	m, err := refs.Read(ctx, conn, refs.Options{Schemas: []string{"public"}, Infer: true})
	if err != nil {
		t.Fatal(err)
	}
	tables, cat, err := Read(ctx, conn, Options{Schemas: []string{"public"}, Sample: 50,
		Skipped: func(table, state string) { t.Errorf("could not sample %s (%s)", table, state) }})
	if err != nil {
		t.Fatal(err)
	}
	ruled := Propose(tables, m)
	var buf bytes.Buffer
	if err := Write(&buf, Header{}, ruled); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, decl := range []string{"manager_staff_id: public.staff.staff_id", "store_id: public.store.store_id"} {
		if !strings.Contains(out, "    references:") || !strings.Contains(out, "      "+decl+"   # ") {
			t.Errorf("the inferred reference %q is not declared under references:", decl)
		}
	}
	for _, leak := range []string{canary, "CANARY", "MySakila", "sakilastaff", "ACADEMY", "MARY"} {
		if strings.Contains(out, leak) {
			t.Errorf("the output holds the sampled value %q", leak)
		}
	}
	assertConsistent(t, ruled, m)
	got := rulesOf(ruled)
	for col, want := range map[string]string{
		"payment.customer_id": "hash", "payment.staff_id": "hash", "payment.rental_id": "hash", "store.manager_staff_id": "hash",
		"staff.store_id": "hash", "staff.picture": "drop", "address.address": "{fake: address}", "address.address2": "{fake: address}",
		"film.title": "keep", "film.description": "keep", "film.fulltext": "keep", "category.name": "keep", "language.name": "keep",
		"customer.uuid": "hash", "rental.rental_date": "{truncate: day}", "rental.return_date": "{truncate: day}",
		"payment.payment_date": "keep", // part of the primary key: see the reason
		"customer.search_name": "drop", "customer.first_name": "{fake: first_name}", "customer.email": "{fake: email}",
		"actor.first_name": "{fake: first_name}", "actor.last_name": "{fake: last_name}", "staff.password": "drop",
		"address.phone": "{partial: {keep_last: 2}}", "film_category.film_id": "hash",
	} {
		if p, ok := got[col]; !ok || p.Rule != want {
			t.Errorf("%s: %s (%s), want %s", col, p.Rule, p.Reason, want)
		}
	}
	if r := got["payment.payment_date"].Reason; !strings.Contains(r, "rental_date") {
		t.Errorf("payment.payment_date: the reason does not name the chain: %s", r)
	}
	if r := got["customer.search_name"].Reason; !strings.Contains(r, "trigger function customer_search") {
		t.Errorf("customer.search_name: %s", r)
	}
	t.Log("\n" + out)

	// The file loads and compiles against the catalog.
	cfg, err := rules.Parse("scan.yaml", buf.Bytes(), lookup, nil)
	if err != nil {
		t.Fatalf("the output does not load: %v", err)
	}
	if _, probs, err := cfg.Compile(cat.Tables, nil, nil); err != nil || len(probs.Errors()) > 0 {
		t.Fatalf("compile: %v %v", err, probs)
	}

	// Derived columns, and validate's warning when one is kept while an
	// input is masked.
	derived, err := DerivedColumns(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	byCol := map[string]Derived{}
	for _, d := range derived {
		byCol[d.Column.Table.Name+"."+d.Column.Name] = d
	}
	for col, want := range map[string][]string{
		"film.fulltext": {"title", "description"}, "film.title_length": {"title"}, "customer.search_name": {"first_name", "last_name"},
	} {
		if d, ok := byCol[col]; !ok || !slices.Equal(d.Inputs, want) {
			t.Errorf("derived %s: %+v, want inputs %v", col, d, want)
		}
	}
	if probs := CheckDerived(cfg, derived); len(probs) != 0 {
		t.Errorf("the scan's own rules warn: %v", probs)
	}
	for _, tr := range cfg.Tables {
		for _, c := range tr.Columns {
			if tr.Name == "film" && c.Name == "title" {
				c.Rule.Name, c.Rule.Args = "drop", nil
			}
		}
	}
	probs := CheckDerived(cfg, derived)
	if len(probs) != 1 || probs[0].Column != "fulltext" || !probs[0].Warning {
		t.Errorf("dropping film.title: %v, want a warning on film.fulltext", probs)
	}
}
