package metrics

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"pgveil/replicate"
)

// healthz fetches /healthz.
func healthz(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestHealthTransitions(t *testing.T) {
	m, c, srv := newMetrics(t)
	type step struct {
		name   string
		do     func()
		ok     bool
		reason string
	}
	steps := []step{
		{"new: starting", func() {}, true, ""},
		{"starting for a minute", func() { c.Advance(time.Minute) }, true, ""},
		{"streaming", func() { m.Phase(replicate.PhaseStreaming, nil) }, true, ""},
		{"entering streaming counts as heard for a while", func() { c.Advance(59 * time.Second) }, true, ""},
		{"source heard", func() { m.SourceAlive(100, true) }, true, ""},
		{"60s of silence is still fine", func() { c.Advance(60 * time.Second) }, true, ""},
		{"61s of silence", func() { c.Advance(time.Second) }, false, reasonSourceSilent},
		{"a keepalive", func() { m.SourceAlive(200, true) }, true, ""},
		{"silence again", func() { c.Advance(61 * time.Second) }, false, reasonSourceSilent},
		{"a target commit also shows life", func() { m.TargetCommit(1, 1, time.Millisecond, 200, c.Now()) }, true, ""},
		{"data message", func() { c.Advance(30 * time.Second); m.SourceAlive(300, false) }, true, ""},
		{"retrying", func() { m.Phase(replicate.PhaseRetrying, errors.New("read tcp: connection reset by peer")) }, false, reasonRetrying},
		{"starting again", func() { m.Phase(replicate.PhaseStarting, nil) }, true, ""},
		{"starting for 2 minutes", func() { c.Advance(2 * time.Minute) }, true, ""},
		{"starting for too long", func() { c.Advance(time.Second) }, false, reasonStartSlow},
		{"stopped by a failure", func() { m.Phase(replicate.PhaseStopped, errors.New("secret")) }, false, reasonStoppedFailure},
		{"stopped on shutdown", func() { m.Phase(replicate.PhaseStopped, nil) }, false, reasonStopped},
	}
	for _, s := range steps {
		s.do()
		ok, reason := m.Health()
		if ok != s.ok || reason != s.reason {
			t.Errorf("%s: Health() = %v, %q; want %v, %q", s.name, ok, reason, s.ok, s.reason)
		}
		code, body := healthz(t, srv.URL)
		wantCode, wantBody := http.StatusOK, "ok"
		if !s.ok {
			wantCode, wantBody = http.StatusServiceUnavailable, s.reason
		}
		if code != wantCode || body != wantBody {
			t.Errorf("%s: /healthz = %d %q; want %d %q", s.name, code, body, wantCode, wantBody)
		}
	}
}

func TestHealthSourceTimeout(t *testing.T) {
	m, c, _ := newMetrics(t)
	m.SourceTimeout = 20 * time.Second // a status interval of 10s
	m.Phase(replicate.PhaseStreaming, nil)
	m.SourceAlive(1, true)
	c.Advance(20 * time.Second)
	if ok, _ := m.Health(); !ok {
		t.Error("unhealthy after 20s")
	}
	c.Advance(time.Second)
	if ok, reason := m.Health(); ok || reason != reasonSourceSilent {
		t.Errorf("after 21s: %v %q", ok, reason)
	}
}

func TestHealthSnapshot(t *testing.T) {
	m, c, _ := newMetrics(t)
	check := func(name string, want bool) {
		t.Helper()
		ok, reason := m.Health()
		if ok != want || (!ok && reason != reasonSnapshotStuck) {
			t.Errorf("%s: Health() = %v, %q; want %v", name, ok, reason, want)
		}
	}
	m.Phase(replicate.PhaseSnapshot, nil)
	c.Advance(60 * time.Second)
	check("entering the phase counts as progress", true)
	c.Advance(time.Second)
	check("no table started in 61s", false)
	m.SnapshotProgress("public.a", 0, 0, 1000, false)
	check("a table started", true)
	for range 3 {
		c.Advance(30 * time.Second)
		m.SnapshotProgress("public.a", 0, 0, 1000, false)
	}
	check("90s of reports that do not move", false)
	m.SnapshotProgress("public.a", 10, 100, 1000, false)
	check("rows grew", true)
	c.Advance(61 * time.Second)
	check("nothing since", false)
	m.SnapshotProgress("public.a", 10, 100, 1000, true)
	check("table done", true)
	c.Advance(50 * time.Second)
	m.SnapshotProgress("public.b", 0, 0, 5, false)
	c.Advance(50 * time.Second)
	check("another table started 50s ago", true)
}

func TestHealthSlotLost(t *testing.T) {
	m, c, _ := newMetrics(t)
	m.Phase(replicate.PhaseStreaming, nil)
	m.Slot(replicate.SlotStatus{Exists: true, Active: true, WALStatus: "unreserved"})
	if ok, _ := m.Health(); !ok {
		t.Error("unhealthy with an unreserved slot")
	}
	m.Slot(replicate.SlotStatus{Exists: true, WALStatus: "lost"})
	if ok, reason := m.Health(); ok || reason != reasonSlotLost {
		t.Errorf("lost slot: %v %q", ok, reason)
	}
	// The re-sync that follows: the lost slot's last report is stale.
	m.Phase(replicate.PhaseRetrying, errors.New("x"))
	m.Phase(replicate.PhaseStarting, nil)
	m.Phase(replicate.PhaseSnapshot, nil)
	m.Phase(replicate.PhaseStreaming, nil)
	c.Advance(time.Second)
	if ok, reason := m.Health(); !ok {
		t.Errorf("after the re-sync: %v %q", ok, reason)
	}
}

func TestHealthUnknownPhase(t *testing.T) {
	m, _, _ := newMetrics(t)
	m.Phase("paused", nil)
	if ok, reason := m.Health(); ok || reason != reasonUnknownPhase {
		t.Errorf("unknown phase: %v %q", ok, reason)
	}
}

func TestHandlerRoutes(t *testing.T) {
	_, _, srv := newMetrics(t)
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodHead, "/healthz", http.StatusOK},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, "/", http.StatusNotFound},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
		if tc.path == "/healthz" && tc.code == http.StatusOK {
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("/healthz Content-Type %q", ct)
			}
		}
	}
}

