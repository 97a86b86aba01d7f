// Package rulestest builds masking plans from rules for tests: the
// packages below rules (schema, replicate/source) check what they do with
// a plan compiled the way pgveil compiles one. Only tests import it.
package rulestest

import (
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// Compile builds a plan from the tables section of a rules file (YAML
// indented under "tables:") against cat, with pgtest.Secret; every
// problem fails the test with the document.
func Compile(t testing.TB, cat *schema.Catalog, tables string) *transform.Plan {
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
