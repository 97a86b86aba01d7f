package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/metabase"
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
		exited <- run(ctx, e, []string{"demo", "--dir", dir, "--scale", "5000", "--every", "1s", "--rate", "30", "--duration", "30m", "--keep"})
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
	keptAnalytics(t, out)
}

// keptAnalytics starts the analytics cluster a --keep demo left with the
// command it printed, and checks that it comes back with its settings and
// that its reader has setup-sql's hardening, and sees in Metabase's sync
// every table and primary key.
func keptAnalytics(t *testing.T, out string) {
	t.Helper()
	starts := regexp.MustCompile(`(?m)^  (.*pg_ctl.* start'?)$`).FindAllStringSubmatch(out, -1)
	stops := regexp.MustCompile(`(?m)^  (.*pg_ctl.* stop'?)$`).FindAllStringSubmatch(out, -1)
	reader := regexp.MustCompile(`postgres://metabase_ro:\S+`).FindString(out)
	if len(starts) != 2 || len(stops) != 2 || reader == "" {
		t.Fatalf("a --keep demo prints two start and two stop commands and the reader's DSN:\n%s", out)
	}
	ctx := context.Background()
	if b, err := exec.Command("sh", "-c", starts[1][1]).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", starts[1][1], err, b)
	}
	t.Cleanup(func() {
		if b, err := exec.Command("sh", "-c", stops[1][1]).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", stops[1][1], err, b)
		}
	})
	rd, err := pgx.Connect(ctx, reader)
	if err != nil {
		t.Fatalf("the reader, after the printed start command: %v", err)
	}
	defer rd.Close(ctx)
	var walLevel, readOnly, timeout string
	if err := rd.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('default_transaction_read_only'), current_setting('statement_timeout')`).Scan(&walLevel, &readOnly, &timeout); err != nil {
		t.Fatal(err)
	}
	if walLevel != "logical" || readOnly != "on" || timeout != "5min" {
		t.Errorf("kept analytics cluster: wal_level %s (want logical); reader: default_transaction_read_only %s, statement_timeout %s", walLevel, readOnly, timeout)
	}
	if _, err := rd.Exec(ctx, `SET default_transaction_read_only = off`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`CREATE TEMP TABLE mine (x int)`, `CREATE TABLE public.mine (x int)`, `SELECT lo_create(0)`} {
		if _, err := rd.Exec(ctx, sql); sqlState(err) != "42501" {
			t.Errorf("demo reader: %s: %v, want permission denied", sql, err)
		}
	}
	cfg, err := pgx.ParseConfig(reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = "postgres"
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil || sqlState(err) != "42501" {
		if c != nil {
			c.Close(ctx)
		}
		t.Errorf("demo reader connecting to database postgres: %v, want permission denied", err)
	}
	tables, err := metabase.Tables(ctx, rd, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	fields, err := metabase.Fields(ctx, rd, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	var keys int
	for _, f := range fields {
		if f.PK {
			keys++
		}
	}
	if len(tables) != 7 || keys != 7 {
		t.Errorf("Metabase's sync as the demo's reader: %d tables, %d primary key columns; want 7 and 7", len(tables), keys)
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

// Ctrl-C at any phase of the demo ends it with nothing of it left
// running: the pipeline, the traffic and the metrics server are awaited
// on every exit path, before the clusters stop. (Cancelling at "traffic"
// ends the traffic at once and goes through "show", the normal end.)
func TestDemoCancelAtEachPhase(t *testing.T) {
	for _, phase := range demoPhases {
		if phase == "show" {
			continue // the traffic case reaches it; Ctrl-C is what ends the traffic
		}
		t.Run(phase, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "pgveil-demo-test-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			ctx, ctrlC := context.WithCancel(context.Background())
			defer ctrlC()
			stdout := &syncbuf.Buffer{}
			var seen []string
			var before map[string]bool // the package's shared clusters run beside the demo
			d := &demoRun{e: &env{stdout: stdout, stderr: stdout}, scale: 500, rate: 20, every: time.Second, listen: "127.0.0.1:0"}
			d.entering = func(p string) {
				seen = append(seen, p)
				switch p {
				case phase:
					ctrlC()
				case "stop":
					// The clusters stop only once nothing of the demo
					// uses them: no grace here, as what run awaits has
					// returned from these functions by now.
					if left := goroutinesIn(before, "pgveil/replicate.", "pgveil/internal/demo.", "net/http.(*Server).Serve"); left != "" {
						t.Errorf("goroutines still running as the clusters stop:\n%s", left)
					}
				}
			}
			before = goroutineIDs()
			code, err := d.run(ctx, dir)
			t.Logf("exit %d, %v; phases %v\n%s", code, err, seen, stdout)
			if len(seen) == 0 || seen[len(seen)-1] != "stop" || !slices.Contains(seen, phase) {
				t.Errorf("phases %v: want %s, then stop last", seen, phase)
			}
			if phase == "traffic" && (code != exitOK || !slices.Contains(seen, "show")) {
				t.Errorf("Ctrl-C once the traffic runs is the demo's normal end: exit %d, %v", code, err)
			}
			if left := demoGoroutines(5*time.Second, before); left != "" {
				t.Errorf("goroutines left after the demo:\n%s", left)
			}
		})
	}
}

// demoGoroutines waits up to grace for every goroutine running pgveil's
// code, other than the test's own and those in before, to end, and
// returns the stacks of those still there ("" when none is).
func demoGoroutines(grace time.Duration, before map[string]bool) string {
	deadline := time.Now().Add(grace)
	for {
		var left []string
		for _, g := range goroutineStacks() {
			if strings.Contains(g, "pgveil/") && !strings.Contains(g, "testing.tRunner") && !before[goroutineID(g)] {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goroutineStacks returns the stack of every goroutine.
func goroutineStacks() []string {
	buf := make([]byte, 1<<20)
	return strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
}

// goroutineID is the N of a stack's "goroutine N [...]:" header.
func goroutineID(stack string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(stack, "goroutine "), " ")
	return id
}

// goroutineIDs is the set of the goroutines now running.
func goroutineIDs() map[string]bool {
	ids := map[string]bool{}
	for _, g := range goroutineStacks() {
		ids[goroutineID(g)] = true
	}
	return ids
}

// goroutinesIn returns the stacks of the goroutines, other than the
// test's own and those in before, now running a function whose name
// starts with one of prefixes.
func goroutinesIn(before map[string]bool, prefixes ...string) string {
	var left []string
	for _, g := range goroutineStacks() {
		if strings.Contains(g, "testing.tRunner") || before[goroutineID(g)] {
			continue
		}
		for _, line := range strings.Split(g, "\n") {
			if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(line, p) }) {
				left = append(left, g)
				break
			}
		}
	}
	return strings.Join(left, "\n\n")
}
