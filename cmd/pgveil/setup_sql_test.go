package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/metabase"
	"pgveil/internal/pgtest"
	"pgveil/replicate"
)

// writeRules writes a rules file into a temporary directory.
func writeRules(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgveil.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSetupSQLScripts(t *testing.T) {
	const file = "../../examples/saas/pgveil.yaml"
	// No environment: setup-sql never connects, so unset DSNs and secret are fine.
	code, all, errOut := pgveil(t, nil, "setup-sql", "-c", file)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	_, again, _ := pgveil(t, nil, "setup-sql", "-c", file)
	if again != all {
		t.Error("two runs print different SQL")
	}
	_, source, _ := pgveil(t, nil, "setup-sql", "-c", file, "--part", "source")
	_, target, _ := pgveil(t, nil, "setup-sql", "-c", file, "--part", "target")
	if !strings.HasPrefix(all, source) || !strings.HasSuffix(all, target) {
		t.Error("--part all is not the source script followed by the target script")
	}
	for _, tc := range []struct {
		part    string
		script  string
		want    []string
		notWant []string
	}{
		{"source", source, []string{
			`\set ON_ERROR_STOP on`,
			`SELECT current_database() AS pgveil_database \gset`,
			"BEGIN;\n",
			"\\if :pgveil_missing\nCREATE ROLE pgveil;\n\\endif\n",
			"ALTER ROLE pgveil WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;\n",
			"\\if :{?pgveil_password}\nALTER ROLE pgveil PASSWORD :'pgveil_password';\n\\else\n",
			`GRANT CONNECT ON DATABASE :"pgveil_database" TO pgveil;`,
			"GRANT USAGE ON SCHEMA public TO pgveil;\n",
			"GRANT SELECT ON TABLE\n  public.accounts,\n  public.users,\n  public.customers,\n  public.orders,\n  public.payments,\n  public.support_tickets,\n  public.events\nTO pgveil;\n",
			"-- The publication pgveil is not created here.",
			// customers has a where.
			`GRANT TEMPORARY ON DATABASE :"pgveil_database" TO pgveil;`,
			"\nCOMMIT;\n",
		}, []string{"GRANT ALL", "ON ALL TABLES", "\nGRANT CREATE", "metabase_ro", " SUPERUSER", " CREATEDB", " CREATEROLE", " BYPASSRLS",
			"OWNER", "PUBLICATION", "_owner", "INSERT", "UPDATE", "DELETE"}},
		{"target", target, []string{
			// The example has a tenancy section: pgveil creates tenant roles.
			"ALTER ROLE pgveil WITH LOGIN NOSUPERUSER NOCREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS;\n",
			"ALTER ROLE pgveil PASSWORD :'pgveil_password';",
			`GRANT CONNECT, CREATE ON DATABASE :"pgveil_database" TO pgveil;`,
			"CREATE SCHEMA IF NOT EXISTS public AUTHORIZATION pgveil;\nALTER SCHEMA public OWNER TO pgveil;\n",
			"CREATE SCHEMA IF NOT EXISTS pgveil AUTHORIZATION pgveil;\nALTER SCHEMA pgveil OWNER TO pgveil;\n",
			"REVOKE ALL ON SCHEMA pgveil FROM PUBLIC;\n",
			`REVOKE CREATE, TEMPORARY ON DATABASE :"pgveil_database" FROM PUBLIC;`,
			"REVOKE CREATE ON SCHEMA public FROM PUBLIC;\n",
			// Large objects and WAL messages are written without a privilege
			// on a table; the per-table counters are for monitoring.
			"REVOKE EXECUTE ON FUNCTION pg_catalog.lo_creat(integer), pg_catalog.lo_create(oid), pg_catalog.lo_from_bytea(oid, bytea),",
			"pg_catalog.pg_logical_emit_message(boolean, text, bytea) FROM PUBLIC;\n",
			"GRANT EXECUTE ON FUNCTION %s TO pg_read_all_stats",
			"ALTER ROLE metabase_ro WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;\n",
			"ALTER ROLE metabase_ro PASSWORD :'metabase_ro_password';",
			"ALTER ROLE metabase_ro SET statement_timeout = '5min';\n",
			"ALTER ROLE metabase_ro SET default_transaction_read_only = on;\n",
			`GRANT CONNECT ON DATABASE :"pgveil_database" TO metabase_ro;`,
			`REVOKE CREATE, TEMPORARY ON DATABASE :"pgveil_database" FROM metabase_ro;`,
			"GRANT USAGE ON SCHEMA public TO metabase_ro;\n",
			"REVOKE CREATE ON SCHEMA public FROM metabase_ro;\n",
			"GRANT SELECT, REFERENCES ON ALL TABLES IN SCHEMA public TO metabase_ro;\n",
			"ALTER DEFAULT PRIVILEGES FOR ROLE pgveil IN SCHEMA public GRANT SELECT, REFERENCES ON TABLES TO metabase_ro;\n",
			`GRANT EXECUTE ON FUNCTION %s TO metabase_ro', f);`,
			"REVOKE ALL ON SCHEMA pgveil FROM metabase_ro;\n",
			"has_schema_privilege(reader, 'pgveil', 'USAGE')",
			"\nCOMMIT;\n",
		}, []string{" REPLICATION ", "GRANT USAGE ON SCHEMA pgveil", "_owner", "PUBLICATION"}},
	} {
		for _, w := range tc.want {
			if !strings.Contains(tc.script, w) {
				t.Errorf("%s script lacks %q", tc.part, w)
			}
		}
		statements := regexp.MustCompile(`(?m)^--.*\n`).ReplaceAllString(tc.script, "")
		for _, w := range tc.notWant {
			if strings.Contains(statements, w) {
				t.Errorf("%s script holds %q", tc.part, w)
			}
		}
		// Passwords come from psql variables, never from the script.
		if m := regexp.MustCompile(`(?i)PASSWORD\s+'`).FindString(tc.script); m != "" {
			t.Errorf("%s script holds a literal password: %q", tc.part, m)
		}
	}
}

// TestSetupSQLCreateRoleOnlyForTenancy: without a tenancy section the
// writer creates no roles, so it gets no CREATEROLE.
func TestSetupSQLCreateRoleOnlyForTenancy(t *testing.T) {
	data, err := os.ReadFile("../../examples/saas/pgveil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^tenancy:\n(  .*\n)+`).ReplaceAllString(string(data), "")
	text = strings.Replace(text, "    tenant: {column: id}            # an account is its own tenant\n", "", 1)
	if strings.Contains(text, "tenan") && strings.Contains(text, "tenant:") {
		t.Fatal("could not take the tenancy out of the example")
	}
	code, out, errOut := pgveil(t, nil, "setup-sql", "-c", writeRules(t, text), "--part", "target")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "ALTER ROLE pgveil WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;\n") || strings.Contains(out, "Impersonator") {
		t.Errorf("target script without tenancy:\n%s", out)
	}
}

func TestSetupSQLQuotesIdentifiers(t *testing.T) {
	file := writeRules(t, `source:
  dsn: ${SOURCE_DSN}
  publication: ${PUBLICATION:-veil_pub}
target:
  dsn: ${TARGET_DSN}
  readers: ["Metabase RO", "o'brien", "metabase.ro"]
secret: ${PGVEIL_SECRET}
tables:
  '"Sales"."Order Items"':
    columns:
      id: keep
  crm.contacts:
    columns:
      id: hash
      email: {fake: email}
`)
	code, out, errOut := pgveil(t, nil, "setup-sql", "-c", file, "--source-role", "Veil-Src", "--target-role", "Veil Writer", "--reader-timeout", "30s")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, w := range []string{
		"rolname = 'Veil-Src') AS pgveil_missing",
		"CREATE ROLE \"Veil-Src\";\n",
		`ALTER ROLE "Veil-Src" PASSWORD :'veil_src_password';`,
		`\echo 'role "Veil-Src" has no password yet: set one with \\password "Veil-Src" in psql, or run this again with -v veil_src_password=...'`,
		"GRANT USAGE ON SCHEMA \"Sales\" TO \"Veil-Src\";\nGRANT USAGE ON SCHEMA crm TO \"Veil-Src\";\n",
		"GRANT SELECT ON TABLE\n  \"Sales\".\"Order Items\",\n  crm.contacts\nTO \"Veil-Src\";\n",
		"-- The publication veil_pub is not created here.",
		// target
		"-v veil_writer_password='...' -v metabase_ro_password='...' -v o_brien_password='...' -v metabase_ro_2_password='...'",
		"CREATE SCHEMA IF NOT EXISTS \"Sales\" AUTHORIZATION \"Veil Writer\";\n",
		"rolname = 'o''brien') AS pgveil_missing",
		"CREATE ROLE \"o'brien\";\n",
		`\echo 'role "o\'brien" has no password yet`,
		"ALTER ROLE \"Metabase RO\" SET statement_timeout = '30s';\n",
		"ALTER DEFAULT PRIVILEGES FOR ROLE \"Veil Writer\" IN SCHEMA \"Sales\" GRANT SELECT, REFERENCES ON TABLES TO \"Metabase RO\";\n",
		"GRANT SELECT, REFERENCES ON ALL TABLES IN SCHEMA crm TO \"metabase.ro\";\n",
		`GRANT EXECUTE ON FUNCTION %s TO "Metabase RO", "o''brien", "metabase.ro"', f);`,
		"ALTER ROLE \"metabase.ro\" PASSWORD :'metabase_ro_2_password';",
		"ARRAY['Metabase RO', 'o''brien', 'metabase.ro']::name[]",
		"pg_has_role(reader, 'Veil Writer', 'MEMBER')",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	// No where: no TEMPORARY grant on production.
	if strings.Contains(out, "GRANT TEMPORARY") {
		t.Error("TEMPORARY granted although no table has a where")
	}
}

func TestSetupSQLRejects(t *testing.T) {
	const saas = "../../examples/saas/pgveil.yaml"
	readerIsWriter := writeRules(t, "source: {dsn: x}\ntarget: {dsn: y, readers: [pgveil]}\nsecret: ${PGVEIL_SECRET}\ntables:\n  t:\n    columns: {id: keep}\n")
	readerFromEnv := writeRules(t, "source: {dsn: x}\ntarget: {dsn: y, readers: ['${READER}']}\nsecret: ${PGVEIL_SECRET}\ntables:\n  t:\n    columns: {id: keep}\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--part", "both", "-c", saas}, exitUsage, `--part "both": want source, target or all`},
		{[]string{"--source-role", "pg_veil", "-c", saas}, exitUsage, "names starting with pg_ are reserved"},
		{[]string{"--target-role", "public", "-c", saas}, exitUsage, "role name public is reserved"},
		{[]string{"--source-role", strings.Repeat("v", 64), "-c", saas}, exitUsage, "longer than 63 bytes"},
		{[]string{"--reader-timeout", "5 minutes", "-c", saas}, exitUsage, "--reader-timeout"},
		{[]string{"-c", saas, "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"-c", readerIsWriter}, exitProblems, "pgveil is also the writer role"},
		{[]string{"-c", readerFromEnv}, exitProblems, "environment variable that is not set"},
		{[]string{"-c", "no-such-file.yaml"}, exitProblems, "no-such-file.yaml"},
	} {
		code, out, errOut := pgveil(t, nil, append([]string{"setup-sql"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

func TestPasswordVars(t *testing.T) {
	for _, tc := range []struct {
		roles []string
		want  []string
	}{
		{[]string{"pgveil"}, []string{"pgveil_password"}},
		{[]string{"Veil Writer", "veil-writer", "veil_writer"}, []string{"veil_writer_password", "veil_writer_2_password", "veil_writer_3_password"}},
		{[]string{"1st", "Zoë"}, []string{"role_1st_password", "zo__password"}},
	} {
		got := passwordVars(tc.roles)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("passwordVars(%q) = %q, want %q", tc.roles, got, tc.want)
		}
	}
}

// asRole is dsn (a pgtest key=value DSN) connecting as role instead of
// the superuser.
func asRole(dsn, role string) string {
	quoted := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(role) + "'"
	return strings.Replace(dsn, "user=postgres", "user="+quoted, 1)
}

// psqlFile runs a script with psql as the superuser of dsn, with psql
// variables vars ("name=value").
func psqlFile(t *testing.T, dsn, script string, vars ...string) string {
	t.Helper()
	bin, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "setup.sql")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-X", "-q", "-d", dsn, "-f", path}
	for _, v := range vars {
		args = append(args, "-v", v)
	}
	out, err := exec.Command(filepath.Join(bin, "psql"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return string(out)
}

// sqlState is the SQLSTATE of err, or "" when it is not a server error.
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestSetupSQLLeastPrivilege applies setup-sql's scripts to production
// (the example schema, owned by an application role) and to analytics,
// runs pgveil as the roles they create, and checks what the reader can
// and cannot do.
func TestSetupSQLLeastPrivilege(t *testing.T) {
	const (
		app          = "setup_sql_app"
		sourceRole   = "pgveil-Src"
		writer       = "Veil Writer"
		reader       = `Metabase "RO"`
		impersonator = "mb_tenants"
	)
	ctx := context.Background()
	srcSuper, dstSuper := clusters.Source.NewDB(t), clusters.Target.NewDB(t)
	s := &site{t: t, dir: t.TempDir(), srcDSN: asRole(srcSuper, sourceRole), dstDSN: asRole(dstSuper, writer)}
	var err error
	if s.src, err = pgx.Connect(ctx, srcSuper); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.src.Close(context.Background()) })
	if s.dst, err = replicate.ConnectTarget(ctx, dstSuper); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.dst.Close(context.Background()) })

	// Production: the application's role owns the schema's tables, and a
	// table the rules do not name.
	s.exec(`DO $$ BEGIN CREATE ROLE ` + app + `; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
	s.exec(`GRANT CREATE ON SCHEMA public TO ` + app)
	schema, err := os.ReadFile("../../examples/saas/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	s.exec("SET ROLE " + app + ";\n" + string(schema) + strings.ReplaceAll(`
CREATE TABLE app_secrets (id int PRIMARY KEY, api_key text);
INSERT INTO app_secrets VALUES (1, $1);
INSERT INTO accounts (name, plan, country) SELECT 'Tenant ' || g, 'team', 'DE' FROM generate_series(1, 5) g;
INSERT INTO customers (account_id, email, full_name, country, notes, profile)
  SELECT 1 + g % 5, 'c' || g || '@mail.example', $1 || ' ' || g, 'DE', $1, jsonb_build_object('ssn', $1)
  FROM generate_series(1, 50) g;
RESET ROLE;`, "$1", "'"+canary+"'"))

	rulesText, err := os.ReadFile("../../examples/saas/pgveil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	withRoles := strings.Replace(string(rulesText), "readers: [metabase_ro]", `readers: ['Metabase "RO"']`, 1)
	withRoles = strings.Replace(withRoles, "  column: account_id\n", "  column: account_id\n  impersonators: ["+impersonator+"]\n", 1)
	if !strings.Contains(withRoles, impersonator) {
		t.Fatal("the saas example has no tenancy section to add an impersonator to")
	}
	s.config = writeRules(t, withRoles)
	script := func(part string) string {
		code, out, errOut := pgveil(t, nil, "setup-sql", "-c", s.config, "--part", part, "--source-role", sourceRole, "--target-role", writer)
		if code != exitOK {
			t.Fatalf("setup-sql --part %s: exit %d, stderr %q", part, code, errOut)
		}
		return out
	}
	source, target := script("source"), script("target")
	psqlFile(t, srcSuper, source, "pgveil_src_password=src-pw")
	psqlFile(t, srcSuper, source, "pgveil_src_password=src-pw") // again: it puts things in line, changes nothing
	psqlFile(t, dstSuper, target, "veil_writer_password=w-pw", "metabase__ro__password=r-pw", "mb_tenants_password=m-pw")
	var writerCreateRole, impInherit bool
	if err := s.dst.QueryRow(ctx, `SELECT (SELECT rolcreaterole FROM pg_roles WHERE rolname = $1), (SELECT rolinherit FROM pg_roles WHERE rolname = $2)`, writer, impersonator).
		Scan(&writerCreateRole, &impInherit); err != nil {
		t.Fatal(err)
	}
	if !writerCreateRole || impInherit {
		t.Errorf("tenancy: writer CREATEROLE %v (want true), impersonator INHERIT %v (want false)", writerCreateRole, impInherit)
	}

	var super, createDB, createRole, repl, bypass bool
	var owns int
	if err := s.src.QueryRow(ctx, `SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
  (SELECT count(*) FROM pg_class c WHERE pg_has_role(r.oid, c.relowner, 'USAGE') AND c.relnamespace = 'public'::regnamespace)
FROM pg_roles r WHERE r.rolname = $1`, sourceRole).Scan(&super, &createDB, &createRole, &repl, &bypass, &owns); err != nil {
		t.Fatal(err)
	}
	if super || createDB || createRole || !repl || bypass || owns != 0 {
		t.Errorf("source role: super %v createdb %v createrole %v replication %v bypassrls %v; owns %d relations", super, createDB, createRole, repl, bypass, owns)
	}

	// validate and status say, before the first start, what pgveil's
	// role lacks: the publication, which only the tables' owner may make.
	code, out, errOut := s.cli("validate", "-c", s.config)
	if code != exitOK || !strings.Contains(out, "privileges: before pgveil can put these rules in force") ||
		!regexp.MustCompile(`(?m)^    CREATE PUBLICATION pgveil FOR TABLE .*;$`).MatchString(out) || strings.Contains(out, "GRANT SELECT") {
		t.Fatalf("validate before the publication exists: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, _ = s.cli("status", "-c", s.config)
	if code != exitProblems || !strings.Contains(out, "waiting for") || !strings.Contains(out, "CREATE PUBLICATION pgveil FOR TABLE") {
		t.Fatalf("status before the publication exists: exit %d, stdout:\n%s", code, out)
	}

	// The first start changes nothing and prints what a superuser (or
	// the tables' owner, with CREATE on the database) must run.
	code, _, errOut = s.cli("run", "-c", s.config, "--spill-dir", s.dir)
	stmts := regexp.MustCompile(`(?m)^  ((?:CREATE|ALTER) PUBLICATION .*);$`).FindAllStringSubmatch(errOut, -1)
	if code != exitProblems || len(stmts) == 0 || !strings.Contains(errOut, `role "pgveil-Src" cannot change it`) {
		t.Fatalf("first start without a publication: exit %d, %d statements, stderr:\n%s", code, len(stmts), errOut)
	}
	for _, m := range stmts {
		s.exec(m[1])
	}
	if code, out, errOut := s.cli("validate", "-c", s.config); code != exitOK || !strings.Contains(out, "privileges: pgveil's role has what these rules need") {
		t.Fatalf("validate once the publication exists: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// pgveil replicates with those roles only.
	p := s.start()
	s.sync(p)
	s.verify()
	s.exec(`UPDATE customers SET city = 'Elsewhere' WHERE id % 3 = 0`)
	s.exec(`DELETE FROM customers WHERE id % 7 = 0`)
	s.sync(p)
	s.verify()
	s.noCanary("pgveil's log", p.Output())

	// The source role reads no table the rules do not name.
	srcConn := pgtest.Connect(t, s.srcDSN)
	if _, err := srcConn.Exec(ctx, `SELECT * FROM app_secrets`); sqlState(err) != "42501" {
		t.Errorf("source role reading a table outside the rules: %v", err)
	}

	// The impersonator sees nothing until it becomes a tenant, and then
	// that tenant's rows only.
	mb := pgtest.Connect(t, asRole(dstSuper, impersonator))
	var none int
	if err := mb.QueryRow(ctx, `SELECT count(*) FROM public.customers`).Scan(&none); err != nil || none != 0 {
		t.Errorf("impersonator without SET ROLE: %d customers (%v), want 0", none, err)
	}
	var want, got, accounts int
	if err := s.dst.QueryRow(ctx, `SELECT count(*) FROM public.customers WHERE account_id = 1`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	// Metabase's sync, as the impersonator before any SET ROLE and as the
	// reader: every table (the impersonator's policy gives it no row of
	// any, those hidden from tenants included), and every primary key.
	rdSync := pgtest.Connect(t, asRole(dstSuper, reader))
	for _, c := range []struct {
		who    string
		conn   *pgx.Conn
		tables int
	}{{"impersonator", mb, 7}, {"reader", rdSync, 7}} {
		tables, err := metabase.Tables(ctx, c.conn, []string{"public"})
		if err != nil {
			t.Fatalf("Metabase's sync as the %s: %v", c.who, err)
		}
		fields, err := metabase.Fields(ctx, c.conn, []string{"public"})
		if err != nil {
			t.Fatalf("Metabase's sync as the %s: %v", c.who, err)
		}
		keys := 0
		for _, f := range fields {
			if f.PK {
				keys++
			}
		}
		if len(tables) != c.tables || keys != c.tables {
			t.Errorf("Metabase's sync as the %s: %d tables, %d primary key columns; want %d and %d", c.who, len(tables), keys, c.tables, c.tables)
		}
	}
	if _, err := mb.Exec(ctx, `SET ROLE tenant_1`); err != nil {
		t.Fatalf("impersonator: SET ROLE tenant_1: %v", err)
	}
	if err := mb.QueryRow(ctx, `SELECT (SELECT count(*) FROM public.customers), (SELECT count(DISTINCT id) FROM public.accounts)`).Scan(&got, &accounts); err != nil {
		t.Fatalf("impersonating tenant_1: %v", err)
	}
	if want == 0 || got != want || accounts != 1 {
		t.Errorf("impersonating tenant_1: %d customers (want %d), %d accounts (want 1)", got, want, accounts)
	}
	if _, err := mb.Exec(ctx, `SELECT count(*) FROM public.payments`); sqlState(err) != "42501" {
		t.Errorf("tenant reading payments (no tenant column): %v, want permission denied", err)
	}

	// The reader reads the masked tables...
	if _, err := s.dst.Exec(ctx, `CREATE SCHEMA scratch`); err != nil {
		t.Fatal(err)
	}
	rd := pgtest.Connect(t, asRole(dstSuper, reader))
	var n int
	var names, timeout, readOnly string
	if err := rd.QueryRow(ctx, `SELECT count(*), string_agg(full_name || email, ','), current_setting('statement_timeout'), current_setting('default_transaction_read_only') FROM public.customers`).
		Scan(&n, &names, &timeout, &readOnly); err != nil {
		t.Fatalf("reader: %v", err)
	}
	if n != 50-7 || timeout != "5min" || readOnly != "on" {
		t.Errorf("reader: %d customers, statement_timeout %s, default_transaction_read_only %s", n, timeout, readOnly)
	}
	s.noCanary("the reader's customers", names)
	// ... and nothing else: refused by the read-only default or a missing
	// privilege, and by a missing privilege once read-only is off.
	denied := []struct{ what, sql string }{
		{"INSERT", `INSERT INTO public.accounts (id, name) VALUES (-1, 'x')`},
		{"UPDATE", `UPDATE public.customers SET city = 'x'`},
		{"DELETE", `DELETE FROM public.orders`},
		{"TRUNCATE", `TRUNCATE public.events`},
		{"CREATE TABLE in public", `CREATE TABLE public.mine (x int)`},
		{"CREATE TABLE in another schema", `CREATE TABLE scratch.mine (x int)`},
		{"CREATE SCHEMA", `CREATE SCHEMA mine`},
		{"CREATE TEMP TABLE", `CREATE TEMP TABLE mine (x int)`},
		{"a large object", `SELECT lo_from_bytea(0, '\x00')`},
		{"a large object by lo_create", `SELECT lo_create(0)`},
		{"a WAL message", `SELECT pg_logical_emit_message(false, 'x', 'y')`},
		{"reading pgveil.checkpoint", `SELECT * FROM pgveil.checkpoint`},
		{"reading pgveil.tables", `SELECT * FROM pgveil.tables`},
	}
	for _, mode := range []struct {
		name  string
		set   string
		codes []string
	}{
		{"read-only default", "", []string{"42501", "25006"}},
		{"read-only off", `SET default_transaction_read_only = off`, []string{"42501"}},
	} {
		if mode.set != "" {
			if _, err := rd.Exec(ctx, mode.set); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range denied {
			_, err := rd.Exec(ctx, d.sql)
			t.Logf("%s: %s: %v", mode.name, d.what, err)
			if code := sqlState(err); !slices.Contains(mode.codes, code) {
				t.Errorf("reader, %s: %s: got %v, want SQLSTATE %s", mode.name, d.what, err, strings.Join(mode.codes, " or "))
			}
		}
	}

}

// Under publication_mode column_lists the production script installs the
// migration triggers for the rules' publication; otherwise it does not.
func TestSetupSQLMigrationTriggers(t *testing.T) {
	file := writeRules(t, `source: {dsn: x, publication: veil_pub, publication_mode: column_lists}
target: {dsn: y}
secret: ${PGVEIL_SECRET}
tables:
  t:
    columns: {id: keep}
`)
	code, out, errOut := pgveil(t, nil, "setup-sql", "-c", file, "--part", "source")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, w := range []string{"CREATE EVENT TRIGGER pgveil_publication_aside ON ddl_command_start", "CREATE EVENT TRIGGER pgveil_publication_back ON ddl_command_end",
		"p.pubname = 'veil_pub'", "SECURITY DEFINER"} {
		if !strings.Contains(out, w) {
			t.Errorf("column_lists source script lacks %q", w)
		}
	}
	if i, j := strings.Index(out, "CREATE EVENT TRIGGER"), strings.LastIndex(out, "COMMIT;"); i < 0 || j < i {
		t.Error("the triggers are not inside the script's transaction")
	}
	_, saas, _ := pgveil(t, nil, "setup-sql", "-c", "../../examples/saas/pgveil.yaml", "--part", "source")
	if strings.Contains(saas, "EVENT TRIGGER") {
		t.Error("migration_safe source script installs event triggers")
	}
}

// The docs promise only what setup-sql does: every flag they give it
// exists, and what they say its scripts (and the compose stack's script)
// do about the cluster's other databases is in them. (docs/deploy.md
// once said readers lose CONNECT on postgres while setup-sql did not do
// it, and a reader connected to it.)
func TestDocsSetupSQLPromises(t *testing.T) {
	_, _, usage := pgveil(t, nil, "setup-sql", "-h")
	docs := map[string]string{}
	for _, f := range []string{"../../README.md", "../../docs/deploy.md", "../../docs/operations.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[filepath.Base(f)] = string(b)
	}
	// Flags given to setup-sql in the docs' examples (`pgveil setup-sql
	// ...`, command lines) and those the prose names for it.
	mentioned := map[string]bool{"close-other-databases": true}
	cmdRE := regexp.MustCompile("pgveil setup-sql[^`\\n]*")
	for name, text := range docs {
		for _, cmd := range cmdRE.FindAllString(text, -1) {
			for _, m := range regexp.MustCompile(`--([a-z][a-z-]*)`).FindAllStringSubmatch(cmd, -1) {
				mentioned[m[1]] = true
			}
		}
		if !strings.Contains(text, "--close-other-databases") && name != "README.md" {
			t.Errorf("%s does not say how setup-sql closes the other databases (--close-other-databases)", name)
		}
	}
	for f := range mentioned {
		if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f) + `\b`).MatchString(usage) {
			t.Errorf("the docs give setup-sql --%s, which it does not have:\n%s", f, usage)
		}
	}

	file := "../../examples/saas/pgveil.yaml"
	_, plain, _ := pgveil(t, nil, "setup-sql", "-c", file, "--part", "target")
	_, closed, _ := pgveil(t, nil, "setup-sql", "-c", file, "--part", "target", "--close-other-databases")
	revoke := "EXECUTE pg_catalog.format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', db)"
	if strings.Contains(plain, "REVOKE CONNECT") || !strings.Contains(plain, "--close-other-databases") {
		t.Errorf("setup-sql without --close-other-databases: the docs say it leaves PUBLIC's CONNECT on the other databases, and says how to take it:\n%s", plain)
	}
	if !strings.Contains(closed, revoke) {
		t.Errorf("setup-sql --close-other-databases does not revoke CONNECT on the other databases:\n%s", closed)
	}
	// docs/deploy.md: the compose stack's script revokes it on postgres.
	compose, err := os.ReadFile("../../examples/deploy/analytics-init.sh")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(docs["deploy.md"], "the script revokes `CONNECT` on\nthe `postgres` database") != strings.Contains(string(compose), "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;") {
		t.Error("docs/deploy.md and examples/deploy/analytics-init.sh disagree on CONNECT on the postgres database")
	}
}

// --close-other-databases on a cluster that holds another database (an
// application's, production's) is refused and changes nothing: that
// database's roles may rely on PUBLIC's CONNECT, and losing it would lock
// them out. The test clusters hold many databases, as a shared cluster
// does.
func TestCloseOtherDatabasesRefusesSharedCluster(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	here := pgtest.Connect(t, clusters.Target.NewDB(t))
	other := clusters.Target.NewDB(t)
	var otherDB string
	if err := pgtest.Connect(t, other).QueryRow(ctx, `SELECT current_database()`).Scan(&otherDB); err != nil {
		t.Fatal(err)
	}
	_, err := here.Exec(ctx, closeOtherDatabasesSQL)
	if err == nil || !strings.Contains(err.Error(), "is for a cluster that holds the replica only") || !strings.Contains(err.Error(), otherDB) {
		t.Fatalf("on a shared cluster: %v, want a refusal naming %s", err, otherDB)
	}
	for _, db := range []string{otherDB, "postgres"} {
		var can bool
		if err := here.QueryRow(ctx, `SELECT has_database_privilege('public', $1, 'CONNECT')`, db).Scan(&can); err != nil {
			t.Fatal(err)
		}
		if !can {
			t.Errorf("PUBLIC lost CONNECT on %s: the refusal changed something", db)
		}
	}
}
