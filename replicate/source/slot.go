package source

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"pgveil/schema"
	"pgveil/transform"
)

// Slot is a row of pg_replication_slots, as the pipeline needs it.
type Slot struct {
	Name      string
	Exists    bool // false: there is no such slot (every other field is zero)
	Active    bool
	ActivePID int32  // the process holding it, 0 when none
	Plugin    string // pgveil's slots use pgoutput
	WALStatus string // reserved, extended, unreserved, lost
	// RetainedBytes is the WAL kept for the slot: current LSN - restart_lsn.
	RetainedBytes     int64
	ConfirmedFlushLSN pglogrepl.LSN
	CurrentLSN        pglogrepl.LSN
}

// ReadSlot reads the replication slot's state from pg_replication_slots
// (Exists is false when there is no such slot).
func ReadSlot(ctx context.Context, conn *pgx.Conn, name string) (Slot, error) {
	var s Slot
	s.Name = name
	var pid *int32
	var plugin, walStatus *string
	var confirmed *pglogrepl.LSN
	var retained *int64
	err := conn.QueryRow(ctx, `SELECT active, active_pid, plugin, wal_status, confirmed_flush_lsn, pg_current_wal_lsn(),
	       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
	  FROM pg_replication_slots WHERE slot_name = $1`, name).
		Scan(&s.Active, &pid, &plugin, &walStatus, &confirmed, &s.CurrentLSN, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("reading replication slot %s: %w", name, err)
	}
	s.Exists = true
	if pid != nil {
		s.ActivePID = *pid
	}
	if plugin != nil {
		s.Plugin = *plugin
	}
	if walStatus != nil {
		s.WALStatus = *walStatus
	}
	if confirmed != nil {
		s.ConfirmedFlushLSN = *confirmed
	}
	if retained != nil {
		s.RetainedBytes = *retained
	}
	return s, nil
}

// Unpublished returns the plan's tables the publication no longer holds.
func Unpublished(ctx context.Context, src *pgx.Conn, publication string, plan *transform.Plan) ([]schema.TableName, error) {
	rows, err := src.Query(ctx, `SELECT n.nspname::text, c.relname::text FROM pg_publication p
JOIN pg_publication_rel pr ON pr.prpubid = p.oid JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.pubname = $1`, publication)
	if err != nil {
		return nil, err
	}
	in := map[schema.TableName]bool{}
	var n schema.TableName
	if _, err := pgx.ForEachRow(rows, []any{&n.Schema, &n.Name}, func() error { in[n] = true; return nil }); err != nil {
		return nil, err
	}
	var gone []schema.TableName
	for _, tp := range plan.Tables() {
		if n := (schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}); !in[n] {
			gone = append(gone, n)
		}
	}
	return gone, nil
}

// ColumnTypes are production's columns' types, (atttypid, atttypmod) by
// column name, by table.
type ColumnTypes = map[schema.TableName]map[string][2]int64

// ReadColumnTypes reads the type and modifier of every column of the
// plan's tables, to notice type changes in the stream.
func ReadColumnTypes(ctx context.Context, src *pgx.Conn, plan *transform.Plan) (ColumnTypes, error) {
	var schemas, names []string
	for _, tp := range plan.Tables() {
		schemas = append(schemas, tp.Table.Schema)
		names = append(names, tp.Table.Name)
	}
	rows, err := src.Query(ctx, `SELECT n.nspname::text, c.relname::text, a.attname::text, a.atttypid::bigint, a.atttypmod::bigint
FROM unnest($1::text[], $2::text[]) AS t(s, r)
JOIN pg_namespace n ON n.nspname = t.s JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.r
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("reading column types: %w", err)
	}
	out := ColumnTypes{}
	var n schema.TableName
	var col string
	var oid, mod int64
	_, err = pgx.ForEachRow(rows, []any{&n.Schema, &n.Name, &col, &oid, &mod}, func() error {
		if out[n] == nil {
			out[n] = map[string][2]int64{}
		}
		out[n][col] = [2]int64{oid, mod}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading column types: %w", err)
	}
	return out, nil
}
