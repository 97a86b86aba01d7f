package schema_test

import (
	"reflect"
	"slices"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/internal/rulestest"
	"pgveil/schema"
)

const catalogSchema = `
CREATE SCHEMA "Sales";
CREATE DOMAIN public.email_domain AS varchar(50) CHECK (VALUE LIKE '%@%');
CREATE DOMAIN public.short_email AS public.email_domain;
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE "Sales"."Status" AS ENUM ('new', 'in progress', 'done');
CREATE TABLE public.everything (
	id bigint PRIMARY KEY,
	s smallint NOT NULL,
	i integer,
	b bigint,
	n102 numeric(10,2),
	n numeric,
	r real,
	d double precision,
	t text,
	vc varchar(20),
	ch char(5),
	bo boolean,
	dt date,
	ts timestamp(3),
	tstz timestamptz,
	tm time,
	iv interval,
	u uuid UNIQUE,
	by bytea,
	j json,
	jb jsonb,
	ip inet,
	ia int[],
	tt text[][],
	email public.email_domain,
	email2 public.short_email,
	m public.mood,
	ms public.mood[],
	st "Sales"."Status",
	ea public.email_domain[],
	total numeric GENERATED ALWAYS AS (n * 2) STORED
);
CREATE TABLE public.events (at timestamptz, payload text);
ALTER TABLE public.events REPLICA IDENTITY FULL;
CREATE TABLE public.line_items (order_id int, line int, qty int, PRIMARY KEY (order_id, line));
CREATE TABLE public.users (
	id int PRIMARY KEY,
	email text NOT NULL UNIQUE,
	nick text,
	handle text,
	CONSTRAINT nick_id UNIQUE (nick, id)
);
CREATE UNIQUE INDEX users_handle_partial ON public.users (handle) WHERE handle IS NOT NULL;
CREATE TABLE public.measurements (id int, at date, v float8, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.measurements_2024 PARTITION OF public.measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE "Sales"."Orders" ("OrderID" int PRIMARY KEY, "Customer Name" text, "select" int);
CREATE TABLE public.accounts (id int NOT NULL, code text NOT NULL, name text);
CREATE UNIQUE INDEX accounts_code ON public.accounts (code);
ALTER TABLE public.accounts REPLICA IDENTITY USING INDEX accounts_code;
`

