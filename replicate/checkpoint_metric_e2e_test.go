package replicate_test

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"pgveil/internal/pgtest"
	"pgveil/internal/syncbuf"
	"pgveil/replicate"
	"pgveil/replicate/metrics"
	"pgveil/rules"
)

// With no traffic at all, pgveil_checkpoint_lsn is the checkpoint in the
// target, never 0: after the initial copy, from the moment streaming
// starts and while the stream idles; and after a re-copied table is
// switched in, whose target transaction holds no source commit (it wrote
// checkpoint 0/0, and the metric read 0 until the next source commit).
func TestCheckpointMetricWithoutTraffic(t *testing.T) {
	srcDSN := replicate.TestClusters.Source.NewDB(t)
	dstDSN := replicate.TestClusters.Target.NewDB(t)
	pgtest.MustExec(t, pgtest.Connect(t, srcDSN), `CREATE TABLE items (id int PRIMARY KEY, v text);
		INSERT INTO items SELECT i, md5(i::text) FROM generate_series(1, 100) i;`)
	env := map[string]string{"SRC": srcDSN, "DST": dstDSN, "SECRET": pgtest.Secret}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	yml := "source: {dsn: \"${SRC}\", slot: s1, publication: p1}\ntarget: {dsn: \"${DST}\"}\nsecret: ${SECRET}\ntables:\n  items:\n    columns: {id: keep, v: hash}\n"
	cfg, err := rules.Parse("test.yaml", []byte(yml), lookup, nil)
	if err != nil {
		t.Fatal(err)
	}

	obs := &keepaliveCounter{Metrics: metrics.New(time.Now)}
	stats := &replicate.Stats{}
	logs := &syncbuf.Buffer{}
	p := replicate.New(replicate.Options{Config: cfg, Observer: obs, Stats: stats,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Stream: replicate.StreamOptions{StatusInterval: 100 * time.Millisecond, SpillDir: t.TempDir()}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()

	// Streaming and idle: a few keepalives have come and gone.
	waitFor(t, done, "streaming", func() bool {
		return obs.CurrentPhase() == replicate.PhaseStreaming && obs.keepalives.Load() >= 5
	})
	copied := readCheckpoint(t, dstDSN)
	if copied == 0 {
		t.Fatal("the initial copy wrote checkpoint 0/0")
	}
	if got := gauge(t, obs.Metrics, "pgveil_checkpoint_lsn"); math.IsNaN(got) || pglogrepl.LSN(got) != copied {
		t.Errorf("pgveil_checkpoint_lsn = %v after the initial copy, want the checkpoint %s (%d)", got, copied, uint64(copied))
	}

	// A rule change: the table is re-copied beside the stream and
	// switched in, still with no traffic.
	cfg2, err := rules.Parse("test.yaml", []byte(strings.Replace(yml, "v: hash", "v: null", 1)), lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(ctx, cfg2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, done, "the re-copied table switched in", func() bool { return stats.Resyncs.Load() >= 1 })
	if got := readCheckpoint(t, dstDSN); got < copied {
		t.Errorf("the re-copy's switch moved the checkpoint back from %s to %s", copied, got)
	}
	if got := gauge(t, obs.Metrics, "pgveil_checkpoint_lsn"); math.IsNaN(got) || pglogrepl.LSN(got) < copied {
		t.Errorf("pgveil_checkpoint_lsn = %v after the re-copy's switch, want at least the checkpoint %s (%d)", got, copied, uint64(copied))
	}
}

// keepaliveCounter is the metrics, counting the keepalives the stream
// reports: the test waits for some instead of sleeping.
type keepaliveCounter struct {
	*metrics.Metrics
	keepalives atomic.Int64
}

func (k *keepaliveCounter) SourceAlive(walEnd pglogrepl.LSN, keepalive bool) {
	k.Metrics.SourceAlive(walEnd, keepalive)
	if keepalive {
		k.keepalives.Add(1)
	}
}

// gauge reads the gauge name (without labels) from m's registry.
func gauge(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.Metric) == 1 {
			return f.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// readCheckpoint reads slot s1's checkpoint in the target.
func readCheckpoint(t *testing.T, dstDSN string) pglogrepl.LSN {
	t.Helper()
	var text string
	if err := pgtest.Connect(t, dstDSN).QueryRow(pgtest.Context(t), `SELECT lsn::text FROM pgveil.checkpoint WHERE slot = 's1'`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(text)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// waitFor polls cond until it holds; it fails the test after three
// minutes, or at once when the pipeline stops (its result on done).
func waitFor(t *testing.T, done <-chan error, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("%s: the pipeline stopped: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 3 minutes", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
