package refs

import (
	"context"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// pagilaData fills pagila (read_test.go) and adds what inference must
// find, and what it must not: store.manager_staff_id and the partitioned
// payment.rental_id have no constraint; store.legacy_customer_id is named
// like a reference to customer but holds other numbers; book's columns
// name their tables by the table's singular; customer_detail's primary key
// refers to customer (not the other way round).
const pagilaData = pagila + `
ALTER TABLE store ADD COLUMN legacy_customer_id int;
INSERT INTO customer SELECT g, 'c' || g FROM generate_series(1, 50) g;
INSERT INTO staff SELECT g, 's' || g FROM generate_series(1, 3) g;
INSERT INTO store VALUES (1, 1, 1001), (2, 2, 1002), (3, 2, 1003);
INSERT INTO rental SELECT g, 1 + g % 50 FROM generate_series(1, 200) g;
INSERT INTO payment SELECT g, 1 + g % 50, 1 + g % 3, 1 + g % 200, date '2022-01-01' + g % 50 FROM generate_series(1, 400) g;
CREATE TABLE customer_detail (customer_id int PRIMARY KEY, note text);
INSERT INTO customer_detail SELECT g, 'n' FROM generate_series(1, 50) g;
CREATE TABLE users (id bigint PRIMARY KEY);
CREATE TABLE authors (id bigint PRIMARY KEY);
CREATE TABLE book (book_id int PRIMARY KEY, author_id bigint, owner_user_id int, other_id int, empty_id int);
INSERT INTO users SELECT generate_series(1, 10);
INSERT INTO authors SELECT generate_series(1, 10);
CREATE TABLE other (id int PRIMARY KEY);
CREATE TABLE empty (id int PRIMARY KEY);
INSERT INTO other SELECT generate_series(1, 10);
INSERT INTO book SELECT g, 1 + g % 10, 1 + g % 10, CASE WHEN g <= 9 THEN g ELSE 100 + g END, NULL FROM generate_series(1, 10) g;
`

func TestReadInfers(t *testing.T) {
	conn, _ := shared.NewDBWith(t, pagilaData)
	m, err := Read(context.Background(), conn, Options{Infer: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Ref{}
	for _, r := range m.Refs {
		got[r.From.String()+"->"+r.To.String()] = r
		t.Logf("%s -> %s: %s %s", r.From, r.To, r.Origin, r.Why)
	}
	for _, r := range m.Unconfirmed {
		t.Logf("unconfirmed %s -> %s: %s", r.From, r.To, r.Why)
	}
	want := map[string]Origin{
		"public.ledger.store_id->public.store.store_id":                   Declared,
		"public.payment.customer_id->public.customer.customer_id":         Partition,
		"public.payment.staff_id->public.staff.staff_id":                  Partition,
		"public.rental.customer_id->public.customer.customer_id":          Declared,
		"public.store.manager_staff_id->public.staff.staff_id":            Inferred,
		"public.payment.rental_id->public.rental.rental_id":               Inferred,
		"public.customer_detail.customer_id->public.customer.customer_id": Inferred,
		"public.book.author_id->public.authors.id":                        Inferred,
		"public.book.owner_user_id->public.users.id":                      Inferred,
		"public.book.other_id->public.other.id":                           Inferred, // 9 of 10: the default 0.9 keeps it
	}
	for k, o := range want {
		r, ok := got[k]
		if !ok || r.Origin != o {
			t.Errorf("%s: got %v (present %v), want %v", k, r.Origin, ok, o)
		}
		if o == Inferred && (r.Why == "" || r.Overlap < DefaultMinOverlap) {
			t.Errorf("%s: why %q, overlap %v", k, r.Why, r.Overlap)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d references, want %d", len(got), len(want))
	}
	if r := got["public.store.manager_staff_id->public.staff.staff_id"]; r.Overlap != 1 ||
		r.Why != "suffix _staff_id names the key public.staff.staff_id; 100% of 2 sampled values found in the key" {
		t.Errorf("manager_staff_id: overlap %v, why %q", r.Overlap, r.Why)
	}
	unconfirmed := map[string]string{}
	for _, r := range m.Unconfirmed {
		unconfirmed[r.From.String()+"->"+r.To.String()] = r.Why
	}
	for k, why := range map[string]string{
		// Named like a reference to customer, but its values are not there.
		"public.store.legacy_customer_id->public.customer.customer_id": "suffix _customer_id names the key public.customer.customer_id; 0% of 3 sampled values found in the key, below the 90% required",
		"public.book.empty_id->public.empty.id":                        "empty_id names the table public.empty, whose key is id; not confirmed: no value to sample (empty, or all NULL)",
	} {
		if unconfirmed[k] != why {
			t.Errorf("unconfirmed %s: %q, want %q", k, unconfirmed[k], why)
		}
	}
	// customer's own key is not inferred to refer to customer_detail, nor
	// a partition's column to anything.
	for k := range got {
		if strings.HasPrefix(k, "public.customer.") || strings.Contains(k, "payment_p") {
			t.Errorf("unexpected reference %s", k)
		}
	}

	// A stricter threshold leaves other_id out; inference off reads
	// constraints only.
	strict, err := Read(context.Background(), conn, Options{Infer: true, MinOverlap: 0.95})
	if err != nil {
		t.Fatal(err)
	}
	if len(strict.From(col("book", "other_id"))) != 0 {
		t.Errorf("other_id inferred at 95%%: %+v", strict.From(col("book", "other_id")))
	}
	// Limited to two tables, inference tries only their columns and keys.
	two, err := Read(context.Background(), conn, Options{Infer: true, Tables: []schema.TableName{Table("public", "store"), Table("public", "staff")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(two.Refs) != 5 || len(two.From(col("store", "manager_staff_id"))) != 1 || len(two.Unconfirmed) != 0 {
		t.Errorf("limited to store and staff: refs %+v, unconfirmed %+v", two.Refs, two.Unconfirmed)
	}
	off, err := Read(context.Background(), conn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(off.Refs) != 4 || len(off.Unconfirmed) != 0 {
		t.Errorf("without inference: %d refs, %d unconfirmed", len(off.Refs), len(off.Unconfirmed))
	}
}

// A table locked by another session makes its sample time out: the
// candidate is not inferred, and Read goes on with the others.
func TestReadInferTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := shared.NewDB(t)
	conn := pgtest.Connect(t, dsn)
	if _, err := conn.Exec(ctx, pagilaData); err != nil {
		t.Fatal(err)
	}
	locker := pgtest.Connect(t, dsn)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "LOCK TABLE store IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	m, err := Read(ctx, conn, Options{Infer: true, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.From(col("store", "manager_staff_id"))) != 0 || len(m.From(col("payment", "rental_id"))) != 1 {
		t.Fatalf("refs: %+v", m.Refs)
	}
	found := false
	for _, r := range m.Unconfirmed {
		if r.From == col("store", "manager_staff_id") {
			found = strings.HasSuffix(r.Why, "not confirmed: sampling failed (SQLSTATE 57014: statement timeout)")
			t.Log(r.Why)
		}
	}
	if !found {
		t.Errorf("the timed-out candidate is not in Unconfirmed: %+v", m.Unconfirmed)
	}
}
