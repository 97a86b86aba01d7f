package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgveil/internal/syncbuf"
)

// pgveil demo, as a newcomer runs it and stops it with Ctrl-C after a few
// progress reports, ends with verify reporting no difference.
func TestDemo(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgveil-demo-test-") // searchable by the postgres user, unlike t.TempDir
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Ctrl-C is the cancellation of run's context (main's
	// signal.NotifyContext). --duration is only a backstop here.
	ctx, ctrlC := context.WithCancel(context.Background())
	defer ctrlC()
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	e := &env{stdout: stdout, stderr: stderr, lookupEnv: func(string) (string, bool) { return "", false }}
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, e, []string{"demo", "--dir", dir, "--scale", "5000", "--every", "1s", "--rate", "30", "--duration", "30m"})
	}()
	// Two progress reports under live traffic, however long the set-up
	// and the initial copy take on this machine.
	progress := regexp.MustCompile(`(?m)^\[\d+s\] traffic: `)
	deadline := time.Now().Add(5 * time.Minute)
	for len(progress.FindAllString(stdout.String(), -1)) < 2 {
		select {
		case code := <-exited:
			t.Fatalf("the demo ended (exit %d) before two progress reports\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two progress reports within 5 minutes\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	}
	ctrlC()
	var code int
	select {
	case code = <-exited:
	case <-time.After(5 * time.Minute):
		t.Fatalf("the demo did not end within 5 minutes of Ctrl-C\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	out, errOut := stdout.String(), stderr.String()
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"starting two PostgreSQL clusters", "Seeding production", "postgres://metabase_ro:",
		"Initial copy", "Live traffic", "replicated:", "production (raw)", "replica (masked)",
		"public.customers", "verify: the replica equals the masked source",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	// Once caught up, before verify, the newest customer the traffic
	// added is shown raw beside masked.
	if m := regexp.MustCompile(`(?s)Stopping the traffic.*\n  newest customer +production \(raw\) +replica \(masked\)\n.*TABLE +SOURCE`).FindString(out); m == "" {
		t.Errorf("the output lacks the newest customer after catching up:\n%s", out)
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