func TestReadCatalog(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, catalogSchema)
	ctx := pgtest.Context(t)

	names, err := schema.ListTables(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []schema.TableName{
		{Schema: "Sales", Name: "Orders"},
		{Schema: "public", Name: "accounts"},
		{Schema: "public", Name: "events"},
		{Schema: "public", Name: "everything"},
		{Schema: "public", Name: "line_items"},
		{Schema: "public", Name: "measurements"},
		{Schema: "public", Name: "users"},
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("ListTables = %v, want %v (partitions left out)", names, wantNames)
	}

	cat, err := schema.ReadCatalog(ctx, conn, append(names, pgtest.Table("public.nope")))
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Tables) != len(wantNames) || cat.Tables[pgtest.Table("public.nope")] != nil || cat.Info[pgtest.Table("public.nope")] != nil {
		t.Errorf("catalog has %d tables, want %d (the missing one absent)", len(cat.Tables), len(wantNames))
	}

	mood := schema.Type{Name: "public.mood", Kind: schema.KindOther}
	moods := mood
	moods.ArrayDims = 1
	varchar50 := schema.MustType("varchar(50)")
	varchar50s := schema.MustType("varchar(50)[]")
	textArray2 := schema.MustType("text[][]")
	if textArray2.ArrayDims != 2 {
		t.Fatalf("transform.MustType(text[][]).ArrayDims = %d", textArray2.ArrayDims)
	}
	wantTypes := []struct {
		col string
		typ schema.Type
	}{
		{"id", schema.Type{Name: "bigint", Kind: schema.KindInt, Bits: 64}},
		{"s", schema.Type{Name: "smallint", Kind: schema.KindInt, Bits: 16}},
		{"i", schema.Type{Name: "integer", Kind: schema.KindInt, Bits: 32}},
		{"b", schema.Type{Name: "bigint", Kind: schema.KindInt, Bits: 64}},
		{"n102", schema.Type{Name: "numeric", Kind: schema.KindNumeric, Precision: 10, Scale: 2}},
		{"n", schema.Type{Name: "numeric", Kind: schema.KindNumeric}},
		{"r", schema.Type{Name: "real", Kind: schema.KindFloat, Bits: 32}},
		{"d", schema.Type{Name: "double precision", Kind: schema.KindFloat, Bits: 64}},
		{"t", schema.Type{Name: "text", Kind: schema.KindText}},
		{"vc", schema.Type{Name: "character varying", Kind: schema.KindText, Length: 20}},
		{"ch", schema.Type{Name: "character", Kind: schema.KindText, Length: 5}},
		{"bo", schema.Type{Name: "boolean", Kind: schema.KindBool}},
		{"dt", schema.Type{Name: "date", Kind: schema.KindDate}},
		{"ts", schema.Type{Name: "timestamp without time zone", Kind: schema.KindTimestamp, Mod: "(3)"}},
		{"tstz", schema.Type{Name: "timestamp with time zone", Kind: schema.KindTimestampTZ}},
		{"tm", schema.Type{Name: "time without time zone", Kind: schema.KindTime}},
		{"iv", schema.Type{Name: "interval", Kind: schema.KindInterval}},
		{"u", schema.Type{Name: "uuid", Kind: schema.KindUUID}},
		{"by", schema.Type{Name: "bytea", Kind: schema.KindBytea}},
		{"j", schema.Type{Name: "json", Kind: schema.KindJSON}},
		{"jb", schema.Type{Name: "jsonb", Kind: schema.KindJSONB}},
		{"ip", schema.Type{Name: "inet", Kind: schema.KindInet}},
		{"ia", schema.Type{Name: "integer", Kind: schema.KindInt, Bits: 32, ArrayDims: 1}},
		{"tt", schema.Type{Name: "text", Kind: schema.KindText, ArrayDims: 2}},
		{"email", varchar50},
		{"email2", varchar50},
		{"m", mood},
		{"ms", moods},
		{"st", schema.Type{Name: `"Sales"."Status"`, Kind: schema.KindOther}},
		{"ea", varchar50s},
	}
	every := cat.Tables[pgtest.Table("public.everything")]
	if every == nil {
		t.Fatal("public.everything missing")
	}
	if len(every.Columns) != len(wantTypes) {
		t.Errorf("everything has %d columns, want %d (generated column left out)", len(every.Columns), len(wantTypes))
	}
	for i, w := range wantTypes {
		if i >= len(every.Columns) {
			break
		}
		c := every.Columns[i]
		if c.Name != w.col || c.Type != w.typ {
			t.Errorf("column %d = %s %#v, want %s %#v", i, c.Name, c.Type, w.col, w.typ)
		}
		if c.Table != "public.everything" {
			t.Errorf("column %s: Table = %q", c.Name, c.Table)
		}
	}
	if c := every.Column("s"); c == nil || !c.NotNull {
		t.Errorf("s: NotNull not set")
	}
	if c := every.Column("id"); c == nil || !c.PrimaryKey || !c.NotNull || c.Unique {
		t.Errorf("id: %+v, want primary key, not null, not Unique (PK excluded)", c)
	}
	if c := every.Column("u"); c == nil || !c.Unique || c.PrimaryKey {
		t.Errorf("u: %+v, want Unique", c)
	}
	info := cat.Info[pgtest.Table("public.everything")]
	if info.OID == 0 || info.ReplicaIdentity != 'd' || !slices.Equal(info.IdentityColumns, []string{"id"}) ||
		!info.HasPrimaryKey || !slices.Equal(every.Generated, []string{"total"}) || info.Partitioned ||
		info.EstimatedRows != -1 || info.Pages != 0 {
		t.Errorf("everything info = %+v", info)
	}
	for col, want := range map[string]string{
		"email": "public.email_domain", "email2": "public.short_email", "m": "public.mood", "ms": "public.mood[]",
		"st": `"Sales"."Status"`, "ts": "timestamp(3) without time zone", "vc": "character varying(20)", "ea": "public.email_domain[]",
	} {
		if got := info.ColumnTypes[col]; got != want {
			t.Errorf("ColumnTypes[%s] = %q, want %q", col, got, want)
		}
	}
	if got := cat.Enums["public.mood"]; !slices.Equal(got, []string{"sad", "ok", "happy"}) {
		t.Errorf("enum public.mood = %q", got)
	}
	if got := cat.Enums[`"Sales"."Status"`]; !slices.Equal(got, []string{"new", "in progress", "done"}) {
		t.Errorf(`enum "Sales"."Status" = %q`, got)
	}
	if len(cat.Enums) != 2 {
		t.Errorf("enums = %v", cat.Enums)
	}

	events, einfo := cat.Table(pgtest.Table("public.events"))
	if einfo.ReplicaIdentity != 'f' || einfo.HasPrimaryKey || !slices.Equal(einfo.IdentityColumns, []string{"at", "payload"}) {
		t.Errorf("events info = %+v", einfo)
	}
	for _, c := range events.Columns {
		if c.PrimaryKey || c.Unique {
			t.Errorf("events.%s: %+v", c.Name, c)
		}
	}

	li, liinfo := cat.Table(pgtest.Table("public.line_items"))
	if !slices.Equal(liinfo.IdentityColumns, []string{"order_id", "line"}) || !liinfo.HasPrimaryKey {
		t.Errorf("line_items info = %+v", liinfo)
	}
	for _, c := range li.Columns {
		if want := c.Name != "qty"; c.PrimaryKey != want || c.Unique {
			t.Errorf("line_items.%s: %+v", c.Name, c)
		}
	}

	users := cat.Tables[pgtest.Table("public.users")]
	for col, unique := range map[string]bool{"id": false, "email": true, "nick": false, "handle": false} {
		if c := users.Column(col); c == nil || c.Unique != unique {
			t.Errorf("users.%s: Unique = %v, want %v (composite and partial unique indexes do not count)", col, c.Unique, unique)
		}
	}

	m, minfo := cat.Table(pgtest.Table("public.measurements"))
	if !minfo.Partitioned || !slices.Equal(minfo.IdentityColumns, []string{"id", "at"}) || len(m.Columns) != 3 {
		t.Errorf("measurements = %+v %+v", m, minfo)
	}

	orders, oinfo := cat.Table(pgtest.Table("Sales.Orders"))
	if orders == nil {
		t.Fatal(`"Sales"."Orders" missing`)
	}
	var cols []string
	for _, c := range orders.Columns {
		cols = append(cols, c.Name)
	}
	if !slices.Equal(cols, []string{"OrderID", "Customer Name", "select"}) || !slices.Equal(oinfo.IdentityColumns, []string{"OrderID"}) {
		t.Errorf("Orders columns %q, identity %q", cols, oinfo.IdentityColumns)
	}
	if q := orders.QualifiedName(); q != `"Sales"."Orders"` {
		t.Errorf("QualifiedName = %s", q)
	}

	acc, ainfo := cat.Table(pgtest.Table("public.accounts"))
	if ainfo.ReplicaIdentity != 'i' || !slices.Equal(ainfo.IdentityColumns, []string{"code"}) || ainfo.HasPrimaryKey {
		t.Errorf("accounts info = %+v", ainfo)
	}
	if c := acc.Column("code"); !c.PrimaryKey || !c.Unique || !c.NotNull {
		t.Errorf("accounts.code = %+v, want part of the identity, unique, not null", c)
	}
	if c := acc.Column("id"); c.PrimaryKey || c.Unique {
		t.Errorf("accounts.id = %+v", c)
	}

	// Every catalog type works with the rules: keep everything.
	plan := rulestest.Compile(t, cat, `
  everything:
    columns: {id: hash, s: keep, i: keep, b: keep, n102: keep, n: keep, r: keep, d: keep, t: keep, vc: keep,
      ch: keep, bo: keep, dt: keep, ts: keep, tstz: keep, tm: keep, iv: keep, u: keep, by: keep, j: keep,
      jb: keep, ip: keep, ia: keep, tt: keep, email: {fake: email}, email2: keep, m: keep, ms: keep, st: keep, ea: keep}
`)
	if tp := plan.Table("public", "everything"); tp == nil || len(tp.Columns) != len(wantTypes) {
		t.Errorf("plan of everything: %+v", tp)
	}
}

func TestReadCatalogEmpty(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, "")
	cat, err := schema.ReadCatalog(pgtest.Context(t), conn, nil)
	if err != nil || len(cat.Tables) != 0 || cat.Info == nil || cat.Enums == nil {
		t.Fatalf("ReadCatalog(nil) = %+v, %v", cat, err)
	}
	cat, err = schema.ReadCatalog(pgtest.Context(t), conn, []schema.TableName{pgtest.Table("public.nope")})
	if err != nil || len(cat.Tables) != 0 {
		t.Fatalf("ReadCatalog(missing) = %+v, %v", cat, err)
	}
}
