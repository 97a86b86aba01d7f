package replicate

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/source"
	"pgveil/schema"
	"pgveil/transform"
)

// The error types of package replicate, and how Run tells them apart:
// a FatalError stops Run; a restartReason ends an attempt that the next
// one, reading the rules and production's schema again, repairs; a
// blockedError waits for a privilege; a transient error is retried with
// backoff. (A value no rule can mask is a *transform.MaskError: transient
// says it is fatal.)

// FatalError is a failure that retrying cannot fix: the rules, the
// prerequisites, a lost slot, a value no rule can mask. Run stops on it.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

func fatal(err error) error {
	if err == nil {
		return nil
	}
	var fe *FatalError
	if errors.As(err, &fe) {
		return err
	}
	return &FatalError{Err: err}
}

func fatalUnlessTransient(err error) error {
	if transient(err) {
		return err
	}
	return fatal(err)
}

// ShutdownError is a failure of the stream's final commit on shutdown
// (streamer.stop): the source transactions already in the open target
// transaction are not in the target, and the next start applies them
// again from the checkpoint. Run returns it although its context ended:
// a shutdown that failed to keep what it had applied is not clean.
type ShutdownError struct{ Err error }

func (e *ShutdownError) Error() string { return "committing on shutdown: " + e.Err.Error() }
func (e *ShutdownError) Unwrap() error { return e.Err }

// SlotBusyError: another connection holds the slot (another pgveil, or
// this one's previous connection that the server has not yet noticed is
// gone). Run retries it.
type SlotBusyError struct {
	Slot string
	PID  int32
}

func (e *SlotBusyError) Error() string {
	return fmt.Sprintf("replication slot %s is in use by process %d (a previous connection the server has not yet dropped, or another pgveil running with this slot)", e.Slot, e.PID)
}

// ProblemsError lists every prerequisite problem found.
type ProblemsError struct{ Problems []source.Problem }

