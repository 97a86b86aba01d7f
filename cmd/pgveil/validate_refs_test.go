package main

import (
	"context"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
)

// pagilaShape is Pagila's shape: payment is partitioned and its foreign
// keys sit on the partitions only; store.manager_staff_id has none.
const pagilaShape = `
CREATE TABLE customer (customer_id int PRIMARY KEY, name text);
CREATE TABLE staff (staff_id int PRIMARY KEY, name text);
CREATE TABLE store (store_id int PRIMARY KEY, manager_staff_id int);
CREATE TABLE rental (rental_id int PRIMARY KEY, customer_id int REFERENCES customer);
CREATE TABLE payment (payment_id int, customer_id int, staff_id int, rental_id int, payment_date date NOT NULL,
  PRIMARY KEY (payment_id, payment_date)) PARTITION BY RANGE (payment_date);
CREATE TABLE payment_p1 PARTITION OF payment FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');
CREATE TABLE payment_p2 PARTITION OF payment FOR VALUES FROM ('2022-02-01') TO ('2022-03-01');
ALTER TABLE payment_p1 ADD FOREIGN KEY (customer_id) REFERENCES customer, ADD FOREIGN KEY (staff_id) REFERENCES staff,
  ADD FOREIGN KEY (rental_id) REFERENCES rental;
ALTER TABLE payment_p2 ADD FOREIGN KEY (customer_id) REFERENCES customer, ADD FOREIGN KEY (staff_id) REFERENCES staff,
  ADD FOREIGN KEY (rental_id) REFERENCES rental;
INSERT INTO customer SELECT g, $1 || g FROM generate_series(1, 40) g;
INSERT INTO staff SELECT g, $1 || g FROM generate_series(1, 3) g;
INSERT INTO store VALUES (1, 1), (2, 2);
INSERT INTO rental SELECT g, 1 + g % 40 FROM generate_series(1, 100) g;
INSERT INTO payment SELECT g, 1 + g % 40, 1 + g % 3, 1 + g % 100, date '2022-01-01' + g % 55 FROM generate_series(1, 300) g;
`

const pagilaRules = `source: {dsn: "${SOURCE_DSN}"}
target: {dsn: "${TARGET_DSN}"}
secret: ${PGVEIL_SECRET}
tables:
  customer:
    columns:
      customer_id: hash
      name: {fake: name}
  staff:
    columns:
      staff_id: hash
      name: {fake: name}
  store:
    columns:
      store_id: keep
      manager_staff_id: hash
  rental:
    columns:
      rental_id: hash
      customer_id: hash
  payment:
    columns:
      payment_id: keep
      customer_id: hash
      staff_id: hash
      rental_id: hash
      payment_date: keep
`

// TestValidateKeepsJoins: online, validate checks every reference of a
// Pagila-shaped schema (foreign keys on partitions, one inferred), names
// both sides of a pair masked differently, and accepts the difference
// when the rules say references: {COL: none}; offline, it checks the
// references the rules declare and says that is all it checked.
func TestValidateKeepsJoins(t *testing.T) {
	dsn := clusters.Source.NewDB(t)
	if err := pgtest.Exec(context.Background(), dsn, strings.ReplaceAll(pagilaShape, "$1", "'"+canary+"'")); err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, srcDSN: dsn, dstDSN: "host=analytics.invalid"}

	file := writeRules(t, pagilaRules)
	code, out, errOut := s.cli("validate", "-c", file)
	t.Logf("consistent:\n%s%s", out, errOut)
	if code != exitOK || !strings.Contains(out, "\nreferences: 5 between the rules' tables checked (1 foreign key, 3 foreign keys on partitions, 1 inferred): each referencing column is masked as its key") {
		t.Fatalf("consistent: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// payment.customer_id kept while customer.customer_id is hashed.
	kept := strings.Replace(pagilaRules, "      customer_id: hash\n      staff_id", "      customer_id: keep\n      staff_id", 1)
	file = writeRules(t, kept)
	code, out, errOut = s.cli("validate", "-c", file)
	t.Logf("payment.customer_id kept:\n%s%s", out, errOut)
	at := func(line string) string {
		return file + ":" + itoa(lineOf(t, file, line)) + ":7"
	}
	want := at("customer_id: keep") + ": public.payment.customer_id: masked with keep, but it references public.customer.customer_id (foreign key payment_p1_customer_id_fkey on the partitions), masked with hash at " +
		at("customer_id: hash") + ": joins from public.payment to public.customer find no rows on the replica, and the raw values here undo the key's mask. Use hash here; or, if the difference is deliberate, write references: {customer_id: none} under public.payment\n1 problem\n"
	if code != exitProblems || errOut != want || out != "" {
		t.Errorf("payment.customer_id kept: exit %d\nstdout: %s\nstderr: %s\nwant stderr: %s", code, out, errOut, want)
	}

	// The same, accepted on purpose.
	accepted := strings.Replace(kept, "  payment:\n    columns:", "  payment:\n    references: {customer_id: none}\n    columns:", 1)
	code, out, errOut = s.cli("validate", "-c", writeRules(t, accepted))
	if code != exitOK || !strings.Contains(out, "references: 4 between") {
		t.Errorf("none: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// The inferred reference: store.manager_staff_id kept.
	inferred := strings.Replace(pagilaRules, "manager_staff_id: hash", "manager_staff_id: keep", 1)
	file = writeRules(t, inferred)
	code, _, errOut = s.cli("validate", "-c", file)
	if want := "public.store.manager_staff_id: masked with keep, but it references public.staff.staff_id (inferred: suffix _staff_id names the key public.staff.staff_id; 100% of 2 sampled values found in the key), masked with hash at " + file + ":" + itoa(lineOf(t, file, "staff_id: hash")); code != exitProblems || !strings.Contains(errOut, want) {
		t.Errorf("inferred: exit %d\nstderr: %s\nwant: %s", code, errOut, want)
	}

	// Offline, a reference the rules declare is checked, and nothing else.
	declared := strings.Replace(inferred, "  store:\n    columns:", "  store:\n    references: {manager_staff_id: staff.staff_id}\n    columns:", 1)
	code, out, errOut = s.cli("validate", "--offline", "-c", writeRules(t, declared))
	if code != exitProblems || !strings.Contains(errOut, "public.store.manager_staff_id: masked with keep, but it references public.staff.staff_id (declared in the rules at ") || !strings.Contains(errOut, "\n1 problem\n") {
		t.Errorf("offline, declared: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, out, errOut = s.cli("validate", "--offline", "-c", writeRules(t, kept))
	if code != exitOK || !strings.Contains(out, "\nreferences: offline, only the 0 declared in the rules were checked (0 marked none); validate online also checks the source's foreign keys and the references it infers\n") {
		t.Errorf("offline: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
