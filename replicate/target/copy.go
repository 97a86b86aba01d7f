package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// errStream is what the server is told when the snapshot stream fails: the
// reader's own error stays on this side (the server would log it).
var errStream = errors.New("pgveil: the snapshot stream failed")

// streamReader remembers the first error of the reader it wraps, and hands
// the server a fixed one instead.
//
// pgconn's CopyFrom reads r on a goroutine of its own, and does not join
// it when the copy ends early (a broken connection, a fatal server error):
// Read may still run, and fail, after CopyFrom has returned. Hence the
// mutex (go test -race found the unguarded field), and failure's caller
// decides whether the stream's error is what ended the copy.
type streamReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (s *streamReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
		return n, errStream
	}
	return n, err
}

// failure is the stream's first error, or nil.
func (s *streamReader) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// CopyIn replaces the content of table t with r, a COPY text-format stream
// of t's published columns in order, in one transaction on conn: TRUNCATE,
// then COPY t (columns) FROM STDIN, then pgveil.tables(state 'copied',
// rows). A failure (a bad row, a failing reader, a broken connection)
// rolls everything back: the table keeps its previous content, never half
// of the new one. The TRUNCATE waits at most 10 s for the lock (analytics
// queries on the table hold it); readers of the table wait for the
// transaction to end. conn must not be in a transaction.
func CopyIn(ctx context.Context, conn *pgx.Conn, t *transform.TablePlan, r io.Reader) (rows int64, err error) {
	if t == nil || t.Table == nil {
		return 0, errors.New("copy: nil table")
	}
	label := tableLabel(t)
	if st := conn.PgConn().TxStatus(); st != 'I' {
		return 0, fmt.Errorf("copy into %s: the connection is in a transaction (status %c)", label, st)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("copy into %s: begin: %w", label, sanitize(err))
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			_ = tx.Rollback(rctx)
		}
	}()
	name := tableIdent(t)
	for _, stmt := range []string{
		`SELECT set_config('lock_timeout', '` + lockTimeout + `', true), set_config('datestyle', 'ISO, MDY', true), set_config('intervalstyle', 'postgres', true)`,
		`TRUNCATE TABLE ` + name,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return 0, fmt.Errorf("copy into %s: %w", label, sanitize(err))
		}
	}
	sql := "COPY " + name
	if len(t.Columns) > 0 {
		sql += " (" + schema.QuoteIdents(t.ColumnNames()) + ")"
	}
	sql += " FROM STDIN"
	sr := &streamReader{r: r}
	tag, err := conn.PgConn().CopyFrom(ctx, sr, sql)
	if err != nil {
		// The stream's error ended the copy only when the server answers the
		// CopyFail it made pgconn send (query_canceled, after pgconn joined
		// its reader). Otherwise the server or the connection failed first,
		// and a stream error that came after (its producer saw the copy go)
		// would hide the cause.
		if serr := sr.failure(); serr != nil && schema.SQLState(err) == schema.CodeQueryCanceled {
			return 0, fmt.Errorf("copy into %s: reading the stream: %w", label, serr)
		}
		return 0, fmt.Errorf("copy into %s: %w", label, sanitizeCopy(err, t.ColumnNames()))
	}
	rows = tag.RowsAffected()
	_, err = tx.Exec(ctx, `INSERT INTO pgveil.tables (schema_name, table_name, state, rows, updated_at) VALUES ($1, $2, $3, $4, now())
ON CONFLICT (schema_name, table_name) DO UPDATE SET state = EXCLUDED.state, rows = EXCLUDED.rows, updated_at = EXCLUDED.updated_at, tenant_roles = NULL`,
		t.Table.Schema, t.Table.Name, StateCopied, rows)
	if err != nil {
		return 0, fmt.Errorf("copy into %s: recording the copy: %w", label, sanitize(err))
	}
	if err = tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("copy into %s: commit: %w", label, sanitize(err))
	}
	return rows, nil
}
