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

// dbTag is a prefix unique to the test's replica database, for the
// cluster-wide role names a test creates.
func dbTag(t *testing.T, e *e2e) string {
	t.Helper()
	var db string
	if err := e.dst.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	return strings.SplitN(db, "_", 2)[0]
}

// connectReplicaAs connects to the replica as role.
func connectReplicaAs(t *testing.T, e *e2e, role string) *pgx.Conn {
	t.Helper()
	return pgtest.ConnectAs(t, e.dstDSN, role)
}

// viewState is what pgveil.views records of a view: "created", or
// "kept_out: reason"; "" when it records nothing.
func viewState(t *testing.T, e *e2e, name string) string {
	t.Helper()
	var state, reason string
	err := e.dst.QueryRow(context.Background(), `SELECT state, coalesce(reason, '') FROM pgveil.views WHERE schema_name || '.' || view_name = $1`, name).Scan(&state, &reason)
	if err == pgx.ErrNoRows || err != nil && strings.Contains(err.Error(), "42P01") {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	if reason != "" {
		return state + ": " + reason
	}
	return state
}

func waitViewState(t *testing.T, e *e2e, name, prefix string) {
	t.Helper()
	e.eventually("view "+name+" "+prefix, func() (bool, string) {
		got := viewState(t, e, name)
		return strings.HasPrefix(got, prefix) && (prefix != "" || got == ""), got
	})
}

// Production's views on the replica: one whose columns are all
// replicated is created over the masked tables and readers can read it,
// a view over it too; one that reads a dropped column is not created and
// says why; a materialized view is kept out while pgveil's role on the
// replica is a superuser; a definition changed in production is followed,
// a view dropped there goes.
func TestReplicateViews(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE store (id int PRIMARY KEY, name text);
CREATE TABLE customer (id int PRIMARY KEY, store_id int, name text, email text);
CREATE VIEW customer_list AS SELECT c.id, c.name, s.name AS store FROM customer c JOIN store s ON s.id = c.store_id;
CREATE VIEW named AS SELECT l.id, l.name FROM customer_list l WHERE l.id > 0;
CREATE VIEW emails AS SELECT id, email FROM customer;
CREATE VIEW over_emails AS SELECT count(*) AS n FROM emails;
CREATE MATERIALIZED VIEW per_store AS SELECT store_id, count(*) AS n FROM customer GROUP BY store_id;`, `  store:
    columns: {id: keep, name: keep}
  customer:
    columns: {id: keep, store_id: keep, name: {fake: name}, email: drop}
`)
	tag := dbTag(t, e)
	reader := tag + "_vreader"
	if _, err := e.dst.Exec(context.Background(), `CREATE ROLE `+reader+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	e.readers = []string{reader}
	e.exec(`INSERT INTO store VALUES (1, 'north'), (2, 'south');
INSERT INTO customer SELECT g, 1 + g % 2, 'Person ' || g, 'p' || g || '@raw.example' FROM generate_series(1, 40) g;`)
	e.start()
	e.sync()
	waitViewState(t, e, "public.named", "created")

	// Masked values: the view's names are the replica's, not production's.
	ctx := context.Background()
	r := connectReplicaAs(t, e, reader)
	var n, same, raw int
	if err := r.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE l.name = c.name), count(*) FILTER (WHERE l.name LIKE 'Person %') FROM public.customer_list l JOIN public.customer c USING (id)`).Scan(&n, &same, &raw); err != nil {
		t.Fatalf("the reader reads customer_list: %v", err)
	}
	if n != 40 || same != 40 || raw != 0 {
		t.Errorf("customer_list as the reader: %d rows, %d with the replica's masked name, %d with production's; want 40, 40, 0", n, same, raw)
	}
	if err := r.QueryRow(ctx, `SELECT count(*) FROM public.named`).Scan(&n); err != nil || n != 40 {
		t.Errorf("the reader reads the view over a view: %d rows (%v), want 40", n, err)
	}
	var invoker bool
	if err := e.dst.QueryRow(ctx, `SELECT coalesce(reloptions @> '{security_invoker=true}', false) FROM pg_class WHERE oid = 'public.customer_list'::regclass`).Scan(&invoker); err != nil || !invoker {
		t.Errorf("customer_list is not security_invoker (%v)", err)
	}

	// Kept out, with the column that keeps it out; nothing created.
	waitViewState(t, e, "public.emails", "kept_out: reads public.customer.email, which its rule drops")
	waitViewState(t, e, "public.over_emails", "kept_out: reads public.emails, which is kept out")
	waitViewState(t, e, "public.per_store", "kept_out: pgveil's role on the replica is a superuser")
	var exists bool
	if err := e.dst.QueryRow(ctx, `SELECT to_regclass('public.emails') IS NOT NULL OR to_regclass('public.per_store') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("a kept-out view exists on the replica (%v)", err)
	}
	if !strings.Contains(e.logs.String(), "view kept out of the replica") {
		t.Error("no log line names the views kept out")
	}

	// Production changes a definition, drops a view: followed.
	e.exec(`CREATE OR REPLACE VIEW named AS SELECT l.id, l.name FROM customer_list l WHERE l.id > 30`)
	e.exec(`DROP VIEW over_emails`)
	e.eventually("the new definition on the replica", func() (bool, string) {
		var n int
		if err := r.QueryRow(ctx, `SELECT count(*) FROM public.named`).Scan(&n); err != nil {
			return false, err.Error()
		}
		return n == 10, fmt.Sprintf("%d rows", n)
	})
	waitViewState(t, e, "public.over_emails", "")

	// A rule change that copies customer again: the views over it are
	// switched in with the new table, in the same transaction.
	var before string
	if err := e.dst.QueryRow(ctx, `SELECT rules_hash FROM pgveil.tables WHERE schema_name = 'public' AND table_name = 'customer'`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	e.rulesYML = strings.Replace(e.rulesYML, "name: {fake: name}", "name: hash", 1)
	if err := e.p.Reload(ctx, e.config()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, "customer copied again", `rules_hash <> $1 FROM pgveil.tables WHERE schema_name = 'public' AND table_name = 'customer'`, before)
	if err := r.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE l.name = c.name) FROM public.customer_list l JOIN public.customer c USING (id)`).Scan(&n, &same); err != nil || n != 40 || same != 40 {
		t.Errorf("customer_list after the re-copy, as the reader: %d rows, %d with the new table's names (%v); want 40, 40", n, same, err)
	}
	if got := viewState(t, e, "public.named"); got != "created" {
		t.Errorf("named after the re-copy: %s", got)
	}

	// A rule change that drops a column a view reads: the view goes
	// before the column does, and the rest keeps streaming.
	e.rulesYML = strings.Replace(e.rulesYML, "name: hash", "name: drop", 1)
	if err := e.p.Reload(ctx, e.config()); err != nil {
		t.Fatal(err)
	}
	waitViewState(t, e, "public.customer_list", "kept_out: reads public.customer.name, which its rule drops")
	waitViewState(t, e, "public.named", "kept_out: reads public.customer_list, which is kept out")
	e.sync()
	e.verify()
}

