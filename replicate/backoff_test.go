package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/schema"
)

func TestBackoffPolicy(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name string
		b    backoff
		want []time.Duration
	}{
		{"transient: doubles from base, capped", backoff{base: time.Second, max: 5 * time.Second},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"restart: at once first, then doubles, capped", backoff{immediate: true, base: 250 * ms, max: time.Second},
			[]time.Duration{0, 250 * ms, 500 * ms, time.Second, time.Second, time.Second}},
		{"jitter takes at most its fraction off", backoff{immediate: true, base: 100 * ms, max: 400 * ms, jitter: 0.5, rand: func() float64 { return 0.999999 }},
			[]time.Duration{0, 50 * ms, 100 * ms, 200 * ms, 200 * ms}},
		{"jitter drawn as 0 leaves the wait whole", backoff{base: 100 * ms, max: 400 * ms, jitter: 0.5, rand: func() float64 { return 0 }},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 400 * ms}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []time.Duration
			for range c.want {
				got = append(got, c.b.next().Round(ms))
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("waits %v, want %v", got, c.want)
			}
			c.b.reset()
			if d, first := c.b.next().Round(ms), c.want[0]; d != first {
				t.Errorf("after reset: %v, want %v", d, first)
			}
		})
	}
	// Many waits never overflow past the cap, and real jitter stays in
	// [max*(1-jitter), max].
	b := backoff{base: time.Second, max: 30 * time.Second, jitter: 0.2}
	for i := range 100 {
		if d := b.next(); i > 10 && (d > 30*time.Second || d < 24*time.Second) {
			t.Fatalf("wait %d: %v, want within [24s, 30s]", i, d)
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if sleep(ctx, time.Hour) {
		t.Error("sleep ran out although its context had ended")
	}
	if !sleep(context.Background(), 0) {
		t.Error("a zero wait did not run out")
	}
}

// loopConfig is a configuration for tests of Run's loop that never
// reach a database: its DSNs name a port nothing listens on.
func loopConfig(t *testing.T) *rules.Config {
	t.Helper()
	dsn := "postgres://pgveil@127.0.0.1:1/none?connect_timeout=1"
	yml := "source: {dsn: \"" + dsn + "\", slot: s1, publication: p1}\ntarget: {dsn: \"" + dsn + "\"}\nsecret: " + pgtest.Secret + "\ntables:\n  t:\n    columns: {id: keep}\n"
	cfg, err := rules.Parse("test.yaml", []byte(yml), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A condition that persists (the monitor finds the same reason to
// restart at every attempt) does not restart in a tight loop: over the
// attempts, the waits grow to RetryMax; an attempt that streamed for a
// while makes the next restart immediate again. Counted in attempts and
// the waits Run asks for, not in wall-clock time.
func TestPipelineRestartBackoff(t *testing.T) {
	const retryMax = 8 * time.Second
	p := New(Options{Config: loopConfig(t), RetryMax: retryMax, Stream: StreamOptions{SpillDir: t.TempDir()},
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var attempts int
	var waits []time.Duration
	var total time.Duration
	streamedAt := 0 // the attempt that streams for a while
	p.runAttempt = func(ctx context.Context, opts Options, run *runState) error {
		attempts++
		if attempts == streamedAt {
			run.streaming = time.Now().Add(-2 * healthyAfter)
		}
		return &restart{kind: restartRowSecurity, tables: []schema.TableName{{Schema: "public", Name: "t"}}}
	}
	p.sleep = func(ctx context.Context, d time.Duration) bool {
		waits = append(waits, d)
		total += d
		// The condition: a minute of waiting, or far more attempts than
		// a backoff allows (a tight loop).
		if total >= time.Minute || attempts >= 1000 {
			cancel()
			return false
		}
		return true
	}
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// 0, .25, .5, 1, 2, 4 and then 8s each (less up to 20% jitter): a
	// minute takes at most 6 + 60/6.4 attempts.
	if attempts > 16 {
		t.Fatalf("%d attempts in a minute of waits: a persistent restart condition loops tightly (first waits %v)", attempts, waits[:min(len(waits), 10)])
	}
	if waits[0] != 0 {
		t.Errorf("the first restart waited %v, want at once", waits[0])
	}
	for i, d := range waits {
		if d > retryMax {
			t.Errorf("wait %d is %v, above RetryMax %v", i, d, retryMax)
		}
	}
	if last := waits[len(waits)-1]; last < retryMax*8/10 {
		t.Errorf("the waits did not reach RetryMax: %v", waits)
	}

	// An attempt that streamed for a while resets the backoff.
	p = New(Options{Config: loopConfig(t), RetryMax: retryMax, Stream: StreamOptions{SpillDir: t.TempDir()},
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	attempts, waits, total, streamedAt = 0, nil, 0, 6
	p.runAttempt = func(ctx context.Context, opts Options, run *runState) error {
		attempts++
		if attempts == streamedAt {
			run.streaming = time.Now().Add(-2 * healthyAfter)
		}
		if run.forceResync == nil && attempts > 1 {
			return errors.New("the restart's tables were not marked for a re-copy")
		}
		return &restart{kind: restartPartitions, tables: []schema.TableName{{Schema: "public", Name: "t"}}}
	}
	p.sleep = func(ctx context.Context, d time.Duration) bool {
		waits = append(waits, d)
		if len(waits) == 8 {
			cancel()
			return false
		}
		return true
	}
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if waits[5] != 0 || waits[4] == 0 || waits[6] == 0 {
		t.Errorf("waits %v: want the restart after the attempt that streamed (the 6th) at once, and only that one", waits)
	}
}

// The pipeline's rules are read under its lock by Run, which Reload may
// change at any moment (go test -race finds the unguarded read).
func TestPipelineRunReadsRulesUnderLock(t *testing.T) {
	e := newE2E(t, `CREATE TABLE people (id int PRIMARY KEY, email text);`, "  people:\n    columns: {id: keep, email: keep}\n")
	// A spill directory that cannot be made: Run returns at once, after
	// reading the rules, without a lock that would order it with Reload.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := New(Options{Config: e.config(), Stream: StreamOptions{SpillDir: filepath.Join(file, "spill")}, Logger: slog.New(slog.DiscardHandler)})
	reloaded := make(chan error, 1)
	go func() { reloaded <- p.Reload(context.Background(), e.config()) }()
	var fe *FatalError
	if err := p.Run(context.Background()); !errors.As(err, &fe) {
		t.Errorf("Run with a spill directory it cannot make: %v, want a FatalError", err)
	}
	if err := <-reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}
}
