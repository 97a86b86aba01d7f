package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"pgveil/internal/pgtest"
)

// pgveil run reloads its rules on SIGHUP and, with --watch, when the file
// changes: invalid rules are refused and the old ones stay; a changed
// table is re-copied and switched in. It serves /metrics and /healthz.
func TestRunReloadsRulesAndServesMetrics(t *testing.T) {
	s := newSite(t)
	data, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	s.config = filepath.Join(s.dir, "rules.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(s.config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(string(data))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := s.start("--listen", addr, "--watch", "--status-interval", "1s")

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// The first scrape, as soon as pgveil listens (before it has reached
	// production): every metric is there already, the ones it cannot know
	// yet as NaN, and each table's change counters.
	var first string
	pgtest.WaitUntil(t, p, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		first = string(b)
		return resp.StatusCode == 200
	})
	if !strings.Contains(first, `pgveil_changes_total{op="insert",table="public.accounts"} `) {
		t.Errorf("the first scrape lacks public.accounts' change counter:\n%s", first)
	}
	s.streaming(p)

	if code, body := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	_, body := get("/metrics")
	for _, want := range []string{`pgveil_phase{phase="streaming"} 1`, `pgveil_changes_total{op="insert",table="public.accounts"}`, "pgveil_lag_bytes", "pgveil_slot_retained_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// No metric appears only later, but the initial copy's per-table
	// progress, which exists for the tables of a copy.
	firstFamilies := metricFamilies(first)
	for name := range metricFamilies(body) {
		if !firstFamilies[name] && !strings.HasPrefix(name, "pgveil_snapshot_") {
			t.Errorf("%s is not in the first scrape:\n%s", name, first)
		}
	}
	// Streaming starts after the slot and the schema were read: their
	// gauges hold numbers, not "unknown".
	for _, name := range []string{"pgveil_slot_exists", "pgveil_slot_retained_bytes", "pgveil_checkpoint_lsn", "pgveil_schema_drift", "pgveil_tenant_roles"} {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil || m[1] == "NaN" {
			t.Errorf("%s once streaming: %v\n%s", name, m, body)
		}
	}
	if !strings.Contains(body, "\npgveil_slot_exists 1\n") {
		t.Errorf("the slot does not exist while streaming:\n%s", body)
	}
	s.noCanary("/metrics", body)

	// Invalid rules: refused, logged, the old ones stay.
	write(strings.Replace(string(data), "city: keep", "city: {fake: citty}", 1))
	p.Signal(syscall.SIGHUP)
	pgtest.WaitLog(t, p, "the new rules are refused")
	s.exec(`UPDATE customers SET city = 'Cityville' WHERE id = 1`)
	s.sync(p)

	// A valid change by SIGHUP: customers are re-copied under it.
	write(strings.Replace(string(data), "city: keep", `city: {redact: "somewhere"}`, 1))
	p.Signal(syscall.SIGHUP)
	pgtest.WaitUntil(t, p, func() bool {
		var n int64
		err := s.dst.QueryRow(context.Background(), `SELECT count(*) FROM public.customers WHERE city <> 'somewhere'`).Scan(&n)
		return err == nil && n == 0
	})
	s.sync(p)
	s.verify()

	// A change of the file, noticed by --watch.
	changed := strings.Replace(string(data), "city: keep", `city: {redact: "somewhere"}`, 1)
	changed = strings.Replace(changed, "zip: {truncate: 3}", "zip: {truncate: 2}", 1)
	write(changed)
	pgtest.WaitUntil(t, p, func() bool {
		var n int64
		err := s.dst.QueryRow(context.Background(), `SELECT count(*) FROM public.customers WHERE length(zip) > 2`).Scan(&n)
		return err == nil && n == 0
	})
	s.sync(p)
	s.verify()
	pgtest.WaitLog(t, p, "re-copied tables switched in")
	s.noCanary("the log", p.Output())
}

// metricFamilies are the names of the metric families in an exposition.
func metricFamilies(exposition string) map[string]bool {
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(exposition, -1) {
		names[m[1]] = true
	}
	return names
}
