package target

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"
)

// tenancyDB is a database whose replica pgveil's role (owner, CREATEROLE,
// no superuser) owns, with unique role names: roles are cluster-wide.
type tenancyDB struct {
	ctx                context.Context
	dsn                string
	tag                string    // unique per test: t12
	owner              *pgx.Conn // pgveil's role
	admin              *pgx.Conn // superuser
	plan               *transform.Plan
	tn                 *Tenancy
	reader, imp, group string
}

func (d *tenancyDB) role(s string) string { return d.tag + s }

// tenant is the role of tenant value v.
func (d *tenancyDB) tenant(v string) string { return d.tn.RolePrefix + v }

func newTenancyDB(t testing.TB) *tenancyDB {
	t.Helper()
	ctx := pgtest.Context(t)
	dsn := shared.NewDB(t)
	d := &tenancyDB{ctx: ctx, dsn: dsn, tag: strings.SplitN(dbName(t, dsn), "_", 2)[0]}
	d.admin = pgtest.Connect(t, dsn)
	w, r, imp := d.role("w"), d.role("ro"), d.role("mb")
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+w+` LOGIN CREATEROLE`)
	pgtest.MustExec(t, d.admin, `ALTER DATABASE `+pgx.Identifier{dbName(t, dsn)}.Sanitize()+` OWNER TO `+w)
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+r+` LOGIN`)
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+imp+` LOGIN NOINHERIT`)
	// What pgveil setup-sql has a superuser run: pgveil's role is none.
	for _, q := range LockDownSQL() {
		pgtest.MustExec(t, d.admin, q)
	}
	d.owner = pgtest.ConnectAs(t, dsn, w)
	d.reader, d.imp, d.group = r, imp, d.role("tenants")
	d.plan = plan(
		table("app", "accounts", pk("id", "bigint"), c("name", "text")),
		table("app", "orders", pk("id", "integer"), c("account_id", "bigint"), c("total", "numeric")),
		table("app", "plans", pk("id", "integer"), c("name", "text")),
		table("app", "audit", pk("id", "integer"), c("account_id", "bigint")),
		table("app", "notes", pk("id", "integer"), c("body", "text")),
	)
	d.tn = &Tenancy{RolePrefix: d.role("ten_"), Group: d.group, Impersonators: []string{imp}, Tables: map[schema.TableName]TenantTable{
		{Schema: "app", Name: "accounts"}: {Column: "id"},
		{Schema: "app", Name: "orders"}:   {Column: "account_id"},
		{Schema: "app", Name: "plans"}:    {Shared: true},
		// audit has the column but is not listed: hidden; so is notes.
	}}
	if err := Setup(ctx, d.owner, d.plan, nil, []string{r}); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, d.owner, `INSERT INTO app.accounts VALUES (1, 'one'), (2, 'two')`)
	pgtest.MustExec(t, d.owner, `INSERT INTO app.orders VALUES (10, 1, 5), (11, 1, 7), (12, 1, 11), (20, 2, 100), (21, 2, 200)`)
	pgtest.MustExec(t, d.owner, `INSERT INTO app.plans VALUES (1, 'basic'), (2, 'pro')`)
	pgtest.MustExec(t, d.owner, `INSERT INTO app.audit VALUES (1, 1), (2, 2)`)
	pgtest.MustExec(t, d.owner, `INSERT INTO app.notes VALUES (1, 'x')`)
	return d
}

func (d *tenancyDB) setup(t testing.TB) []string {
	t.Helper()
	revoked, err := SetupTenancy(d.ctx, d.owner, d.plan, d.tn, []string{d.reader})
	if err != nil {
		t.Fatal(err)
	}
	return revoked
}

// login creates a login role that is a member of the tenant roles of
// values, as an administrator gives one customer its own connection.
func (d *tenancyDB) login(t testing.TB, name string, values ...string) *pgx.Conn {
	t.Helper()
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+name+` LOGIN`)
	for _, v := range values {
		pgtest.MustExec(t, d.admin, `GRANT `+pgx.Identifier{d.tenant(v)}.Sanitize()+` TO `+name)
	}
	return pgtest.ConnectAs(t, d.dsn, name)
}

func denied(t *testing.T, conn *pgx.Conn, who, sql string) {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("%s: %s: got %v, want permission denied", who, sql, err)
	}
}

