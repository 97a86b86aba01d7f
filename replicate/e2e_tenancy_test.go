package replicate

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/schema"
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
		logins[tenant] = tenantLogin(t, e, tag+"_login"+tenant, prefix+tenant)
		return logins[tenant]
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
	waitFor(t, e, "row level security set up again", `relrowsecurity FROM pg_class WHERE oid = 'public.orders'::regclass`)
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
	waitFor(t, e, "the view taken from the tenants", `NOT has_table_privilege($1, 'public.all_orders', 'SELECT')`, group)
	e.sync()
	var roles int
	if err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)`, prefix).Scan(&roles); err != nil || roles != 3 {
		t.Errorf("tenant roles: %d (%v), want 3", roles, err)
	}
}

// tenantLogin creates a login that is a member of a tenant role on the
// replica, and connects as it.
func tenantLogin(t *testing.T, e *e2e, name, role string) *pgx.Conn {
	t.Helper()
	if _, err := e.dst.Exec(context.Background(), `CREATE ROLE `+name+` LOGIN; GRANT `+schema.QuoteIdent(role)+` TO `+name); err != nil {
		t.Fatalf("login for %s: %v", role, err)
	}
	return pgtest.ConnectAs(t, e.dstDSN, name)
}

// waitFor polls cond on the replica until it holds.
func waitFor(t *testing.T, e *e2e, what, cond string, args ...any) {
	t.Helper()
	e.eventually(what, func() (bool, string) {
		var ok bool
		if err := e.dst.QueryRow(context.Background(), `SELECT `+cond, args...).Scan(&ok); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return ok, "SELECT " + cond + " is false"
	})
}

// TestReplicateTenancyReload adds a tenancy section to running rules and
// takes it away again: the tenants get their roles from the data already
// there, then lose the tables before row level security goes.
func TestReplicateTenancyReload(t *testing.T) {
	plain := `  accounts:
    columns: {id: keep, name: keep}
  orders:
    columns: {id: keep, account_id: keep, total: keep}
`
	e := newE2E(t, `
CREATE TABLE accounts (id bigint PRIMARY KEY, name text);
CREATE TABLE orders (id int PRIMARY KEY, account_id bigint, total int);`, plain)
	var db string
	if err := e.dst.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	tag := strings.SplitN(db, "_", 2)[0]
	prefix, group := tag+"_r_", tag+"_rgroup"
	e.exec(`INSERT INTO accounts VALUES (1, 'a'), (2, 'b'); INSERT INTO orders SELECT g, 1 + g % 2, g FROM generate_series(1, 6) g`)
	e.start()
	e.sync()

	reload := func(preamble, rulesYML string) {
		t.Helper()
		e.preamble, e.rulesYML = preamble, rulesYML+"\n  pgveil_marker:\n    columns: {id: keep, n: keep}\n"
		if err := e.p.Reload(context.Background(), e.config()); err != nil {
			t.Fatal(err)
		}
	}
	reload(fmt.Sprintf("tenancy: {column: account_id, role_prefix: %s, group: %s}\n", prefix, group),
		strings.Replace(plain, "  accounts:\n", "  accounts:\n    tenant: {column: id}\n", 1))
	waitFor(t, e, "tenant roles from the rows already replicated", `count(*) = 2 FROM pg_roles WHERE starts_with(rolname, $1)`, prefix)
	e.sync()
	one := tenantLogin(t, e, tag+"_rl1", prefix+"1")
	var got string
	if err := one.QueryRow(context.Background(), `SELECT string_agg(id::text, ',' ORDER BY id) FROM orders`).Scan(&got); err != nil || got != "2,4,6" {
		t.Errorf("tenant 1 after the reload: %q (%v), want 2,4,6", got, err)
	}

	// Tenancy taken away: the tenants lose the tables.
	reload("", plain)
	waitFor(t, e, "row level security gone", `NOT relrowsecurity FROM pg_class WHERE oid = 'public.orders'::regclass`)
	e.sync()
	if _, err := one.Exec(context.Background(), `SELECT * FROM orders`); err == nil || !strings.Contains(err.Error(), "42501") {
		t.Errorf("former tenant reading orders: %v, want permission denied", err)
	}
	e.verify()
}

// A tenant login that can create something (here TEMPORARY, granted by
// hand), which pgveil cannot take back since the login is not its role,
// stops the first start; on an existing replica pgveil logs it at every
// start and keeps streaming, since the login could do the same before.
func TestReplicateTenantLoginThatCanCreate(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE orders (id int PRIMARY KEY, account_id bigint NOT NULL);
INSERT INTO orders SELECT g, 1 + g % 2 FROM generate_series(1, 10) g;`, `  orders:
    columns: {id: keep, account_id: keep}
`)
	var db string
	if err := e.dst.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	tag := strings.SplitN(db, "_", 2)[0]
	prefix, group := tag+"_cc_", tag+"_cctenants"
	e.preamble = fmt.Sprintf("tenancy: {column: account_id, role_prefix: %s, group: %s}\n", prefix, group)
	e.start()
	e.sync()
	login := tag + "_cclogin"
	tenantLogin(t, e, login, prefix+"1")
	if _, err := e.dst.Exec(context.Background(), `GRANT TEMPORARY ON DATABASE `+schema.QuoteIdent(db)+` TO `+login); err != nil {
		t.Fatal(err)
	}
	e.stop()
	e.start()
	e.exec(`INSERT INTO orders VALUES (11, 1)`)
	e.sync()
	if n := e.count("public.orders"); n != 11 {
		t.Errorf("orders: %d rows, want 11", n)
	}
	if !strings.Contains(e.logs.String(), "can create objects in the analytics database") || !strings.Contains(e.logs.String(), "TEMPORARY ON DATABASE") {
		t.Errorf("the log does not say the login can create:\n%s", e.logs.String())
	}
}
