package rules

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, reports problems sorted and
// with positions, returns either a config or problems, and never prints a
// value of the environment.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
		for _, file := range files {
			f.Add(readFile(f, file))
		}
	}
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Add([]byte(head + "  t: {columns: {d: &x {json: {$.a: *x}}}}\n"))
	f.Add([]byte("secret: ${PGVEIL_SECRET:-x}$${A}$\n"))
	env, reg := testEnv(), testRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, env, reg)
		if err == nil {
			if cfg == nil || len(cfg.Tables) == 0 || len(cfg.Secret) < 32 || cfg.Source.DSN == "" || cfg.Target.DSN == "" {
				t.Fatalf("accepted an incomplete config: %+v", cfg)
			}
			for _, tr := range cfg.Tables {
				if len(tr.Columns) == 0 {
					t.Fatalf("accepted a table without columns")
				}
			}
			return
		}
		if cfg != nil {
			t.Fatalf("config along with errors")
		}
		ps, ok := err.(Problems)
		if !ok || len(ps.Errors()) == 0 {
			t.Fatalf("error %T without problems: %v", err, err)
		}
		for i, p := range ps {
			if p.Line < 1 && !strings.Contains(err.Error(), "too many YAML aliases") {
				t.Fatalf("problem without a line: %v", p)
			}
			if i > 0 && (p.Line < ps[i-1].Line || p.Line == ps[i-1].Line && p.Col < ps[i-1].Col) {
				t.Fatalf("problems not sorted:\n%v", ps)
			}
		}
		msg := err.Error()
		for _, v := range testEnvMap() {
			if len(v) >= 8 && strings.Contains(msg, v) && !strings.Contains(string(data), v) {
				t.Fatalf("a value of the environment is in a problem:\n%s", msg)
			}
		}
	})
}
