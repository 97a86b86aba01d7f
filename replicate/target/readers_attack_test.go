package target

// Attacks by readers and tenant logins on what they should not be able to
// do besides reading rows (issue 17, findings 7, 8 and 11): read other
// tenants' rows through views and functions granted to any role a tenant
// login can use, create things (large objects, WAL messages, temporary
// and other objects, read-only transactions or not), and read the
// per-table counters. Each attack asserts that it fails; what PostgreSQL
// 15 cannot prevent is pinned by a TestReadersLimit test, as the README
// and docs/operations.md state it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"
)

// TestTenancyLeakyGrantsToTenantSide: a view over a tenant table that
// reads as its owner, granted to one tenant role rather than the group
// (GRANT SELECT ON v TO tenant_1), lets that tenant's login read every
// tenant's rows. So does one granted to the login itself, to a role the
// login is a member of, or a column of it; a materialized view; a
// SECURITY DEFINER function every role may call. The check status and the
// running watch use (ReadTenancy) names them all, and the next setup takes
// them away (or refuses, when it cannot). Grants to a reader are not a
// leak: readers read every row.
func TestTenancyLeakyGrantsToTenantSide(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	d.tn.Readers = []string{d.reader}
	one := d.login(t, d.role("acme"), "1")
	dash := d.role("dash")
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+dash+` NOLOGIN; GRANT `+dash+` TO `+d.role("acme"))
	t1 := pgx.Identifier{d.tenant("1")}.Sanitize()
	// The exact repro of the review, then its variants.
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.v AS SELECT * FROM app.orders; GRANT SELECT ON app.v TO `+t1)
	sees(t, one, "tenant 1 through app.v before the check", `SELECT count(*) FROM app.v`, "5")
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.v_login AS SELECT * FROM app.orders; GRANT SELECT ON app.v_login TO `+d.role("acme"))
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.v_dash AS SELECT * FROM app.accounts; GRANT SELECT ON app.v_dash TO `+dash)
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.v_col AS SELECT * FROM app.orders; GRANT SELECT (id) ON app.v_col TO `+t1)
	pgtest.MustExec(t, d.owner, `CREATE MATERIALIZED VIEW app.m AS SELECT * FROM app.orders; GRANT SELECT ON app.m TO `+t1)
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.v_imp AS SELECT * FROM app.orders; GRANT SELECT ON app.v_imp TO `+d.imp)
	// Not leaks: a reader's view, a security_invoker view, a view on a
	// table pgveil does not replicate.
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.v_reader AS SELECT * FROM app.orders; GRANT SELECT ON app.v_reader TO `+d.reader)
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.v_inv WITH (security_invoker = true) AS SELECT * FROM app.orders; GRANT SELECT ON app.v_inv TO `+t1)
	// A staff login, tenant 1 and a reader: the reader's grants are its.
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+d.role("staff")+` LOGIN IN ROLE `+t1+`, `+d.reader)
	// A SECURITY DEFINER function of the tables' owner, callable by PUBLIC
	// (the default), and one granted to tenant 1 only.
	pgtest.MustExec(t, d.owner, `CREATE FUNCTION app.all_orders() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM app.orders'`)
	pgtest.MustExec(t, d.owner, `CREATE FUNCTION app.t1_orders() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM app.orders';
REVOKE EXECUTE ON FUNCTION app.t1_orders() FROM PUBLIC; GRANT EXECUTE ON FUNCTION app.t1_orders() TO `+t1)
	sees(t, one, "tenant 1 through a SECURITY DEFINER function", `SELECT app.t1_orders()`, "5")
	// A hidden table without row level security, granted to tenant 1.
	pgtest.MustExec(t, d.owner, `ALTER TABLE app.notes DISABLE ROW LEVEL SECURITY; GRANT SELECT ON app.notes TO `+t1)

	st, err := ReadTenancy(d.ctx, d.owner, d.tn, tableNames(d.plan))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "leaky views and functions", st.Leaky, []string{"app.m", "app.v", "app.v_col", "app.v_dash", "app.v_imp", "app.v_login", "app.all_orders()", "app.t1_orders()"})
	equal(t, "unprotected tables", st.Unprotected, []string{"app.notes"})

	// Setup takes from the tenants' side what pgveil's role owns, but a
	// function PUBLIC may call: it refuses, naming it.
	_, err = SetupTenancy(d.ctx, d.owner, d.plan, d.tn, []string{d.reader})
	if err == nil || !strings.Contains(err.Error(), "app.all_orders()") || strings.Contains(err.Error(), "app.v") {
		t.Fatalf("setup with a SECURITY DEFINER function PUBLIC may call: %v", err)
	}
	pgtest.MustExec(t, d.owner, `REVOKE EXECUTE ON FUNCTION app.all_orders() FROM PUBLIC`)
	revoked := d.setup(t)
	equal(t, "revoked", revoked, []string{"app.m", "app.v", "app.v_col", "app.v_dash", "app.v_imp", "app.v_login", "app.t1_orders()"})
	for _, v := range []string{"app.v", "app.v_login", "app.v_dash", "app.v_col", "app.m"} {
		denied(t, one, "tenant 1", `SELECT count(*) FROM `+v)
	}
	denied(t, one, "tenant 1", `SELECT app.t1_orders()`)
	// Row level security is on again: the grant to tenant 1 shows nothing.
	sees(t, one, "tenant 1", `SELECT count(*) FROM app.notes`, "0")
	sees(t, one, "tenant 1 through a security_invoker view", `SELECT count(*) FROM app.v_inv`, "3")
	sees(t, pgtest.ConnectAs(t, d.dsn, d.reader), "reader", `SELECT count(*) FROM app.v_reader`, "5")
	st, err = ReadTenancy(d.ctx, d.owner, d.tn, tableNames(d.plan))
	if err != nil || len(st.Leaky) > 0 || len(st.Unprotected) > 0 {
		t.Errorf("after setup: leaky %v, unprotected %v (%v)", st.Leaky, st.Unprotected, err)
	}
}

