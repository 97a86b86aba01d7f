package target

// A rerun of issue 17, findings 7 (leaky views and functions), 8 (large
// objects) and 11 (statistics views), by someone who did not write the
// fixes, with the variants the first review did not try: grants reached
// through chains of roles, NOINHERIT roles a login can SET ROLE to,
// views over security_invoker views, libpq's fast-path function calls
// (psql's \lo_import), and statistics of what a reader is not granted.

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

func ident(s string) string { return schema.QuoteIdent(s) }

// TestRerun17LeakyViewsThroughRoleChains: views of the tables' owner
// (pgveil's role, whom row level security does not restrict) and a
// SECURITY DEFINER function, granted to roles a tenant login reaches only
// through two or three levels of membership, or through a NOINHERIT role
// it must SET ROLE to, or between the login and its tenant role. Each
// shows the login every tenant's rows before the check; the check names
// them all, setup takes them away, and a membership granted later is
// caught again by the running check (ReadTenancy).
func TestRerun17LeakyViewsThroughRoleChains(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	acme := d.role("acme")
	one := d.login(t, acme, "1")
	mid, top := d.role("mid"), d.role("top")          // acme -> mid -> top
	nomid, notop := d.role("nomid"), d.role("notop")  // acme -> nomid (NOINHERIT) -> notop
	team, teamLogin := d.role("team"), d.role("tlog") // tlog -> team -> tenant 1
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+mid+` NOLOGIN; CREATE ROLE `+top+` NOLOGIN; GRANT `+top+` TO `+mid+`; GRANT `+mid+` TO `+acme+`;
CREATE ROLE `+nomid+` NOLOGIN NOINHERIT; CREATE ROLE `+notop+` NOLOGIN; GRANT `+notop+` TO `+nomid+`; GRANT `+nomid+` TO `+acme+`;
CREATE ROLE `+team+` NOLOGIN; GRANT `+ident(d.tenant("1"))+` TO `+team+`; CREATE ROLE `+teamLogin+` LOGIN IN ROLE `+team)
	two := pgtest.ConnectAs(t, d.dsn, teamLogin)

	pgtest.MustExec(t, d.owner, `CREATE VIEW app.v_top AS SELECT * FROM app.orders; GRANT SELECT ON app.v_top TO `+top+`;
CREATE VIEW app.v_false WITH (security_invoker = false) AS SELECT * FROM app.orders; GRANT SELECT ON app.v_false TO `+top+`;
CREATE VIEW app.inv WITH (security_invoker = true) AS SELECT * FROM app.orders; GRANT SELECT ON app.inv TO `+top+`;
CREATE VIEW app.v_sub AS SELECT (SELECT sum(total) FROM app.orders) AS total; GRANT SELECT ON app.v_sub TO `+top+`;
CREATE VIEW app.v_notop AS SELECT * FROM app.accounts; GRANT SELECT ON app.v_notop TO `+notop+`; GRANT USAGE ON SCHEMA app TO `+notop+`;
CREATE VIEW app.v_team AS SELECT * FROM app.orders; GRANT SELECT ON app.v_team TO `+team+`;
CREATE SCHEMA rpt; GRANT USAGE ON SCHEMA rpt TO `+top+`;
CREATE VIEW rpt.all_accounts AS SELECT * FROM app.accounts; GRANT SELECT ON rpt.all_accounts TO `+top+`;
CREATE FUNCTION app.f_top() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM app.orders';
REVOKE EXECUTE ON FUNCTION app.f_top() FROM PUBLIC; GRANT EXECUTE ON FUNCTION app.f_top() TO `+top)

	// The attacks work before the check: tenant 1 has 3 orders of 5 and
	// one account of 2.
	sees(t, one, "tenant 1", `SELECT count(*) FROM app.v_top`, "5")
	sees(t, one, "tenant 1", `SELECT count(*) FROM app.v_false`, "5")
	sees(t, one, "tenant 1", `SELECT total FROM app.v_sub`, "323")
	sees(t, one, "tenant 1", `SELECT count(*) FROM rpt.all_accounts`, "2")
	sees(t, one, "tenant 1", `SELECT app.f_top()`, "5")
	sees(t, one, "tenant 1 through a security_invoker view (no leak)", `SELECT count(*) FROM app.inv`, "3")
	denied(t, one, "tenant 1 without SET ROLE", `SELECT count(*) FROM app.v_notop`)
	pgtest.MustExec(t, one, `SET ROLE `+notop)
	sees(t, one, "tenant 1 as "+notop, `SELECT count(*) FROM app.v_notop`, "2")
	pgtest.MustExec(t, one, `RESET ROLE`)
	sees(t, two, "tenant 1 through "+team, `SELECT count(*) FROM app.v_team`, "5")

	leaky := []string{"app.v_false", "app.v_notop", "app.v_sub", "app.v_team", "app.v_top", "rpt.all_accounts", "app.f_top()"}
	st, err := ReadTenancy(d.ctx, d.owner, d.tn, tableNames(d.plan))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "leaky views and functions", st.Leaky, leaky)
	equal(t, "revoked", sorted(d.setup(t)), sorted(leaky))
	for _, q := range []string{`SELECT count(*) FROM app.v_top`, `SELECT count(*) FROM app.v_false`,
		`SELECT total FROM app.v_sub`, `SELECT count(*) FROM rpt.all_accounts`, `SELECT app.f_top()`} {
		denied(t, one, "tenant 1", q)
	}
	pgtest.MustExec(t, one, `SET ROLE `+notop)
	denied(t, one, "tenant 1 as "+notop, `SELECT count(*) FROM app.v_notop`)
	pgtest.MustExec(t, one, `RESET ROLE`)
	denied(t, two, "tenant 1 through "+team, `SELECT count(*) FROM app.v_team`)
	sees(t, one, "tenant 1 through the security_invoker view", `SELECT count(*) FROM app.inv`, "3")
	if st, err = ReadTenancy(d.ctx, d.owner, d.tn, tableNames(d.plan)); err != nil || len(st.Leaky) > 0 {
		t.Errorf("after setup: leaky %v (%v)", st.Leaky, err)
	}

	// A view granted to a role no tenant login could use is no leak; once
	// that role is granted to top (three levels above the login), it is,
	// and the running check says so.
	later := d.role("later")
	pgtest.MustExec(t, d.admin, `CREATE ROLE `+later+` NOLOGIN`)
	pgtest.MustExec(t, d.owner, `CREATE VIEW app.v_later AS SELECT * FROM app.orders; GRANT SELECT ON app.v_later TO `+later)
	if st, err = ReadTenancy(d.ctx, d.owner, d.tn, tableNames(d.plan)); err != nil || len(st.Leaky) > 0 {
		t.Errorf("a view no tenant can read: leaky %v (%v)", st.Leaky, err)
	}
	pgtest.MustExec(t, d.admin, `GRANT `+later+` TO `+top)
	sees(t, one, "tenant 1 through "+later, `SELECT count(*) FROM app.v_later`, "5")
	if st, err = ReadTenancy(d.ctx, d.owner, d.tn, tableNames(d.plan)); err != nil {
		t.Fatal(err)
	}
	equal(t, "leaky after a later membership", st.Leaky, []string{"app.v_later"})
	equal(t, "revoked", d.setup(t), []string{"app.v_later"})
	denied(t, one, "tenant 1 through "+later, `SELECT count(*) FROM app.v_later`)
}

