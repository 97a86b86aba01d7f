package target

// Attacks on tenant isolation, run against a real server. Each attack the
// replica withstands is a test that asserts it fails. An attack that
// succeeds is a test of what the replica should do, skipped with "LEAK:"
// so that the suite stays green: PGVEIL_TENANCY_LEAKS=1 runs those, and
// they fail until the leak is fixed.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// newAttackDB is newTenancyDB with three more tenant tables, one for each
// other kind of tenant column: text (docs.ws), numeric (ledger.acct) and
// uuid (things.owner), created empty; the caller fills them and calls
// d.setup.
func newAttackDB(t *testing.T) *tenancyDB {
	t.Helper()
	d := newTenancyDB(t)
	d.plan = plan(append(d.plan.Tables(),
		table("app", "docs", pk("id", "integer"), c("ws", "text")),
		table("app", "ledger", pk("id", "integer"), c("acct", "numeric")),
		table("app", "things", pk("id", "integer"), c("owner", "uuid")),
	)...)
	if err := Setup(d.ctx, d.owner, d.plan, nil, []string{d.reader}); err != nil {
		t.Fatal(err)
	}
	d.tn.Tables[schema.TableName{Schema: "app", Name: "docs"}] = TenantTable{Column: "ws"}
	d.tn.Tables[schema.TableName{Schema: "app", Name: "ledger"}] = TenantTable{Column: "acct"}
	d.tn.Tables[schema.TableName{Schema: "app", Name: "things"}] = TenantTable{Column: "owner"}
	return d
}

// only keeps the tenant tables of d named, one type of tenant column:
// SetupTenancy refuses several.
func only(d *tenancyDB, tables ...string) {
	keep := map[schema.TableName]TenantTable{}
	for _, n := range tables {
		k := schema.TableName{Schema: "app", Name: n}
		keep[k] = d.tn.Tables[k]
	}
	d.tn.Tables = keep
}

// sees checks that sql returns want (one row per string) on conn.
func sees(t *testing.T, conn *pgx.Conn, who, sql string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	equal(t, who+": "+sql, query(t, conn, sql), want)
}

// fails checks that sql fails on conn with SQLSTATE code.
func fails(t *testing.T, conn *pgx.Conn, who, sql, code string) {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code {
		t.Errorf("%s: %s: got %v, want SQLSTATE %s", who, sql, err, code)
	}
}

// roleNames returns the roles whose names start with prefix, in byte order.
func roleNames(t *testing.T, d *tenancyDB, prefix string) []string {
	t.Helper()
	return query(t, d.admin, `SELECT rolname FROM pg_roles WHERE starts_with(rolname, `+schema.QuoteLiteral(prefix)+`) ORDER BY rolname COLLATE "C"`)
}

// applyRows applies inserts in one transaction of a new Applier with
// tenancy tn, and returns the error of the commit.
func applyRows(ctx context.Context, d *tenancyDB, tn *Tenancy, cs ...*Change) error {
	a := NewApplier(d.owner, "s")
	a.SetTenancy(tn)
	if err := a.Begin(ctx); err != nil {
		return err
	}
	for _, c := range cs {
		if err := a.Apply(ctx, c); err != nil {
			return err
		}
	}
	return a.Commit(ctx, Position{LSN: pglogrepl.LSN(1000)})
}

