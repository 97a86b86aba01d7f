package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/internal/syncbuf"
)

// TestNoLeaks runs the commands that read production (run at debug level
// with /metrics and /healthz, validate, preview, status, verify) against a
// production seeded with canary personal data, and again with errors
// induced (an unreachable server), and checks that no canary, raw email,
// the secret or a DSN password shows in any output, log or metric, nor in
// a dump of the replica (the example rules keep no column holding one).
func TestNoLeaks(t *testing.T) {
	s := newSite(t)
	const password = "Pw-LEAK-7f3a9"
	// The test clusters trust local connections: the password is only
	// there to be looked for.
	s.srcDSN += " password=" + password
	s.dstDSN += " password=" + password
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := s.start("--listen", addr)
	s.sync(p)
	s.exec(`UPDATE customers SET notes = notes || ' more', city = 'Elsewhere' WHERE id % 3 = 0`)
	s.exec(`DELETE FROM orders WHERE id % 5 = 0`)
	s.sync(p)

	outputs := map[string]string{}
	for _, path := range []string{"/metrics", "/healthz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		outputs[path] = string(body)
	}
	if !strings.Contains(outputs["/metrics"], "pgveil_changes_total") {
		t.Fatalf("/metrics holds no pgveil metrics:\n%.500s", outputs["/metrics"])
	}
	siteEnv := s.env()
	unreachable := map[string]string{"SOURCE_DSN": "host=127.0.0.1 port=1 user=pgveil password=" + password + " dbname=app connect_timeout=2",
		"TARGET_DSN": "host=127.0.0.1 port=1 user=pgveil password=" + password + " dbname=analytics connect_timeout=2", "PGVEIL_SECRET": pgtest.Secret}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"validate", siteEnv, []string{"validate", "-c", s.config}},
		{"preview customers", siteEnv, []string{"preview", "-c", s.config, "customers", "-n", "50"}},
		{"preview users", siteEnv, []string{"preview", "-c", s.config, "users", "-n", "50"}},
		{"preview orders", siteEnv, []string{"preview", "-c", s.config, "orders", "-n", "50"}},
		{"status", siteEnv, []string{"status", "-c", s.config}},
		{"status --json", siteEnv, []string{"status", "-c", s.config, "--json"}},
		{"verify", siteEnv, []string{"verify", "-c", s.config, "--wait", "3m"}},
		{"validate, unreachable", unreachable, []string{"validate", "-c", s.config}},
		{"status, unreachable", unreachable, []string{"status", "-c", s.config}},
		{"verify, unreachable", unreachable, []string{"verify", "-c", s.config}},
		{"run, unreachable", unreachable, []string{"run", "-c", s.config, "--log-level", "debug", "--spill-dir", t.TempDir()}},
	} {
		var code int
		if c.args[0] == "run" {
			// It retries an unreachable server until stopped: it is
			// stopped once it has reported the failure.
			code, outputs[c.name] = pgveilUntil(c.env, "connection refused", 3*time.Minute, c.args...)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			var out, errOut string
			code, out, errOut = pgveilContext(ctx, c.env, c.args...)
			cancel()
			outputs[c.name] = out + errOut
		}
		t.Logf("%s: exit %d", c.name, code)
		switch {
		case c.args[0] == "run":
			if !strings.Contains(outputs[c.name], "connection refused") {
				t.Errorf("%s: the connection error is not reported:\n%.500s", c.name, outputs[c.name])
			}
		case strings.Contains(c.name, "unreachable") && code == exitOK:
			t.Errorf("%s: exit 0", c.name)
		case !strings.Contains(c.name, "unreachable") && code != exitOK:
			t.Errorf("%s: exit %d:\n%s", c.name, code, outputs[c.name])
		}
	}
	// The preview did show masked rows (so the check below looked at some).
	if !strings.Contains(outputs["preview customers"], "@") {
		t.Errorf("preview printed no customers:\n%.500s", outputs["preview customers"])
	}
	s.terminate(p)
	outputs["run's log (debug)"] = p.Output()

	outputs["a dump of the replica"] = s.dumpReplica()

	for where, text := range outputs {
		s.noCanary(where, text)
		if strings.Contains(text, password) {
			t.Errorf("%s contains the DSN password", where)
		}
	}
}

// pgveilUntil runs the command line in-process until its output (stdout
// and stderr together) holds want, or limit has passed, then ends it; it
// returns the exit code and the output.
func pgveilUntil(envVars map[string]string, want string, limit time.Duration, args ...string) (int, string) {
	var out syncbuf.Buffer
	e := &env{stdout: &out, stderr: &out, lookupEnv: func(k string) (string, bool) {
		v, ok := envVars[k]
		return v, ok
	}}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, e, args) }()
	for {
		select {
		case code := <-done:
			return code, out.String()
		case <-time.After(20 * time.Millisecond):
			if strings.Contains(out.String(), want) {
				cancel()
			}
		}
	}
}