func sorted(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}

// loAttempts are the ways a role would write a large object (lo is one an
// administrator made and let everyone update, bare one on which PUBLIC
// has nothing), change one's privileges, or turn the privilege checks of
// large objects off.
func loAttempts(lo, bare string) []string {
	return []string{
		`SELECT lo_import('/etc/hostname')`,
		`SELECT lo_import('/etc/hostname', 4242424)`,
		`SELECT lo_creat(-1)`,
		`SELECT lo_create(0)`,
		`SELECT lo_from_bytea(0, 'x')`,
		`SELECT lowrite(lo_open(lo_creat(-1), 131072), 'x')`,
		`SELECT lowrite(lo_open(` + lo + `, 131072), 'x')`,
		`SELECT lo_put(` + lo + `, 0, 'x')`,
		`GRANT SELECT ON LARGE OBJECT ` + bare + ` TO PUBLIC`,
		`ALTER LARGE OBJECT ` + lo + ` OWNER TO CURRENT_USER`,
		`COMMENT ON LARGE OBJECT ` + lo + ` IS 'x'`,
		`SET lo_compat_privileges = on`,
	}
}

// fastpathLoCreat calls lo_creat(-1) as user, after the statements
// before, with the protocol's function call message (what libpq's
// lo_import, and psql's \lo_import, use instead of SQL), and returns the
// SQLSTATE of the answer, or "ok".
func fastpathLoCreat(t *testing.T, dsn, user string, fn uint32, before ...string) string {
	t.Helper()
	conn := pgtest.ConnectAs(t, dsn, user)
	for _, q := range before {
		pgtest.MustExec(t, conn, q)
	}
	hc, err := conn.PgConn().Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	hc.Frontend.Send(&pgproto3.FunctionCall{Function: fn, ArgFormatCodes: []uint16{1}, Arguments: [][]byte{{0xff, 0xff, 0xff, 0xff}}, ResultFormatCode: 1})
	if err := hc.Frontend.Flush(); err != nil {
		t.Fatal(err)
	}
	got := ""
	for {
		msg, err := hc.Frontend.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			got = m.Code
		case *pgproto3.FunctionCallResponse:
			got = "ok"
		case *pgproto3.ReadyForQuery:
			return got
		}
	}
}

