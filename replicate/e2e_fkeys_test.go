package replicate

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// A Pagila-shaped schema: payment is partitioned and its foreign keys are
// declared on the partitions only; store.manager_staff_id has no
// constraint and is declared in the rules; account has a where.
const fkeysSchema = `
CREATE TABLE store (store_id int PRIMARY KEY, manager_staff_id int NOT NULL, name text);
CREATE TABLE staff (staff_id int PRIMARY KEY, name text);
CREATE TABLE customer (customer_id int PRIMARY KEY, store_id int NOT NULL REFERENCES store (store_id), email text);
CREATE TABLE rental (rental_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer (customer_id) ON DELETE CASCADE);
CREATE TABLE payment (payment_id int NOT NULL, customer_id int NOT NULL, rental_id int, amount numeric(5,2), payment_date date NOT NULL,
  PRIMARY KEY (payment_date, payment_id)) PARTITION BY RANGE (payment_date);
CREATE TABLE payment_p2022_01 PARTITION OF payment FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');
CREATE TABLE payment_p2022_02 PARTITION OF payment FOR VALUES FROM ('2022-02-01') TO ('2022-03-01');
ALTER TABLE payment_p2022_01 ADD FOREIGN KEY (customer_id) REFERENCES customer (customer_id), ADD FOREIGN KEY (rental_id) REFERENCES rental (rental_id);
ALTER TABLE payment_p2022_02 ADD FOREIGN KEY (customer_id) REFERENCES customer (customer_id), ADD FOREIGN KEY (rental_id) REFERENCES rental (rental_id);
CREATE TABLE account (id int PRIMARY KEY, closed boolean NOT NULL);
CREATE TABLE invoice (id int PRIMARY KEY, account_id int REFERENCES account (id));
INSERT INTO staff SELECT g, 'Staff ' || g FROM generate_series(1, 5) g;
INSERT INTO store SELECT g, g, 'Store ' || g FROM generate_series(1, 3) g;
INSERT INTO customer SELECT g, 1 + g % 3, 'c' || g || '@example.com' FROM generate_series(1, 200) g;
INSERT INTO rental SELECT g, 1 + g % 200 FROM generate_series(1, 400) g;
INSERT INTO payment SELECT g, 1 + g % 200, 1 + g % 400, g % 50, date '2022-01-01' + g % 59 FROM generate_series(1, 600) g;
INSERT INTO account SELECT g, g % 4 = 0 FROM generate_series(1, 20) g;
INSERT INTO invoice SELECT g, 1 + g % 20 FROM generate_series(1, 40) g;
`

const fkeysRules = `  store:
    references: {manager_staff_id: staff.staff_id}
    columns: {store_id: keep, manager_staff_id: hash, name: keep}
  staff:
    columns: {staff_id: hash, name: {fake: name}}
  customer:
    columns: {customer_id: hash, store_id: keep, email: {fake: email}}
  rental:
    columns: {rental_id: keep, customer_id: hash}
  payment:
    columns: {payment_id: keep, customer_id: hash, rental_id: keep, amount: keep, payment_date: keep}
  account:
    where: "NOT closed"
    columns: {id: keep, closed: keep}
  invoice:
    columns: {id: keep, account_id: keep}
`

// replicaKeys lists the replica's foreign keys as "table(cols)->table(cols)",
// sorted, each checked to be deferred and validated.
func (e *e2e) replicaKeys() string {
	return strings.Join(e.replicaStrings(`SELECT conrelid::regclass::text || '(' || array_to_string(array(SELECT attname FROM pg_attribute WHERE attrelid = conrelid AND attnum = ANY (conkey)), ',') || ')->' ||
  confrelid::regclass::text || CASE WHEN condeferrable AND condeferred AND convalidated THEN '' ELSE ' NOT DEFERRED OR NOT VALID' END
FROM pg_constraint WHERE contype = 'f' ORDER BY 1`), " ")
}

