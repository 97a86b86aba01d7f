package metrics

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"pgveil/replicate"
)

// clock is a fake clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newMetrics(t *testing.T) (*Metrics, *clock, *httptest.Server) {
	t.Helper()
	c := newClock()
	m := New(c.Now)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return m, c, srv
}

// families are the metric families of one scrape.
type families map[string]*dto.MetricFamily

func scrape(t *testing.T, srv *httptest.Server) families {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s: %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the exposition: %v", err)
	}
	return fams
}

// find returns the metric of family name whose labels are exactly labels
// (name, value pairs).
func (f families) find(name string, labels ...string) *dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range fam.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		for _, l := range m.Label {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns the value of a gauge, counter or untyped metric.
func (f families) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	m := f.find(name, labels...)
	if m == nil {
		t.Fatalf("no metric %s%v", name, labels)
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	t.Fatalf("metric %s%v is neither gauge nor counter", name, labels)
	return 0
}

func (f families) expect(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	// NaN is "unknown": it equals only NaN (a bare comparison would let
	// NaN pass for any value).
	if got := f.value(t, name, labels...); math.IsNaN(got) != math.IsNaN(want) || math.Abs(got-want) > 1e-9 {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func (f families) absent(t *testing.T, name string, labels ...string) {
	t.Helper()
	if f.find(name, labels...) != nil {
		t.Errorf("%s%v is there, want it absent", name, labels)
	}
}

// series counts the metrics of family name.
func (f families) series(name string) int {
	if f[name] == nil {
		return 0
	}
	return len(f[name].Metric)
}

func TestInitial(t *testing.T) {
	_, _, srv := newMetrics(t)
	f := scrape(t, srv)
	f.expect(t, 1, "pgveil_up")
	for _, p := range phases {
		want := 0.0
		if p == replicate.PhaseStarting {
			want = 1
		}
		f.expect(t, want, "pgveil_phase", "phase", p)
	}
	for _, k := range errorKinds {
		f.expect(t, 0, "pgveil_errors_total", "kind", k)
	}
	f.expect(t, 0, "pgveil_transactions_total")
	f.expect(t, 0, "pgveil_snapshot_tables_done")
	// Unknown until reported: NaN, which no alert's comparison matches,
	// rather than a misleading 0 or a series that is not there.
	for _, name := range []string{"pgveil_lag_bytes", "pgveil_lag_seconds", "pgveil_checkpoint_lsn", "pgveil_last_commit_timestamp_seconds",
		"pgveil_slot_exists", "pgveil_slot_active", "pgveil_slot_retained_bytes", "pgveil_slot_confirmed_flush_lsn",
		"pgveil_schema_drift", "pgveil_unruled_tables", "pgveil_missing_tables",
		"pgveil_tenant_roles", "pgveil_tenancy_unprotected_tables", "pgveil_tenancy_leaky_views", "pgveil_source_lock_wait_seconds"} {
		f.expect(t, math.NaN(), name)
	}
	for _, w := range walStatuses {
		f.expect(t, math.NaN(), "pgveil_slot_wal_status", "wal_status", w)
	}
	for name := range f {
		if !strings.HasPrefix(name, "pgveil_") {
			t.Errorf("metric %s lacks the pgveil_ prefix", name)
		}
	}
}

// Every metric docs/operations.md lists is there from the first scrape of
// a pgveil that has just started (as `pgveil run` starts its metrics:
// build info and the rules' tables, before anything is connected), with a
// series for each table the rules name; and every metric there is
// documented. Only the initial copy's per-table progress waits for a copy.
func TestEveryMetricFromTheFirstScrape(t *testing.T) {
	documented := documentedMetrics(t)
	onlyDuringACopy := map[string]bool{"pgveil_snapshot_rows": true, "pgveil_snapshot_bytes": true, "pgveil_snapshot_estimated_rows": true}
	tables := []string{"public.users", `public."Order Lines"`}
	m, _, srv := newMetrics(t)
	m.SetBuildInfo("dev")
	m.Tables(tables)
	f := scrape(t, srv)
	for name := range documented {
		if onlyDuringACopy[name] {
			if f[name] != nil {
				t.Errorf("%s is there before any copy", name)
			}
			continue
		}
		if f[name] == nil || len(f[name].Metric) == 0 {
			t.Errorf("%s (docs/operations.md) is not in the first scrape", name)
		}
	}
	for name := range f {
		if !documented[name] {
			t.Errorf("%s is not in docs/operations.md's list of metrics", name)
		}
	}
	for _, table := range tables {
		for _, op := range ops {
			f.expect(t, 0, "pgveil_changes_total", "table", table, "op", op)
		}
		for _, name := range []string{"pgveil_unruled_columns", "pgveil_missing_columns", "pgveil_type_changed_columns"} {
			f.expect(t, math.NaN(), name, "table", table) // not checked yet
		}
	}

	// The first copy reports its tables' progress; they are the only
	// per-table series that wait for it.
	m.Phase(replicate.PhaseSnapshot, nil)
	m.SnapshotProgress(tables[0], 1, 10, 100, false)
	f = scrape(t, srv)
	for name := range onlyDuringACopy {
		if f.find(name, "table", tables[0]) == nil {
			t.Errorf("%s{table=%q} is not there during its copy", name, tables[0])
		}
	}
}

// documentedMetrics reads the metric names in the first column of the
// metrics table in docs/operations.md.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	name := regexp.MustCompile("`(pgveil_[a-z_]+)[{`]")
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`pgveil_") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			names[m[1]] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("docs/operations.md lists only %d metrics: %v", len(names), names)
	}
	return names
}

func TestPhase(t *testing.T) {
	m, _, srv := newMetrics(t)
	for _, p := range phases {
		m.Phase(p, nil)
		f := scrape(t, srv)
		for _, q := range phases {
			f.expect(t, flag(p == q), "pgveil_phase", "phase", q)
		}
	}
	m.Phase("nonsense", nil)
	f := scrape(t, srv)
	if n := f.series("pgveil_phase"); n != len(phases) {
		t.Errorf("%d pgveil_phase series, want %d", n, len(phases))
	}
	for _, q := range phases {
		f.expect(t, 0, "pgveil_phase", "phase", q)
	}
}

func TestChangesAndCommits(t *testing.T) {
	m, c, srv := newMetrics(t)
	m.Phase(replicate.PhaseStreaming, nil)
	for range 3 {
		m.Change("public.users", "insert")
	}
	m.Change("public.users", "update")
	m.Change("public.orders", "delete")
	m.Change("public.orders", "truncate")
	m.Change("public.orders", "filtered")
	m.Change("public.orders", "upsert") // not an op: counted as other
	commit := c.Now().Add(-3 * time.Second)
	m.TargetCommit(8, 4096, 20*time.Millisecond, pglogrepl.LSN(0x16B3748), commit)
	m.TargetCommit(2, 100, 2*time.Second, pglogrepl.LSN(0x16B3800), commit.Add(time.Second))

	f := scrape(t, srv)
	for _, tc := range []struct {
		table, op string
		want      float64
	}{
		{"public.users", "insert", 3},
		{"public.users", "update", 1},
		{"public.orders", "delete", 1},
		{"public.orders", "truncate", 1},
		{"public.orders", "filtered", 1},
		{"public.orders", "other", 1},
	} {
		f.expect(t, tc.want, "pgveil_changes_total", "table", tc.table, "op", tc.op)
	}
	f.absent(t, "pgveil_changes_total", "table", "public.orders", "op", "upsert")
	f.expect(t, 2, "pgveil_transactions_total")
	f.expect(t, float64(0x16B3800), "pgveil_checkpoint_lsn")
	f.expect(t, float64(commit.Add(time.Second).Unix()), "pgveil_last_commit_timestamp_seconds")

	hist := func(name string) *dto.Histogram {
		t.Helper()
		m := f.find(name)
		if m == nil || m.Histogram == nil {
			t.Fatalf("no histogram %s", name)
		}
		return m.Histogram
	}
	for _, tc := range []struct {
		name       string
		sum        float64
		firstUpper float64
		lastUpper  float64
	}{
		{"pgveil_batch_changes", 10, 1, 100000},
		{"pgveil_batch_bytes", 4196, 1024, 1024 << 18},
		{"pgveil_apply_seconds", 2.02, 0.001, 30},
	} {
		h := hist(tc.name)
		if h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-tc.sum) > 1e-9 {
			t.Errorf("%s: count %d sum %v, want 2 and %v", tc.name, h.GetSampleCount(), h.GetSampleSum(), tc.sum)
		}
		b := h.GetBucket()
		if n := len(b); n > 0 && math.IsInf(b[n-1].GetUpperBound(), 1) {
			b = b[:n-1] // the text format lists +Inf too
		}
		if len(b) == 0 || math.Abs(b[0].GetUpperBound()-tc.firstUpper) > 1e-9 || math.Abs(b[len(b)-1].GetUpperBound()-tc.lastUpper) > 1e-6 {
			t.Errorf("%s: buckets from %v to %v, want %v to %v", tc.name, b[0].GetUpperBound(), b[len(b)-1].GetUpperBound(), tc.firstUpper, tc.lastUpper)
		}
	}
	// 20ms falls in the bucket up to ~32ms, 2s in the one up to ~2.3s.
	for _, b := range hist("pgveil_apply_seconds").GetBucket() {
		want := uint64(0)
		if b.GetUpperBound() >= 0.02 {
			want++
		}
		if b.GetUpperBound() >= 2 {
			want++
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("pgveil_apply_seconds bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}

func TestSourceLockWait(t *testing.T) {
	m, _, srv := newMetrics(t)
	m.SourceLockWait(90 * time.Second)
	scrape(t, srv).expect(t, 90, "pgveil_source_lock_wait_seconds")
	m.SourceLockWait(0)
	scrape(t, srv).expect(t, 0, "pgveil_source_lock_wait_seconds")
}

func TestErrors(t *testing.T) {
	m, _, srv := newMetrics(t)
	m.Error("transient")
	m.Error("transient")
	m.Error("masking")
	m.Error("fatal")
	m.Error("password authentication failed for user x") // not a kind
	f := scrape(t, srv)
	f.expect(t, 2, "pgveil_errors_total", "kind", "transient")
	f.expect(t, 1, "pgveil_errors_total", "kind", "masking")
	f.expect(t, 1, "pgveil_errors_total", "kind", "fatal")
	f.expect(t, 1, "pgveil_errors_total", "kind", "other")
	if n := f.series("pgveil_errors_total"); n != 4 {
		t.Errorf("%d pgveil_errors_total series, want 4", n)
	}
}

func TestBuildInfo(t *testing.T) {
	m, _, srv := newMetrics(t)
	m.SetBuildInfo("v0.1.0")
	m.SetBuildInfo("v0.2.0")
	f := scrape(t, srv)
	f.expect(t, 1, "pgveil_build_info", "version", "v0.2.0")
	if n := f.series("pgveil_build_info"); n != 1 {
		t.Errorf("%d pgveil_build_info series, want 1", n)
	}
}

func TestSnapshot(t *testing.T) {
	m, _, srv := newMetrics(t)
	m.Phase(replicate.PhaseSnapshot, nil)
	m.SnapshotProgress("public.users", 100, 5000, 1000, false)
	m.SnapshotProgress("public.orders", 10, 700, 10, true)
	m.SnapshotProgress("public.users", 400, 20000, 1000, false)
	f := scrape(t, srv)
	f.expect(t, 400, "pgveil_snapshot_rows", "table", "public.users")
	f.expect(t, 20000, "pgveil_snapshot_bytes", "table", "public.users")
	f.expect(t, 1000, "pgveil_snapshot_estimated_rows", "table", "public.users")
	f.expect(t, 10, "pgveil_snapshot_rows", "table", "public.orders")
	f.expect(t, 700, "pgveil_snapshot_bytes", "table", "public.orders")
	f.expect(t, 10, "pgveil_snapshot_estimated_rows", "table", "public.orders")
	f.expect(t, 1, "pgveil_snapshot_tables_done")

	m.SnapshotProgress("public.users", 1000, 50000, 1000, true)
	m.Phase(replicate.PhaseStreaming, nil)
	f = scrape(t, srv)
	f.expect(t, 2, "pgveil_snapshot_tables_done")
	f.expect(t, 1000, "pgveil_snapshot_rows", "table", "public.users") // kept after the copy

	// A new copy starts from nothing.
	m.Phase(replicate.PhaseRetrying, errors.New("x"))
	m.Phase(replicate.PhaseStarting, nil)
	m.Phase(replicate.PhaseSnapshot, nil)
	m.SnapshotProgress("public.orders", 5, 350, 10, false)
	f = scrape(t, srv)
	f.absent(t, "pgveil_snapshot_rows", "table", "public.users")
	f.expect(t, 5, "pgveil_snapshot_rows", "table", "public.orders")
	f.expect(t, 0, "pgveil_snapshot_tables_done")
}

func TestSlot(t *testing.T) {
	m, _, srv := newMetrics(t)
	m.Slot(replicate.SlotStatus{Name: "pgveil", Exists: true, Active: true, WALStatus: "extended",
		RetainedBytes: 1 << 20, ConfirmedFlushLSN: 0x3000060, CurrentLSN: 0x3100000})
	f := scrape(t, srv)
	f.expect(t, 1, "pgveil_slot_exists")
	f.expect(t, 1, "pgveil_slot_active")
	f.expect(t, 1<<20, "pgveil_slot_retained_bytes")
	f.expect(t, 0x3000060, "pgveil_slot_confirmed_flush_lsn")
	for _, w := range walStatuses {
		f.expect(t, flag(w == "extended"), "pgveil_slot_wal_status", "wal_status", w)
	}
	f.absent(t, "pgveil_slot_wal_status", "wal_status", "unknown")

	m.Slot(replicate.SlotStatus{Exists: true, WALStatus: "something new"})
	f = scrape(t, srv)
	f.expect(t, 0, "pgveil_slot_active")
	f.expect(t, 1, "pgveil_slot_wal_status", "wal_status", "unknown")
	f.absent(t, "pgveil_slot_wal_status", "wal_status", "something new")
	for _, w := range walStatuses {
		f.expect(t, 0, "pgveil_slot_wal_status", "wal_status", w)
	}

	m.Slot(replicate.SlotStatus{Name: "pgveil"})
	f = scrape(t, srv)
	f.expect(t, 0, "pgveil_slot_exists")
	if n := f.series("pgveil_slot_wal_status"); n != len(walStatuses) {
		t.Errorf("%d pgveil_slot_wal_status series, want %d", n, len(walStatuses))
	}
	for _, w := range walStatuses {
		f.expect(t, 0, "pgveil_slot_wal_status", "wal_status", w)
	}
}

func TestDrift(t *testing.T) {
	m, _, srv := newMetrics(t)
	m.Tables([]string{"public.users", "public.orders", "public.quiet"})
	m.Drift(nil) // says nothing
	scrape(t, srv).expect(t, math.NaN(), "pgveil_schema_drift")

	m.Drift(&replicate.Drift{
		Unruled:       map[string][]string{"public.users": {"phone", "nickname"}, "public.orders": {"note"}},
		Missing:       map[string][]string{"public.users": {"fax"}},
		TypeChanged:   map[string][]string{"public.orders": {"total: integer -> numeric"}},
		NewTables:     []string{"public.audit", "public.sessions", "public.tmp"},
		MissingTables: []string{"public.legacy"},
	})
	f := scrape(t, srv)
	f.expect(t, 2, "pgveil_unruled_columns", "table", "public.users")
	f.expect(t, 1, "pgveil_unruled_columns", "table", "public.orders")
	f.expect(t, 3, "pgveil_unruled_tables")
	f.expect(t, 1, "pgveil_missing_columns", "table", "public.users")
	f.expect(t, 1, "pgveil_type_changed_columns", "table", "public.orders")
	f.expect(t, 1, "pgveil_missing_tables")
	f.expect(t, 1, "pgveil_schema_drift")
	f.expect(t, 0, "pgveil_unruled_columns", "table", "public.quiet") // replicated, nothing unruled

	// Someone wrote rules for users: its series reads 0.
	m.Drift(&replicate.Drift{Unruled: map[string][]string{"public.orders": {"note"}}})
	f = scrape(t, srv)
	f.expect(t, 0, "pgveil_unruled_columns", "table", "public.users")
	f.expect(t, 1, "pgveil_unruled_columns", "table", "public.orders")
	f.expect(t, 0, "pgveil_unruled_tables")
	f.expect(t, 0, "pgveil_missing_tables")
	f.expect(t, 1, "pgveil_schema_drift")

	// Tenancy: unknown until reported.
	f.expect(t, math.NaN(), "pgveil_tenant_roles")
	m.Tenancy(42, 1, 2)
	f = scrape(t, srv)
	f.expect(t, math.NaN(), "pgveil_views", "state", "created")
	m.Views(5, 2)
	f = scrape(t, srv)
	f.expect(t, 5, "pgveil_views", "state", "created")
	f.expect(t, 2, "pgveil_views", "state", "kept_out")
	f.expect(t, 42, "pgveil_tenant_roles")
	f.expect(t, 1, "pgveil_tenancy_unprotected_tables")
	f.expect(t, 2, "pgveil_tenancy_leaky_views")

	m.Drift(&replicate.Drift{Unruled: map[string][]string{}, Missing: map[string][]string{}, TypeChanged: map[string][]string{}})
	f = scrape(t, srv)
	f.expect(t, 0, "pgveil_schema_drift")
	f.expect(t, 0, "pgveil_unruled_tables")
	if n := f.series("pgveil_unruled_columns"); n != 3 {
		t.Errorf("%d pgveil_unruled_columns series, want one per replicated table", n)
	}

	// A table the rules no longer name loses its series; one that drifts
	// without being replicated has one.
	m.Tables([]string{"public.orders"})
	m.Drift(&replicate.Drift{Unruled: map[string][]string{"public.stray": {"x"}}})
	f = scrape(t, srv)
	f.absent(t, "pgveil_unruled_columns", "table", "public.users")
	f.expect(t, 0, "pgveil_unruled_columns", "table", "public.orders")
	f.expect(t, 1, "pgveil_unruled_columns", "table", "public.stray")
}

func TestLag(t *testing.T) {
	m, c, srv := newMetrics(t)
	lag := func(wantBytes, wantSeconds float64) {
		t.Helper()
		f := scrape(t, srv)
		f.expect(t, wantBytes, "pgveil_lag_bytes")
		f.expect(t, wantSeconds, "pgveil_lag_seconds")
	}
	nan := math.NaN()
	lag(nan, nan) // nothing durable in the target yet to measure from

	// The initial copy wrote its checkpoint (no commit time).
	m.Checkpoint(800, time.Time{})
	lag(nan, nan) // nor anything heard of the server's WAL end
	m.Phase(replicate.PhaseStreaming, nil)
	// A transaction arrives and is applied; the source committed it 2s ago.
	m.SourceAlive(1000, false)
	m.Change("public.t", "insert")
	lag(200, nan) // nothing committed yet, no time to measure from
	m.TargetCommit(1, 10, time.Millisecond, 900, c.Now().Add(-2*time.Second))
	lag(100, 2)
	c.Advance(3 * time.Second)
	lag(100, 5) // worked out at scrape time

	// A keepalive with nothing pending: caught up, whatever the WAL end
	// (other databases' WAL moves it past the last commit).
	m.SourceAlive(1200, true)
	lag(0, 0)
	c.Advance(time.Hour) // idle
	m.SourceAlive(1250, true)
	lag(0, 0)

	// After the idle hour a transaction arrives: the lag is measured from
	// when the copy was last caught up, not from the commit an hour ago.
	c.Advance(10 * time.Second)
	m.SourceAlive(1300, false)
	m.Change("public.t", "update")
	c.Advance(time.Second)
	lag(50, 11)

	// A keepalive while a change is not yet committed is not caught up.
	m.SourceAlive(1400, true)
	lag(150, 11)
	// The commit after it: everything up to the keepalive's WAL end is in.
	m.TargetCommit(1, 10, time.Millisecond, 1350, c.Now().Add(-time.Second))
	lag(0, 0)

	// The durable LSN ahead of the last WAL end seen: 0, not negative.
	m.SourceAlive(1500, false)
	m.Change("public.t", "delete")
	m.TargetCommit(1, 10, time.Millisecond, 1600, c.Now().Add(5*time.Second)) // source clock ahead
	lag(0, 0)
	c.Advance(10 * time.Second)

	// Not streaming: not caught up, and the lag grows.
	m.SourceAlive(1700, true)
	lag(0, 0)
	m.Phase(replicate.PhaseRetrying, errors.New("connection reset"))
	c.Advance(30 * time.Second)
	lag(0, 30)
	m.Phase(replicate.PhaseStarting, nil)
	m.Phase(replicate.PhaseStreaming, nil)
	c.Advance(time.Second)
	lag(0, 31) // a new stream is caught up only after a keepalive on it
	m.SourceAlive(1800, true)
	lag(0, 0)
}

// Transactions skipped at a resume, and streamed transactions that are
// aborted, reach the observer as messages without changes or commits: the
// next keepalive still finds the copy caught up.
func TestLagMessagesWithoutChanges(t *testing.T) {
	m, c, srv := newMetrics(t)
	m.Checkpoint(50, time.Time{})
	m.Phase(replicate.PhaseStreaming, nil)
	m.SourceAlive(100, true)
	m.SourceAlive(200, false)
	m.SourceAlive(300, false)
	c.Advance(time.Minute)
	m.SourceAlive(400, true)
	f := scrape(t, srv)
	f.expect(t, 0, "pgveil_lag_bytes")
	f.expect(t, 0, "pgveil_lag_seconds")
}

// A restart reads its checkpoint and the slot before it streams: the lag
// is the backlog the slot holds behind the checkpoint, and its age is the
// checkpoint's commit time, from the first scrape of the new process on.
func TestLagAtResume(t *testing.T) {
	m, c, srv := newMetrics(t)
	committed := c.Now().Add(-time.Hour) // pgveil was down for an hour
	m.Checkpoint(0x5000, committed)
	m.Slot(replicate.SlotStatus{Name: "pgveil", Exists: true, WALStatus: "reserved", RetainedBytes: 0x3000, ConfirmedFlushLSN: 0x5000, CurrentLSN: 0x8000})
	f := scrape(t, srv)
	f.expect(t, 0x5000, "pgveil_checkpoint_lsn")
	f.expect(t, float64(committed.Unix()), "pgveil_last_commit_timestamp_seconds")
	f.expect(t, 0x3000, "pgveil_lag_bytes")
	f.expect(t, 3600, "pgveil_lag_seconds")

	// Streaming: every reading of the server's WAL end counts, the
	// slot's too; a keepalive behind it is not caught up.
	m.Phase(replicate.PhaseStreaming, nil)
	m.SourceAlive(0x9000, false)
	m.Slot(replicate.SlotStatus{Name: "pgveil", Exists: true, Active: true, WALStatus: "reserved", CurrentLSN: 0xA000}) // read after the stream spoke
	f = scrape(t, srv)
	f.expect(t, 0x5000, "pgveil_lag_bytes")
	m.SourceAlive(0x9100, true)
	f = scrape(t, srv)
	f.expect(t, 0xA000-0x9100, "pgveil_lag_bytes")
	f.expect(t, 3600, "pgveil_lag_seconds")
	m.SourceAlive(0xA000, true) // caught up
	f = scrape(t, srv)
	f.expect(t, 0, "pgveil_lag_bytes")
	f.expect(t, 0, "pgveil_lag_seconds")
}

// A restart with a backlog: the server's WAL end read as the stream
// starts is far ahead of the checkpoint. The walsender's keepalives while
// it decodes the backlog (their WAL end is how far it has sent) and its
// data messages (their WAL end is the record's position, or 0) must not
// make the lag read 0, in bytes or seconds, at any moment of the replay.
func TestLagDuringBacklog(t *testing.T) {
	m, c, srv := newMetrics(t)
	committed := c.Now().Add(-10 * time.Minute)
	m.Checkpoint(0x10000, committed)
	m.Phase(replicate.PhaseStreaming, nil)
	m.SourceWALEnd(0x900000) // read before START_REPLICATION
	expect := func(bytes, seconds float64) {
		t.Helper()
		f := scrape(t, srv)
		f.expect(t, bytes, "pgveil_lag_bytes")
		f.expect(t, seconds, "pgveil_lag_seconds")
	}
	expect(0x900000-0x10000, 600)
	m.SourceAlive(0x10000, true) // the walsender has sent nothing yet
	c.Advance(5 * time.Second)
	expect(0x900000-0x10000, 605)
	m.SourceAlive(0x10100, false) // data, as received so far
	m.Change("public.t", "update")
	m.SourceAlive(0, false) // an XLogData's WAL end can be 0
	expect(0x900000-0x10000, 605)
	// A batch committed: the lag is the age of its last commit.
	m.TargetCommit(5000, 1<<20, time.Second, 0x400000, c.Now().Add(-9*time.Minute))
	expect(0x900000-0x400000, 540)
	m.SourceWALEnd(0x980000) // production writes on
	m.SourceAlive(0x400000, true)
	expect(0x980000-0x400000, 540)
	// Caught up: a keepalive at the server's end with nothing pending.
	m.TargetCommit(10, 100, time.Millisecond, 0x980000, c.Now().Add(-time.Second))
	m.SourceAlive(0x980000, true)
	expect(0, 0)
}

func TestConcurrency(t *testing.T) {
	m, c, srv := newMetrics(t)
	m.Phase(replicate.PhaseStreaming, nil)
	const workers, each = 32, 500
	tables := []string{"public.a", "public.b", "public.c"}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m.Change(tables[(w+i)%len(tables)], ops[i%len(ops)])
			}
		})
	}
	// Everything else the pipeline and the HTTP server do, at the same time.
	stop := make(chan struct{})
	var others sync.WaitGroup
	others.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m.SourceAlive(pglogrepl.LSN(i), i%2 == 0)
			m.TargetCommit(i, int64(i), time.Millisecond, pglogrepl.LSN(i), c.Now())
			m.SnapshotProgress("public.a", int64(i), int64(i), 10, false)
			m.Slot(replicate.SlotStatus{Exists: true, WALStatus: "reserved"})
			m.Drift(&replicate.Drift{NewTables: []string{"public.x"}})
			m.Error("transient")
			c.Advance(time.Millisecond)
		}
	})
	others.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			m.Health()
			resp, err := http.Get(srv.URL + "/metrics")
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	wg.Wait()
	close(stop)
	others.Wait()

	f := scrape(t, srv)
	total := 0.0
	for _, tb := range tables {
		for _, op := range ops {
			if mt := f.find("pgveil_changes_total", "table", tb, "op", op); mt != nil {
				total += mt.Counter.GetValue()
			}
		}
	}
	if total != workers*each {
		t.Errorf("%v changes counted, want %d", total, workers*each)
	}
}

// The Observer hands the metrics names, counts, positions and durations,
// never a value; the metrics keep it that way.
func TestNoValues(t *testing.T) {
	// No Observer method takes anything that could carry a value. A new
	// parameter type must be looked at before it is added here.
	allowed := map[reflect.Type]bool{
		reflect.TypeFor[string]():               true, // names: phase, table, op, kind
		reflect.TypeFor[int]():                  true,
		reflect.TypeFor[int64]():                true,
		reflect.TypeFor[bool]():                 true,
		reflect.TypeFor[time.Duration]():        true,
		reflect.TypeFor[time.Time]():            true,
		reflect.TypeFor[pglogrepl.LSN]():        true,
		reflect.TypeFor[error]():                true, // kept only as "there was one"
		reflect.TypeFor[replicate.SlotStatus](): true,
		reflect.TypeFor[*replicate.Drift]():     true,
		reflect.TypeFor[map[string][]string]():  true, // in Drift: column names by table
		reflect.TypeFor[[]string]():             true, // in Drift: table names
	}
	obs := reflect.TypeFor[replicate.Observer]()
	for i := range obs.NumMethod() {
		meth := obs.Method(i)
		for j := range meth.Type.NumIn() {
			in := meth.Type.In(j)
			if !allowed[in] {
				t.Errorf("Observer.%s takes a %v: could it carry a value?", meth.Name, in)
			}
			if in.Kind() == reflect.Pointer {
				in = in.Elem()
			}
			if in.Kind() == reflect.Struct && in != reflect.TypeFor[time.Time]() {
				for k := range in.NumField() {
					if ft := in.Field(k).Type; !allowed[ft] {
						t.Errorf("Observer.%s: %v.%s is a %v: could it carry a value?", meth.Name, in, in.Field(k).Name, ft)
					}
				}
			}
		}
	}

	m, c, srv := newMetrics(t)
	secret := "4111 1111 1111 1111"
	// A table may be named like a value: it is a name, and shows as one.
	oddTable := `public."` + secret + `"`
	m.Phase(replicate.PhaseStreaming, nil)
	m.Change(oddTable, "insert")
	m.Change("public.t", secret) // a value passed as op by mistake
	m.Error(secret)              // ... or as kind
	m.Slot(replicate.SlotStatus{Name: "slot_" + secret, Exists: true, WALStatus: secret})
	m.Drift(&replicate.Drift{
		Unruled:     map[string][]string{oddTable: {"col_" + secret}},
		TypeChanged: map[string][]string{"public.t": {"c: text -> " + secret}},
		NewTables:   []string{"public.new_" + secret},
	})
	m.SnapshotProgress("public.t\xff\xfe", 1, 1, 1, false) // not UTF-8: no panic
	m.Change("public.t\xff\xfe", "insert")
	m.Phase(replicate.PhaseRetrying, errors.New("duplicate key value: (email)=(alice@example.com)"))
	c.Advance(time.Second)

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	if n := strings.Count(text, secret); n != 2 {
		t.Errorf("%q shows %d times, want twice (the odd table's changes and unruled columns):\n%s", secret, n, text)
	}
	for _, leak := range []string{"alice@example.com", "col_", "new_", "text ->"} {
		if strings.Contains(text, leak) {
			t.Errorf("the metrics show %q", leak)
		}
	}
	_, reason := m.Health()
	if strings.Contains(reason, "alice") || strings.Contains(reason, "duplicate") {
		t.Errorf("the health reason holds the error's text: %q", reason)
	}

	fams := scrape(t, srv)
	labels := map[string][]string{
		"phase":      phases,
		"op":         append(append([]string{}, ops...), otherLabel),
		"kind":       append(append([]string{}, errorKinds...), otherLabel),
		"wal_status": append(append([]string{}, walStatuses...), unknownLabel),
		"table":      nil, // table names
		"version":    nil, // pgveil's version
		"state":      {"created", "kept_out"},
		"applied":    streamedHow,
	}
	var names []string
	for name, fam := range fams {
		names = append(names, name)
		for _, mt := range fam.Metric {
			for _, l := range mt.Label {
				set, ok := labels[l.GetName()]
				if !ok {
					t.Errorf("%s has label %s", name, l.GetName())
					continue
				}
				if set != nil && !contains(set, l.GetValue()) {
					t.Errorf("%s{%s=%q}: not one of %v", name, l.GetName(), l.GetValue(), set)
				}
			}
		}
	}
	sort.Strings(names)
	t.Logf("metrics: %s", strings.Join(names, " "))
}

func contains(set []string, s string) bool {
	for _, v := range set {
		if v == s {
			return true
		}
	}
	return false
}

// Example of the exposition a scrape returns, for the eye.
func TestExposition(t *testing.T) {
	m, c, srv := newMetrics(t)
	m.SetBuildInfo("dev")
	m.Phase(replicate.PhaseStreaming, nil)
	m.SourceAlive(0x3000100, false)
	m.Change("public.users", "insert")
	m.TargetCommit(1, 42, 3*time.Millisecond, 0x3000000, c.Now().Add(-time.Second))
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`pgveil_changes_total{op="insert",table="public.users"} 1`,
		`pgveil_phase{phase="streaming"} 1`,
		fmt.Sprintf("pgveil_lag_bytes %d", 0x100),
		"pgveil_lag_seconds 1",
		`pgveil_build_info{version="dev"} 1`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("the exposition lacks %q", want)
		}
	}
}

// Change is on the apply path.
func BenchmarkChange(b *testing.B) {
	m := New(time.Now)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Change("public.users", "insert")
		}
	})
}

func BenchmarkSourceAlive(b *testing.B) {
	m := New(time.Now)
	b.ReportAllocs()
	for i := range b.N {
		m.SourceAlive(pglogrepl.LSN(i), false)
	}
}

func TestAccessors(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := New(func() time.Time { return now })
	m.Phase(replicate.PhaseStreaming, nil)
	if p := m.CurrentPhase(); p != replicate.PhaseStreaming {
		t.Errorf("phase %s", p)
	}
	m.SourceAlive(2000, false)
	if _, _, ok := m.Lag(); ok {
		t.Error("the lag is known before any position is durable in the target")
	}
	m.TargetCommit(1, 10, time.Millisecond, 500, now.Add(-3*time.Second))
	b, s, ok := m.Lag()
	if !ok || b != 1500 || s < 2.9 || s > 3.1 {
		t.Errorf("lag %d bytes, %.1fs (known: %v)", b, s, ok)
	}
}