// TestRerun17LargeObjects: a tenant's login, the reader, and the
// impersonator as a tenant or as the tenant group can create, write,
// import, grant or comment no large object, in a read-only transaction
// or not, through SQL or through the fast-path function call; nor can
// they turn large objects' privilege checks off.
func TestRerun17LargeObjects(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	ctx := context.Background()
	lo := query(t, d.admin, `SELECT lo_from_bytea(0, 'admin')`)[0]
	bare := query(t, d.admin, `SELECT lo_from_bytea(0, 'bare')`)[0]
	pgtest.MustExec(t, d.admin, `GRANT SELECT, UPDATE ON LARGE OBJECT `+lo+` TO PUBLIC`)
	state := `SELECT (SELECT count(*) FROM pg_largeobject_metadata) || '/' || (SELECT string_agg(encode(data, 'escape'), '') FROM pg_largeobject WHERE loid = ` + lo + `)
|| '/' || coalesce(obj_description(` + lo + `, 'pg_largeobject'), '') || '/' || (SELECT string_agg(oid || '=' || lomowner::regrole || coalesce(lomacl::text, ''), ',' ORDER BY oid) FROM pg_largeobject_metadata)`
	before := query(t, d.admin, state)

	acme := d.role("acme")
	d.login(t, acme, "1")
	who := []struct {
		name, user string
		setRole    []string
	}{
		{"tenant 1", acme, nil},
		{"reader", d.reader, nil},
		{"impersonator as tenant 1", d.imp, []string{`SET ROLE ` + ident(d.tenant("1"))}},
		{"impersonator as the tenant group", d.imp, []string{`SET ROLE ` + ident(d.group)}},
	}
	for _, w := range who {
		conn := pgtest.ConnectAs(t, d.dsn, w.user)
		for _, q := range w.setRole {
			pgtest.MustExec(t, conn, q)
		}
		for _, mode := range []struct{ name, begin, end string }{
			{"default_transaction_read_only", `SET default_transaction_read_only = on`, `RESET default_transaction_read_only`},
			{"READ ONLY transaction", `BEGIN READ ONLY`, `ROLLBACK`},
			{"read-write transaction", `BEGIN READ WRITE`, `ROLLBACK`},
		} {
			for _, sql := range loAttempts(lo, bare) {
				pgtest.MustExec(t, conn, mode.begin)
				_, err := conn.Exec(ctx, sql)
				if code := sqlStateOf(err); code != "42501" && code != "25006" {
					t.Errorf("%s, %s: %s: got %v, want permission denied", w.name, mode.name, sql, err)
				}
				pgtest.MustExec(t, conn, `ROLLBACK`)
				pgtest.MustExec(t, conn, mode.end)
			}
		}
		// With some privilege on lo but no grant option, GRANT succeeds with
		// a warning that nothing was granted: the state check below proves it.
		for _, sql := range []string{`GRANT SELECT ON LARGE OBJECT ` + lo + ` TO PUBLIC`, `GRANT UPDATE ON LARGE OBJECT ` + lo + ` TO ` + ident(d.reader)} {
			if _, err := conn.Exec(ctx, sql); err != nil && sqlStateOf(err) != "42501" {
				t.Errorf("%s: %s: %v", w.name, sql, err)
			}
		}
	}
	var oid uint32
	if err := d.admin.QueryRow(ctx, `SELECT 'lo_creat(integer)'::regprocedure::oid`).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	// The fast path works: the administrator makes one, then unlinks it.
	if got := fastpathLoCreat(t, d.dsn, "postgres", oid); got != "ok" {
		t.Fatalf("the administrator's fast-path lo_creat: %s", got)
	}
	pgtest.MustExec(t, d.admin, `SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid NOT IN (`+lo+`, `+bare+`)`)
	for _, w := range who {
		if got := fastpathLoCreat(t, d.dsn, w.user, oid, w.setRole...); got != "42501" {
			t.Errorf("%s: fast-path lo_creat: %s, want permission denied", w.name, got)
		}
	}
	equal(t, "large objects after the attempts", query(t, d.admin, state), before)
}

