package replicate

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgveil never waits on production's locks silently. Its own statements
// that take table locks run with a short lock_timeout (and are retried,
// with a log line), but two waits cannot be bounded that way: creating a
// logical replication slot waits until every transaction that was open
// when it began has ended (an "idle in transaction" session can hold it
// for hours), and the initial copy's COPY waits for a migration's ACCESS
// EXCLUSIVE lock. lockWaits looks, every lockWaitInterval, for pgveil's
// own sessions on production that wait for a lock, and says what they
// wait for and who holds it: the table, and the holding process with its
// application, state and transaction age. Never a query's text: it may
// hold values.

// lockWaitInterval is how often pgveil looks for its sessions waiting on
// production's locks, and so how often it repeats what one waits for.
const lockWaitInterval = 5 * time.Second

// LockWait is one of pgveil's sessions on production waiting for a lock
// another session holds.
type LockWait struct {
	PID      int32  // the waiting pgveil session
	Backend  string // its backend type: "client backend", "walsender"
	LockType string // relation, transactionid, ...
	Relation string // the table waited for, qualified; "" for other lock types
	// Waiting is how long the session's statement has run; it began
	// waiting at once or later.
	Waiting time.Duration
	// The session holding the lock.
	HolderPID   int32
	HolderApp   string        // application_name, "" when not visible
	HolderState string        // active, idle in transaction, ...; "" when not visible
	HolderXact  time.Duration // how long its transaction has been open; -1 when not visible
}

// String says what w waits for, for a log line.
func (w LockWait) String() string {
	what := "a lock on " + w.Relation
	switch {
	case w.Relation != "":
	case w.LockType == "transactionid" && w.Backend == "walsender":
		what = "a transaction that was open when it began creating a replication slot (a slot's snapshot waits for every such transaction to end)"
	case w.LockType == "transactionid":
		what = "a transaction that holds a row it needs"
	default:
		what = "a " + w.LockType + " lock"
	}
	holder := fmt.Sprintf("process %d", w.HolderPID)
	var about []string
	if w.HolderApp != "" {
		about = append(about, "application "+w.HolderApp)
	}
	if w.HolderState != "" {
		about = append(about, w.HolderState)
	}
	if w.HolderXact >= 0 {
		about = append(about, "transaction open for "+w.HolderXact.Round(time.Second).String())
	}
	for i, a := range about {
		if i == 0 {
			holder += " ("
		} else {
			holder += ", "
		}
		holder += a
		if i == len(about)-1 {
			holder += ")"
		}
	}
	return fmt.Sprintf("pgveil's session %d waits for %s, held by %s (its statement began %s ago)", w.PID, what, holder, w.Waiting.Round(time.Second))
}

// ReadLockWaits returns pgveil's sessions on conn's database (those of the
// current role named pgveil, or streamAppName(slot)) that wait for a lock,
// one entry per session holding what it waits for.
func ReadLockWaits(ctx context.Context, conn *pgx.Conn, slot string) ([]LockWait, error) {
	rows, err := conn.Query(ctx, `
SELECT w.pid, coalesce(w.backend_type, ''), coalesce(l.locktype, ''), CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END,
       extract(epoch FROM now() - coalesce(w.state_change, w.query_start, now()))::float8,
       b.pid, coalesce(b.application_name, ''), coalesce(b.state, ''),
       coalesce(extract(epoch FROM now() - b.xact_start), -1)::float8
FROM pg_catalog.pg_stat_activity w
LEFT JOIN LATERAL (SELECT locktype, relation FROM pg_catalog.pg_locks l
                   WHERE l.pid = w.pid AND NOT l.granted LIMIT 1) l ON true
LEFT JOIN pg_catalog.pg_class c ON c.oid = l.relation
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(w.pid)) AS bp(pid)
LEFT JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid
WHERE w.wait_event_type = 'Lock' AND w.datname = current_database() AND w.usename = current_user
  AND w.application_name IN ('pgveil', $1) AND w.pid <> pg_catalog.pg_backend_pid()
ORDER BY w.pid, b.pid`, streamAppName(slot))
	if err != nil {
		return nil, fmt.Errorf("reading pgveil's lock waits: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (LockWait, error) {
		var w LockWait
		var waiting, xact float64
		err := r.Scan(&w.PID, &w.Backend, &w.LockType, &w.Relation, &waiting, &w.HolderPID, &w.HolderApp, &w.HolderState, &xact)
		w.Waiting = time.Duration(waiting * float64(time.Second))
		w.HolderXact = -1
		if xact >= 0 {
			w.HolderXact = time.Duration(xact * float64(time.Second))
		}
		return w, err
	})
}

// watchLockWaits logs, every lockWaitInterval until ctx ends, what
// pgveil's sessions on the source wait for, and reports the longest wait
// to obs (0 when none). Its connection is its own, opened when needed; a
// failure to look is logged once and retried at the next turn.
func watchLockWaits(ctx context.Context, dsn, slot string, log *slog.Logger, obs Observer) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	failing := false
	everyInterval(ctx, lockWaitInterval, func() bool {
		if conn == nil || conn.IsClosed() {
			c, err := connectSource(ctx, dsn)
			if err != nil {
				return true // the pipeline reports connection failures
			}
			conn = c
		}
		waits, err := ReadLockWaits(ctx, conn, slot)
		if err != nil {
			if ctx.Err() == nil && !failing {
				log.Warn("looking for pgveil's sessions waiting on production's locks", "error", err.Error())
			}
			failing = true
			conn.Close(context.Background())
			conn = nil
			return true
		}
		failing = false
		var longest time.Duration
		for _, w := range waits {
			longest = max(longest, w.Waiting)
			log.Warn("waiting for production: " + w.String() + "; pgveil goes on once it is released")
		}
		obs.SourceLockWait(longest)
		return true
	})
}
