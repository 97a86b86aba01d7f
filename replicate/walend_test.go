package replicate

import (
	"context"
	"errors"
	"testing"
	"time"

	"pgveil/internal/pgtest"
)

// The WAL-end reading survives its connection: killed (or closed by a
// reading that timed out), it is opened again, but not before the retry
// interval, so that a production refusing connections is not asked for a
// backend at every reading.
func TestSQLWALEndReconnects(t *testing.T) {
	t.Parallel()
	dsn := clusters.Source.NewDB(t)
	ctx := pgtest.Context(t)
	admin := pgtest.Connect(t, dsn)
	w := &sqlWALEnd{dsn: dsn, retry: time.Hour}
	t.Cleanup(w.Close)
	first, err := w.WALEnd(ctx)
	if err != nil || first == 0 {
		t.Fatalf("first reading: %v, %v", first, err)
	}
	kill := func() {
		t.Helper()
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`); err != nil {
			t.Fatal(err)
		}
	}
	kill()
	if _, err := w.WALEnd(ctx); err == nil {
		t.Fatal("a reading on a killed connection succeeded")
	}
	// Within the retry interval: no new connection.
	if _, err := w.WALEnd(ctx); !errors.Is(err, errWALEndWaiting) {
		t.Fatalf("within the retry interval: %v, want errWALEndWaiting", err)
	}
	// Past it: connected again, the reading is back.
	w.retryAt = time.Now()
	if lsn, err := w.WALEnd(ctx); err != nil || lsn < first {
		t.Fatalf("after the retry interval: %v, %v", lsn, err)
	}
	// A reading cut short by its timeout closes the connection (pgx
	// cannot tell where the protocol stands); the next is tried later.
	short, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-short.Done()
	_, _ = w.WALEnd(short)
	w.retryAt = time.Time{}
	if _, err := w.WALEnd(context.Background()); err != nil {
		t.Fatalf("after a reading that timed out: %v", err)
	}
}
