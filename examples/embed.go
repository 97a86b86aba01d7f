// Package examples embeds the example schemas and rules, so that the
// pgveil binary carries its demo wherever it runs.
package examples

import "embed"

//go:embed saas/schema.sql saas/pgveil.yaml
var files embed.FS

func read(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("examples: " + name + " is not embedded") // a build problem, caught by the tests
	}
	return string(b)
}

// SaaSSchema is examples/saas/schema.sql: the demo's multi-tenant SaaS
// schema.
func SaaSSchema() string { return read("saas/schema.sql") }

// SaaSRules is examples/saas/pgveil.yaml: the masking rules for it.
func SaaSRules() string { return read("saas/pgveil.yaml") }
