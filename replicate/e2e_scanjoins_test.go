package replicate

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"pgveil/rules/refs"
	"pgveil/rules/scan"
)

// TestReplicateScanKeepsJoins is how most teams begin: scan a production
// database nobody wrote rules for and replicate with the file it
// proposes. On Pagila's shape (payment partitioned, its foreign keys on
// the partitions only, store's manager without any constraint), every
// join of the replica must return the source's row counts, at the copy
// and while streaming; pictures and second address lines must not arrive
// raw; the references must be the replica's foreign keys.
func TestReplicateScanKeepsJoins(t *testing.T) {
	sql, err := os.ReadFile("../rules/scan/testdata/pagila-shaped.sql")
	if err != nil {
		t.Fatal(err)
	}
	const canary = "Zyxwvanne Canaryson"
	e := newE2E(t, strings.ReplaceAll(string(sql), "$C", canary), "")
	ctx := context.Background()

	// pgveil scan, as cmd/pgveil/scan.go runs it, without the harness's
	// marker table (which it replicates as it is).
	model, err := refs.Read(ctx, e.src, refs.Options{Schemas: []string{"public"}, Infer: true})
	if err != nil {
		t.Fatal(err)
	}
	tables, _, err := scan.Read(ctx, e.src, scan.Options{Schemas: []string{"public"}, Sample: 100, StatementTimeout: "30s"})
	if err != nil {
		t.Fatal(err)
	}
	tables = slices.DeleteFunc(tables, func(t *scan.Table) bool { return t.Name == "pgveil_marker" })
	var out bytes.Buffer
	if err := scan.Write(&out, scan.Header{}, scan.Propose(tables, model)); err != nil {
		t.Fatal(err)
	}
	_, proposed, ok := strings.Cut(out.String(), "\ntables:\n")
	if !ok {
		t.Fatalf("scan wrote no tables section:\n%s", out.String())
	}
	e.rulesYML = proposed + e.rulesYML
	e.start()
	e.sync()

	joins := []string{
		`SELECT count(*) FROM payment p JOIN customer c ON c.customer_id = p.customer_id`,
		`SELECT count(*) FROM payment p JOIN staff s ON s.staff_id = p.staff_id`,
		`SELECT count(*) FROM payment p JOIN rental r ON r.rental_id = p.rental_id`,
		`SELECT count(*) FROM store s JOIN staff m ON m.staff_id = s.manager_staff_id`,
		`SELECT count(*) FROM staff s JOIN store st ON st.store_id = s.store_id`,
		`SELECT count(*) FROM rental r JOIN customer c ON c.customer_id = r.customer_id JOIN address a ON a.address_id = c.address_id`,
		`SELECT count(*) FROM rental r JOIN inventory i ON i.inventory_id = r.inventory_id JOIN film f ON f.film_id = i.film_id`,
	}
	sameCounts := func(when string) {
		t.Helper()
		for _, q := range joins {
			var src, dst int64
			if err := e.src.QueryRow(ctx, q).Scan(&src); err != nil {
				t.Fatalf("source: %s: %v", q, err)
			}
			if err := e.dst.QueryRow(ctx, q).Scan(&dst); err != nil {
				t.Fatalf("replica: %s: %v", q, err)
			}
			if src == 0 || dst != src {
				t.Errorf("%s: %s: replica %d rows, source %d", when, q, dst, src)
			}
		}
	}
	sameCounts("after the copy")

	e.exec(`
INSERT INTO rental (rental_date, inventory_id, customer_id, return_date, staff_id)
  SELECT timestamptz '2022-02-03 10:00' + i * interval '41 minutes', 1 + i % 10, 1 + i % 10, NULL, 1 + i % 2 FROM generate_series(1, 15) i;
INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
  SELECT customer_id, staff_id, rental_id, 4.99, rental_date + interval '2 minutes' FROM rental WHERE rental_date >= '2022-02-01';
UPDATE store SET manager_staff_id = 3 - manager_staff_id;`)
	e.sync()
	sameCounts("while streaming")
	e.verify()

	// Nothing raw: the pictures and second address lines are masked.
	if got := e.replicaStrings(`SELECT count(*)::text FROM address WHERE address2 LIKE '%Canaryson%'`); got[0] != "0" {
		t.Errorf("%s raw second address lines on the replica", got[0])
	}
	if got := e.replicaStrings(`SELECT count(*)::text FROM information_schema.columns WHERE table_name = 'staff' AND column_name = 'picture'`); got[0] != "0" {
		if n := e.replicaStrings(`SELECT count(*)::text FROM staff WHERE picture IS NOT NULL`); n[0] != "0" {
			t.Errorf("%s staff pictures on the replica", n[0])
		}
	}
	// The joins Metabase offers: production's references, those on
	// partitions and the one scan inferred, as foreign keys.
	fks := e.replicaStrings(`SELECT conrelid::regclass::text || '->' || confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' ORDER BY 1`)
	for _, want := range []string{"payment->customer", "payment->staff", "payment->rental", "store->staff", "rental->customer"} {
		if !slices.Contains(fks, want) {
			t.Errorf("the replica has no foreign key %s; it has %v", want, fks)
		}
	}
}