// TestTenancyAttackQueryForms: every way of reading a table that a tenant
// has, and the side doors of error messages, leaky functions and
// statistics, show it its own rows only.
func TestTenancyAttackQueryForms(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	pgtest.MustExec(t, d.owner, `CREATE STATISTICS app.orders_st (ndistinct, dependencies, mcv) ON account_id, total FROM app.orders`)
	pgtest.MustExec(t, d.owner, `CREATE STATISTICS app.orders_ex ON account_id, (total * 2) FROM app.orders`)
	pgtest.MustExec(t, d.owner, `CREATE INDEX orders_expr ON app.orders ((account_id * 10))`)
	pgtest.MustExec(t, d.owner, `ANALYZE app.orders`)
	one := d.login(t, d.role("acme"), "1")
	ids := `SELECT string_agg(id::text, ',' ORDER BY id) FROM `
	for _, c := range []struct{ sql, want string }{
		{ids + `(TABLE app.orders) o`, "10,11,12"},
		{ids + `ONLY app.orders`, "10,11,12"},
		{`WITH o AS MATERIALIZED (SELECT * FROM app.orders) ` + ids + `o`, "10,11,12"},
		{`WITH RECURSIVE r(id) AS (SELECT min(id) FROM app.orders UNION SELECT (SELECT min(o.id) FROM app.orders o WHERE o.id > r.id) FROM r WHERE r.id IS NOT NULL) ` + ids + `r`, "10,11,12"},
		{ids + `generate_series(1, 2) g, LATERAL (SELECT id FROM app.orders WHERE account_id = g) x`, "10,11,12"},
		{`SELECT count(*) FROM (SELECT id FROM app.orders WHERE account_id = 2 UNION ALL SELECT id FROM app.orders o WHERE o.account_id <> 1) u`, "0"},
		{`SELECT DISTINCT count(*) OVER () FROM app.orders`, "3"},
		{`SELECT string_agg(coalesce(account_id::text, 'all') || '=' || n, ',' ORDER BY account_id) FROM (SELECT account_id, count(*) n FROM app.orders GROUP BY GROUPING SETS ((account_id), ())) g`, "1=3,all=3"},
		{`SELECT count(*) FROM app.orders TABLESAMPLE BERNOULLI (100)`, "3"},
		{`SELECT count(*) FROM app.orders TABLESAMPLE SYSTEM (100) REPEATABLE (1)`, "3"},
		{`SELECT count(*) FROM app.orders WHERE ctid >= '(0,0)'`, "3"},
		{`SELECT json_agg(o.id ORDER BY o.id)::text FROM app.orders o`, "[10, 11, 12]"},
		{`SELECT count(*) FROM app.orders WHERE account_id IN (1, 2) OR account_id::text = '2'`, "3"},
		{`SELECT query_to_xml('SELECT count(*) AS n FROM app.orders', false, false, '')::text LIKE '%<n>3</n>%'`, "t"},
		{`SELECT (SELECT count(*) FROM app.orders) FROM app.plans LIMIT 1`, "3"},
		{`SELECT count(*) FROM app.plans p LEFT JOIN app.orders o ON o.account_id = p.id + 1`, "2"},
		// Error messages as oracles: the policy filters before the
		// tenant's own conditions, leakproof or not, see a row.
		{`SELECT count(*) FROM app.orders WHERE 1 / (id - 20) > -1`, "3"},
		{`SELECT count(*) FROM app.orders WHERE (CASE WHEN account_id = 2 THEN 'x' ELSE '1' END)::int = 1`, "3"},
		{`SELECT count(*) FROM app.accounts WHERE 1 / (id - 2) < 5`, "1"},
		// Statistics would hold other tenants' values.
		{`SELECT count(*) FROM pg_stats WHERE schemaname = 'app'`, "0"},
		{`SELECT count(*) FROM pg_stats_ext WHERE schemaname = 'app'`, "0"},
		{`SELECT count(*) FROM pg_stats_ext_exprs WHERE schemaname = 'app'`, "0"},
	} {
		sees(t, one, "tenant 1", c.sql, c.want)
	}
	denied(t, one, "tenant 1", `SELECT * FROM pg_statistic`)
	denied(t, one, "tenant 1", `SELECT * FROM pg_statistic_ext_data`)

	// A leaky function, made as cheap as can be so that the planner would
	// like to run it first, sees the tenant's rows only. It needs
	// TEMPORARY, which pgveil takes from PUBLIC: granted here by hand, as a
	// careless administrator might; row level security holds all the same.
	pgtest.MustExec(t, d.admin, `GRANT TEMPORARY ON DATABASE `+pgx.Identifier{dbName(t, d.dsn)}.Sanitize()+` TO `+d.role("acme"))
	pgtest.MustExec(t, one, `CREATE TEMP TABLE seen (id int)`)
	pgtest.MustExec(t, one, `CREATE FUNCTION pg_temp.peek(o app.orders) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
	INSERT INTO pg_temp.seen VALUES (o.id);
	IF o.account_id <> 1 THEN RAISE EXCEPTION 'saw %', o; END IF;
	RETURN true;
END$$`)
	sees(t, one, "tenant 1", `SELECT count(*) FROM app.orders o WHERE pg_temp.peek(o)`, "3")
	sees(t, one, "tenant 1", `SELECT count(*) FROM app.orders o WHERE o.id > 0 AND pg_temp.peek(o) AND o.account_id > 0`, "3")
	sees(t, one, "tenant 1", `SELECT string_agg(DISTINCT id::text, ',') FROM pg_temp.seen`, "10,11,12")

	// COPY, of a query and of the table.
	for _, sql := range []string{`COPY (SELECT id FROM app.orders) TO STDOUT`, `COPY app.orders (id) TO STDOUT`} {
		var buf bytes.Buffer
		if _, err := one.PgConn().CopyTo(d.ctx, &buf, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		got := strings.Fields(buf.String())
		slices.Sort(got)
		equal(t, "tenant 1: "+sql, got, []string{"10", "11", "12"})
	}

	// A cursor, scrolled past the tenant's rows.
	tx, err := one.Begin(d.ctx)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, one, `DECLARE c SCROLL CURSOR FOR SELECT id FROM app.orders ORDER BY id`)
	sees(t, one, "tenant 1", `FETCH ALL FROM c`, "10", "11", "12")
	sees(t, one, "tenant 1", `FETCH ABSOLUTE 4 FROM c`)
	if err := tx.Rollback(d.ctx); err != nil {
		t.Fatal(err)
	}

	// Row level security cannot be turned off by the tenant: the query
	// fails instead.
	pgtest.MustExec(t, one, `SET row_security = off`)
	denied(t, one, "tenant 1 with row_security off", `SELECT count(*) FROM app.orders`)
	pgtest.MustExec(t, one, `RESET row_security`)

	// Another tenant's queries, literals included, are hidden in
	// pg_stat_activity.
	two := d.login(t, d.role("globex"), "2")
	pgtest.MustExec(t, two, `SELECT 'globex-secret-' || count(*) FROM app.orders`)
	sees(t, one, "tenant 1", `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%globex-secret%' AND pid <> pg_backend_pid()`, "0")
	sees(t, one, "tenant 1", `SELECT query FROM pg_stat_activity WHERE usename = '`+d.role("globex")+`'`, "<insufficient privilege>")
}

