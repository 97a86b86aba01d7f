package target

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"pgveil/schema"
	"pgveil/transform"
)

// InternalSchema is the target schema that holds pgveil's own tables. Only
// its owner can use it: reader roles get nothing there.
const InternalSchema = "pgveil"

// The states Setup and CopyIn record in pgveil.tables.
const (
	// StateCreated: Setup created the table; it is empty until copied.
	StateCreated = "created"
	// StateAltered: Setup added columns to the table; its existing rows
	// hold NULL in them until the table is copied again.
	StateAltered = "altered"
	// StateCopied: CopyIn loaded the table.
	StateCopied = "copied"
)

// lockTimeout bounds every lock wait of Setup and CopyIn. The target serves
// analytics queries: DDL or a TRUNCATE queued behind a long query would
// block every query behind it.
const lockTimeout = "10s"

// checkpointSQL upserts a slot's position. Its parameters are text: slot,
// lsn (as pg_lsn prints it) and commit_time (NULL when unknown).
const checkpointSQL = `INSERT INTO pgveil.checkpoint (slot, lsn, commit_time, updated_at) VALUES ($1, $2, $3, now())
ON CONFLICT (slot) DO UPDATE SET lsn = EXCLUDED.lsn, commit_time = EXCLUDED.commit_time, updated_at = EXCLUDED.updated_at`

// Position is a point in the source's WAL: the end of a source commit and
// the time of that commit.
type Position struct {
	LSN        pglogrepl.LSN
	CommitTime time.Time // zero when unknown (stored as NULL)
}

// checkpointParams returns the text parameters of checkpointSQL.
func checkpointParams(dst [][]byte, slot string, pos Position) [][]byte {
	var commit []byte
	if !pos.CommitTime.IsZero() {
		commit = pos.CommitTime.UTC().AppendFormat(nil, "2006-01-02 15:04:05.999999-07")
	}
	return append(dst[:0], []byte(slot), []byte(pos.LSN.String()), commit)
}

// ReadCheckpoint returns the last applied position of slot, and
// found=false if there is none (nor, before the first Setup, a
// pgveil.checkpoint table).
func ReadCheckpoint(ctx context.Context, conn *pgx.Conn, slot string) (pos Position, found bool, err error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('pgveil.checkpoint') IS NOT NULL`).Scan(&exists); err != nil {
		return Position{}, false, fmt.Errorf("reading the checkpoint of slot %s: %w", slot, sanitize(err))
	}
	if !exists {
		return Position{}, false, nil
	}
	var lsn string
	var commit pgtype.Timestamptz
	err = conn.QueryRow(ctx, `SELECT lsn::text, commit_time FROM pgveil.checkpoint WHERE slot = $1`, slot).Scan(&lsn, &commit)
	if errors.Is(err, pgx.ErrNoRows) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, fmt.Errorf("reading the checkpoint of slot %s: %w", slot, sanitize(err))
	}
	pos.LSN, err = pglogrepl.ParseLSN(lsn)
	if err != nil {
		return Position{}, false, fmt.Errorf("reading the checkpoint of slot %s: %w", slot, err)
	}
	if commit.Valid {
		pos.CommitTime = commit.Time
	}
	return pos, true, nil
}

// WriteCheckpoint upserts the checkpoint of slot in its own transaction,
// as at the end of the initial snapshot. conn must not be in a
// transaction.
func WriteCheckpoint(ctx context.Context, conn *pgx.Conn, slot string, pos Position) error {
	pg := conn.PgConn()
	if st := pg.TxStatus(); st != 'I' {
		return fmt.Errorf("writing the checkpoint of slot %s: the connection is in a transaction (status %c)", slot, st)
	}
	if _, err := pg.ExecParams(ctx, checkpointSQL, checkpointParams(nil, slot, pos), nil, nil, nil).Close(); err != nil {
		return fmt.Errorf("writing the checkpoint of slot %s: %w", slot, sanitize(err))
	}
	return nil
}

// TableState is one row of pgveil.tables.
type TableState struct {
	Schema, Name string
	State        string // StateCreated, StateAltered or StateCopied
	Rows         int64  // rows loaded by the last copy; -1 when unknown
	UpdatedAt    time.Time
	// RulesHash is the fingerprint of the rules the table was copied
	// under (transform.TablePlan.Fingerprint); "" when unknown.
	RulesHash string
}

// ReadTables returns the rows of pgveil.tables, ordered by schema and
// table name (none before the first Setup).
func ReadTables(ctx context.Context, conn *pgx.Conn) ([]TableState, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('pgveil.tables') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("reading pgveil.tables: %w", sanitize(err))
	}
	if !exists {
		return nil, nil
	}
	var hasHash bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'pgveil.tables'::regclass AND attname = 'rules_hash' AND NOT attisdropped)`).Scan(&hasHash); err != nil {
		return nil, fmt.Errorf("reading pgveil.tables: %w", sanitize(err))
	}
	hash := "''"
	if hasHash {
		hash = "coalesce(rules_hash, '')"
	}
	rows, err := conn.Query(ctx, `SELECT schema_name, table_name, coalesce(state, ''), coalesce(rows, -1), coalesce(updated_at, '-infinity'), `+hash+`
FROM pgveil.tables ORDER BY schema_name, table_name`)
	if err != nil {
		return nil, fmt.Errorf("reading pgveil.tables: %w", sanitize(err))
	}
	var out []TableState
	for rows.Next() {
		var s TableState
		var at pgtype.Timestamptz
		if err := rows.Scan(&s.Schema, &s.Name, &s.State, &s.Rows, &at, &s.RulesHash); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading pgveil.tables: %w", sanitize(err))
		}
		if at.Valid && at.InfinityModifier == pgtype.Finite {
			s.UpdatedAt = at.Time
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pgveil.tables: %w", sanitize(err))
	}
	return out, nil
}

