package schema

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATEs pgveil tells apart.
const (
	CodeLockNotAvailable      = "55P03"
	CodeQueryCanceled         = "57014"
	CodeInsufficientPrivilege = "42501"
)

// SQLState returns the SQLSTATE of the first server error in err's chain
// (a *pgconn.PgError, or any error with an SQLState method, such as the
// replica's value-free ServerError), or "".
func SQLState(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

// IsLockTimeout reports whether err is a lock_timeout firing (55P03):
// a lock pgveil chose not to wait for, to retry later.
func IsLockTimeout(err error) bool { return SQLState(err) == CodeLockNotAvailable }

// ServerVersion returns server_version_num.
func ServerVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, fmt.Errorf("reading server_version_num: %w", err)
	}
	return v, nil
}

// SQLText describes an error of a statement that holds no row values
// (catalog queries, DDL, EXPLAIN): PostgreSQL's message with its detail
// and hint, which only quote SQL text and names. Never use it for an
// error of a statement that carries row values: the detail may quote them.
func SQLText(err error) string {
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
// with context; its text is SQLText's.
type sqlError struct {
	msg string
	err error
}

func (e *sqlError) Error() string { return e.msg }
func (e *sqlError) Unwrap() error { return e.err }

// WrapSQL returns an error saying what failed, with PostgreSQL's message,
// detail and hint (SQLText), wrapping err. Only for statements that hold
// no row values.
func WrapSQL(err error, format string, args ...any) error {
	return &sqlError{msg: fmt.Sprintf(format, args...) + ": " + SQLText(err), err: err}
}