// TestRerun17StatsViews: a reader of every replicated row (no tenancy)
// reads the per-table counters (pg_stat_*, pg_statio_*: Metabase's sync
// reads n_live_tup, and the reader reads every row anyway), and pg_stats
// shows it the statistics of the replicated tables only: none of
// pgveil's own tables, none of a table pgveil does not replicate (not its
// most common values, not its extended statistics). Under tenancy, a
// tenant's login and the reader see no statistics of any table under row
// level security, their own rows' included.
func TestRerun17StatsViews(t *testing.T) {
	t.Parallel()
	counters := []string{
		`SELECT * FROM pg_statio_user_tables`,
		`SELECT * FROM pg_stat_user_indexes`,
		`SELECT * FROM pg_stat_user_tables`,
		`SELECT * FROM pg_stat_all_tables`,
		`SELECT * FROM pg_stat_sys_tables`,
		`SELECT * FROM pg_stat_xact_all_tables`,
		`SELECT * FROM pg_stat_all_indexes`,
		`SELECT * FROM pg_statio_all_indexes`,
		`SELECT * FROM pg_statio_all_sequences`,
		`SELECT pg_stat_get_blocks_fetched(c.oid) FROM pg_class c WHERE c.relnamespace = 'pgveil'::regnamespace`,
		`SELECT pg_stat_get_last_autoanalyze_time('app.people'::regclass)`,
	}
	t.Run("reader", func(t *testing.T) {
		t.Parallel()
		ctx := pgtest.Context(t)
		dsn := shared.NewDB(t)
		admin := pgtest.Connect(t, dsn)
		reader := "r17_" + dbName(t, dsn)
		pgtest.MustExec(t, admin, `CREATE ROLE `+ident(reader)+` LOGIN`)
		p := plan(table("app", "people", pk("id", "integer"), c("email", "text")))
		if err := Setup(ctx, admin, p, nil, []string{reader}); err != nil {
			t.Fatal(err)
		}
		pgtest.MustExec(t, admin, `INSERT INTO app.people SELECT g, 'masked' || g % 2 FROM generate_series(1, 200) g;
CREATE SCHEMA private; CREATE TABLE private.unreplicated (id int, ssn text);
INSERT INTO private.unreplicated SELECT g, 'ssn-CANARY-' || g % 3 FROM generate_series(1, 200) g;
CREATE TABLE public.unreplicated AS SELECT * FROM private.unreplicated;
CREATE STATISTICS private.unrep_mcv (mcv) ON id, ssn FROM private.unreplicated;
CREATE STATISTICS public.unrep_expr ON (lower(ssn)) FROM public.unreplicated;
ANALYZE; SELECT pg_stat_force_next_flush()`)
		stats := `SELECT DISTINCT schemaname || '.' || tablename FROM pg_stats WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`
		canary := `SELECT count(*) FROM pg_stats WHERE most_common_vals::text LIKE '%CANARY%'`
		ext := `SELECT (SELECT count(*) FROM pg_stats_ext) + (SELECT count(*) FROM pg_stats_ext_exprs)`
		// What the administrator sees, so that the reader's answers mean
		// something.
		if got := query(t, admin, stats); !slices.Contains(got, "private.unreplicated") || !slices.Contains(got, "public.unreplicated") || !slices.Contains(got, "pgveil.tables") {
			t.Fatalf("the administrator's pg_stats: %v", got)
		}
		sees(t, admin, "administrator", canary, "2")
		sees(t, admin, "administrator", ext, "3")

		rd := pgtest.ConnectAs(t, dsn, reader)
		sees(t, rd, "reader", stats, "app.people")
		sees(t, rd, "reader", canary, "0")
		sees(t, rd, "reader", ext, "0")
		for _, q := range counters {
			if _, err := rd.Exec(ctx, q); err != nil {
				t.Errorf("reader: %s: %v (Metabase's sync needs the counters)", q, err)
			}
		}
	})
	t.Run("tenancy", func(t *testing.T) {
		t.Parallel()
		d := newTenancyDB(t)
		d.setup(t)
		pgtest.MustExec(t, d.admin, `INSERT INTO app.orders SELECT g, 1 + g % 2, g FROM generate_series(100, 300) g; ANALYZE; SELECT pg_stat_force_next_flush()`)
		stats := `SELECT count(*) FROM pg_stats WHERE schemaname IN ('app', 'pgveil', 'pgveil_staging')`
		if got := query(t, d.admin, stats); got[0] == "0" {
			t.Fatal("the administrator sees no statistics")
		}
		one := d.login(t, d.role("acme"), "1")
		rd := pgtest.ConnectAs(t, d.dsn, d.reader)
		for who, conn := range map[string]*pgx.Conn{"tenant 1": one, "reader": rd} {
			sees(t, conn, who, stats, "0")
			sees(t, conn, who, `SELECT count(*) FROM pg_stats_ext`, "0")
			for _, q := range counters {
				if strings.Contains(q, "app.people") {
					q = strings.ReplaceAll(q, "app.people", "app.orders")
				}
				denied(t, conn, who, q)
			}
		}
	})
}

