// Package examples embeds the example schemas and rules, so that the
// pgveil binary carries its demo wherever it runs.
//
// Each example is a directory holding schema.sql (the production schema)
// and pgveil.yaml (masking rules for every column of it):
//
//   - saas: the demo's multi-tenant SaaS (accounts, users, customers,
//     orders, payments, support tickets, events);
//   - ecommerce: an online shop (customers, addresses, products, orders,
//     order items, payments, reviews);
//   - healthcare: a clinic (patients, practitioners, appointments,
//     prescriptions), with personal and medical data.
package examples

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

//go:embed saas/schema.sql saas/pgveil.yaml
//go:embed ecommerce/schema.sql ecommerce/pgveil.yaml
//go:embed healthcare/schema.sql healthcare/pgveil.yaml
var files embed.FS

func read(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("examples: " + name + " is not embedded") // a build problem, caught by the tests
	}
	return string(b)
}

// Names lists the examples, sorted.
func Names() []string {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		panic("examples: " + err.Error()) // a build problem, caught by the tests
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// Schema is examples/NAME/schema.sql: the example's production schema.
func Schema(name string) (string, error) { return file(name, "schema.sql") }

// Rules is examples/NAME/pgveil.yaml: the masking rules for its schema.
func Rules(name string) (string, error) { return file(name, "pgveil.yaml") }

// file reads one file of an example.
func file(name, base string) (string, error) {
	b, err := files.ReadFile(name + "/" + base)
	if err != nil || strings.ContainsAny(name, `/\.`) {
		return "", fmt.Errorf("examples: no example named %q (there are %s)", name, strings.Join(Names(), ", "))
	}
	return string(b), nil
}

// SaaSSchema is examples/saas/schema.sql: the demo's multi-tenant SaaS
// schema.
func SaaSSchema() string { return read("saas/schema.sql") }

// SaaSRules is examples/saas/pgveil.yaml: the masking rules for it.
func SaaSRules() string { return read("saas/pgveil.yaml") }
