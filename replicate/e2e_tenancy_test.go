package replicate

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReplicateTenancy follows tenants through the whole pipeline: the
// initial copy creates the tenant roles, a tenant that appears in
// production gets its role with its first rows (no restart), and a row
// moving between tenants moves between their views.
func TestReplicateTenancy(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts, email text);
CREATE TABLE plans (id int PRIMARY KEY, name text);
CREATE TABLE audit (id int PRIMARY KEY, account_id bigint);`, `  accounts:
    tenant: {column: id}
    columns: {id: keep, name: hash}
  orders:
    columns: {id: keep, account_id: keep, email: {fake: email}}
  plans:
    tenant: shared
    columns: {id: keep, name: keep}
  audit:
    tenant: none
    columns: {id: keep, account_id: keep}
`)
	var db string
	if err := e.dst.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	tag := strings.SplitN(db, "_", 2)[0]
	prefix, group := tag+"_acct_", tag+"_tenants"
	e.preamble = fmt.Sprintf("tenancy: {column: account_id, role_prefix: %s, group: %s}\n", prefix, group)
	e.exec(`INSERT INTO accounts VALUES (1, 'Acme'), (2, 'Globex');
INSERT INTO orders SELECT g, 1 + g % 2, 'buyer' || g || '@raw.example' FROM generate_series(1, 10) g;
INSERT INTO plans VALUES (1, 'basic'), (2, 'pro');
INSERT INTO audit VALUES (1, 1);`)
	e.start()
	e.sync()
	e.verify()

	// One login per customer, as an administrator would give them.
	logins := map[string]*pgx.Conn{}
	login := func(tenant string) *pgx.Conn {
		t.Helper()
		if c := logins[tenant]; c != nil {
			return c
		}
		name := tag + "_login" + tenant
		role := pgx.Identifier{prefix + tenant}.Sanitize()
		if _, err := e.dst.Exec(context.Background(), `CREATE ROLE `+name+` LOGIN; GRANT `+role+` TO `+name); err != nil {
			t.Fatalf("login for tenant %s: %v", tenant, err)
		}
		cfg, err := pgx.ParseConfig(e.dstDSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.User = name
		c, err := pgx.ConnectConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		logins[tenant] = c
		return c
	}
	sees := func(tenant, want string) {
		t.Helper()
		var got string
		err := login(tenant).QueryRow(context.Background(), `SELECT coalesce(string_agg(o.id::text, ',' ORDER BY o.id), '') || ' accounts=' || (SELECT count(*) FROM accounts) || ' plans=' || (SELECT count(*) FROM plans)
FROM orders o JOIN accounts a ON a.id = o.account_id`).Scan(&got)
		if err != nil || got != want {
			t.Errorf("tenant %s sees %q (%v), want %q", tenant, got, err, want)
		}
		if _, err := login(tenant).Exec(context.Background(), `SELECT * FROM audit`); err == nil || !strings.Contains(err.Error(), "42501") {
			t.Errorf("tenant %s reading audit: %v, want permission denied", tenant, err)
		}
	}
	sees("1", "2,4,6,8,10 accounts=1 plans=2")
	sees("2", "1,3,5,7,9 accounts=1 plans=2")

	// A new customer signs up while pgveil runs.
	e.exec(`INSERT INTO accounts VALUES (3, 'Initech'); INSERT INTO orders VALUES (11, 3, 'x@raw.example'), (12, 3, NULL)`)
	e.sync()
	sees("3", "11,12 accounts=1 plans=2")

	// An order moves from tenant 1 to tenant 3.
	e.exec(`UPDATE orders SET account_id = 3 WHERE id = 4`)
	e.sync()
	sees("1", "2,6,8,10 accounts=1 plans=2")
	sees("3", "4,11,12 accounts=1 plans=2")

	// A restart changes nothing.
	e.stop()
	e.start()
	e.exec(`INSERT INTO orders VALUES (13, 2, NULL)`)
	e.sync()
	sees("2", "1,3,5,7,9,13 accounts=1 plans=2")
	e.verify()
	// Row level security turned off by hand: pgveil sees it and sets it
	// up again.
	if _, err := e.dst.Exec(context.Background(), `ALTER TABLE orders DISABLE ROW LEVEL SECURITY`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rls bool
		if err := e.dst.QueryRow(context.Background(), `SELECT relrowsecurity FROM pg_class WHERE oid = 'public.orders'::regclass`).Scan(&rls); err != nil {
			t.Fatal(err)
		}
		if rls {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("row level security still off after 30s\n%s", e.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(e.logs.String(), "row level security is off on replicated tables") {
		t.Error("no log line says why pgveil restarted")
	}
	e.sync()
	sees("2", "1,3,5,7,9,13 accounts=1 plans=2")

	// A view that reads as its owner, granted to the tenants after the
	// start: pgveil takes it away from them.
	if _, err := e.dst.Exec(context.Background(), `CREATE VIEW all_orders AS SELECT * FROM orders; GRANT SELECT ON all_orders TO `+group); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var readable bool
		if err := e.dst.QueryRow(context.Background(), `SELECT has_table_privilege($1, 'public.all_orders', 'SELECT')`, group).Scan(&readable); err != nil {
			t.Fatal(err)
		}
		if !readable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenants can still read the view after 30s\n%s", e.logs.String())
		}
	}
	e.sync()
	var roles int
	if err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)`, prefix).Scan(&roles); err != nil || roles != 3 {
		t.Errorf("tenant roles: %d (%v), want 3", roles, err)
	}
}
