package source

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"pgveil/schema"

	"github.com/jackc/pgx/v5"
)

// Time limits for anything that takes locks on the source. A lock that is
// not granted within lockTimeout makes pgveil give up (and retry later)
// rather than queue in front of production's own statements.
const (
	lockTimeout      = "2s"
	statementTimeout = "30s"
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

// transient reports whether err is a lock or statement timeout: a
// condition to retry, never a reason to decide differently.
func transient(err error) bool {
	switch schema.SQLState(err) {
	case schema.CodeLockNotAvailable, schema.CodeQueryCanceled:
		return true
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
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
