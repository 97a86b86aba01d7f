package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pgveil/internal/bench"
)

// The smoke test: the quick benchmark on tiny data runs every scenario
// against its baselines and writes a complete report. It asserts nothing
// about speed.
func TestQuickTiny(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--quick", "--scale", "tiny", "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r bench.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][2]string{
		{"snapshot", "pgveil"}, {"snapshot", "raw COPY pipe"}, {"snapshot", "native initial sync"}, {"snapshot", "pg_dump | psql"},
		{"catch-up", "pgveil"}, {"catch-up", "native"},
		{"steady lag 500 tx/s", "pgveil"}, {"steady lag 500 tx/s", "native"},
		{"steady lag 2000 tx/s", "pgveil"}, {"steady lag 2000 tx/s", "native"},
		{"big transaction", "pgveil"}, {"big transaction", "native"},
		{"growth: snapshot by tables", "pgveil, 20 tables"}, {"growth: snapshot by columns", "pgveil, 50 columns"},
		{"growth: snapshot by columns", "raw COPY pipe, 50 columns"},
		{"growth: catch-up by tables per transaction", "pgveil, 10 tables/tx"},
	} {
		res, ok := r.Find(want[0], want[1])
		if !ok {
			t.Errorf("no result for %s, %s", want[0], want[1])
			continue
		}
		if res.Seconds <= 0 && res.LagP99ms <= 0 {
			t.Errorf("%s, %s: nothing measured: %+v", want[0], want[1], res)
		}
	}
	// Issue 20's goals: six ratios or differences, peak RSS, and a
	// growth verdict for each metric of the three curves.
	if len(r.Goals) != 13 || len(r.Curves) != 3 || len(r.Micro) == 0 {
		t.Errorf("%d goals (want 13), %d curves (want 3), %d micro-benchmarks", len(r.Goals), len(r.Curves), len(r.Micro))
	}
	for _, x := range r.Results {
		if strings.HasPrefix(x.Subject, "pgveil") && x.PeakRSS <= 0 {
			t.Errorf("%s, %s: no peak RSS", x.Scenario, x.Subject)
		}
	}
	if !strings.Contains(stdout.String(), "goal") {
		t.Errorf("no goal table:\n%s", stdout.String())
	}
	t.Logf("\n%s", stdout.String())
}
