package replicate

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"pgveil/replicate/target"
)

// StartOverResult says what StartOver did.
type StartOverResult struct {
	SlotDropped       bool   // the slot existed and was dropped
	WALStatus         string // the slot's wal_status before, "" when it did not exist
	CheckpointCleared bool   // the target held a checkpoint of the slot, now removed
}

// ErrSlotHealthy is returned by StartOver for a slot that can still be
// read, unless forced: copying everything again is then not needed.
var ErrSlotHealthy = errors.New("the replication slot is healthy: pgveil can resume from it; to copy every table again anyway, force it")

// ErrSlotActive is returned by StartOver while a process reads the slot.
var ErrSlotActive = errors.New("the replication slot is in use: stop pgveil first")

// StartOver prepares a full re-copy after the slot was lost (dropped,
// or invalidated with wal_status = lost) or, when force is set, at any
// time: it drops the slot if it still exists and removes the target's
// checkpoint of it. The replica's tables stay as they are. On its next
// start pgveil creates the slot again and copies every table, each
// replaced in one transaction (TRUNCATE and COPY, then commit): readers
// wait for a table while it is replaced and never see it empty or half
// copied; then it streams from the new slot.
func StartOver(ctx context.Context, src, dst *pgx.Conn, slot string, force bool) (StartOverResult, error) {
	var r StartOverResult
	s, err := ReadSlot(ctx, src, slot)
	if err != nil {
		return r, fmt.Errorf("reading slot %s: %w", slot, err)
	}
	// While pgveil copies the tables, its replication connection holds
	// the slot's snapshot but the slot is not active yet.
	var streams int
	if err := src.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE application_name = $1`, streamAppName(slot)).Scan(&streams); err != nil {
		return r, fmt.Errorf("looking for a running pgveil: %w", err)
	}
	if s.Exists {
		r.WALStatus = s.WALStatus
		switch {
		case s.Active || streams > 0:
			return r, ErrSlotActive
		case s.WALStatus != "lost" && !force:
			return r, ErrSlotHealthy
		}
	}
	_, found, err := target.ReadCheckpoint(ctx, dst, slot)
	if err != nil {
		return r, err
	}
	if !s.Exists && !found && !force {
		return r, errors.New("nothing to start over from: the slot does not exist and the target holds no checkpoint of it (pgveil has not run with these settings)")
	}
	if s.Exists {
		// A slot that became active since it was read is refused by
		// PostgreSQL (SQLSTATE 55006): nothing is lost.
		if _, err := src.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
			return r, fmt.Errorf("dropping slot %s: %w", slot, err)
		}
		r.SlotDropped = true
	}
	if found {
		if _, err := dst.Exec(ctx, `DELETE FROM pgveil.checkpoint WHERE slot = $1`, slot); err != nil {
			return r, fmt.Errorf("removing the checkpoint: %w", err)
		}
		r.CheckpointCleared = true
	}
	return r, nil
}