// TestTenancyAttackShadowing: the policies are stored parsed, so functions,
// operators and tables a tenant creates where its search path looks first
// change nothing; and a tenant can create nothing that lasts, nor call
// pgveil's function.
func TestTenancyAttackShadowing(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	one := d.login(t, d.role("acme"), "1")
	// Shadows live in pg_temp, and need TEMPORARY, which pgveil takes from
	// PUBLIC: granted here by hand, as a careless administrator might.
	pgtest.MustExec(t, d.admin, `GRANT TEMPORARY ON DATABASE `+pgx.Identifier{dbName(t, d.dsn)}.Sanitize()+` TO `+d.role("acme"))
	for _, sql := range []string{
		`CREATE FUNCTION pg_temp.substr(name, integer) RETURNS text LANGUAGE sql AS $$SELECT '2'$$`,
		`CREATE FUNCTION pg_temp.substr(text, integer) RETURNS text LANGUAGE sql AS $$SELECT '2'$$`,
		`CREATE FUNCTION pg_temp.starts_with(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'`,
		`CREATE FUNCTION pg_temp.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'`,
		`CREATE FUNCTION pg_temp.eq(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true'`,
		`CREATE OPERATOR pg_temp.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = pg_temp.eq)`,
		`CREATE TEMP VIEW pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE rolname LIKE '` + d.tn.RolePrefix + `%'`,
		`CREATE TEMP TABLE pg_auth_members AS SELECT * FROM pg_catalog.pg_auth_members`,
		`INSERT INTO pg_auth_members (roleid, member, grantor, admin_option) SELECT t.oid, me.oid, t.oid, false FROM pg_catalog.pg_roles t, pg_catalog.pg_roles me
WHERE t.rolname = '` + d.tenant("2") + `' AND me.rolname = current_user`,
		`SET search_path = pg_temp, app, public, pg_catalog`,
	} {
		pgtest.MustExec(t, one, sql)
	}
	sees(t, one, "tenant 1 with shadows", `SELECT string_agg(id::text, ',' ORDER BY id) FROM app.orders`, "10,11,12")
	sees(t, one, "tenant 1 with shadows", `SELECT count(*) FROM app.orders WHERE account_id OPERATOR(pg_temp.=) 2`, "3")
	pgtest.MustExec(t, one, `RESET search_path`)

	for _, sql := range []string{
		`CREATE SCHEMA mine`,
		`CREATE TABLE public.mine (x int)`,
		`CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		`CREATE EXTENSION pg_trgm`,
		`SELECT ` + ensureTenantsFunc + `('x', 'y', '[]', '["1"]')`,
		`SELECT * FROM ` + InternalSchema + `.tables`,
		`ALTER TABLE app.orders DISABLE ROW LEVEL SECURITY`,
		`DROP POLICY pgveil_tenant ON app.orders`,
		`CREATE POLICY mine ON app.orders FOR SELECT USING (true)`,
		`CREATE RULE r AS ON INSERT TO app.orders DO INSTEAD NOTHING`,
		`CREATE TRIGGER tr BEFORE INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()`,
		`CREATE TEMP TABLE kid () INHERITS (app.orders)`,
	} {
		denied(t, one, "tenant 1", sql)
	}
	// A foreign key would check other tenants' keys, past the policies.
	fails(t, one, "tenant 1", `CREATE TEMP TABLE fk (a bigint REFERENCES app.accounts)`, "42P16")
	// A view the tenant owns reads as the tenant.
	pgtest.MustExec(t, one, `CREATE TEMP VIEW hidden WITH (security_barrier) AS SELECT * FROM app.audit`)
	denied(t, one, "tenant 1", `SELECT * FROM hidden`)
	pgtest.MustExec(t, one, `CREATE TEMP VIEW mine AS SELECT * FROM app.orders`)
	sees(t, one, "tenant 1", `SELECT count(*) FROM mine`, "3")
	tx, err := one.Begin(d.ctx)
	if err != nil {
		t.Fatal(err)
	}
	denied(t, one, "tenant 1", `LOCK TABLE app.orders IN EXCLUSIVE MODE`)
	if err := tx.Rollback(d.ctx); err != nil {
		t.Fatal(err)
	}
	// The impersonator cannot call it either.
	denied(t, pgtest.ConnectAs(t, d.dsn, d.imp), "impersonator", `SELECT `+ensureTenantsFunc+`('x', 'y', '[]', '["1"]')`)
}

// TestTenancyAttackRoleSwitching: a tenant's login cannot become another
// role; an impersonator's prepared statements and cached plans follow its
// SET ROLE; a revoked membership takes effect at once.
func TestTenancyAttackRoleSwitching(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	one := d.login(t, d.role("acme"), "1")
	t2 := pgx.Identifier{d.tenant("2")}.Sanitize()
	for _, sql := range []string{
		`SET ROLE ` + t2,
		`SET ROLE ` + d.imp,
		`SET ROLE ` + d.reader,
		`SET ROLE ` + d.role("w"),
		`SET SESSION AUTHORIZATION ` + d.imp,
		`SELECT set_config('role', '` + d.tenant("2") + `', false)`,
		`GRANT ` + t2 + ` TO CURRENT_USER`,
		`GRANT ` + pgx.Identifier{d.tenant("1")}.Sanitize() + ` TO ` + d.imp,
		`ALTER ROLE CURRENT_USER NOINHERIT`,
		`ALTER ROLE CURRENT_USER BYPASSRLS`,
		`CREATE ROLE ` + d.role("mine"),
		`DROP ROLE ` + t2,
	} {
		denied(t, one, "tenant 1", sql)
	}
	for _, sql := range []string{`RESET ROLE`, `SET ROLE NONE`, `RESET SESSION AUTHORIZATION`} {
		pgtest.MustExec(t, one, sql)
		sees(t, one, "tenant 1 after "+sql, `SELECT count(*) FROM app.orders`, "3")
	}

	// Prepared statements and pgx's statement cache across SET ROLE, with
	// generic and custom plans.
	mb := pgtest.ConnectAs(t, d.dsn, d.imp)
	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		pgtest.MustExec(t, mb, `SET plan_cache_mode = `+mode)
		// Prepared as tenant 2: the impersonator itself may not read app.
		pgtest.MustExec(t, mb, `SET ROLE `+t2)
		pgtest.MustExec(t, mb, `PREPARE q AS SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM app.orders WHERE account_id > $1`)
		for _, c := range []struct{ tenant, want string }{{"1", "10,11,12"}, {"2", "20,21"}, {"1", "10,11,12"}} {
			pgtest.MustExec(t, mb, `SET ROLE `+pgx.Identifier{d.tenant(c.tenant)}.Sanitize())
			sees(t, mb, mode+" as tenant "+c.tenant, `EXECUTE q(0)`, c.want)
			var got string
			if err := mb.QueryRow(d.ctx, `SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM app.orders WHERE account_id > $1`, 0).Scan(&got); err != nil || got != c.want {
				t.Errorf("%s, cached statement as tenant %s: %q (%v), want %q", mode, c.tenant, got, err, c.want)
			}
		}
		// Back to itself: it may SELECT (Metabase syncs with it), and row
		// level security gives it no row.
		pgtest.MustExec(t, mb, `RESET ROLE`)
		sees(t, mb, mode+" as the impersonator", `EXECUTE q(0)`, "")
		pgtest.MustExec(t, mb, `DEALLOCATE q`)
	}

	// A tenant whose membership is revoked loses its rows at its next
	// statement, prepared or not.
	pgtest.MustExec(t, one, `PREPARE q AS SELECT count(*) FROM app.orders`)
	sees(t, one, "tenant 1", `EXECUTE q`, "3")
	pgtest.MustExec(t, d.admin, `REVOKE `+pgx.Identifier{d.tenant("1")}.Sanitize()+` FROM `+d.role("acme"))
	denied(t, one, "former tenant 1", `EXECUTE q`)
}

// TestTenancyAttackCraftedValues: tenant values that are awkward as role
// names (quotes, case, spaces, format directives, too long, truncated in
// the middle of a character, empty) get exactly their role or none, and a
// role sees exactly the rows of its value; through the initial setup and
// through the stream alike.
func TestTenancyAttackCraftedValues(t *testing.T) {
	t.Parallel()
	d := newAttackDB(t)
	only(d, "docs")
	room := MaxRoleName - len(d.tn.RolePrefix)
	fits := strings.Repeat("L", room)          // a role name of 63 bytes
	split := strings.Repeat("M", room-1) + "é" // 64 bytes: é cut in two
	type row struct {
		id int
		ws string
	}
	// Values with a role, then values without one: too long (both would
	// truncate to fits), cut in a character, empty.
	values := []string{
		"acme", "ac", "Acme", "acme ", " acme", "o'brien", `x"y`, `\`, "%I%s%L", `"; DROP ROLE x; --`, "a b",
		d.group, d.tn.RolePrefix + "2", "ünï", fits,
	}
	var copied []row
	for i, v := range slices.Concat(values, []string{fits + "a", fits + "b", split, ""}) {
		copied = append(copied, row{i + 1, v})
	}
	streamed := []row{{100, "q'uote"}, {101, "Q'UOTE"}, {102, "%I"}, {103, fits + "z"}, {104, ""}, {105, "acme"}}
	var b strings.Builder
	for i, r := range copied {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, %s)", r.id, schema.QuoteLiteral(r.ws))
	}
	pgtest.MustExec(t, d.owner, `INSERT INTO app.docs VALUES `+b.String())
	d.setup(t)
	docs := d.plan.Table("app", "docs")
	var cs []*Change
	for _, r := range streamed {
		cs = append(cs, &Change{Op: OpInsert, Table: docs, Row: vals(fmt.Sprint(r.id), r.ws)})
	}
	if err := applyRows(d.ctx, d, d.tn, cs...); err != nil {
		t.Fatal(err)
	}

	var want []string
	for _, v := range slices.Concat(values, []string{"q'uote", "Q'UOTE", "%I"}) {
		want = append(want, d.tenant(v))
	}
	slices.Sort(want)
	equal(t, "tenant roles", roleNames(t, d, d.tn.RolePrefix), want)
	sees(t, d.admin, "tenant roles not NOLOGIN members of the group granted to the impersonator", `SELECT count(*) FROM pg_roles r
WHERE starts_with(rolname, `+schema.QuoteLiteral(d.tn.RolePrefix)+`) AND NOT (pg_has_role(r.oid, '`+d.group+`', 'MEMBER') AND pg_has_role('`+d.imp+`', r.oid, 'MEMBER') AND NOT rolcanlogin)`, "0")

	// Each value's role sees the rows of its value, nothing else.
	all := slices.Concat(copied, streamed)
	for i, v := range slices.Concat(values, []string{"q'uote", "Q'UOTE", "%I"}) {
		var ids []string
		for _, r := range all {
			if r.ws == v {
				ids = append(ids, fmt.Sprint(r.id))
			}
		}
		conn := d.login(t, d.role(fmt.Sprintf("v%d", i)), v)
		sees(t, conn, fmt.Sprintf("tenant %q", v), `SELECT string_agg(id::text, ',' ORDER BY id) FROM app.docs`, strings.Join(ids, ","))
	}
}

// TestTenancyAttackUUID: uuid tenants; their text form is canonical
// (lower case), and an upper-case spelling gets no rows.
func TestTenancyAttackUUID(t *testing.T) {
	t.Parallel()
	d := newAttackDB(t)
	only(d, "things")
	a, b := "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"
	pgtest.MustExec(t, d.owner, `INSERT INTO app.things VALUES (1, '`+strings.ToUpper(a)+`'), (2, '`+b+`')`)
	d.setup(t)
	equal(t, "tenant roles", roleNames(t, d, d.tn.RolePrefix), []string{d.tenant(a), d.tenant(b)})
	sees(t, d.login(t, d.role("u1"), a), "uuid tenant", `SELECT string_agg(id::text, ',') FROM app.things`, "1")
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+pgx.Identifier{d.tenant(strings.ToUpper(b))}.Sanitize()+` NOLOGIN IN ROLE `+d.group)
	sees(t, d.login(t, d.role("u2"), strings.ToUpper(b)), "upper-case uuid role", `SELECT count(*) FROM app.things`, "1")
}

// TestTenancyAttackForeignRoles: a role that has a tenant's name but that
// pgveil did not make a tenant role (created beforehand outside the group,
// or a login named with the prefix) is not taken for one.
func TestTenancyAttackForeignRoles(t *testing.T) {
	t.Parallel()
	d := newAttackDB(t)
	seven, eight := d.tenant("7"), d.tenant("8")
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+schema.QuoteIdent(seven)+` NOLOGIN`)
	pgtest.MustExec(t, d.owner, `INSERT INTO app.accounts VALUES (7, 'seven'); INSERT INTO app.orders VALUES (70, 7, 1)`)
	only(d, "accounts", "orders")
	d.setup(t)
	// Tenants 8 and 9 arrive with the stream; their role names were taken
	// meanwhile, by a role and by a login of tenant 1.
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+schema.QuoteIdent(eight)+` NOLOGIN`)
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+pgx.Identifier{d.tenant("9")}.Sanitize()+` LOGIN IN ROLE `+pgx.Identifier{d.tenant("1")}.Sanitize())
	err := applyRows(d.ctx, d, d.tn, &Change{Op: OpInsert, Table: d.plan.Table("app", "orders"), Row: vals("80", "8", "1")},
		&Change{Op: OpInsert, Table: d.plan.Table("app", "orders"), Row: vals("90", "9", "1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{seven, eight} {
		sees(t, d.admin, "foreign role "+r, `SELECT pg_has_role('`+r+`', '`+d.group+`', 'MEMBER'), pg_has_role('`+d.imp+`', '`+r+`', 'MEMBER')`, "f|f")
	}
	denied(t, d.login(t, d.role("seven"), "7"), "login of a role outside the group", `SELECT * FROM app.orders`)

	// The login named like a tenant role is not tenant 9, before and
	// after a restart: it sees tenant 1's rows.
	nine := d.tenant("9")
	sees(t, pgtest.ConnectAs(t, d.dsn, nine), "login "+nine, `SELECT string_agg(DISTINCT account_id::text, ',') FROM app.orders`, "1")
	d.setup(t)
	sees(t, pgtest.ConnectAs(t, d.dsn, nine), "login "+nine, `SELECT string_agg(DISTINCT account_id::text, ',') FROM app.orders`, "1")
	// Even made a member of the group by hand, a login is no tenant.
	pgtest.MustExec(t, d.admin, `GRANT `+d.group+` TO `+schema.QuoteIdent(nine))
	sees(t, pgtest.ConnectAs(t, d.dsn, nine), "login "+nine+" in the group", `SELECT string_agg(DISTINCT account_id::text, ',') FROM app.orders`, "1")
}

// TestTenancyAttackCrossTypeAlias: tenant roles are shared by every
// tenant table, and the policies cast a role's suffix to the column's
// type. With a text tenant column beside a bigint one, the text "01"
// would get a role reading the bigint tenant 1's rows ("1.004" would read
// numeric(10,2)'s 1.00, "abcdeXYZ" varchar(5)'s "abcde"): pgveil refuses
// tenant columns of different types, and numeric ones, whose texts are
// not one per value.
func TestTenancyAttackCrossTypeAlias(t *testing.T) {
	t.Parallel()
	d := newAttackDB(t)
	_, err := SetupTenancy(d.ctx, d.owner, d.plan, d.tn, []string{d.reader})
	if err == nil || !strings.Contains(err.Error(), "numeric") {
		t.Errorf("a numeric tenant column: got %v", err)
	}
	delete(d.tn.Tables, schema.TableName{Schema: "app", Name: "ledger"})
	_, err = SetupTenancy(d.ctx, d.owner, d.plan, d.tn, []string{d.reader})
	if err == nil || !strings.Contains(err.Error(), "tenant columns must all have one type") || !strings.Contains(err.Error(), "app.docs.ws is text") {
		t.Errorf("bigint, text and uuid tenant columns: got %v", err)
	}
	if got := query(t, d.admin, `SELECT count(*) FROM pg_policy`); !slices.Equal(got, []string{"0"}) {
		t.Errorf("policies after the refusals: %v", got)
	}
	// One type everywhere: "01" in a bigint column does not exist, and a
	// varchar(5) column's policy casts without the modifier.
	d.plan = plan(append(d.plan.Tables()[:5],
		table("app", "tags", pk("id", "integer"), c("ws", "character varying(5)")),
		table("app", "labels", pk("id", "integer"), c("ws", "character varying(20)")),
	)...)
	if err := Setup(d.ctx, d.owner, d.plan, nil, []string{d.reader}); err != nil {
		t.Fatal(err)
	}
	d.tn.Tables = map[schema.TableName]TenantTable{
		{Schema: "app", Name: "tags"}: {Column: "ws"}, {Schema: "app", Name: "labels"}: {Column: "ws"},
	}
	pgtest.MustExec(t, d.owner, `INSERT INTO app.tags VALUES (1, 'abcde'); INSERT INTO app.labels VALUES (1, 'abcde'), (2, 'abcdeXYZ')`)
	d.setup(t)
	long := d.login(t, d.role("long"), "abcdeXYZ")
	sees(t, long, `tenant "abcdeXYZ"`, `SELECT count(*) FROM app.tags`, "0")
	sees(t, long, `tenant "abcdeXYZ"`, `SELECT string_agg(id::text, ',') FROM app.labels`, "2")
}

// TestTenancyLimitExplainAnalyze pins a limit the README states (a tenant
// who writes SQL can count other tenants' rows): EXPLAIN ANALYZE counts
// the rows the policy removed after an index found them, so a tenant
// learns whether other tenants hold a key, and how many rows match any
// condition an index on a leakproof operator answers. PostgreSQL has no
// setting against it. If this test fails, PostgreSQL changed: update the
// README's "Per-customer dashboards".
func TestTenancyLimitExplainAnalyze(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	one := d.login(t, d.role("acme"), "1")
	pgtest.MustExec(t, one, `SET enable_seqscan = off`)
	explain := func(id int) string {
		rows := query(t, one, fmt.Sprintf(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM app.orders WHERE id = %d`, id))
		return strings.ReplaceAll(strings.Join(rows, "\n"), fmt.Sprintf("(id = %d)", id), "(id = N)")
	}
	if other, none := explain(20), explain(99); other == none || !strings.Contains(other, "Rows Removed by Filter: 1") {
		t.Errorf("tenant 1 can no longer tell another tenant's order 20 from a missing order 99 through EXPLAIN ANALYZE: the README's limit is out of date\n%s\n---\n%s", other, none)
	}
}