// TestRerun17ReadersLimitRoleSettings pins what PostgreSQL 15 has no
// privilege against: a login may store settings for its own role (ALTER
// ROLE CURRENT_USER SET, outside read-only transactions), values of any
// length, kept in the cluster's catalog and shown to every role by
// pg_roles.rolconfig: a channel from one tenant to the others, and a
// reader can turn its read-only default off for good. docs/operations.md
// ("What readers and tenants can still do") says so; if this test fails,
// PostgreSQL changed: update the docs.
func TestRerun17ReadersLimitRoleSettings(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	acme, globex := d.role("acme"), d.role("globex")
	one, two := d.login(t, acme, "1"), d.login(t, globex, "2")
	fails(t, one, "tenant 1", `BEGIN READ ONLY; ALTER ROLE CURRENT_USER SET application_name = 'x'`, "25006")
	pgtest.MustExec(t, one, `ROLLBACK`)
	msg := strings.Repeat("m", 100_000)
	pgtest.MustExec(t, one, `ALTER ROLE CURRENT_USER SET search_path = '`+msg+`'`)
	sees(t, two, "tenant 2", `SELECT length(rolconfig[1]) FROM pg_roles WHERE rolname = '`+acme+`'`, "100012")
	rd := pgtest.ConnectAs(t, d.dsn, d.reader)
	pgtest.MustExec(t, rd, `ALTER ROLE CURRENT_USER SET default_transaction_read_only = off`)
	// Setting another role's, or a placeholder, needs a privilege.
	fails(t, one, "tenant 1", `ALTER ROLE `+globex+` SET application_name = 'x'`, "42501")
	fails(t, one, "tenant 1", `ALTER ROLE CURRENT_USER SET pgveil.msg = 'x'`, "42501")
}

// TestRerun17ReadersTableSizes pins a decision: a tenant's login reads
// the size on disk of every table (pg_relation_size and the like need no
// privilege on the table), pgveil's own and the tables hidden from
// tenants included. The same pages are in pg_class.relpages, which every
// role reads, so taking the functions from PUBLIC would hide nothing and
// break tools; docs/operations.md lists sizes among what tenants can
// still read.
func TestRerun17ReadersTableSizes(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	one := d.login(t, d.role("acme"), "1")
	// What every role reads in pg_class (the planner's estimates), which
	// no privilege hides: revoking the size functions would hide nothing.
	sees(t, one, "tenant 1", `SELECT count(*) > 0 FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relpages >= 0`, "t")
	for _, q := range []string{
		`SELECT pg_relation_size('app.orders')`,
		`SELECT pg_total_relation_size('app.notes')`,
		`SELECT pg_table_size(c.oid) FROM pg_class c WHERE c.relnamespace = 'pgveil'::regnamespace`,
		`SELECT pg_indexes_size('app.orders')`,
	} {
		if _, err := one.Exec(context.Background(), q); err != nil {
			t.Errorf("tenant 1: %s: %v (docs/operations.md says sizes stay readable, like relpages)", q, err)
		}
	}
}
