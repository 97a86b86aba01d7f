package schema_test

import (
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { pgtest.Main(m, &shared) }

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
