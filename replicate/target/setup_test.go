package target

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"
)

var moodEnum = map[string][]string{"public.mood": {"sad", "ok", "happy"}}

// allTypes is a table with a column of every type the replica must hold,
// and its format_type names on the target.
func allTypes(schemaName, name string, withPK bool) (*transform.TablePlan, []string) {
	id := pk("id", "bigint")
	if !withPK {
		id = c("id", "bigint")
	}
	cols := []col{
		id,
		c("c_smallint", "smallint"), c("c_integer", "integer"), c("c_bigint", "bigint"),
		c("c_num102", "numeric(10,2)"), c("c_numeric", "numeric"), c("c_real", "real"), c("c_double", "double precision"),
		c("c_text", "text"), c("c_varchar", "varchar(20)"), c("c_char", "char(5)"), c("c_bool", "boolean"),
		c("c_date", "date"), c("c_ts", "timestamp"), c("c_tstz", "timestamptz"), c("c_time", "time"), c("c_interval", "interval"),
		c("c_uuid", "uuid"), c("c_bytea", "bytea"), c("c_json", "json"), c("c_jsonb", "jsonb"), c("c_inet", "inet"),
		c("c_intarr", "integer[]"), c("c_textarr", "text[][]"), c("c_enum", "public.mood"), c("c_enumarr", "public.mood[]"),
	}
	want := []string{
		"bigint", "smallint", "integer", "bigint", "numeric(10,2)", "numeric", "real", "double precision",
		"text", "character varying(20)", "character(5)", "boolean", "date", "timestamp without time zone",
		"timestamp with time zone", "time without time zone", "interval", "uuid", "bytea", "json", "jsonb", "inet",
		"integer[]", "text[]", "mood", "mood[]",
	}
	return table(schemaName, name, cols...), want
}

// allValues is a row of allTypes in the text form PostgreSQL prints.
var allValues = []string{
	"7", "-32768", "2147483647", "-9223372036854775808", "12345678.90", "3.14159265358979323846264338327950288",
	"1.5", "0.1", "héllo\tworld q \\ 'x'", "short", "ab   ", "t", "2024-02-29", "2024-02-29 13:14:15.123456",
	"2024-02-29 13:14:15.123456+00", "13:14:15", "1 day 02:03:04", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	`\x0102ff`, `{"b": 1,  "a": [1,2]}`, `{"a": [1, 2], "b": 1}`, "192.168.0.1/24", "{1,2,NULL}",
	`{{a,b},{c,"d e"}}`, "happy", "{happy,sad}",
}

