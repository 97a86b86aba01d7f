package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// phaseObserver records the phases reported and whether with an error.
type phaseObserver struct {
	nopObserver
	phases []string
}

func (o *phaseObserver) Phase(phase string, err error) {
	o.phases = append(o.phases, fmt.Sprintf("%s %v", phase, err != nil))
}

// When the context ends, Run returns what the attempt's stream failed to
// keep: a final commit that failed (the streamer's stop, on the fakes,
// with a group of source transactions open) is returned, not dropped; an
// attempt that failed only because the context ended is a clean shutdown,
// nil.
func TestPipelineRunReturnsFailedFinalCommit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		attempt func(t *testing.T) error // run once the context has ended
		fails   bool
	}{
		{"failed final commit", func(t *testing.T) error {
			rp := newReplay(t, recPlan(""), StreamOptions{BatchChanges: 100})
			msgs := readRecorded(t)
			if err := rp.feed(msgs[:5]...); err != nil { // relation, begin, 2 inserts, commit
				t.Error(err)
			}
			rp.a.commitErr = errors.New("connection reset")
			return rp.s.stop()
		}, true},
		{"final commit done", func(t *testing.T) error {
			rp := newReplay(t, recPlan(""), StreamOptions{BatchChanges: 100})
			if err := rp.feed(readRecorded(t)[:5]...); err != nil {
				t.Error(err)
			}
			return rp.s.stop()
		}, false},
		{"cancelled mid-step", func(*testing.T) error {
			return fmt.Errorf("reading the checkpoint of slot s1: %w", context.Canceled)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := &phaseObserver{}
			p := New(Options{Config: loopConfig(t), Stream: StreamOptions{SpillDir: t.TempDir()}, Observer: obs,
				Logger: slog.New(slog.DiscardHandler)})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p.runAttempt = func(ctx context.Context, _ Options, _ *runState) error {
				cancel() // the shutdown: SIGTERM
				<-ctx.Done()
				return tc.attempt(t)
			}
			p.sleep = func(context.Context, time.Duration) bool {
				t.Error("Run retried after its context ended")
				return false
			}
			err := p.Run(ctx)
			var se *ShutdownError
			if tc.fails != errors.As(err, &se) {
				t.Fatalf("Run returned %v", err)
			}
			last := obs.phases[len(obs.phases)-1]
			if want := fmt.Sprintf("%s %v", PhaseStopped, tc.fails); last != want {
				t.Errorf("last phase %q, want %q", last, want)
			}
			if tc.fails && !strings.Contains(err.Error(), "connection reset") {
				t.Errorf("Run returned %v, without the commit's failure", err)
			}
		})
	}
}