// Two Metrics share nothing: no global registry, no global state.
func TestIndependent(t *testing.T) {
	a, _, srvA := newMetrics(t)
	b, _, srvB := newMetrics(t)
	a.Change("public.t", "insert")
	b.Phase(replicate.PhaseRetrying, errors.New("x"))
	scrape(t, srvA).expect(t, 1, "pgveil_changes_total", "table", "public.t", "op", "insert")
	scrape(t, srvB).absent(t, "pgveil_changes_total", "table", "public.t", "op", "insert")
	if ok, _ := a.Health(); !ok {
		t.Error("a is unhealthy for b's retry")
	}
}

// A rule change that waits keeps /healthz at 200 (replication works, a
// restart would not help) and says what to run after "ok"; the gauge
// counts the statements.
func TestHealthRulesPending(t *testing.T) {
	m, _, srv := newMetrics(t)
	m.Phase(replicate.PhaseStreaming, nil)
	stmts := []string{"GRANT SELECT ON TABLE public.extra TO pgveil;", "ALTER PUBLICATION pgveil SET TABLE public.people, public.extra;"}
	m.RulesPending(stmts)
	code, body := healthz(t, srv.URL)
	want := "ok\n" + reasonRulesPending + "\n  " + stmts[0] + "\n  " + stmts[1]
	if code != http.StatusOK || body != want {
		t.Errorf("pending: %d %q, want 200 %q", code, body, want)
	}
	scrape(t, srv).expect(t, 2, "pgveil_rules_pending")
	m.RulesPending(nil)
	if code, body := healthz(t, srv.URL); code != http.StatusOK || body != "ok" {
		t.Errorf("after: %d %q, want 200 ok", code, body)
	}
	scrape(t, srv).expect(t, 0, "pgveil_rules_pending")
}
