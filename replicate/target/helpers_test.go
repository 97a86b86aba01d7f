package target

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { pgtest.Main(m, &shared) }

// dbName returns the database of a DSN.
func dbName(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// col is a column of a test table.
type col struct {
	name, typ string
	pk        bool
}

func c(name, typ string) col  { return col{name: name, typ: typ} }
func pk(name, typ string) col { return col{name: name, typ: typ, pk: true} }

// table builds a table plan the way the rules package would.
func table(schemaName, name string, cols ...col) *transform.TablePlan {
	tbl := &schema.Table{Schema: schemaName, Name: name}
	for _, c := range cols {
		tbl.Columns = append(tbl.Columns, schema.Column{Name: c.name, Type: schema.MustType(c.typ), PrimaryKey: c.pk, NotNull: c.pk})
	}
	cat := schema.Tables{}
	cat.Add(tbl)
	tp := &transform.TablePlan{Table: tbl}
	for _, col := range tbl.Columns {
		tp.Columns = append(tp.Columns, transform.ColumnPlan{Column: col, Rule: transform.Rule{Name: "keep"}})
	}
	return tp
}

func plan(tables ...*transform.TablePlan) *transform.Plan { return transform.NewPlan(tables) }

// Markers for vals.
const (
	null = "\x00null"
	unch = "\x00unchanged"
)

// vals builds a row: null and unch stand for NULL and Unchanged.
func vals(ss ...string) []schema.Value {
	out := make([]schema.Value, len(ss))
	for i, s := range ss {
		switch s {
		case null:
			out[i] = schema.SQLNull()
		case unch:
			out[i] = schema.Value{State: schema.Unchanged}
		default:
			out[i] = schema.Text(s)
		}
	}
	return out
}

// query returns the rows of sql in PostgreSQL's text format, one string
// per row with the fields separated by "|" and NULL for NULL.
func query(t testing.TB, conn *pgx.Conn, sql string) []string {
	t.Helper()
	res := conn.PgConn().ExecParams(context.Background(), sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	out := []string{}
	for _, row := range res.Rows {
		fields := make([]string, len(row))
		for i, f := range row {
			if f == nil {
				fields[i] = "NULL"
			} else {
				fields[i] = string(f)
			}
		}
		out = append(out, strings.Join(fields, "|"))
	}
	return out
}

func equal(t testing.TB, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// setupDB creates a fresh database, runs Setup with p, and returns a
// connection to it.
func setupDB(t testing.TB, p *transform.Plan, enums map[string][]string) (context.Context, string, *pgx.Conn) {
	t.Helper()
	ctx := pgtest.Context(t)
	dsn := shared.NewDB(t)
	conn := pgtest.Connect(t, dsn)
	if err := Setup(ctx, conn, p, enums, nil); err != nil {
		t.Fatal(err)
	}
	return ctx, dsn, conn
}