// tableNames are the names of a plan's tables.
func tableNames(p *transform.Plan) []schema.TableName {
	var out []schema.TableName
	for _, t := range p.Tables() {
		out = append(out, schema.TableName{Schema: t.Table.Schema, Name: t.Table.Name})
	}
	return out
}

// sqlStateOf is the SQLSTATE of err, "" when it is not a server error.
func sqlStateOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// createAttempts are statements with which a reader or a tenant would
// create something; lo is the OID of a large object an administrator
// made and let everyone update, so that only the function's privilege
// stands in the way.
func createAttempts(lo uint32, schemaName string) []string {
	return []string{
		`SELECT lo_create(0)`,
		`SELECT lo_creat(-1)`,
		`SELECT lo_from_bytea(0, '\x00')`,
		fmt.Sprintf(`SELECT lo_put(%d, 0, 'x')`, lo),
		fmt.Sprintf(`SELECT lowrite(lo_open(%d, 131072), 'x')`, lo),
		fmt.Sprintf(`SELECT lo_truncate(lo_open(%d, 131072), 0)`, lo),
		fmt.Sprintf(`SELECT lo_truncate64(lo_open(%d, 131072), 0)`, lo),
		fmt.Sprintf(`SELECT lo_unlink(%d)`, lo),
		`SELECT lo_import('/dev/null')`,
		`SELECT pg_logical_emit_message(false, 'x', 'y')`,
		`SELECT pg_logical_emit_message(true, 'x', '\x00'::bytea)`,
		`CREATE TEMP TABLE mine (x int)`,
		`CREATE FUNCTION pg_temp.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		`CREATE TABLE public.mine (x int)`,
		`CREATE TABLE ` + schemaName + `.mine (x int)`,
		`CREATE SCHEMA mine`,
	}
}

// cannotCreate runs createAttempts on conn with read-only transactions by
// default (the setup-sql readers' setting), in an explicit READ ONLY
// transaction, and with read-write transactions: each fails for a missing
// privilege (or, read-only, because the transaction is), and nothing was
// written.
func cannotCreate(t *testing.T, admin, conn *pgx.Conn, who, schemaName string) {
	t.Helper()
	ctx := context.Background()
	var lo uint32
	if err := admin.QueryRow(ctx, `SELECT lo_from_bytea(0, 'admin')`).Scan(&lo); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, admin, fmt.Sprintf(`GRANT SELECT, UPDATE ON LARGE OBJECT %d TO PUBLIC`, lo))
	written := `SELECT (SELECT count(*) FROM pg_largeobject_metadata) || '/' || (SELECT string_agg(encode(data, 'escape'), '') FROM pg_largeobject WHERE loid = ` + fmt.Sprint(lo) + `)`
	before := query(t, admin, written)
	for _, mode := range []struct {
		name, begin string
		codes       []string
	}{
		{"default_transaction_read_only", `SET default_transaction_read_only = on`, []string{"42501", "25006"}},
		{"READ ONLY transaction", `BEGIN READ ONLY`, []string{"42501", "25006"}},
		{"read-write", `SET default_transaction_read_only = off`, []string{"42501"}},
	} {
		for _, sql := range createAttempts(lo, schemaName) {
			pgtest.MustExec(t, conn, mode.begin)
			_, err := conn.Exec(ctx, sql)
			if code := sqlStateOf(err); !slices.Contains(mode.codes, code) {
				t.Errorf("%s, %s: %s: got %v, want SQLSTATE %s", who, mode.name, sql, err, strings.Join(mode.codes, " or "))
			}
			pgtest.MustExec(t, conn, `ROLLBACK`)
		}
	}
	pgtest.MustExec(t, conn, `RESET default_transaction_read_only`)
	equal(t, who+": large objects after the attempts", query(t, admin, written), before)
}

// TestReadersCreateNothing: a reader cannot write a large object, a WAL
// message, a temporary table or function, a table or a schema, in a
// read-only transaction or not; with pgveil's role a superuser, Setup
// takes the privileges away itself; otherwise it refuses until a
// superuser has run what setup-sql prints.
func TestReadersCreateNothing(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	dsn := shared.NewDB(t)
	admin := pgtest.Connect(t, dsn)
	db := dbName(t, dsn)
	reader, w := "r_"+db, "w_"+db
	pgtest.MustExec(t, admin, `CREATE ROLE `+reader+` LOGIN`)
	p := plan(table("app", "t", pk("id", "integer")))

	// pgveil's role without SUPERUSER, owning the database: it can take
	// TEMPORARY and CREATE, not the functions.
	pgtest.MustExec(t, admin, `CREATE ROLE `+w+` LOGIN; ALTER DATABASE `+schema.QuoteIdent(db)+` OWNER TO `+w)
	wc := pgtest.ConnectAs(t, dsn, w)
	err := Setup(ctx, wc, p, nil, []string{reader})
	if err == nil || !strings.Contains(err.Error(), "EXECUTE ON FUNCTION lo_create(oid): "+reader) || !strings.Contains(err.Error(), "setup-sql") {
		t.Fatalf("Setup by a role that cannot take lo_create from PUBLIC: %v", err)
	}
	// A CreatesError, returned after the rest was committed: the pipeline
	// stops a first start on it and lets an existing replica stream.
	if ce := (*CreatesError)(nil); !errors.As(err, &ce) {
		t.Errorf("Setup's error is not a CreatesError: %T", err)
	}
	if got := query(t, admin, `SELECT has_table_privilege('`+reader+`', 'app.t', 'SELECT')::text`); len(got) != 1 || got[0] != "true" {
		t.Errorf("the rest of Setup was not committed: reader SELECT on app.t = %s", got)
	}
	for _, q := range LockDownSQL() {
		pgtest.MustExec(t, admin, q)
	}
	if err := Setup(ctx, wc, p, nil, []string{reader}); err != nil {
		t.Fatal(err)
	}
	cannotCreate(t, admin, pgtest.ConnectAs(t, dsn, reader), "reader", "app")

	// A superuser's Setup takes them itself, in a database where nobody
	// did: and a second Setup has nothing left to do.
	dsn2 := shared.NewDB(t)
	admin2 := pgtest.Connect(t, dsn2)
	if err := Setup(ctx, admin2, p, nil, []string{reader}); err != nil {
		t.Fatal(err)
	}
	cannotCreate(t, admin2, pgtest.ConnectAs(t, dsn2, reader), "reader (superuser's Setup)", "app")
	// The reader keeps the per-table counters Metabase's sync reads
	// (ReaderStatsSQL); PUBLIC does not.
	equal(t, "counters for the reader and PUBLIC", query(t, admin2, `SELECT has_function_privilege('`+reader+`', 'pg_stat_get_live_tuples(oid)', 'EXECUTE')::text
|| '/' || EXISTS (SELECT FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE p.proname = 'pg_stat_get_live_tuples' AND a.grantee = 0)::text`), []string{"true/false"})
	if got := query(t, pgtest.ConnectAs(t, dsn2, reader), `SELECT count(*) FROM pg_stat_user_tables WHERE relname = 't'`); len(got) != 1 || got[0] != "1" {
		t.Errorf("reader reading pg_stat_user_tables: %v", got)
	}
	acl := `SELECT string_agg(p.proname || '=' || coalesce(p.proacl::text, 'default'), ',' ORDER BY p.oid) FROM pg_proc p WHERE p.proname LIKE 'lo\_%' OR p.proname LIKE 'pg\_stat\_get\_%'`
	before := query(t, admin2, acl)
	if err := Setup(ctx, admin2, p, nil, []string{reader}); err != nil {
		t.Fatal(err)
	}
	equal(t, "function privileges after a second Setup", query(t, admin2, acl), before)
}

// TestTenancyAttackCreateNothing: a tenant's login, and the impersonator,
// can create nothing either; a privilege granted to a tenant login by hand
// makes SetupTenancy refuse, naming the login.
func TestTenancyAttackCreateNothing(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	one := d.login(t, d.role("acme"), "1")
	cannotCreate(t, d.admin, one, "tenant 1", "app")
	cannotCreate(t, d.admin, pgtest.ConnectAs(t, d.dsn, d.imp), "impersonator", "app")
	pgtest.MustExec(t, d.admin, `GRANT EXECUTE ON FUNCTION lo_create(oid) TO `+d.tenant("2"))
	pgtest.MustExec(t, d.admin, `GRANT TEMPORARY ON DATABASE `+pgx.Identifier{dbName(t, d.dsn)}.Sanitize()+` TO `+d.role("acme"))
	_, err := SetupTenancy(d.ctx, d.owner, d.plan, d.tn, []string{d.reader})
	if err == nil || !strings.Contains(err.Error(), "EXECUTE ON FUNCTION lo_create(oid): 1 tenant role(s)") ||
		!strings.Contains(err.Error(), "TEMPORARY ON DATABASE") || !strings.Contains(err.Error(), d.role("acme")) || strings.Contains(err.Error(), d.tenant("2")) {
		t.Errorf("setup with a tenant that can create: %v", err)
	}
}

// TestTenancyAttackTableCounters: the per-table counters (exact live row
// counts, inserts, updates, scans) of every table, pgveil's own included,
// are not readable by a tenant's login or a reader, through the views or
// the functions beneath them; nor are pgveil's tables' contents. A member
// of pg_read_all_stats (monitoring) keeps them.
func TestTenancyAttackTableCounters(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	pgtest.MustExec(t, d.owner, `SELECT pg_stat_force_next_flush()`)
	one := d.login(t, d.role("acme"), "1")
	rd := pgtest.ConnectAs(t, d.dsn, d.reader)
	for who, conn := range map[string]*pgx.Conn{"tenant 1": one, "reader": rd} {
		for _, sql := range []string{
			`SELECT n_live_tup, n_tup_ins FROM pg_stat_user_tables WHERE relname = 'orders'`,
			`SELECT n_tup_upd FROM pg_stat_all_tables WHERE schemaname = 'pgveil'`,
			`SELECT n_tup_ins FROM pg_stat_xact_user_tables`,
			`SELECT heap_blks_read FROM pg_statio_user_tables`,
			`SELECT idx_scan FROM pg_stat_user_indexes`,
			`SELECT pg_stat_get_live_tuples(c.oid) FROM pg_class c WHERE relname = 'orders'`,
			`SELECT pg_stat_get_tuples_updated(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgveil' AND relname = 'checkpoint'`,
			`SELECT * FROM pgveil.checkpoint`,
			`SELECT * FROM pgveil.tables`,
		} {
			denied(t, conn, who, sql)
		}
	}
	mon := d.role("mon")
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+mon+` LOGIN IN ROLE pg_read_all_stats`)
	if got := query(t, pgtest.ConnectAs(t, d.dsn, mon), `SELECT n_tup_ins FROM pg_stat_user_tables WHERE schemaname = 'app' AND relname = 'orders'`); !slices.Equal(got, []string{"5"}) {
		t.Errorf("monitoring role: orders inserted %v, want 5", got)
	}
}

