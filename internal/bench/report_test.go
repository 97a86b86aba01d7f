package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestCurveGrowthFactors(t *testing.T) {
	m := CurveMetric{Name: "seconds", Sizes: []int64{10, 100, 1000}, Values: []float64{2, 4, 20}}
	g, sg := m.Growth(), m.SizeGrowth()
	if len(g) != 2 || !near(g[0], 2) || !near(g[1], 5) {
		t.Errorf("growth %v, want [2 5]", g)
	}
	if len(sg) != 2 || !near(sg[0], 10) || !near(sg[1], 10) {
		t.Errorf("size growth %v, want [10 10]", sg)
	}
	if w := m.WorstRatio(); !near(w, 0.5) {
		t.Errorf("worst ratio %v, want 0.5", w)
	}
	// A point not measured gives no factor rather than a division by zero.
	m.Values[0] = 0
	if g := m.Growth(); g[0] != 0 {
		t.Errorf("growth from an unmeasured point: %v", g)
	}
}

func TestCurveVerdict(t *testing.T) {
	for _, c := range []struct {
		values []float64
		want   string
	}{
		{[]float64{1, 1.1, 1.2}, "linear or better"},
		{[]float64{1, 10, 100}, "linear or better"}, // exactly linear
		{[]float64{1, 5, 60}, "NOT linear: from 100 to 1000, size x10.0, seconds x12.0"},
		{[]float64{1, 11, 12}, "NOT linear: from 10 to 100"},
	} {
		m := CurveMetric{Name: "seconds", Sizes: []int64{10, 100, 1000}, Values: c.values}
		if v := m.Verdict(); !strings.Contains(v, c.want) {
			t.Errorf("%v: verdict %q, want it to say %q", c.values, v, c.want)
		}
	}
}

// A report of every scenario, with figures chosen so that each goal's
// outcome is known.
func fullReport() *Report {
	r := &Report{}
	for _, x := range []Result{
		{Scenario: "snapshot", Subject: "raw COPY pipe", Rows: 1000, Seconds: 6, ProdCPU: 1, TargetCPU: 2},
		{Scenario: "snapshot", Subject: "pgveil", Rows: 1000, Seconds: 4, PeakRSS: 50 << 20, ProdCPU: 1, TargetCPU: 2, PgveilCPU: 3},
		{Scenario: "snapshot", Subject: "native initial sync", Rows: 1000, Seconds: 5},
		{Scenario: "catch-up", Subject: "pgveil", Rows: 500, Seconds: 4, PeakRSS: 40 << 20},
		{Scenario: "catch-up", Subject: "native", Rows: 500, Seconds: 5},
		{Scenario: "steady lag 500 tx/s", Subject: "pgveil", Rows: 100, LagP50ms: 5, LagP99ms: 30, PeakRSS: 30 << 20},
		{Scenario: "steady lag 500 tx/s", Subject: "native", Rows: 100, LagP50ms: 2, LagP99ms: 9},
		{Scenario: "steady lag 2000 tx/s", Subject: "pgveil", Rows: 100, LagP50ms: 8, LagP99ms: 90, PeakRSS: 30 << 20},
		{Scenario: "steady lag 2000 tx/s", Subject: "native", Rows: 100, LagP50ms: 2, LagP99ms: 9},
		{Scenario: "big transaction", Subject: "pgveil", Rows: 500, Seconds: 3, PeakRSS: 250 << 20, PgveilCPU: 1},
		{Scenario: "big transaction", Subject: "native", Rows: 500, Seconds: 3},
		{Scenario: growthByTables, Subject: "pgveil, 100 tables", Size: 100, Seconds: 3, PeakRSS: 40 << 20},
		{Scenario: growthByTables, Subject: "pgveil, 10 tables", Size: 10, Seconds: 1, PeakRSS: 40 << 20},
		{Scenario: growthByTables, Subject: "pgveil, 1000 tables", Size: 1000, Seconds: 60, PeakRSS: 80 << 20},
	} {
		r.Add(x)
	}
	r.EvaluateGoals()
	return r
}

