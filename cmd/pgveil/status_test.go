package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	s := newSite(t)

	// Before pgveil ever ran: no slot, no checkpoint: exit 1.
	code, out, errOut := s.cli("status", "-c", s.config)
	if code != exitProblems || !strings.Contains(errOut, "holds no checkpoint of slot pgveil") || !strings.Contains(errOut, "replication slot pgveil does not exist") {
		t.Errorf("before the first run: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("before the first run:\n%s%s", out, errOut)

	// The checkpoint's source commit is the markers' of streaming, made
	// after this (the server's clock is this machine's, in microseconds).
	began := time.Now().Truncate(time.Microsecond)
	p := s.start()
	s.streaming(p)
	code, out, errOut = s.cli("status", "-c", s.config)
	if code != exitOK {
		t.Fatalf("running: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("running:\n%s%s", out, errOut)
	for _, re := range []string{
		`(?m)^source +PostgreSQL \d+\.\d+, current WAL position [0-9A-F]+/[0-9A-F]+$`,
		`(?m)^slot +pgveil: active, wal_status (reserved|extended), retains [0-9.]+ [KMG]?i?B of WAL$`,
		`(?m)^ +confirmed flush [0-9A-F]+/[0-9A-F]+, [0-9.]+ [KMG]?i?B behind the current position$`,
		`(?m)^checkpoint +[0-9A-F]+/[0-9A-F]+, source commit \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\), lag [0-9.]+ [KMG]?i?B$`,
		`(?m)^  TABLE +STATE +ROWS$`,
		`(?m)^  public\.accounts +copied +22$`,
		`(?m)^  public\.customers +copied +2000$`,
		`(?m)^  public\.events +copied +4000$`,
		`(?m)^drift: none`,
		`(?m)^foreign keys: [1-9]\d* on the replica, 0 waiting for a copy, \d+ references? left out$`,
		`(?m)^publication +pgveil: tables published whole \(publication_mode migration_safe\): production can drop and retype any column$`,
		// Roles belong to the cluster: other tests' replicas add theirs.
		`(?m)^tenancy: \d\d+ tenant roles in group pgveil_tenants; 6 tenant tables, 0 shared, 1 hidden from tenants$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s", re)
		}
	}

	code, out, _ = s.cli("status", "-c", s.config, "--json", "--fast")
	t.Logf("--json --fast:\n%s", out)
	var r statusReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if code != exitOK || !r.OK || r.Slot == nil || !r.Slot.Active || r.Checkpoint == nil || !r.Checkpoint.Found ||
		r.Checkpoint.CommitTime == nil || r.Checkpoint.CommitTime.Before(began) || r.Checkpoint.CommitTime.After(time.Now()) ||
		len(r.Tables) != 7 || !r.Tables[0].Estimated || len(r.Problems) != 0 {
		t.Errorf("--json: exit %d\n%s", code, out)
	}

	if p := r.Publication; p == nil || !p.Exists || p.Mode != "migration_safe" || p.Locked != nil {
		t.Errorf("--json publication: %+v", p)
	}
	if r.Tenancy == nil || r.Tenancy.Roles < 22 || r.Tenancy.TenantTables != 6 || r.Tenancy.HiddenTables != 1 || len(r.Tenancy.Unprotected) != 0 {
		t.Errorf("--json tenancy: %+v", r.Tenancy)
	}
	// A column added in production: pgveil goes on without it, and status
	// names it (a drift is not a failure).
	s.exec(`ALTER TABLE customers ADD COLUMN nickname text`)
	code, out, errOut = s.cli("status", "-c", s.config)
	if code != exitOK || !strings.Contains(out, "drift: the source has changed; what no rule names is not replicated:\n  unruled columns in public.customers: nickname\n") {
		t.Errorf("drift: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("drift:\n%s", out)
	_, out, _ = s.cli("status", "-c", s.config, "--json")
	if !strings.Contains(out, `"unruled_columns": {`) || !strings.Contains(out, `"public.customers": [`) {
		t.Errorf("drift in JSON:\n%s", out)
	}

	// The slot is gone: exit 1, whatever the rest.
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	dropSlot(t, s)
	code, _, errOut = s.cli("status", "-c", s.config)
	if code != exitProblems || !strings.Contains(errOut, "replication slot pgveil does not exist, but the target holds a checkpoint") {
		t.Errorf("slot dropped: exit %d, %s", code, errOut)
	}

	// With pgveil stopped (a running one would repair them): row level
	// security taken off a table by hand, and a view that reads as its
	// owner granted to the tenants, are problems.
	if _, err := s.dst.Exec(t.Context(), `ALTER TABLE public.orders DISABLE ROW LEVEL SECURITY;
CREATE VIEW public.all_customers AS SELECT * FROM public.customers; GRANT SELECT ON public.all_customers TO pgveil_tenants`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = s.cli("status", "-c", s.config, "--json")
	for _, want := range []string{"tenants can read public.orders without row level security", "tenants can read public.all_customers, and would see other tenants' rows"} {
		if code != exitProblems || !strings.Contains(out, want) {
			t.Errorf("status lacks %q: exit %d\n%s", want, code, out)
		}
	}
	if !strings.Contains(out, `"leaky_views": [`) || !strings.Contains(out, `"unprotected": [`) {
		t.Errorf("--json lacks the tenancy problems:\n%s", out)
	}
}

// dropSlot drops the site's slot once the server has let go of it (its
// walsender ends after pgveil's connection is gone: within a moment, on
// a loaded machine longer).
func dropSlot(t *testing.T, s *site) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_, err := s.src.Exec(t.Context(), `SELECT pg_drop_replication_slot('pgveil')`)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dropping the slot: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStatusBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := statusBytes(n); got != want {
			t.Errorf("statusBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPrintViews(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	printViews(&b, []viewState{
		{View: "public.customer_list", State: "created"},
		{View: "public.per_store", Materialized: true, State: "created", RefreshedAt: &at},
		{View: "public.emails", State: "kept_out", Reason: "reads public.customer.email, which its rule drops"},
	})
	want := `views: 2 of production's views on the replica, 1 kept out
  public.customer_list
  public.per_store (materialized, refreshed 2024-05-01 12:00:00 UTC)
  public.emails: kept out: reads public.customer.email, which its rule drops
`
	if b.String() != want {
		t.Errorf("printViews:\n%s\nwant:\n%s", b.String(), want)
	}
}
