package rules

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
)

// The loader has no yaml struct tags to reflect on: it walks the YAML node
// tree and checks each map's keys against the lists topKeys, sourceKeys,
// targetKeys and tableKeys (parse.go), plus on_error in a column's rule map
// (onError). configKeys is that tree, written the way the README's
// "Configuration keys" table writes it: NAME stands for a table's name and
// COL for a column's.
var (
	// keyLists maps the path of a map with fixed keys to the loader's list
	// of them ("" is the file's root).
	keyLists = map[string]string{
		"":            topKeys,
		"source":      sourceKeys,
		"target":      targetKeys,
		"tables.NAME": tableKeys,
		"tenancy":     tenancyKeys,
	}
	// nameMaps maps the path of a map keyed by names to the path of its
	// entries.
	nameMaps = map[string]string{
		"tables":              "tables.NAME",
		"tables.NAME.columns": "tables.NAME.columns.COL",
	}
	// ruleKeys are the keys a column's rule map may hold beside its
	// transformer (onError in parse.go); transformers and their parameters
	// are documented in docs/rules.md (transform.TestReferenceDocumentsRegistry).
	ruleKeys = map[string][]string{
		"tables.NAME.columns.COL": {"on_error"},
	}
)

// configKeys lists every key path of the tree above, in walk order.
func configKeys() []string {
	var out []string
	var walk func(path string)
	walk = func(path string) {
		if path != "" {
			out = append(out, path)
		}
		if list, ok := keyLists[path]; ok {
			for _, k := range strings.Split(list, ", ") {
				walk(strings.TrimPrefix(path+"."+k, "."))
			}
		}
		if entry, ok := nameMaps[path]; ok {
			walk(entry)
		}
		for _, k := range ruleKeys[path] {
			walk(path + "." + k)
		}
	}
	walk("")
	return out
}

// keyRowRE matches a row of the README's key table and captures its key.
var keyRowRE = regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")

// readmeKeys returns the keys of the README's "Configuration keys" table.
// A key written "...COL.on_error" abbreviates the one key ending in
// ".COL.on_error".
func readmeKeys(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start := strings.Index(doc, "\n## Configuration keys\n")
	if start < 0 {
		t.Fatal(`README.md has no section "## Configuration keys"`)
	}
	section := doc[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var out []string
	for _, m := range keyRowRE.FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatal("README.md's Configuration keys section has no table of keys")
	}
	return out
}

// resolveKey returns the key path a README key stands for, or "" when it
// stands for none or, abbreviated, for several.
func resolveKey(doc string, keys []string) string {
	suffix, ok := strings.CutPrefix(doc, "...")
	if !ok {
		if slices.Contains(keys, doc) {
			return doc
		}
		return ""
	}
	found := ""
	for _, k := range keys {
		if strings.HasSuffix(k, "."+suffix) {
			if found != "" {
				return ""
			}
			found = k
		}
	}
	return found
}

// README.md's "Configuration keys" table documents every key the loader
// accepts, and only those: adding a key to the loader without a row there
// fails here. The top-level sections source, target and tables are
// documented through their keys.
func TestDocsReadmeDocumentsEveryKey(t *testing.T) {
	keys := configKeys()
	documented := map[string]bool{}
	for _, d := range readmeKeys(t) {
		k := resolveKey(d, keys)
		if k == "" {
			t.Errorf("README.md documents %q, which is not a key the loader accepts (known: %s)", d, strings.Join(keys, ", "))
			continue
		}
		documented[k] = true
	}
	for _, k := range keys {
		if _, top := keyLists[k]; top && !strings.Contains(k, ".") {
			continue
		}
		if _, top := nameMaps[k]; top && !strings.Contains(k, ".") {
			continue
		}
		if !documented[k] {
			t.Errorf("key %s is accepted by the loader but not documented in README.md's Configuration keys table", k)
		}
	}
}

// The lists the key tree is built from are the ones the loader enforces,
// and the one key written out by hand (on_error) is accepted: a key tree
// that drifted from parse.go would make TestDocsReadmeDocumentsEveryKey
// check the wrong keys.
func TestDocsKeyTreeMatchesLoader(t *testing.T) {
	const base = `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: ` + pgtest.Secret + `
tables:
  t:
    columns: {id: keep}
`
	cases := map[string]struct{ yaml, list string }{
		"root":   {base + "bogus: 1\n", topKeys},
		"source": {strings.Replace(base, `source: {`, `source: {bogus: 1, `, 1), sourceKeys},
		"target": {strings.Replace(base, `target: {`, `target: {bogus: 1, `, 1), targetKeys},
		"table":  {strings.Replace(base, "    columns:", "    bogus: 1\n    columns:", 1), tableKeys},
	}
	for name, tc := range cases {
		_, err := Parse("f.yaml", []byte(tc.yaml), mapEnv(nil), nil)
		if err == nil || !strings.Contains(err.Error(), `unknown key "bogus"; allowed keys: `+tc.list) {
			t.Errorf("%s: an unknown key gave %v, want the allowed keys %q", name, err, tc.list)
		}
	}
	withOnError := strings.Replace(base, "{id: keep}", "{id: keep, total: {noise: 0.05, on_error: null}}", 1)
	cfg, err := Parse("f.yaml", []byte(withOnError), mapEnv(nil), nil)
	if err != nil {
		t.Fatalf("on_error: %v", err)
	}
	if r := cfg.Tables[0].Columns[1].Rule; r.Name != "noise" || r.OnError != "null" {
		t.Errorf("on_error: got rule %s with on_error %q", r.Name, r.OnError)
	}
}
