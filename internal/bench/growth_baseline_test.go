package bench

import "testing"

// TestGrowthBaselineIsNoPoint: the columns curve's raw COPY pipe is shown
// beside pgveil's points (its CPU per row) but is not a point of the curve.
func TestGrowthBaselineIsNoPoint(t *testing.T) {
	r := &Report{}
	for _, x := range []Result{
		{Scenario: growthByColumns, Subject: "pgveil, 10 columns", Size: 10, Rows: 100, Seconds: 1, PeakRSS: 30 << 20, TargetCPU: 1},
		{Scenario: growthByColumns, Subject: "raw COPY pipe, 10 columns", Size: 10, Rows: 100, Seconds: 0.5, TargetCPU: 1},
		{Scenario: growthByColumns, Subject: "pgveil, 200 columns", Size: 200, Rows: 100, Seconds: 20, PeakRSS: 30 << 20, TargetCPU: 30},
		{Scenario: growthByColumns, Subject: "raw COPY pipe, 200 columns", Size: 200, Rows: 100, Seconds: 18, TargetCPU: 29},
	} {
		r.Add(x)
	}
	r.EvaluateGoals()
	if len(r.Curves) != 1 || len(r.Curves[0].Sizes) != 2 || r.Curves[0].Metrics[0].Values[1] != 20 {
		t.Fatalf("curves %+v", r.Curves)
	}
	if _, target, _, ok := r.Results[3].CPUPerChange(); !ok || target != 29e6/100 {
		t.Fatalf("baseline's target CPU a row %v, %v", target, ok)
	}
}