// KeyColumns returns the indexes (into t.Columns) of the columns that
// identify a row: the primary key (or replica identity) columns, or every
// column for a table without one (REPLICA IDENTITY FULL).
func KeyColumns(t *transform.TablePlan) []int {
	var key []int
	for i := range t.Columns {
		if t.Columns[i].Column.PrimaryKey {
			key = append(key, i)
		}
	}
	if len(key) == 0 {
		key = make([]int, len(t.Columns))
		for i := range key {
			key[i] = i
		}
	}
	return key
}

// HasPrimaryKey reports whether some column of t is a key column.
func HasPrimaryKey(t *transform.TablePlan) bool {
	for i := range t.Columns {
		if t.Columns[i].Column.PrimaryKey {
			return true
		}
	}
	return false
}

// tableIdent is t's name, quoted for SQL.
func tableIdent(t *transform.TablePlan) string {
	return schema.Qualified(t.Table.Schema, t.Table.Name)
}

// tableLabel is t's name for messages.
func tableLabel(t *transform.TablePlan) string { return t.Table.QualifiedName() }

// ReadPartitions returns, by table, the leaf partitions its replica is
// consistent with, in the recorded form of source.Leaves ("" for none
// recorded: a table that is not partitioned, or copied by a version that
// did not record them).
func ReadPartitions(ctx context.Context, conn *pgx.Conn) (map[schema.TableName]string, error) {
	rows, err := conn.Query(ctx, `SELECT schema_name, table_name, partitions FROM pgveil.tables WHERE partitions IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("reading pgveil.tables.partitions: %w", sanitize(err))
	}
	out := map[schema.TableName]string{}
	for rows.Next() {
		var n schema.TableName
		var leaves string
		if err := rows.Scan(&n.Schema, &n.Name, &leaves); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading pgveil.tables.partitions: %w", sanitize(err))
		}
		out[n] = leaves
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pgveil.tables.partitions: %w", sanitize(err))
	}
	return out, nil
}

// RecordPartitions stores, for each table, the leaf partitions its replica
// is consistent with (see ReadPartitions).
func RecordPartitions(ctx context.Context, conn *pgx.Conn, leaves map[schema.TableName]string) error {
	for n, l := range leaves {
		if _, err := conn.Exec(ctx, PartitionsSQL(n, l)); err != nil {
			return fmt.Errorf("recording the partitions of %s: %w", n.QualifiedName(), sanitize(err))
		}
	}
	return nil
}

// PartitionsSQL is the statement that records a table's leaf partitions.
func PartitionsSQL(n schema.TableName, leaves string) string {
	return `UPDATE pgveil.tables SET partitions = ` + schema.QuoteLiteral(leaves) +
		` WHERE schema_name = ` + schema.QuoteLiteral(n.Schema) + ` AND table_name = ` + schema.QuoteLiteral(n.Name)
}

// RecordRules stores, for each table, the fingerprint of the rules its
// replica was copied under (see TableState.RulesHash).
func RecordRules(ctx context.Context, conn *pgx.Conn, hashes map[schema.TableName]string) error {
	for n, h := range hashes {
		_, err := conn.Exec(ctx, `UPDATE pgveil.tables SET rules_hash = $3 WHERE schema_name = $1 AND table_name = $2`, n.Schema, n.Name, h)
		if err != nil {
			return fmt.Errorf("recording the rules of %s.%s: %w", n.Schema, n.Name, sanitize(err))
		}
	}
	return nil
}
