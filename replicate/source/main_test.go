package source

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

var shared pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a connection closed when the test ends.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testContext(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// connectAs connects to dsn as role (the tests' clusters trust local
// connections), closing the connection when the test ends.
func connectAs(t *testing.T, dsn, role string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = role
	conn, err := pgx.ConnectConfig(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// newDB returns a connection to a fresh database of the shared cluster,
// with sql run in it.
func newDB(t *testing.T, sql string) (*pgx.Conn, string) {
	t.Helper()
	dsn := shared.NewDB(t)
	conn := connect(t, dsn)
	if sql != "" {
		mustExec(t, conn, sql)
	}
	return conn, dsn
}

// mustExec runs statements (simple protocol: several at once).
func mustExec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(testContext(t), sql); err != nil {
		t.Fatalf("%s\n-> %v", sql, err)
	}
}

// readAll reads the catalog of every table of the database.
func readAll(t *testing.T, conn *pgx.Conn) *schema.Catalog {
	t.Helper()
	ctx := testContext(t)
	names, err := schema.ListTables(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := schema.ReadCatalog(ctx, conn, names)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// compile builds a plan from the tables section of a rules file.
func compile(t *testing.T, cat *schema.Catalog, tables string) *transform.Plan {
	t.Helper()
	doc := "source: {dsn: \"host=prod\"}\ntarget: {dsn: \"host=copy\"}\nsecret: \"" + pgtest.Secret + "\"\ntables:\n" + tables
	noEnv := func(string) (string, bool) { return "", false }
	cfg, err := rules.Parse("test.yaml", []byte(doc), noEnv, nil)
	if err != nil {
		t.Fatalf("rules:\n%s\n-> %v", doc, err)
	}
	plan, _, err := cfg.Compile(cat.Tables, nil, nil)
	if err != nil {
		t.Fatalf("compile:\n%s\n-> %v", doc, err)
	}
	return plan
}

// tn parses "schema.name" (no quoting) into a table name.
func tn(s string) schema.TableName {
	schemaName, name, _ := strings.Cut(s, ".")
	return schema.TableName{Schema: schemaName, Name: name}
}

func readServer(t *testing.T, conn *pgx.Conn) *Server {
	t.Helper()
	srv, err := ReadServer(testContext(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}
