package refs

import (
	"context"
	"testing"

	"pgveil/internal/pgtest"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { pgtest.Main(m, &shared) }

// pagila has Pagila's shape: payment is partitioned and its foreign keys
// sit on the partitions only; store.manager_staff_id has no constraint.
const pagila = `
CREATE TABLE customer (customer_id int PRIMARY KEY, name text);
CREATE TABLE staff (staff_id int PRIMARY KEY, name text);
CREATE TABLE store (store_id int PRIMARY KEY, manager_staff_id int);
CREATE TABLE rental (rental_id int PRIMARY KEY, customer_id int REFERENCES customer);
CREATE TABLE payment (payment_id int, customer_id int, staff_id int, rental_id int, payment_date date NOT NULL)
  PARTITION BY RANGE (payment_date);
CREATE TABLE payment_p1 PARTITION OF payment FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');
CREATE TABLE payment_p2 PARTITION OF payment FOR VALUES FROM ('2022-02-01') TO ('2022-03-01');
ALTER TABLE payment_p1 ADD FOREIGN KEY (customer_id) REFERENCES customer, ADD FOREIGN KEY (staff_id) REFERENCES staff;
ALTER TABLE payment_p2 ADD FOREIGN KEY (customer_id) REFERENCES customer, ADD FOREIGN KEY (staff_id) REFERENCES staff;
CREATE TABLE ledger (id int, store_id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE ledger_p1 PARTITION OF ledger FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');
ALTER TABLE ledger ADD FOREIGN KEY (store_id) REFERENCES store;
`

func TestReadLiftsPartitionKeysToTheRoot(t *testing.T) {
	conn, _ := shared.NewDBWith(t, pagila)
	m, err := Read(context.Background(), conn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Origin{
		"public.ledger.store_id->public.store.store_id":           Declared,
		"public.payment.customer_id->public.customer.customer_id": Partition,
		"public.payment.staff_id->public.staff.staff_id":          Partition,
		"public.rental.customer_id->public.customer.customer_id":  Declared,
	}
	got := map[string]Origin{}
	for _, r := range m.Refs {
		got[r.From.String()+"->"+r.To.String()] = r.Origin
	}
	if len(got) != len(want) || len(m.Refs) != len(want) {
		t.Fatalf("refs = %v, want %v", got, want)
	}
	for k, o := range want {
		if g, ok := got[k]; !ok || g != o {
			t.Errorf("%s: got %v (present %v), want %v", k, g, ok, o)
		}
	}
}