func TestGoalsOfIssue20(t *testing.T) {
	r := fullReport()
	want := []struct {
		name     string
		measured float64
		met      bool
	}{
		{"snapshot: pgveil vs native initial sync", 1.25, true},
		{"snapshot: pgveil vs raw COPY pipe", 1.5, true},
		{"catch-up: pgveil vs native apply", 1.25, false}, // the goal is 1.5x
		{"big transaction (500 rows): pgveil vs native, commit to visible", 1, true},
		{"steady lag at 500 tx/s: pgveil p99 - native p99", 21, false},
		{"steady lag at 2000 tx/s: pgveil p50 - native p50", 6, true},
		{"peak RSS, largest of 8 pgveil runs (big transaction, pgveil)", 250, false},
		{"growth: snapshot by tables, seconds: worst growth over size growth", 2, false},
		{"growth: snapshot by tables, peak RSS MiB: worst growth over size growth", 0.2, true},
	}
	if len(r.Goals) != len(want) {
		t.Fatalf("%d goals, want %d: %+v", len(r.Goals), len(want), r.Goals)
	}
	for i, w := range want {
		g := r.Goals[i]
		if g.Name != w.name || !near(g.Measured, w.measured) || g.Met != w.met {
			t.Errorf("goal %d: %q %.3f met=%t, want %q %.3f met=%t", i, g.Name, g.Measured, g.Met, w.name, w.measured, w.met)
		}
	}
	if len(r.Curves) != 1 || len(r.Curves[0].Sizes) != 3 || r.Curves[0].Sizes[0] != 10 || r.Curves[0].Sizes[2] != 1000 {
		t.Errorf("curves %+v, want one of sizes 10, 100, 1000", r.Curves)
	}
}

func TestPeakRSSGoalFailsWhenARunIsNotMeasured(t *testing.T) {
	r := &Report{}
	r.Add(Result{Scenario: "snapshot", Subject: "pgveil", Seconds: 1, PeakRSS: 20 << 20})
	r.Add(Result{Scenario: "catch-up", Subject: "pgveil", Seconds: 1})
	r.Add(Result{Scenario: "catch-up", Subject: "native", Seconds: 1})
	r.EvaluateGoals()
	var found bool
	for _, g := range r.Goals {
		if strings.HasPrefix(g.Name, "peak RSS") {
			found = true
			if g.Met || !strings.Contains(g.Name, "1 runs not measured") {
				t.Errorf("goal %+v: want not met, naming the unmeasured run", g)
			}
		}
	}
	if !found {
		t.Errorf("no peak RSS goal: %+v", r.Goals)
	}
}

func TestCPUPerChange(t *testing.T) {
	x := Result{Scenario: "catch-up", Subject: "pgveil", Rows: 500_000, ProdCPU: 2, TargetCPU: 5, PgveilCPU: 4}
	prod, target, pg, ok := x.CPUPerChange()
	if !ok || !near(prod, 4) || !near(target, 10) || !near(pg, 8) {
		t.Errorf("per change: %v %v %v %t, want 4 10 8 µs", prod, target, pg, ok)
	}
	// Heartbeats are not changes, and a subject without CPU figures has none.
	if _, _, _, ok := (Result{Scenario: "steady lag 500 tx/s", Rows: 100, PgveilCPU: 1}).CPUPerChange(); ok {
		t.Error("CPU per heartbeat reported")
	}
	if _, _, _, ok := (Result{Scenario: "snapshot", Rows: 100}).CPUPerChange(); ok {
		t.Error("CPU reported without figures")
	}
}

func TestPrintShowsGoalsCurvesAndCPU(t *testing.T) {
	var b bytes.Buffer
	fullReport().Print(&b)
	out := b.String()
	for _, want := range []string{
		"snapshot: pgveil vs raw COPY pipe", "≥ 1.20 x", "NO",
		"growth: snapshot by tables\n", "x10.00", "seconds: NOT linear: from 100 to 1000, size x10.0, seconds x20.0",
		"peak RSS MiB: linear or better",
		"CPU µs per row or change",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
