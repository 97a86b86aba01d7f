package schema_test

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

// newDB returns a connection to a fresh database of the shared cluster,
// with sql run in it.
func newDB(t *testing.T, sql string) (*pgx.Conn, string) {
	t.Helper()
	dsn := shared.NewDB(t)
	conn, err := pgx.Connect(testContext(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if sql != "" {
		if _, err := conn.Exec(testContext(t), sql); err != nil {
			t.Fatalf("%s\n-> %v", sql, err)
		}
	}
	return conn, dsn
}

// tn parses "schema.name" (no quoting) into a table name.
func tn(s string) schema.TableName {
	schemaName, name, _ := strings.Cut(s, ".")
	return schema.TableName{Schema: schemaName, Name: name}
}

// compile builds a plan from the tables section of a rules file: every
// type the catalog reader returns must compile with the rules.
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