// TestReadersLimitNotify pins what PostgreSQL 15 has no privilege
// against (docs/operations.md, "What readers and tenants can still do"):
// NOTIFY, even in a READ ONLY transaction, reaches any session that
// LISTENs, another tenant's too; the planner's estimate of a table's rows
// (pg_class.reltuples) and the database-wide counters stay readable. If
// this test fails, PostgreSQL changed: update the docs.
func TestReadersLimitNotify(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	pgtest.MustExec(t, d.owner, `ANALYZE app.orders`)
	one, two := d.login(t, d.role("acme"), "1"), d.login(t, d.role("globex"), "2")
	pgtest.MustExec(t, one, `LISTEN ch`)
	pgtest.MustExec(t, two, `BEGIN READ ONLY; NOTIFY ch, 'from tenant 2'; COMMIT`)
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	if n, err := one.WaitForNotification(ctx); err != nil || n.Payload != "from tenant 2" {
		t.Errorf("tenant 2's NOTIFY no longer reaches tenant 1 (%v, %v): update docs/operations.md", n, err)
	}
	sees(t, one, "tenant 1", `SELECT reltuples FROM pg_class WHERE oid = 'app.orders'::regclass`, "5")
	sees(t, one, "tenant 1", `SELECT xact_commit IS NOT NULL FROM pg_stat_database WHERE datname = current_database()`, "t")
}

