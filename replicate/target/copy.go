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
// then the bulk load (see bulkLoad: the primary key dropped, COPY t
// (columns) FROM STDIN FREEZE, the key built again under its own name),
// then pgveil.tables(state 'copied', rows). A failure (a bad row, a
// duplicate key, a failing reader, a broken connection) rolls everything
// back: the table keeps its previous content, key, grants and policies,
// never half of the new one. The TRUNCATE waits at most 10 s for the lock
// (analytics queries on the table hold it); readers of the table wait for
// the transaction to end. conn must not be in a transaction.
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
	bulk, err := bulkLoad(ctx, tx, name)
	if err != nil {
		return 0, fmt.Errorf("copy into %s: %w", label, err)
	}
	sql := "COPY " + name
	if len(t.Columns) > 0 {
		sql += " (" + schema.QuoteIdents(t.ColumnNames()) + ")"
	}
	sql += " FROM STDIN"
	if bulk.freeze {
		sql += " (FREEZE)"
	}
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
	if bulk.addKey != "" {
		// A duplicate key cannot come from pgveil (a hash of a key is a
		// bijection), but if it does, the server's detail quotes the key:
		// sanitize keeps the SQLSTATE and the constraint's name only.
		if _, err = tx.Exec(ctx, bulk.addKey); err != nil {
			return 0, fmt.Errorf("copy into %s: building the primary key after the load: %w", label, sanitize(err))
		}
	}
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

// bulkLoadSQL reads, in the loading transaction and after its TRUNCATE,
// what bulkLoad needs: whether the table is a plain table (COPY FREEZE is
// refused on a partitioned one, whose rows go to its partitions), and its
// primary key's name and definition when the key can be dropped and built
// again: it is the table's own (not a partition's share of its parent's
// key) and nothing depends on it or its index but each other (a foreign
// key, its own table's included, needs the index; a view may need the key
// for a GROUP BY).
const bulkLoadSQL = `
SELECT c.relkind = 'r', coalesce(k.conname::text, ''), coalesce(pg_catalog.pg_get_constraintdef(k.oid), '')
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p' AND k.conparentid = 0
	AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
		WHERE (d.refclassid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.refobjid = k.oid
			AND NOT (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = k.conindid))
		   OR (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = k.conindid
			AND NOT (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid = k.oid)))
WHERE c.oid = $1::pg_catalog.regclass`

// bulk is how CopyIn loads a table: with FREEZE, and with its primary key
// built after the rows are in (addKey, "" when the key stays).
type bulk struct {
	freeze bool
	addKey string
}

// bulkLoad prepares, in tx and after the table's TRUNCATE, a bulk load of
// table (quoted): it drops the primary key, and returns the statement that
// builds it again under the same name, so the table keeps the names a
// first copy gives it (createTableSQL; moveStagingSQL relies on them).
//
// Why: masked keys are hashes, in random order, and a key index built row
// by row as COPY inserts them costs the target far more than one built by
// sorting once the rows are in (PostgreSQL 15, 2M random bigint keys:
// 7.7 s to COPY into the table with its key, against 1.9 s for COPY
// FREEZE and 1.2 s for ADD PRIMARY KEY). FREEZE, allowed because the
// table was truncated in this transaction, writes the rows already frozen
// and visible, sparing the target the hint-bit writes and the freezing
// vacuum later. Like the TRUNCATE before it, it is not MVCC-safe for
// readers whose snapshot is older than the load's commit: they see the
// new rows where they would have seen none. Everything else about the
// table (grants, row level security, policies, views over it) stays: it
// is the same table, and readers see none of this before the commit.
func bulkLoad(ctx context.Context, tx pgx.Tx, table string) (bulk, error) {
	var b bulk
	var key, def string
	if err := tx.QueryRow(ctx, bulkLoadSQL, table).Scan(&b.freeze, &key, &def); err != nil {
		return bulk{}, fmt.Errorf("reading its primary key: %w", sanitize(err))
	}
	if !b.freeze || key == "" {
		// A partitioned table loads as before; so does a key something
		// depends on (it stays, and is filled row by row).
		return b, nil
	}
	if _, err := tx.Exec(ctx, `ALTER TABLE `+table+` DROP CONSTRAINT `+schema.QuoteIdent(key)); err != nil {
		return bulk{}, fmt.Errorf("dropping the primary key for the load: %w", sanitize(err))
	}
	b.addKey = `ALTER TABLE ` + table + ` ADD CONSTRAINT ` + schema.QuoteIdent(key) + ` ` + def
	return b, nil
}
