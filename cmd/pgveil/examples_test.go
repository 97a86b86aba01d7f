package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgveil/examples"
	"pgveil/internal/pgtest"
)

// exampleSeeds holds, for each example, a table to preview and rows to
// put in it first ($1 stands for the canary, personal data that must not
// show).
var exampleSeeds = map[string]struct{ table, seed string }{
	"saas": {"customers", `
INSERT INTO accounts (name, plan, country) VALUES ('Tenant', 'team', 'DE');
INSERT INTO customers (account_id, email, full_name, phone, country, notes, profile)
  SELECT 1, 'c' || g || '@mail.example', $1, '+49 30 1234 ' || g, 'DE', $1, jsonb_build_object('ssn', $1) FROM generate_series(1, 3) g;`},
	"ecommerce": {"customers", `
INSERT INTO customers (email, first_name, last_name, phone, birth_date, signup_ip, segments, preferences)
  SELECT 'c' || g || '@mail.example', $1, $1, '+49 170 123456' || g, date '1990-02-03' + g, inet '198.51.100.7', '{vip}',
         jsonb_build_object('language', 'de', 'newsletter', jsonb_build_object('email', 'c' || g || '@mail.example'), 'sizes', jsonb_build_object('shoe', $1))
  FROM generate_series(1, 3) g;`},
	"healthcare": {"patients", `
INSERT INTO patients (mrn, national_id, first_name, last_name, sex, birth_date, email, phone, street, city, postal_code, country,
                      allergies, chronic_conditions, emergency_contact, insurance, portal_last_login_ip)
  SELECT 'MRN' || g, $1, $1, $1, 'female', date '1980-05-17' + g, 'c' || g || '@mail.example', '+49 170 123456' || g, $1, 'Berlin', '10115', 'DE',
         '{penicillin}', '{E11.9,I10}', jsonb_build_object('name', $1, 'phone', '+49 170 7654321', 'relation', 'sister'),
         jsonb_build_object('provider', 'AOK', 'member_id', $1, 'group_number', $1), inet '203.0.113.7'
  FROM generate_series(1, 3) g;`},
}

// loadExample loads an example's schema and then seed into a fresh
// database of the production cluster; it returns the database's DSN and
// the example's rules.
func loadExample(t *testing.T, name, seed string) (dsn, rulesText string) {
	t.Helper()
	schema, err := examples.Schema(name)
	if err != nil {
		t.Fatal(err)
	}
	if rulesText, err = examples.Rules(name); err != nil {
		t.Fatal(err)
	}
	dsn = clusters.Source.NewDB(t)
	if err := pgtest.Exec(context.Background(), dsn, schema+seed); err != nil {
		t.Fatalf("loading the schema: %v", err)
	}
	return dsn, rulesText
}

// TestExamplesValidateAndPreview loads each example's schema into a
// fresh production database: its rules pass the online validation with
// no problem and no warning, and preview masks a table's rows.
func TestExamplesValidateAndPreview(t *testing.T) {
	for _, name := range examples.Names() {
		t.Run(name, func(t *testing.T) {
			seed, ok := exampleSeeds[name]
			if !ok {
				t.Fatalf("example %s has no entry in exampleSeeds", name)
			}
			dsn, text := loadExample(t, name, strings.ReplaceAll(seed.seed, "$1", "'"+canary+"'"))
			file := writeRules(t, text)
			s := &site{t: t, srcDSN: dsn, dstDSN: "host=analytics.invalid"}

			code, out, errOut := s.cli("validate", "-c", file)
			tables := strings.Count(text, "\n    columns:")
			if want := fmt.Sprintf("(online: %d tables checked against the source)", tables); code != exitOK || errOut != "" || !strings.Contains(out, want) {
				t.Fatalf("validate: exit %d\nstdout: %s\nstderr: %s\nwant %q and nothing on stderr", code, out, errOut, want)
			}
			t.Log(strings.TrimSpace(out))

			code, out, errOut = s.cli("preview", "-c", file, seed.table, "-n", "3")
			lines := strings.Split(strings.TrimSpace(strings.SplitN(out, "\n\n", 2)[0]), "\n")
			if code != exitOK || len(lines) != 4 || !slices.Contains(strings.Fields(lines[0]), "id") {
				t.Fatalf("preview %s: exit %d\nstdout: %s\nstderr: %s", seed.table, code, out, errOut)
			}
			if !strings.Contains(errOut, "3 rows of public."+seed.table+", masked; nothing was written") {
				t.Errorf("preview %s: stderr %q", seed.table, errOut)
			}
			t.Logf("preview %s:\n%s", seed.table, out)
		})
	}
}
