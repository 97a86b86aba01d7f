package replicate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/metabase"
	"pgveil/internal/pgtest"
	"pgveil/replicate/target"
)

// TestReplicateMetabaseSync runs the sync queries of Metabase's PostgreSQL
// driver (internal/metabase) on the example SaaS replica as each role
// Metabase may connect with: the reader, a tenant's login and the
// impersonator of connection impersonation (NOINHERIT, before any SET
// ROLE, as Metabase syncs). Each lists every table it reads (the
// impersonator: every table, its policy giving it no row), sees every
// primary key, and the foreign keys the replica has; the impersonator
// reads no row until it takes a tenant's role, and a statement prepared
// once follows its SET ROLE.
func TestReplicateMetabaseSync(t *testing.T) {
	e := newSaaSE2E(t)
	ctx := context.Background()
	var db string
	if err := e.dst.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	tag := strings.SplitN(db, "_", 2)[0]
	reader, imp, prefix, group := tag+"_mb_ro", tag+"_mb_imp", tag+"_t_", tag+"_tenants"
	if _, err := e.dst.Exec(ctx, `CREATE ROLE `+reader+` LOGIN NOINHERIT; CREATE ROLE `+imp+` LOGIN NOINHERIT`); err != nil {
		t.Fatal(err)
	}
	e.readers = []string{reader}
	e.preamble = fmt.Sprintf("tenancy: {column: account_id, role_prefix: %s, group: %s, impersonators: [%s]}\n", prefix, group, imp)
	e.exec(`
INSERT INTO accounts (name, plan, country) SELECT 'Acme ' || g, 'team', 'FR' FROM generate_series(1, 3) g;
INSERT INTO users (account_id, email, full_name, password_hash) SELECT 1 + g % 3, 'u' || g || '@x.example', 'User ' || g, 'h' FROM generate_series(1, 9) g;
INSERT INTO customers (account_id, email, full_name, country) SELECT 1 + g % 3, 'c' || g || '@x.example', 'Customer ' || g, 'FR' FROM generate_series(1, 30) g;
INSERT INTO orders (account_id, customer_id, status, total) SELECT 1 + g % 3, 1 + g % 30, 'paid', g FROM generate_series(1, 60) g;
INSERT INTO payments (order_id, amount, method) SELECT g, g, 'card' FROM generate_series(1, 60) g;`)
	e.start()
	e.sync()

	connect := func(user string) *pgx.Conn {
		t.Helper()
		return pgtest.ConnectAs(t, e.dstDSN, user)
	}
	// A tenant's own login, as an administrator gives one, with the
	// search_path docs/operations.md asks for when Metabase connects
	// with it.
	login := tag + "_login1"
	if _, err := e.dst.Exec(ctx, `CREATE ROLE `+login+` LOGIN; GRANT `+prefix+`1 TO `+login+`;
ALTER ROLE `+login+` SET search_path = `+target.CatalogShadowPath); err != nil {
		t.Fatal(err)
	}
	one := connect(login)

	// What the replica has, read as its superuser.
	all := e.replicaStrings(`SELECT c.relname::text FROM pg_class c JOIN pgveil.tables p ON p.schema_name = 'public' AND p.table_name = c.relname
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`)
	// Tenants read the tables with a tenant column: payments has none,
	// nor has the harness's marker.
	tenantTables := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == "payments" || n == "pgveil_marker" })
	if len(all) != 8 || len(tenantTables) != 6 {
		t.Fatalf("replicated tables: %v", all)
	}
	wantKeys := func(tables []string) []string {
		return e.replicaStrings(`SELECT c.relname || '.' || a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
WHERE i.indisprimary AND c.relnamespace = 'public'::regnamespace AND c.relname = ANY('{` + strings.Join(tables, ",") + `}'::text[]) ORDER BY 1`)
	}
	// Every foreign key of the replica, column by column: production's
	// nine but the two to customers, whose `where` could leave orders and
	// tickets without their customer (replicate/target/fkeys.go). The
	// keys are added once the copy has committed: wait for them.
	wantFKs := []string{"customers.account_id->accounts.id", "events.account_id->accounts.id", "events.user_id->users.id",
		"orders.account_id->accounts.id", "payments.order_id->orders.id", "support_tickets.account_id->accounts.id", "users.account_id->accounts.id"}
	e.eventually("the replica's foreign keys", func() (bool, string) {
		got := e.replicaStrings(`SELECT c.conrelid::regclass::text || '.' || a.attname || '->' || c.confrelid::regclass::text || '.' || b.attname
FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey, c.confkey) k(fk, pk)
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.fk JOIN pg_attribute b ON b.attrelid = c.confrelid AND b.attnum = k.pk
WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace ORDER BY 1`)
		return slices.Equal(got, wantFKs), strings.Join(got, " ")
	})

	for _, c := range []struct {
		who    string
		conn   *pgx.Conn
		tables []string
	}{
		{"reader", connect(reader), all},
		{"tenant 1's login", one, tenantTables},
		{"impersonator", connect(imp), all},
	} {
		listed, err := metabase.Tables(ctx, c.conn, []string{"public"})
		if err != nil {
			t.Fatalf("%s: %v", c.who, err)
		}
		var names []string
		for _, tb := range listed {
			names = append(names, tb.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, c.tables) {
			t.Errorf("%s: Metabase lists tables %v, want %v", c.who, names, c.tables)
		}
		fields, err := metabase.Fields(ctx, c.conn, []string{"public"})
		if err != nil {
			t.Fatalf("%s: %v", c.who, err)
		}
		var keys []string
		for _, f := range fields {
			if f.PK {
				keys = append(keys, f.Table+"."+f.Name)
			}
		}
		slices.Sort(keys)
		if want := wantKeys(c.tables); !slices.Equal(keys, want) || len(keys) != len(c.tables) {
			t.Errorf("%s: Metabase marks primary keys %v, want %v", c.who, keys, want)
		}
		fks, err := metabase.ForeignKeys(ctx, c.conn, []string{"public"})
		if err != nil {
			t.Fatalf("%s: %v", c.who, err)
		}
		var got []string
		for _, k := range fks {
			got = append(got, k.FKTable+"."+k.FKColumn+"->"+k.PKTable+"."+k.PKColumn)
		}
		slices.Sort(got)
		if !slices.Equal(got, wantFKs) {
			t.Errorf("%s: Metabase finds foreign keys %v, want %v", c.who, got, wantFKs)
		}
	}

	// Connection impersonation as Metabase sends it: one statement
	// prepared once, run under each tenant's role and under none.
	mb := connect(imp)
	const q = `SELECT count(*) FROM public.customers`
	if _, err := mb.Prepare(ctx, "mb_q", q); err != nil {
		t.Fatal(err)
	}
	count := func(who string) int64 {
		t.Helper()
		var n int64
		if err := mb.QueryRow(ctx, "mb_q").Scan(&n); err != nil {
			t.Fatalf("impersonator as %s: %v", who, err)
		}
		return n
	}
	var total int64
	for _, tenant := range []string{"1", "2", "1"} {
		if _, err := mb.Exec(ctx, `SET ROLE `+prefix+tenant+`;`); err != nil {
			t.Fatal(err)
		}
		var want int64
		if err := e.dst.QueryRow(ctx, `SELECT count(*) FROM public.customers WHERE account_id = `+tenant).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := count("tenant " + tenant); got != want || want == 0 {
			t.Errorf("impersonating tenant %s: %d customers, want %d", tenant, got, want)
		}
		total += want
		if _, err := mb.Exec(ctx, `SET ROLE NONE;`); err != nil {
			t.Fatal(err)
		}
		if got := count("itself"); got != 0 {
			t.Errorf("impersonator after SET ROLE NONE: %d customers, want 0", got)
		}
	}
	for _, table := range tenantTables {
		var n int64
		if err := mb.QueryRow(ctx, `SELECT count(*) FROM public.`+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("impersonator, without a tenant's role: %d rows of %s (%v), want 0", n, table, err)
		}
	}
}