func (e *ProblemsError) Error() string {
	var b strings.Builder
	b.WriteString("the source is not ready for pgveil:")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		if p.Table != "" {
			b.WriteString(p.Table + ": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// RulesPendingError is Reload's answer when the new rules are valid but
// need something pgveil's role lacks: the rules in force stay and keep
// streaming, and the new ones are put in force as soon as it is there.
type RulesPendingError struct {
	Waiting *Waiting
	// Held are the tables whose change waits while the rest of the
	// change was put in force (their grants are all that is missing);
	// empty when the whole change waits.
	Held []schema.TableName
	// readyNow: the rest of the change was put in force by this call.
	readyNow bool
}

func (e *RulesPendingError) Error() string {
	if len(e.Held) > 0 {
		return "the new rules are valid and in force, except for " + joinNames(e.Held) +
			", which pgveil's role may not read yet: those keep their earlier rules (or stay out of the replica, when new), and pgveil applies theirs as soon as this is done (it checks every few seconds): " +
			e.Waiting.String()
	}
	return "the new rules are valid, but pgveil's role cannot put them in force yet; the rules in force keep streaming, and pgveil applies the new ones as soon as this is done (it checks every few seconds): " +
		e.Waiting.String()
}

// blockedError is an attempt's failure for want of a privilege after the
// replica's first copy: pgveil then waits for it, retrying, instead of
// stopping (a restart with an edited rules file, a grant revoked). Before
// the first copy the failure stops pgveil with the statements to run.
type blockedError struct {
	err  error
	wait *Waiting
}

func (e *blockedError) Error() string { return e.err.Error() }
func (e *blockedError) Unwrap() error { return e.err }

// blocked wraps err as a blockedError when the replica has been copied
// (found) and err is for want of a privilege.
func blocked(found bool, err error) error {
	if w := privilegeWait(err); found && w != nil {
		return &blockedError{err: err, wait: w}
	}
	return err
}

// restartReason ends an attempt whose plan no longer fits production or
// whose replica was changed behind pgveil's back: the next attempt starts
// at the checkpoint with the rules and schema as they are now, which
// repairs it, after a backoff when restarts follow one another (a
// condition that persists must not re-read production's catalog in a
// tight loop).
type restartReason interface {
	error
	// Kind names the reason, for tests and logs; never a value.
	Kind() restartKind
	// Recopy names the tables the next attempt copies again, whatever
	// their rules (they missed changes); none when the restart alone
	// repairs it.
	Recopy() []schema.TableName
}

// restartKind is why an attempt restarts.
type restartKind string

const (
	// restartSchemaChange: the stream or a copy met a change of
	// production's schema the plan does not fit (schemaChange).
	restartSchemaChange restartKind = "schema change"
	// restartBrokenWrites: production's UPDATE and DELETE fail because a
	// REPLICA IDENTITY changed under column lists.
	restartBrokenWrites restartKind = "replica identity"
	// restartWidened: the publication sends more than the rules publish.
	restartWidened restartKind = "publication widened"
	// restartPartitions: partition maintenance changed rows unpublished.
	restartPartitions restartKind = "partition maintenance"
	// restartRowSecurity: row level security is off on a tenant table.
	restartRowSecurity restartKind = "row level security off"
	// restartLeakyViews: tenants can read views showing others' rows.
	restartLeakyViews restartKind = "leaky views"
	// restartColumnType: a column's type changed in production.
	restartColumnType restartKind = "column type changed"
	// restartUnpublished: tables left the publication behind pgveil's back.
	restartUnpublished restartKind = "tables unpublished"
	// restartForeignKey: production's rows broke a replica foreign key.
	restartForeignKey restartKind = "foreign key broken"
	// restartEnumLabels: an enum type gained labels in production.
	restartEnumLabels restartKind = "enum labels added"
	// restartLiveLock: a change waited on a lock held by the big
	// transaction applied as it streams (stream_live.go, liveLockWait).
	restartLiveLock restartKind = "waited on a big transaction applied live"
	// restartRewritten: tables rewritten during the initial copy must be
	// copied again.
	restartRewritten restartKind = "rewritten during the copy"
)

// restart is a restartReason found by pgveil itself (the monitor, the
// attempt's own checks).
type restart struct {
	kind   restartKind
	tables []schema.TableName
}

func (e *restart) Error() string                   { return "restarting: " + string(e.kind) }
func (e *restart) Kind() restartKind               { return e.kind }
func (e *restart) Recopy() []schema.TableName      { return e.tables }
func (e *schemaChange) Kind() restartKind          { return restartSchemaChange }
func (e *schemaChange) Recopy() []schema.TableName { return e.tables }

var (
	_ restartReason = (*restart)(nil)
	_ restartReason = (*schemaChange)(nil)
)

// schemaChange ends an attempt whose plan no longer fits the source (a
// column's type changed) or whose tables left the publication behind
// pgveil's back; the next attempt (see restartReason) copies the tables
// listed again.
type schemaChange struct {
	tables []schema.TableName
}

func (e *schemaChange) Error() string { return "the source schema changed" }

// transient tells whether an error may go away by itself: network
// failures and the server errors of a restart, shutdown or overload.
func transient(err error) bool {
	if err == nil {
		return true
	}
	// The one place where a value no rule can mask stops replication:
	// retrying would mask it again, and skipping it loses data silently.
	if errors.As(err, new(*transform.MaskError)) {
		return false
	}
	var ne net.Error
	var busy *SlotBusyError
	if errors.As(err, &ne) || errors.As(err, &busy) {
		return true
	}
	// A server's error, as pgconn reports it or as pgveil passes it on
	// without its message (target.ServerError, source.FilterError).
	if code := schema.SQLState(err); code != "" {
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			code == "57P01", code == "57P02", code == "57P03", // admin shutdown, crash shutdown, cannot connect now
			code == "57P05", code == "25P03", // the server ended a session idle (idle_session_timeout) or idle in a transaction: a new one is not
			code == "53300",                  // too many connections
			code == "55006",                  // object in use: the slot is still held by our previous walsender
			code == "40001", code == "40P01", // serialization failure, deadlock
			code == "25006",                     // read-only transaction: the target refuses writes for a while
			code == schema.CodeLockNotAvailable: // pgveil's short lock_timeout met a lock held in production
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.SafeToRetry(err) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "connection refused")
}
