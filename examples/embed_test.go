package examples

import (
	"os"
	"slices"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/rules"
)

func TestEmbeddedFilesAreTheExamples(t *testing.T) {
	for name, got := range map[string]string{"saas/schema.sql": SaaSSchema(), "saas/pgveil.yaml": SaaSRules()} {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) || len(got) == 0 {
			t.Errorf("%s: embedded copy differs", name)
		}
	}
}

// Every directory here is an example, embedded as it is on disk.
func TestNamesSchemaAndRules(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if _, err := os.Stat(e.Name() + "/pgveil.yaml"); e.IsDir() && err == nil {
			dirs = append(dirs, e.Name())
		}
	}
	if got := Names(); !slices.Equal(got, dirs) || !slices.Contains(got, "saas") {
		t.Fatalf("Names() = %q, want the example directories %q", got, dirs)
	}
	for _, name := range Names() {
		for file, get := range map[string]func(string) (string, error){"schema.sql": Schema, "pgveil.yaml": Rules} {
			got, err := get(name)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(name + "/" + file)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) || len(got) == 0 {
				t.Errorf("%s/%s: embedded copy differs", name, file)
			}
		}
	}
	for _, bad := range []string{"nope", "", ".", "saas/..", "../examples/saas"} {
		if _, err := Schema(bad); err == nil || !strings.Contains(err.Error(), "no example named") {
			t.Errorf("Schema(%q): %v", bad, err)
		}
		if _, err := Rules(bad); err == nil {
			t.Errorf("Rules(%q): no error", bad)
		}
	}
}

// Every example's rules pass the offline checks.
func TestRulesParse(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"SOURCE_DSN": "host=prod", "TARGET_DSN": "host=analytics", "PGVEIL_SECRET": pgtest.Secret}[k]
		return v, ok
	}
	for _, name := range Names() {
		text, err := Rules(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := rules.Parse(name+"/pgveil.yaml", []byte(text), env, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(cfg.Tables) == 0 {
			t.Errorf("%s: no tables", name)
		}
	}
}
