package replicate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/target"
)

// stop ends a re-copy still running and returns only once its goroutine
// has: the next attempt's DROP SCHEMA of the staging schema must not wait
// for this attempt's loaders.
func TestLiveResyncStopJoinsTheCopy(t *testing.T) {
	t.Parallel()
	dir := privateDir(t)
	sp, err := newSpill(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	rs := &liveResync{spill: sp, done: make(chan error, 1)}
	started := make(chan struct{})
	var returned atomic.Bool
	rs.runCopy(context.Background(), func(ctx context.Context) error {
		close(started)
		<-ctx.Done() // a copy that runs until told to stop
		returned.Store(true)
		return ctx.Err()
	})
	<-started
	rs.stop()
	if !returned.Load() {
		t.Fatal("stop returned before the copy did")
	}
	if err := <-rs.done; !errors.Is(err, context.Canceled) {
		t.Errorf("the copy's result: %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("captured changes left behind: %v", left)
	}
	// The stream closes the spill too when it ends: twice is harmless.
	rs.spill.close()
}

// stop after the copy ended (its result read, as resyncStep does) does
// not wait for anything; on no re-copy it does nothing.
func TestLiveResyncStopAfterTheCopy(t *testing.T) {
	t.Parallel()
	sp, err := newSpill(privateDir(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	rs := &liveResync{spill: sp, done: make(chan error, 1)}
	rs.runCopy(context.Background(), func(context.Context) error { return nil })
	if err := <-rs.done; err != nil {
		t.Fatal(err)
	}
	rs.stop()
	var none *liveResync
	none.stop()
}

// A switch waits for readers' locks only on a lock timeout, told by its
// SQLSTATE: a table whose name holds "55P03" is not one.
func TestSwitchWaitsOnlyOnLockTimeouts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("statement: ALTER TABLE app.t: %w", &target.ServerError{Code: "55P03", Message: "canceling statement due to lock timeout"}), true},
		{&pgconn.PgError{Code: "55P03", Message: "canceling statement due to lock timeout"}, true},
		{fmt.Errorf("statement: DROP TABLE: %w", &target.ServerError{Code: "42501", Message: `permission denied for table t55P03`, Table: "t55P03"}), false},
		{errors.New(`switching app.orders_55P03: connection reset`), false},
		{&pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, false},
	} {
		if got := switchWaits(tc.err); got != tc.want {
			t.Errorf("switchWaits(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
