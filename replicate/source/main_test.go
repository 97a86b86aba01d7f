package source

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { pgtest.Main(m, &shared) }

// readAll reads the catalog of every table of the database.
func readAll(t *testing.T, conn *pgx.Conn) *schema.Catalog {
	t.Helper()
	ctx := pgtest.Context(t)
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
	srv, err := ReadServer(pgtest.Context(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}