func TestReplicateForeignKeys(t *testing.T) {
	e := newE2E(t, fkeysSchema, fkeysRules)
	e.start()
	e.sync()
	e.verify()
	all := "customer(store_id)->store payment(customer_id)->customer payment(rental_id)->rental rental(customer_id)->customer store(manager_staff_id)->staff"
	keysAre := func(what, want string) {
		t.Helper()
		e.eventually(what, func() (bool, string) {
			got := e.replicaKeys()
			return got == want, got
		})
	}
	converged := func(what string) {
		t.Helper()
		e.sync()
		e.eventually(what, func() (bool, string) {
			d := e.differences()
			return d == "", d
		})
	}
	keysAre("the replica's foreign keys after the initial copy", all)
	// As Metabase's describe-fks and the SQL standard's views see them.
	var std int
	if err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.referential_constraints WHERE constraint_schema = 'public'`).Scan(&std); err != nil || std != 5 {
		t.Errorf("information_schema.referential_constraints: %d rows (%v), want 5", std, err)
	}
	// The reference to a table with a where is left out, and said so.
	left := e.replicaStrings(`SELECT reference || ': ' || reason FROM pgveil.foreign_keys WHERE state = 'left out'`)
	if len(left) != 1 || !strings.Contains(left[0], "public.invoice (account_id) -> public.account (id)") || !strings.Contains(left[0], "has a where") {
		t.Errorf("left out: %q", left)
	}
	if !strings.Contains(e.logs.String(), "reference left out of the replica's foreign keys") {
		t.Error("the log does not say which reference is left out")
	}

	// Parents and children in one transaction, in both orders.
	e.exec(`BEGIN;
INSERT INTO customer VALUES (1001, 1, 'new@example.com');
INSERT INTO rental VALUES (5001, 1001);
INSERT INTO payment VALUES (9001, 1001, 5001, 3, '2022-01-15');
UPDATE payment SET customer_id = 1001 WHERE payment_id = 1;
COMMIT;
BEGIN;
DELETE FROM payment WHERE customer_id = 7 OR rental_id IN (SELECT rental_id FROM rental WHERE customer_id = 7);
DELETE FROM rental WHERE customer_id = 7;
DELETE FROM customer WHERE customer_id = 7;
COMMIT;
BEGIN;
DELETE FROM payment WHERE customer_id = 8 OR rental_id IN (SELECT rental_id FROM rental WHERE customer_id = 8);
DELETE FROM customer WHERE customer_id = 8; -- its rentals go by cascade
INSERT INTO customer VALUES (8, 2, 'back@example.com');
INSERT INTO rental VALUES (5002, 8);
COMMIT;`)
	converged("parents and children in one transaction")
	keysAre("the foreign keys while streaming", all)

	// A rule change re-copies the referenced table: its keys go while the
	// copy is switched in and come back after.
	resyncs := e.stats.Resyncs.Load()
	e.rulesYML = strings.Replace(e.rulesYML, "email: {fake: email}", "email: null", 1)
	if err := e.p.Reload(context.Background(), e.config()); err != nil {
		t.Fatal(err)
	}
	e.eventually("the re-copy of customer", func() (bool, string) {
		n := e.stats.Resyncs.Load()
		return n > resyncs, fmt.Sprint(n, " re-copies")
	})
	converged("the re-copied referenced table")
	keysAre("the foreign keys after the re-copy", all)

	// Production breaks a reference it does not enforce: the key is left
	// out and replication goes on.
	e.exec(`INSERT INTO store VALUES (99, 999, 'managed by nobody')`)
	converged("a store whose manager does not exist")
	keysAre("the foreign keys without the broken one", strings.Replace(all, " store(manager_staff_id)->staff", "", 1))
	if !strings.Contains(e.logs.String(), "production's changes break it") {
		t.Error("the log does not say which foreign key production broke")
	}
	left = e.replicaStrings(`SELECT reference FROM pgveil.foreign_keys WHERE state = 'left out' ORDER BY 1`)
	if len(left) != 2 {
		t.Errorf("left out after the violation: %q", left)
	}

	// TRUNCATE ... CASCADE empties the partitions of payment unpublished:
	// the keys pointing at the truncated tables go with the TRUNCATE, the
	// partitions' change makes pgveil copy payment again, and they return.
	// Rows written before it in the same transaction have checks pending.
	e.exec(`BEGIN; INSERT INTO rental VALUES (6001, 1); TRUNCATE customer CASCADE;
INSERT INTO customer VALUES (1, 1, 'again@example.com'); INSERT INTO rental VALUES (1, 1); INSERT INTO payment VALUES (1, 1, 1, 1, '2022-02-02'); COMMIT`)
	converged("TRUNCATE ... CASCADE")
	keysAre("the foreign keys after TRUNCATE ... CASCADE", strings.Replace(all, " store(manager_staff_id)->staff", "", 1))
	e.verify()
	if testing.Verbose() {
		t.Log(e.logs.String())
	}
	for _, l := range []string{"raw", "example.com"} {
		if strings.Contains(e.logs.String(), l+"@") {
			t.Errorf("the log holds a value: %s", l)
		}
	}
}