// columnsOf describes the columns of a target table: name, type, NOT NULL
// and default.
func columnsOf(t *testing.T, conn *pgx.Conn, table string) []string {
	return query(t, conn, `SELECT attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END || CASE WHEN atthasdef THEN ' default' ELSE '' END
FROM pg_attribute WHERE attrelid = '`+table+`'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)
}

// constraintsOf lists a table's constraints.
func constraintsOf(t *testing.T, conn *pgx.Conn, table string) []string {
	return query(t, conn, `SELECT contype::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '`+table+`'::regclass ORDER BY 1`)
}

func TestSetupCreatesEveryType(t *testing.T) {
	t.Parallel()
	all, types := allTypes("app", "all_types", true)
	composite := table("app", "memberships", pk("org_id", "integer"), pk("user_id", "uuid"), c("role", "text"))
	nokey := table("app", "events", c("at", "timestamptz"), c("what", "text"))
	ctx, _, conn := setupDB(t, plan(all, composite, nokey), moodEnum)
	_ = ctx

	var want []string
	for i, cp := range all.Columns {
		s := cp.Column.Name + " " + types[i]
		if i == 0 {
			s += " not null"
		}
		want = append(want, s)
	}
	equal(t, "all_types columns", columnsOf(t, conn, "app.all_types"), want)
	equal(t, "all_types constraints", constraintsOf(t, conn, "app.all_types"), []string{"p PRIMARY KEY (id)"})
	equal(t, "memberships columns", columnsOf(t, conn, "app.memberships"),
		[]string{"org_id integer not null", "user_id uuid not null", "role text"})
	equal(t, "memberships constraints", constraintsOf(t, conn, "app.memberships"), []string{"p PRIMARY KEY (org_id, user_id)"})
	equal(t, "events columns", columnsOf(t, conn, "app.events"), []string{"at timestamp with time zone", "what text"})
	equal(t, "events constraints", constraintsOf(t, conn, "app.events"), []string{})
	equal(t, "enum", query(t, conn, `SELECT enum_range(NULL::public.mood)::text`), []string{"{sad,ok,happy}"})
	equal(t, "internal tables", columnsOf(t, conn, "pgveil.checkpoint"), []string{
		"slot text not null", "lsn pg_lsn not null", "commit_time timestamp with time zone", "updated_at timestamp with time zone not null default"})
	tablesCols := []string{
		"schema_name text not null", "table_name text not null", "state text", "rows bigint", "updated_at timestamp with time zone", "rules_hash text", "tenant_roles text", "partitions text"}
	equal(t, "internal tables", columnsOf(t, conn, "pgveil.tables"), tablesCols)
	// A pgveil.tables of an older version gets the columns added since.
	pgtest.MustExec(t, conn, `ALTER TABLE pgveil.tables DROP COLUMN rules_hash, DROP COLUMN tenant_roles, DROP COLUMN partitions`)
	if err := Setup(ctx, conn, plan(all, composite, nokey), moodEnum, nil); err != nil {
		t.Fatal(err)
	}
	equal(t, "internal tables after an upgrade", columnsOf(t, conn, "pgveil.tables"), tablesCols)
	equal(t, "table states", query(t, conn, `SELECT schema_name || '.' || table_name || ' ' || state || ' ' || rows FROM pgveil.tables ORDER BY 1`),
		[]string{"app.all_types created 0", "app.events created 0", "app.memberships created 0"})
	equal(t, "pgveil ACL", query(t, conn, `SELECT nspacl::text FROM pg_namespace WHERE nspname = 'pgveil'`), []string{"{postgres=UC/postgres}"})
}

// catalogSnapshot captures, with their row versions, the catalog rows
// Setup could touch: any statement that changes something changes an xmin.
func catalogSnapshot(t *testing.T, conn *pgx.Conn) []string {
	const nsps = `(SELECT oid FROM pg_namespace WHERE nspname IN ('app', 'pgveil', 'public'))`
	return query(t, conn, `SELECT x FROM (
SELECT 'class ' || oid::regclass::text || ' ' || xmin::text || ' ' || coalesce(relacl::text, '') FROM pg_class WHERE relnamespace IN `+nsps+`
UNION ALL SELECT 'attr ' || attrelid::regclass::text || '.' || attname || ' ' || xmin::text FROM pg_attribute
  WHERE attnum > 0 AND attrelid IN (SELECT oid FROM pg_class WHERE relnamespace IN `+nsps+`)
UNION ALL SELECT 'nsp ' || nspname || ' ' || xmin::text || ' ' || coalesce(nspacl::text, '') FROM pg_namespace
UNION ALL SELECT 'defacl ' || xmin::text || ' ' || defaclacl::text FROM pg_default_acl
UNION ALL SELECT 'type ' || oid::regtype::text || ' ' || xmin::text FROM pg_type WHERE typnamespace IN `+nsps+`
UNION ALL SELECT 'enum ' || enumtypid::regtype::text || ' ' || enumlabel || ' ' || xmin::text FROM pg_enum
UNION ALL SELECT 'con ' || conname || ' ' || xmin::text FROM pg_constraint WHERE connamespace IN `+nsps+`
UNION ALL SELECT 'row ' || schema_name || '.' || table_name || ' ' || xmin::text FROM pgveil.tables
) s(x) ORDER BY x`)
}

func TestSetupIdempotent(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	dsn := shared.NewDB(t)
	conn := pgtest.Connect(t, dsn)
	reader := "r_" + dbName(t, dsn)
	pgtest.MustExec(t, conn, `CREATE ROLE `+schema.QuoteIdent(reader)+` LOGIN`)
	// Every DDL statement, GRANT and ALTER DEFAULT PRIVILEGES included, is logged.
	pgtest.MustExec(t, conn, `CREATE TABLE public.ddl_log (tag text)`)
	pgtest.MustExec(t, conn, `CREATE FUNCTION public.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.ddl_log VALUES (tg_tag); END $$`)
	pgtest.MustExec(t, conn, `CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION public.log_ddl()`)

	all, _ := allTypes("app", "all_types", true)
	p := plan(all, table("app", "events", c("at", "timestamptz")), table("public", "other", pk("id", "integer")))
	if err := Setup(ctx, conn, p, moodEnum, []string{reader}); err != nil {
		t.Fatal(err)
	}
	if n := query(t, conn, `SELECT count(*) FROM public.ddl_log`); n[0] == "0" {
		t.Fatal("the event trigger logged nothing on the first run")
	}
	pgtest.MustExec(t, conn, `TRUNCATE public.ddl_log`)
	before := catalogSnapshot(t, conn)
	if err := Setup(ctx, conn, p, moodEnum, []string{reader}); err != nil {
		t.Fatal(err)
	}
	equal(t, "DDL of the second run", query(t, conn, `SELECT tag FROM public.ddl_log`), []string{})
	equal(t, "catalog after the second run", catalogSnapshot(t, conn), before)
}

func TestSetupColumnsAddedAndDropped(t *testing.T) {
	t.Parallel()
	ctx, _, conn := setupDB(t, plan(table("app", "t", pk("id", "integer"), c("a", "text"), c("b", "text"))), nil)
	pgtest.MustExec(t, conn, `INSERT INTO app.t VALUES (1, 'x', 'y')`)
	pgtest.MustExec(t, conn, `UPDATE pgveil.tables SET state = 'copied'`)

	p2 := plan(table("app", "t", pk("id", "integer"), c("b", "text"), c("c", "integer"), c("d", "varchar(3)[]")))
	if err := Setup(ctx, conn, p2, nil, nil); err != nil {
		t.Fatal(err)
	}
	equal(t, "columns", columnsOf(t, conn, "app.t"), []string{"id integer not null", "b text", "c integer", "d character varying(3)[]"})
	equal(t, "rows", query(t, conn, `SELECT * FROM app.t`), []string{"1|y|NULL|NULL"})
	equal(t, "state", query(t, conn, `SELECT state FROM pgveil.tables`), []string{StateAltered})

	// A column dropped only: no resync needed.
	pgtest.MustExec(t, conn, `UPDATE pgveil.tables SET state = 'copied'`)
	p3 := plan(table("app", "t", pk("id", "integer"), c("b", "text"), c("d", "varchar(3)[]")))
	if err := Setup(ctx, conn, p3, nil, nil); err != nil {
		t.Fatal(err)
	}
	equal(t, "columns", columnsOf(t, conn, "app.t"), []string{"id integer not null", "b text", "d character varying(3)[]"})
	equal(t, "state", query(t, conn, `SELECT state FROM pgveil.tables`), []string{StateCopied})
}

func TestSetupPrimaryKeyChanges(t *testing.T) {
	t.Parallel()
	ctx, _, conn := setupDB(t, plan(table("app", "t", pk("id", "integer"), c("a", "text"))), nil)
	// The table loses its key (REPLICA IDENTITY FULL on the source).
	if err := Setup(ctx, conn, plan(table("app", "t", c("id", "integer"), c("a", "text"))), nil, nil); err != nil {
		t.Fatal(err)
	}
	equal(t, "columns without key", columnsOf(t, conn, "app.t"), []string{"id integer", "a text"})
	equal(t, "constraints without key", constraintsOf(t, conn, "app.t"), []string{})
	// And gets a composite one.
	if err := Setup(ctx, conn, plan(table("app", "t", pk("id", "integer"), pk("a", "text"))), nil, nil); err != nil {
		t.Fatal(err)
	}
	equal(t, "columns with key", columnsOf(t, conn, "app.t"), []string{"id integer not null", "a text not null"})
	equal(t, "constraints with key", constraintsOf(t, conn, "app.t"), []string{"p PRIMARY KEY (id, a)"})
}

func TestSetupTypeChangeIsAnError(t *testing.T) {
	t.Parallel()
	ctx, _, conn := setupDB(t, plan(
		table("app", "t", pk("id", "integer"), c("a", "integer"), c("v", "varchar(10)")),
		table("app", "u", pk("id", "integer"), c("n", "numeric(10,2)")),
	), nil)
	p2 := plan(
		table("app", "t", pk("id", "integer"), c("a", "bigint"), c("v", "varchar(10)"), c("new", "text")),
		table("app", "u", pk("id", "integer"), c("n", "numeric(12,2)")),
	)
	err := Setup(ctx, conn, p2, nil, nil)
	if err == nil {
		t.Fatal("no error for a changed type")
	}
	var cte *ColumnTypeError
	if !errors.As(err, &cte) {
		t.Fatalf("not a ColumnTypeError: %v", err)
	}
	for _, want := range []string{"app.t.a", "integer", "bigint", "resync", "app.u.n", "numeric(10,2)", "numeric(12,2)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Nothing changed.
	equal(t, "columns", columnsOf(t, conn, "app.t"), []string{"id integer not null", "a integer", "v character varying(10)"})
}

func TestSetupMissingReader(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	conn := pgtest.Connect(t, shared.NewDB(t))
	err := Setup(ctx, conn, plan(table("app", "t", pk("id", "integer"))), nil, []string{"no_such_reader"})
	if err == nil {
		t.Fatal("no error for a missing reader role")
	}
	for _, want := range []string{"no_such_reader", `CREATE ROLE no_such_reader`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// A superuser could read schema pgveil: refused.
	err = Setup(ctx, conn, plan(table("app", "t", pk("id", "integer"))), nil, []string{"postgres"})
	if err == nil || !strings.Contains(err.Error(), "superuser") {
		t.Errorf("superuser reader: got %v", err)
	}
	// Nothing was created.
	equal(t, "schemas", query(t, conn, `SELECT nspname FROM pg_namespace WHERE nspname IN ('app', 'pgveil')`), []string{})
}

func TestSetupReaders(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	dsn := shared.NewDB(t)
	conn := pgtest.Connect(t, dsn)
	reader := "r_" + dbName(t, dsn)
	qr := schema.QuoteIdent(reader)
	pgtest.MustExec(t, conn, `CREATE ROLE `+qr+` LOGIN`)
	p := plan(table("app", "t", pk("id", "integer"), c("v", "text")), table("sales", "orders", pk("id", "integer")))
	if err := Setup(ctx, conn, p, nil, []string{reader}); err != nil {
		t.Fatal(err)
	}
	pgtest.MustExec(t, conn, `INSERT INTO app.t VALUES (1, 'a')`)
	if err := WriteCheckpoint(ctx, conn, "s", Position{LSN: 42}); err != nil {
		t.Fatal(err)
	}
	// Created after Setup, by the same role: default privileges.
	pgtest.MustExec(t, conn, `CREATE TABLE app.later (x integer)`)
	pgtest.MustExec(t, conn, `INSERT INTO app.later VALUES (5)`)

	check := func(when string) {
		t.Helper()
		rc := pgtest.ConnectAs(t, dsn, reader)
		for _, q := range []string{`SELECT count(*) FROM app.t`, `SELECT count(*) FROM sales.orders`, `SELECT count(*) FROM app.later`} {
			if _, err := rc.Exec(ctx, q); err != nil {
				t.Errorf("%s: reader: %s: %v", when, q, err)
			}
		}
		for _, q := range []string{
			`SELECT * FROM pgveil.checkpoint`, `SELECT * FROM pgveil.tables`,
			`INSERT INTO app.t VALUES (2, 'b')`, `UPDATE app.t SET v = 'c'`, `DELETE FROM app.t`, `TRUNCATE app.t`,
			`INSERT INTO app.later VALUES (6)`, `CREATE TABLE app.mine (x integer)`,
		} {
			_, err := rc.Exec(ctx, q)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("%s: reader: %s: got %v, want permission denied", when, q, err)
			}
		}
	}
	check("after Setup")

	// Privileges granted by hand are taken back by the next Setup.
	pgtest.MustExec(t, conn, `GRANT USAGE ON SCHEMA pgveil TO `+qr)
	pgtest.MustExec(t, conn, `GRANT ALL ON pgveil.checkpoint TO `+qr)
	pgtest.MustExec(t, conn, `GRANT USAGE ON SCHEMA pgveil TO PUBLIC`)
	pgtest.MustExec(t, conn, `GRANT INSERT, UPDATE, DELETE, TRUNCATE ON app.t TO `+qr)
	if err := Setup(ctx, conn, p, nil, []string{reader}); err != nil {
		t.Fatal(err)
	}
	check("after hand-made grants and Setup")

	// A reader that is a member of the owner could read pgveil: refused.
	pgtest.MustExec(t, conn, `GRANT postgres TO `+qr)
	err := Setup(ctx, conn, p, nil, []string{reader})
	if err == nil || !strings.Contains(err.Error(), reader) {
		t.Errorf("a reader that can use schema pgveil: got %v", err)
	}
	pgtest.MustExec(t, conn, `REVOKE postgres FROM `+qr)
}

func TestSetupEnumLabels(t *testing.T) {
	t.Parallel()
	ctx, _, conn := setupDB(t, plan(table("app", "t", pk("id", "integer"), c("m", "public.mood"))), moodEnum)
	pgtest.MustExec(t, conn, `INSERT INTO app.t VALUES (1, 'ok')`)
	enums := map[string][]string{
		"public.mood":  {"awful", "sad", "ok", "good", "happy", "ecstatic"},
		"app.color":    {"red", "it's green"},
		`"Odd"."Kind"`: {"A"},
	}
	p := plan(table("app", "t", pk("id", "integer"), c("m", "public.mood"), c("k", "app.color")))
	if err := Setup(ctx, conn, p, enums, nil); err != nil {
		t.Fatal(err)
	}
	equal(t, "mood", query(t, conn, `SELECT enum_range(NULL::public.mood)::text`), []string{"{awful,sad,ok,good,happy,ecstatic}"})
	equal(t, "color", query(t, conn, `SELECT enum_range(NULL::app.color)::text`), []string{`{red,"it's green"}`})
	equal(t, "Odd.Kind", query(t, conn, `SELECT enum_range(NULL::"Odd"."Kind")::text`), []string{`{A}`})
	equal(t, "rows", query(t, conn, `SELECT * FROM app.t`), []string{"1|ok|NULL"})
	before := catalogSnapshot(t, conn)
	if err := Setup(ctx, conn, p, enums, nil); err != nil {
		t.Fatal(err)
	}
	equal(t, "catalog after the second run", catalogSnapshot(t, conn), before)

	if err := Setup(ctx, conn, p, map[string][]string{"a.b.c": {"x"}}, nil); err == nil {
		t.Error("no error for a bad enum name")
	}
}

func TestParseQualifiedName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"mood", "mood"},
		{"Public.Mood", "public|mood"},
		{`"My Schema"."Mo""od"`, `My Schema|Mo"od`},
		{`a.b.c`, "error"},
		{`"unterminated`, "error"},
		{`a.`, "error"},
		{``, "error"},
	} {
		parts, err := parseQualifiedName(tc.in)
		got := strings.Join(parts, "|")
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}