// TestTenancyAttackReferences: readers, tenant logins and the impersonator
// hold REFERENCES (ReadPrivileges) so that Metabase sees the tables' keys
// in information_schema; REFERENCES only lets its holder declare a foreign
// key from a table it owns, and a foreign key's checks read the
// referenced table past row level security, a probe of other tenants'
// keys. None of them can get such a table: creating one is refused, a
// temporary one may not reference the replica, and owning one is refused
// by SetupTenancy, which names it. Owning one is shown to be a real
// probe, so that the check is known to matter.
func TestTenancyAttackReferences(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	one := d.login(t, d.role("acme"), "1")
	rd := pgtest.ConnectAs(t, d.dsn, d.reader)
	mb := pgtest.ConnectAs(t, d.dsn, d.imp)
	keys := `SELECT string_agg(tc.table_name || '.' || kc.column_name, ',' ORDER BY tc.table_name)
FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kc
ON kc.constraint_name = tc.constraint_name AND kc.table_schema = tc.table_schema AND kc.table_name = tc.table_name
WHERE tc.table_schema = 'app' AND tc.constraint_type = 'PRIMARY KEY'`
	// Tenants see the keys of what they read; the impersonator, which
	// Metabase syncs with, and the reader see every table's.
	sees(t, one, "tenant 1", keys, "accounts.id,orders.id,plans.id")
	sees(t, mb, "impersonator", keys, "accounts.id,audit.id,notes.id,orders.id,plans.id")
	sees(t, rd, "reader", keys, "accounts.id,audit.id,notes.id,orders.id,plans.id")

	// Even with TEMPORARY granted by hand, a temporary table cannot
	// reference the replica.
	pgtest.MustExec(t, d.admin, `GRANT TEMPORARY ON DATABASE `+pgx.Identifier{dbName(t, d.dsn)}.Sanitize()+` TO `+d.role("acme")+`, `+d.reader+`, `+d.imp)
	for _, c := range []struct {
		who  string
		conn *pgx.Conn
	}{{"tenant 1", one}, {"reader", rd}, {"impersonator", mb}} {
		pgtest.MustExec(t, c.conn, `SET default_transaction_read_only = off`)
		for _, sql := range []string{
			`CREATE TABLE app.probe (a bigint REFERENCES app.accounts)`,
			`CREATE TABLE public.probe (a bigint REFERENCES app.accounts)`,
			`ALTER TABLE app.orders ADD FOREIGN KEY (account_id) REFERENCES app.accounts`,
			`ALTER TABLE app.notes ADD FOREIGN KEY (id) REFERENCES app.accounts`,
		} {
			denied(t, c.conn, c.who, sql)
		}
		fails(t, c.conn, c.who, `CREATE TEMP TABLE probe (a bigint REFERENCES app.accounts)`, "42P16")
		fails(t, c.conn, c.who, `CREATE TEMP TABLE probe (a bigint); ALTER TABLE probe ADD FOREIGN KEY (a) REFERENCES app.accounts`, "42P16")
	}
	pgtest.MustExec(t, d.admin, `REVOKE TEMPORARY ON DATABASE `+pgx.Identifier{dbName(t, d.dsn)}.Sanitize()+` FROM `+d.role("acme")+`, `+d.reader+`, `+d.imp)

	// A table a tenant's login owns (given by a careless administrator) is
	// a probe: tenant 1 learns that account 2 exists.
	pgtest.MustExec(t, d.admin, `CREATE TABLE public.mine (a bigint); ALTER TABLE public.mine OWNER TO `+d.role("acme"))
	pgtest.MustExec(t, one, `SET default_transaction_read_only = off`)
	pgtest.MustExec(t, one, `ALTER TABLE public.mine ADD FOREIGN KEY (a) REFERENCES app.accounts`)
	pgtest.MustExec(t, one, `INSERT INTO public.mine VALUES (2)`)
	fails(t, one, "tenant 1", `INSERT INTO public.mine VALUES (3)`, "23503")
	// SetupTenancy refuses it, naming the login and the table.
	_, err := SetupTenancy(d.ctx, d.owner, d.plan, d.tn, []string{d.reader})
	var ce *CreatesError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "OWNERSHIP OF 1 table(s), such as public.mine: "+d.role("acme")) || !strings.Contains(err.Error(), "OWNER TO") {
		t.Errorf("SetupTenancy with a tenant login that owns a table: %v", err)
	}
	// And Setup, for a reader that owns one.
	pgtest.MustExec(t, d.admin, `ALTER TABLE public.mine OWNER TO `+d.reader)
	err = Setup(d.ctx, d.owner, d.plan, nil, []string{d.reader})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "OWNERSHIP OF 1 table(s), such as public.mine: "+d.reader) {
		t.Errorf("Setup with a reader that owns a table: %v", err)
	}
	pgtest.MustExec(t, d.admin, `DROP TABLE public.mine`)
	d.setup(t)
}
