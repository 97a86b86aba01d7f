package source

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Time limits for anything that takes locks on the source. A lock that is
// not granted within lockTimeout makes pgveil give up (and retry later)
// rather than queue in front of production's own statements.
const (
	lockTimeout      = "2s"
	statementTimeout = "30s"
)

// SQLSTATEs this package tells apart.
const (
	codeLockNotAvailable      = "55P03"
	codeQueryCanceled         = "57014"
	codeInsufficientPrivilege = "42501"
)

// execOne runs one statement with the extended protocol, which refuses
// more than one statement: SQL that embeds a rules file's `where` can
// never smuggle in a second command.
func execOne(ctx context.Context, conn *pgx.Conn, sql string) error {
	return conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
}

// beginLimited starts a transaction with SET LOCAL lock_timeout and
// statement_timeout.
func beginLimited(ctx context.Context, conn *pgx.Conn) (pgx.Tx, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range []string{
		"SET LOCAL lock_timeout = '" + lockTimeout + "'",
		"SET LOCAL statement_timeout = '" + statementTimeout + "'",
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			_ = tx.Rollback(ctx)
			return nil, err
		}
	}
	return tx, nil
}

// serverVersion returns server_version_num.
func serverVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, fmt.Errorf("reading server_version_num: %w", err)
	}
	return v, nil
}

// sqlText describes an error of a statement that holds no row values
// (catalog queries, DDL, EXPLAIN): PostgreSQL's message with its detail
// and hint, which only quote SQL text and names.
func sqlText(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	s := pe.Message
	if pe.Detail != "" {
		s += " (" + strings.TrimSuffix(pe.Detail, ".") + ")"
	}
	if pe.Hint != "" {
		s += "; hint: " + pe.Hint
	}
	return s
}

// sqlError wraps a server error of a statement that holds no row values
// with context; its text is sqlText's.
type sqlError struct {
	msg string
	err error
}

func (e *sqlError) Error() string { return e.msg }
func (e *sqlError) Unwrap() error { return e.err }

// wrapSQL returns an error saying what failed, with PostgreSQL's message,
// detail and hint, and wrapping err.
func wrapSQL(err error, format string, args ...any) error {
	return &sqlError{msg: fmt.Sprintf(format, args...) + ": " + sqlText(err), err: err}
}

// pgCode returns err's SQLSTATE, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// transient reports whether err is a lock or statement timeout: a
// condition to retry, never a reason to decide differently.
func transient(err error) bool {
	switch pgCode(err) {
	case codeLockNotAvailable, codeQueryCanceled:
		return true
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// sqlIdents quotes (always) and joins column names, for DDL.
func sqlIdents(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// scratchName is the name of a throwaway object, unique enough that two
// pgveil processes never wait on each other's uncommitted catalog rows.
func scratchName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// savepoint opens savepoint name in tx, for a trial whose effects must not
// stay (a scratch view, table or publication), and returns what undoes it:
// deferred as undo(&err), it rolls back to the savepoint, so tx stays
// usable, and reports a failure to do so in *err unless *err is already
// set.
func savepoint(ctx context.Context, tx pgx.Tx, name string) (undo func(*error), err error) {
	if _, err := tx.Exec(ctx, "SAVEPOINT "+name); err != nil {
		return nil, err
	}
	return func(err *error) {
		if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+name); rerr != nil && *err == nil {
			*err = rerr
		}
	}, nil
}
