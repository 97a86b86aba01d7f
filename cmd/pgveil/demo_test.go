package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// pgveil demo, as a newcomer runs it, ends with verify reporting no
// difference.
func TestDemo(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgveil-demo-test-") // searchable by the postgres user, unlike t.TempDir
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	code, out, errOut := pgveil(t, nil, "demo", "--dir", dir, "--duration", "15s", "--scale", "5000", "--every", "5s", "--rate", "30")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"starting two PostgreSQL clusters", "Seeding production", "postgres://metabase_ro:",
		"Initial copy", "Live traffic", "replicated:", "production (raw)", "replica (masked)", "newest customer",
		"public.customers", "verify: the replica equals the masked source",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	// One customer's role sees its own customers only.
	if m := regexp.MustCompile(`per-customer dashboards: \d+ tenant roles; as tenant_\d+, SELECT count\(\*\) FROM customers gives (\d+) of (\d+) rows`).FindStringSubmatch(out); m == nil {
		t.Errorf("the output lacks the per-customer view:\n%s", out)
	} else if mine, all := atoi(t, m[1]), atoi(t, m[2]); mine == 0 || mine >= all {
		t.Errorf("a tenant sees %d of %d customers", mine, all)
	}
	if regexp.MustCompile(`(?m) DIFF$`).MatchString(out) {
		t.Errorf("differences:\n%s", out)
	}

	// The files it names let the other commands run against it.
	var b []byte
	envFile := filepath.Join(dir, "demo.env")
	if fi, err := os.Stat(envFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("demo.env: %v (it holds the secret: owner-only)", err)
	}
	b, err = os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^export (\w+)='([^']*)'$`).FindAllStringSubmatch(string(b), -1) {
		vars[m[1]] = m[2]
	}
	if len(vars) != 3 || !strings.Contains(out, envFile) {
		t.Fatalf("demo.env holds %d variables (want 3), named in the output: %v", len(vars), strings.Contains(out, envFile))
	}
	// The demo shows its own seeded rows raw beside the masked ones, and the
	// read-only role's DSN (a throwaway password) so that Metabase or psql
	// can connect; the secret is in demo.env only.
	secret := vars["PGVEIL_SECRET"]
	logText, err := os.ReadFile(filepath.Join(dir, "pgveil.log"))
	if err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{"stdout": out, "stderr": errOut, "pgveil.log": string(logText)} {
		if len(secret) < 32 || strings.Contains(text, secret) {
			t.Errorf("%s holds the secret (or demo.env has none)", where)
		}
	}
	if code, vout, verr := pgveil(t, vars, "validate", "--offline", "-c", filepath.Join(dir, "pgveil.yaml")); code != exitOK {
		t.Errorf("validate the demo's files: exit %d\n%s%s", code, vout, verr)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