// A materialized view under a least-privilege target role: created, then
// filled after the initial copy, and refreshed on the schedule.
func TestReplicateMaterializedViews(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE customer (id int PRIMARY KEY, store_id int, email text);
CREATE MATERIALIZED VIEW per_store AS SELECT store_id, count(*) AS n FROM customer GROUP BY store_id;
CREATE VIEW big_stores AS SELECT store_id FROM per_store WHERE n > 10;`, `  customer:
    columns: {id: keep, store_id: keep, email: {fake: email}}
`)
	tag := dbTag(t, e)
	writer := tag + "_vwriter"
	ctx := context.Background()
	var db string
	if err := e.dst.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dst.Exec(ctx, `CREATE ROLE `+writer+` LOGIN; ALTER DATABASE `+schema.QuoteIdent(db)+` OWNER TO `+writer); err != nil {
		t.Fatal(err)
	}
	e.dstDSN = strings.Replace(e.dstDSN, "user=postgres", "user="+writer, 1)
	e.targetExtra = ", refresh_materialized_views: 1s"
	e.exec(`INSERT INTO customer SELECT g, g % 3, 'p' || g || '@raw.example' FROM generate_series(1, 30) g`)
	e.start()
	e.sync()
	counts := func() string {
		var s string
		if err := e.dst.QueryRow(ctx, `SELECT string_agg(store_id || ':' || n, ',' ORDER BY store_id) FROM public.per_store`).Scan(&s); err != nil {
			return err.Error()
		}
		return s
	}
	e.eventually("per_store filled", func() (bool, string) { s := counts(); return s == "0:10,1:10,2:10", s })
	if got := viewState(t, e, "public.big_stores"); got != "created" {
		t.Errorf("big_stores: %s, want created", got)
	}
	e.exec(`INSERT INTO customer SELECT g, 0, NULL FROM generate_series(31, 35) g`)
	e.eventually("per_store refreshed", func() (bool, string) { s := counts(); return s == "0:15,1:10,2:10", s })
	var big int
	if err := e.dst.QueryRow(ctx, `SELECT count(*) FROM public.big_stores`).Scan(&big); err != nil || big != 1 {
		t.Errorf("big_stores: %d rows (%v), want 1", big, err)
	}
	var owner string
	if err := e.dst.QueryRow(ctx, `SELECT relowner::regrole::text FROM pg_class WHERE oid = 'public.per_store'::regclass`).Scan(&owner); err != nil || owner != writer {
		t.Errorf("per_store is owned by %s (%v), want pgveil's role %s", owner, err, writer)
	}
}

// Under tenancy, a tenant login reads a view as itself: row level security
// applies through it and it sees its own rows only.
func TestReplicateViewsTenancy(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, account_id bigint NOT NULL, total int);
CREATE TABLE audit (id int PRIMARY KEY, account_id bigint);
CREATE VIEW order_list AS SELECT o.id, o.total, a.name FROM orders o JOIN accounts a ON a.id = o.account_id;
CREATE VIEW audit_list AS SELECT id FROM audit;`, `  accounts:
    tenant: {column: id}
    columns: {id: keep, name: hash}
  orders:
    columns: {id: keep, account_id: keep, total: keep}
  audit:
    tenant: none
    columns: {id: keep, account_id: keep}
`)
	tag := dbTag(t, e)
	prefix, group := tag+"_vacct_", tag+"_vtenants"
	e.preamble = fmt.Sprintf("tenancy: {column: account_id, role_prefix: %s, group: %s}\n", prefix, group)
	e.exec(`INSERT INTO accounts VALUES (1, 'Acme'), (2, 'Globex');
INSERT INTO orders SELECT g, 1 + g % 2, g FROM generate_series(1, 10) g;
INSERT INTO audit VALUES (1, 1);`)
	e.start()
	e.sync()
	waitViewState(t, e, "public.order_list", "created")
	waitViewState(t, e, "public.audit_list", "created")
	ctx := context.Background()
	var all int
	if err := e.dst.QueryRow(ctx, `SELECT count(*) FROM public.order_list`).Scan(&all); err != nil || all != 10 {
		t.Fatalf("order_list as pgveil: %d rows (%v), want 10", all, err)
	}
	c := tenantLogin(t, e, tag+"_vlogin1", prefix+"1")
	var ids string
	if err := c.QueryRow(ctx, `SELECT string_agg(id::text, ',' ORDER BY id) FROM public.order_list`).Scan(&ids); err != nil || ids != "2,4,6,8,10" {
		t.Errorf("tenant 1 reads order_list: %q (%v), want 2,4,6,8,10", ids, err)
	}
	// A view over a table tenants may not read is not theirs either.
	if _, err := c.Exec(ctx, `SELECT * FROM public.audit_list`); err == nil || !strings.Contains(err.Error(), "42501") {
		t.Errorf("tenant 1 reads audit_list: %v, want permission denied", err)
	}
	var leaky bool
	if err := e.dst.QueryRow(ctx, `SELECT has_table_privilege($1, 'public.audit_list', 'SELECT')`, group).Scan(&leaky); err != nil || leaky {
		t.Errorf("the tenant group may select audit_list (%v)", err)
	}
}