// TestTenancyLimitPlannerEstimates pins another limit the README states:
// with a leakproof operator the planner uses the column's statistics for
// a tenant too, and EXPLAIN shows the estimate: how many rows another
// tenant has (the tenant column's most common values); estimates of other
// columns follow their statistics the same way.
func TestTenancyLimitPlannerEstimates(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	pgtest.MustExec(t, d.owner, `INSERT INTO app.orders SELECT g, 2, 1 FROM generate_series(100, 599) g`)
	d.setup(t)
	pgtest.MustExec(t, d.owner, `ANALYZE app.orders`)
	one := d.login(t, d.role("acme"), "1")
	estimate := func(v int) string {
		first := query(t, one, fmt.Sprintf(`EXPLAIN SELECT * FROM app.orders WHERE account_id = %d`, v))[0]
		return regexp.MustCompile(`rows=\d+`).FindString(first)
	}
	if two, three := estimate(2), estimate(3); two == three {
		t.Errorf("tenant 1's estimates no longer tell tenant 2's size (account 2 %s, account 3 %s): the README's limit is out of date", two, three)
	}
}

// TestTenancyAttackPrefixedRolesGranted: pgveil grants the impersonators
// the tenant roles only, not every role named with the prefix that is a
// member of the group in PostgreSQL's sense: not a login named with the
// prefix (a member through its tenant role), nor a superuser so named
// (superusers are members of every role), even when pgveil runs as a
// superuser. SET ROLE to them would read every row, or be superuser.
func TestTenancyAttackPrefixedRolesGranted(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	// A staff login that reads one tenant's dashboards and everything else.
	staff := d.tenant("1_staff")
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+schema.QuoteIdent(staff)+` LOGIN IN ROLE `+pgx.Identifier{d.tenant("1")}.Sanitize()+`, `+d.reader)
	// A superuser whose name happens to start with the prefix (think of
	// role_prefix: p and "postgres"), and pgveil running as a superuser.
	super := d.tenant("super")
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+schema.QuoteIdent(super)+` NOLOGIN SUPERUSER`)
	t.Cleanup(func() { pgtest.MustExec(t, d.admin, `DROP ROLE IF EXISTS `+schema.QuoteIdent(super)) })
	if _, err := SetupTenancy(d.ctx, d.admin, d.plan, d.tn, []string{d.reader}); err != nil {
		t.Fatal(err)
	}
	mb := pgtest.ConnectAs(t, d.dsn, d.imp)
	for _, r := range []string{staff, super} {
		denied(t, mb, "impersonator", `SET ROLE `+schema.QuoteIdent(r))
		if _, err := mb.Exec(d.ctx, `RESET ROLE`); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTenancyAttackAdvisoryLock: ensure_tenants serializes on an
// advisory lock, which every role may take: a tenant holding it stops
// pgveil's stream at the next new tenant (availability).
func TestTenancyAttackAdvisoryLock(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	if strings.Contains(ensureTenantsSQL, "advisory") {
		t.Fatal("ensure_tenants takes an advisory lock: any role may hold it")
	}
	one := d.login(t, d.role("acme"), "1")
	pgtest.MustExec(t, one, `SELECT pg_advisory_lock(hashtext('pgveil tenant roles'))`)
	// The apply must never wait for tenant 1's session: it fails as soon
	// as the server shows it waiting, not after some time.
	ctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	applied := make(chan error, 1)
	go func() {
		applied <- applyRows(ctx, d, d.tn,
			&Change{Op: OpInsert, Table: d.plan.Table("app", "accounts"), Row: vals("3", "three")})
	}()
	owner, tenant := d.owner.PgConn().PID(), one.PgConn().PID()
	var err error
	for done := false; !done; {
		select {
		case err = <-applied:
			done = true
		case <-time.After(20 * time.Millisecond):
			if blockedBy(t, d, owner, tenant) {
				cancel()
				t.Fatalf("a new tenant waits for tenant 1's session (%v)", <-applied)
			}
		}
	}
	if err != nil {
		t.Errorf("a new tenant while tenant 1 holds an advisory lock: %v", err)
	}

	// What the lock was for: two of pgveil's transactions creating the same
	// roles at once, given in opposite orders, both commit (the second
	// waits for the first, then finds the roles made).
	ensure := func(vals ...string) string {
		return `SELECT ` + ensureTenantsFunc + `(` + schema.QuoteLiteral(d.tn.RolePrefix) + `, ` + schema.QuoteLiteral(d.group) + `, '[]', ` + schema.QuoteLiteral(jsonStrings(vals)) + `)`
	}
	c1, c2 := pgtest.ConnectAs(t, d.dsn, d.role("w")), pgtest.ConnectAs(t, d.dsn, d.role("w"))
	pgtest.MustExec(t, c1, `BEGIN`)
	equal(t, "roles the first transaction creates", query(t, c1, ensure("40", "41")), []string{"2"})
	type result struct {
		created int
		err     error
	}
	second := make(chan result, 1)
	go func() {
		var r result
		r.err = pgx.BeginFunc(d.ctx, c2, func(tx pgx.Tx) error { return tx.QueryRow(d.ctx, ensure("41", "40", "42")).Scan(&r.created) })
		second <- r
	}()
	// The second now waits for the first's roles.
	for !blockedBy(t, d, c2.PgConn().PID(), c1.PgConn().PID()) {
		select {
		case r := <-second:
			t.Fatalf("the second transaction did not wait for the first: created %d, %v", r.created, r.err)
		case <-d.ctx.Done():
			t.Fatal("the second transaction never waited for the first")
		case <-time.After(20 * time.Millisecond):
		}
	}
	pgtest.MustExec(t, c1, `COMMIT`)
	select {
	case r := <-second:
		if r.err != nil || r.created != 1 {
			t.Errorf("the second transaction: created %d, %v; want 1, nil", r.created, r.err)
		}
	case <-d.ctx.Done():
		t.Fatal("the second transaction is still waiting")
	}
	equal(t, "tenant roles", roleNames(t, d, d.tenant("4")), []string{d.tenant("40"), d.tenant("41"), d.tenant("42")})
}

// blockedBy tells whether the server backend waiter waits for a lock that
// the backend holder holds.
func blockedBy(t *testing.T, d *tenancyDB, waiter, holder uint32) bool {
	t.Helper()
	var blocked bool
	if err := d.admin.QueryRow(d.ctx, `SELECT $1::int = ANY (pg_blocking_pids($2::int))`, int64(holder), int64(waiter)).Scan(&blocked); err != nil {
		t.Fatalf("pg_blocking_pids: %v", err)
	}
	return blocked
}

// TestTenancyAttackReservedRoleName: with a prefix that begins a
// reserved role name (role_prefix p, pu, no: the rules refuse them now,
// but the target does not rely on it), a
// tenant value completing it ("g_x", "blic", "ne") makes CREATE ROLE fail,
// and with it the stream's transaction, again and again (availability).
func TestTenancyAttackReservedRoleName(t *testing.T) {
	t.Parallel()
	d := newAttackDB(t)
	only(d, "docs")
	d.setup(t)
	docs := d.plan.Table("app", "docs")
	for i, c := range []struct{ prefix, value string }{{"pu", "blic"}, {"p", "g_" + d.tag}, {"no", "ne"}} {
		tn := *d.tn
		tn.RolePrefix = c.prefix
		err := applyRows(d.ctx, d, &tn, &Change{Op: OpInsert, Table: docs, Row: vals(fmt.Sprint(i+1), c.value)})
		if err != nil {
			t.Errorf("prefix %q, tenant value %q: %v", c.prefix, c.value, err)
		}
	}
}