func TestTenancyIsolation(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	// Views and functions the analytics team builds on the replica.
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.order_totals WITH (security_invoker = true) AS
SELECT a.name, count(*) AS n, sum(o.total) AS total FROM app.orders o JOIN app.accounts a ON a.id = o.account_id GROUP BY a.name`)
	pgtest.MustExec(t, d.owner, `CREATE FUNCTION app.order_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM app.orders'`)
	if revoked := d.setup(t); len(revoked) != 0 {
		t.Errorf("revoked %v, want none", revoked)
	}
	pgtest.MustExec(t, d.owner, `GRANT SELECT ON app.order_totals TO `+d.group)
	pgtest.MustExec(t, d.owner, `ANALYZE app.orders`)
	for _, v := range []string{"1", "2"} {
		if got := query(t, d.admin, `SELECT pg_has_role('`+d.tenant(v)+`', '`+d.group+`', 'MEMBER'), pg_has_role('`+d.imp+`', '`+d.tenant(v)+`', 'MEMBER'), rolcanlogin FROM pg_roles WHERE rolname = '`+d.tenant(v)+`'`); !slices.Equal(got, []string{"t|t|f"}) {
			t.Errorf("tenant role %s: %v, want a NOLOGIN member of the group granted to the impersonator", d.tenant(v), got)
		}
	}

	one := d.login(t, d.role("acme"), "1")
	for _, c := range []struct{ sql, want string }{
		{`SELECT string_agg(id::text, ',' ORDER BY id) FROM app.orders`, "10,11,12"},
		{`SELECT count(*), sum(total) FROM app.orders`, "3|23"},
		{`SELECT count(*) FROM app.orders WHERE account_id = 2`, "0"},
		{`SELECT string_agg(a.name || ':' || o.id, ',' ORDER BY o.id) FROM app.orders o JOIN app.accounts a ON a.id = o.account_id`, "one:10,one:11,one:12"},
		{`SELECT count(*) FROM app.orders o RIGHT JOIN app.accounts a ON a.id = o.account_id`, "3"},
		{`SELECT string_agg(name || '=' || n || '/' || total, ',') FROM app.order_totals`, "one=3/23"},
		{`SELECT app.order_count()`, "3"},
		{`SELECT count(*) FROM app.plans`, "2"},
		{`SELECT count(*) FROM app.accounts`, "1"},
		// Statistics would show other tenants' values: hidden.
		{`SELECT count(*) FROM pg_stats WHERE schemaname = 'app' AND tablename = 'orders'`, "0"},
	} {
		if got := query(t, one, c.sql); !slices.Equal(got, []string{c.want}) {
			t.Errorf("tenant 1: %s = %v, want %s", c.sql, got, c.want)
		}
	}
	denied(t, one, "tenant 1", `SELECT * FROM app.audit`)
	denied(t, one, "tenant 1", `SELECT * FROM app.notes`)
	denied(t, one, "tenant 1", `SELECT * FROM pgveil.checkpoint`)
	denied(t, one, "tenant 1", `SET ROLE `+d.tenant("2"))
	// The group itself is no tenant: it sees the shared tables only.
	pgtest.MustExec(t, one, `SET ROLE `+d.group)
	if got := query(t, one, `SELECT (SELECT count(*) FROM app.orders), (SELECT count(*) FROM app.plans)`); !slices.Equal(got, []string{"0|2"}) {
		t.Errorf("as the group: orders|plans = %v, want 0|2", got)
	}
	pgtest.MustExec(t, one, `RESET ROLE`)
	denied(t, one, "tenant 1", `UPDATE app.orders SET total = 0`)
	denied(t, one, "tenant 1", `CREATE TABLE app.mine (x int)`)

	// The reader sees everything, the impersonator nothing until it
	// becomes a tenant.
	rd := pgtest.ConnectAs(t, d.dsn, d.reader)
	if got := query(t, rd, `SELECT count(*) FROM app.orders`); !slices.Equal(got, []string{"5"}) {
		t.Errorf("reader: %v orders, want 5", got)
	}
	// The impersonator may SELECT every table (Metabase syncs with its
	// own role and lists what it may SELECT), and row level security
	// gives it no row, hidden tables included; as a tenant, the hidden
	// tables are refused.
	mb := pgtest.ConnectAs(t, d.dsn, d.imp)
	if got := query(t, mb, `SELECT (SELECT count(*) FROM app.orders) + (SELECT count(*) FROM app.accounts) + (SELECT count(*) FROM app.plans) + (SELECT count(*) FROM app.audit)`); !slices.Equal(got, []string{"0"}) {
		t.Errorf("impersonator without SET ROLE: %v rows, want 0", got)
	}
	pgtest.MustExec(t, mb, `SET ROLE `+d.tenant("2"))
	denied(t, mb, "impersonator as tenant 2", `SELECT * FROM app.audit`)
	if got := query(t, mb, `SELECT string_agg(id::text, ',' ORDER BY id) FROM app.orders`); !slices.Equal(got, []string{"20,21"}) {
		t.Errorf("impersonating tenant 2: %v, want 20,21", got)
	}
	pgtest.MustExec(t, mb, `RESET ROLE`)

	// A new tenant arrives with the stream: its role commits with its rows.
	a := NewApplier(d.owner, "s")
	a.SetTenancy(d.tn)
	accounts, orders := d.plan.Table("app", "accounts"), d.plan.Table("app", "orders")
	apply := func(pos uint64, cs ...*Change) {
		t.Helper()
		if err := a.Begin(d.ctx); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if err := a.Apply(d.ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Commit(d.ctx, Position{LSN: pglogrepl.LSN(1000 + pos)}); err != nil {
			t.Fatal(err)
		}
	}
	apply(1, &Change{Op: OpInsert, Table: accounts, Row: vals("3", "three")}, &Change{Op: OpInsert, Table: orders, Row: vals("30", "3", "9")})
	pgtest.MustExec(t, mb, `SET ROLE `+d.tenant("3"))
	if got := query(t, mb, `SELECT string_agg(id::text, ',') FROM app.orders`); !slices.Equal(got, []string{"30"}) {
		t.Errorf("new tenant 3: %v, want 30", got)
	}
	pgtest.MustExec(t, mb, `RESET ROLE`)

	// A row moving to another tenant follows.
	apply(2, &Change{Op: OpUpdate, Table: orders, Row: vals("12", "2", "11")})
	if got := query(t, one, `SELECT string_agg(id::text, ',' ORDER BY id) FROM app.orders`); !slices.Equal(got, []string{"10,11"}) {
		t.Errorf("tenant 1 after order 12 moved: %v, want 10,11", got)
	}
	pgtest.MustExec(t, mb, `SET ROLE `+d.tenant("2"))
	if got := query(t, mb, `SELECT string_agg(id::text, ',' ORDER BY id) FROM app.orders`); !slices.Equal(got, []string{"12,20,21"}) {
		t.Errorf("tenant 2 after order 12 moved: %v, want 12,20,21", got)
	}
	pgtest.MustExec(t, mb, `RESET ROLE`)

	// A rolled back transaction leaves no role behind.
	if err := a.Begin(d.ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(d.ctx, &Change{Op: OpInsert, Table: orders, Row: vals("90", "9", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Rollback(d.ctx); err != nil {
		t.Fatal(err)
	}
	if got := query(t, d.admin, `SELECT count(*) FROM pg_roles WHERE rolname = '`+d.tenant("9")+`'`); !slices.Equal(got, []string{"0"}) {
		t.Errorf("role of a rolled back tenant: %v", got)
	}
}

func TestTenancyLeakyViews(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	// A view that reads as its owner, and a materialized view: row level
	// security would not hide other tenants' rows there.
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.all_orders AS SELECT * FROM app.orders`)
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.all_orders2 AS SELECT * FROM app.all_orders`)
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.safe WITH (security_invoker = true) AS SELECT * FROM app.orders`)
	pgtest.MustExec(t, d.owner, `CREATE MATERIALIZED VIEW app.order_sums AS SELECT account_id, sum(total) FROM app.orders GROUP BY 1`)
	pgtest.MustExec(t, d.owner, `GRANT SELECT ON app.all_orders, app.all_orders2, app.safe, app.order_sums TO `+d.group)
	revoked := d.setup(t)
	if want := []string{"app.all_orders", "app.all_orders2", "app.order_sums"}; !slices.Equal(revoked, want) {
		t.Errorf("revoked %v, want %v", revoked, want)
	}
	one := d.login(t, d.role("acme"), "1")
	denied(t, one, "tenant 1", `SELECT * FROM app.all_orders`)
	denied(t, one, "tenant 1", `SELECT * FROM app.all_orders2`)
	denied(t, one, "tenant 1", `SELECT * FROM app.order_sums`)
	if got := query(t, one, `SELECT count(*) FROM app.safe`); !slices.Equal(got, []string{"3"}) {
		t.Errorf("security_invoker view: %v, want 3", got)
	}
	// Granted to PUBLIC, or owned by another role: pgveil cannot take it
	// back, and refuses.
	for _, c := range []struct{ view, sql string }{
		{"app.all_orders", `GRANT SELECT ON app.all_orders TO PUBLIC`},
		{"app.theirs", `CREATE VIEW app.theirs AS SELECT * FROM app.accounts; GRANT SELECT ON app.theirs TO ` + d.group},
	} {
		pgtest.MustExec(t, d.admin, c.sql)
		_, err := SetupTenancy(d.ctx, d.owner, d.plan, d.tn, []string{d.reader})
		if err == nil || !strings.Contains(err.Error(), c.view) || !strings.Contains(err.Error(), "security_invoker") {
			t.Errorf("%s: got %v", c.sql, err)
		}
		pgtest.MustExec(t, d.admin, `DROP VIEW `+c.view+` CASCADE`)
	}
	d.setup(t)
}

func TestTenancyIdempotentAndRemoved(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	policies := `SELECT string_agg(c.relname || '.' || p.polname || '#' || p.oid, ',' ORDER BY c.relname, p.polname) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid`
	before := query(t, d.admin, policies)
	if !strings.Contains(before[0], "orders.pgveil_tenant#") || !strings.Contains(before[0], "plans.pgveil_shared#") || !strings.Contains(before[0], "notes.pgveil_readers#") {
		t.Fatalf("policies: %v", before)
	}
	// The tenant tables' values have their roles: a second setup neither
	// re-creates the policies nor scans the tables again.
	marks := `SELECT string_agg(table_name || '=' || coalesce(tenant_roles, '-'), ',' ORDER BY table_name) FROM pgveil.tables WHERE schema_name = 'app'`
	mark := jsonStrings([]string{d.tn.RolePrefix, d.group, "account_id"})
	equal(t, "tenant_roles marks", query(t, d.admin, marks), []string{
		"accounts=" + jsonStrings([]string{d.tn.RolePrefix, d.group, "id"}) + ",audit=-,notes=-,orders=" + mark + ",plans=-"})
	scans := func() []string {
		pgtest.MustExec(t, d.owner, `SELECT pg_stat_force_next_flush()`)
		pgtest.MustExec(t, d.admin, `SELECT pg_stat_clear_snapshot()`)
		return query(t, d.admin, `SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'app.orders'::regclass`)
	}
	scansBefore := scans()
	d.setup(t)
	equal(t, "policies after a second setup (unchanged: not re-created)", query(t, d.admin, policies), before)
	equal(t, "sequential scans of app.orders by a second setup", scans(), scansBefore)
	// Settings that name other roles sync again: a new prefix.
	tn := *d.tn
	tn.RolePrefix = d.role("other_")
	if _, err := SetupTenancy(d.ctx, d.owner, d.plan, &tn, []string{d.reader}); err != nil {
		t.Fatal(err)
	}
	equal(t, "roles under a new prefix", query(t, d.admin, `SELECT count(*) FROM pg_roles WHERE starts_with(rolname, '`+tn.RolePrefix+`')`), []string{"2"})
	d.setup(t)

	// A reader added later gets a new readers policy.
	r2 := d.role("ro2")
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+r2+` LOGIN`)
	if err := Setup(d.ctx, d.owner, d.plan, nil, []string{d.reader, r2}); err != nil {
		t.Fatal(err)
	}
	if _, err := SetupTenancy(d.ctx, d.owner, d.plan, d.tn, []string{d.reader, r2}); err != nil {
		t.Fatal(err)
	}
	if got := query(t, pgtest.ConnectAs(t, d.dsn, r2), `SELECT count(*) FROM app.orders`); !slices.Equal(got, []string{"5"}) {
		t.Errorf("new reader: %v, want 5", got)
	}

	// Tenancy removed from the rules: the tenants lose the tables before
	// row level security goes, and readers keep them.
	one := d.login(t, d.role("acme"), "1")
	if _, err := SetupTenancy(d.ctx, d.owner, d.plan, nil, []string{d.reader}); err != nil {
		t.Fatal(err)
	}
	denied(t, one, "former tenant", `SELECT * FROM app.orders`)
	denied(t, one, "former tenant", `SELECT * FROM app.plans`)
	// The impersonator's own grants go with the policies: without row
	// level security it would read every row.
	denied(t, pgtest.ConnectAs(t, d.dsn, d.imp), "former impersonator", `SELECT * FROM app.orders`)
	if got := query(t, d.admin, `SELECT count(*) FROM pg_class WHERE relrowsecurity AND relnamespace = 'app'::regnamespace`); !slices.Equal(got, []string{"0"}) {
		t.Errorf("tables still with row level security: %v", got)
	}
	if got := query(t, pgtest.ConnectAs(t, d.dsn, d.reader), `SELECT count(*) FROM app.orders`); !slices.Equal(got, []string{"5"}) {
		t.Errorf("reader after removal: %v, want 5", got)
	}
}

func TestTenancyRefuses(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	w := d.role("w")
	check := func(what, want string) {
		t.Helper()
		_, err := SetupTenancy(d.ctx, d.owner, d.plan, d.tn, []string{d.reader})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error with %q", what, err, want)
		}
	}
	pgtest.MustExec(t, d.admin, `ALTER ROLE `+w+` NOCREATEROLE`)
	check("no CREATEROLE", `ALTER ROLE `+schema.QuoteIdent(w)+` CREATEROLE`)
	pgtest.MustExec(t, d.admin, `ALTER ROLE `+w+` CREATEROLE`)

	pgtest.MustExec(t, d.admin, `ALTER ROLE `+d.imp+` INHERIT`)
	check("impersonator with INHERIT", `ALTER ROLE `+schema.QuoteIdent(d.imp)+` NOINHERIT`)
	pgtest.MustExec(t, d.admin, `ALTER ROLE `+d.imp+` NOINHERIT`)

	pgtest.MustExec(t, d.admin, `CREATE ROLE `+d.group+` LOGIN`)
	check("group that can log in", "plain NOLOGIN role")
	pgtest.MustExec(t, d.admin, `ALTER ROLE `+d.group+` NOLOGIN`)

	pgtest.MustExec(t, d.admin, `GRANT `+d.group+` TO `+d.reader)
	check("reader in the group", "reader "+d.reader+" is a member of the tenant group")
	pgtest.MustExec(t, d.admin, `REVOKE `+d.group+` FROM `+d.reader)

	d.tn.Tables[schema.TableName{Schema: "app", Name: "notes"}] = TenantTable{Column: "body"}
	d.plan = plan(append(d.plan.Tables()[:4], table("app", "notes", pk("id", "integer"), c("body", "date")))...)
	check("date tenant column", "tenant column body has type date")
	delete(d.tn.Tables, schema.TableName{Schema: "app", Name: "notes"})

	// Nothing was half done: no policy anywhere.
	if got := query(t, d.admin, `SELECT count(*) FROM pg_policy`); !slices.Equal(got, []string{"0"}) {
		t.Errorf("policies after refusals: %v", got)
	}
	d.setup(t)
}

// TestTenancyFilteredRowsNameNoRole: a row that an in-process row filter
// keeps out of the replica must not name a tenant role (pg_roles is
// readable by every tenant); one that passes does, on tables with a key
// (filters evaluated per batch) and without.
func TestTenancyFilteredRowsNameNoRole(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	keyless := table("app", "visits", c("account_id", "bigint"), c("n", "integer"))
	d.plan = plan(append(d.plan.Tables(), keyless)...)
	if err := Setup(d.ctx, d.owner, d.plan, nil, []string{d.reader}); err != nil {
		t.Fatal(err)
	}
	d.tn.Tables[schema.TableName{Schema: "app", Name: "visits"}] = TenantTable{Column: "account_id"}
	d.setup(t)
	a := NewApplier(d.owner, "s")
	a.SetTenancy(d.tn)
	if err := a.Begin(d.ctx); err != nil {
		t.Fatal(err)
	}
	orders := d.plan.Table("app", "orders")
	f := &evenFilter{}
	for _, c := range []*Change{
		// The filter reads the second value: odd fails, even passes.
		{Op: OpInsert, Table: orders, Row: vals("50", "51", "1"), Filter: f, FilterRow: vals("1")},
		{Op: OpInsert, Table: orders, Row: vals("52", "52", "1"), Filter: f, FilterRow: vals("2")},
		{Op: OpInsert, Table: keyless, Row: vals("53", "1"), Filter: f, FilterRow: vals("3")},
		{Op: OpInsert, Table: keyless, Row: vals("54", "1"), Filter: f, FilterRow: vals("4")},
	} {
		if err := a.Apply(d.ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Commit(d.ctx, Position{LSN: 7}); err != nil {
		t.Fatal(err)
	}
	got := query(t, d.admin, `SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('`+d.tenant("51")+`', '`+d.tenant("52")+`', '`+d.tenant("53")+`', '`+d.tenant("54")+`')`)
	equal(t, "roles of filtered and passing rows", got, []string{d.tenant("52") + "," + d.tenant("54")})
}
