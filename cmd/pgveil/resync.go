package main

import (
	"context"
	"errors"
	"fmt"

	"pgveil/replicate"
)

// runResync prepares a full re-copy after the replication slot was lost:
// it drops the slot if it still exists and removes the target's
// checkpoint, so that the next start of pgveil copies every table again
// (each replaced in one transaction: readers never see it empty or half
// copied) and streams from a new slot.
func runResync(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "resync")
	file := configFlag(fs)
	force := fs.Bool("force", false, "start over even though the slot is healthy (every table is copied again)")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	cfg, _, code := loadRules(e, *file)
	if code >= 0 {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "pgveil resync: %v\n", err)
		return exitProblems
	}
	src, err := openSource(ctx, cfg)
	if err != nil {
		return fail(fmt.Errorf("connecting to the source: %w", err))
	}
	defer src.Close(context.Background())
	dst, err := openTarget(ctx, cfg)
	if err != nil {
		return fail(fmt.Errorf("connecting to the target: %w", err))
	}
	defer dst.Close(context.Background())
	slot := cfg.Source.Slot
	r, err := replicate.StartOver(ctx, src, dst, slot, *force)
	switch {
	case errors.Is(err, replicate.ErrSlotHealthy):
		return fail(fmt.Errorf("slot %s (wal_status %s): %w (--force)", slot, r.WALStatus, err))
	case err != nil:
		return fail(fmt.Errorf("slot %s: %w", slot, err))
	}
	if r.SlotDropped {
		fmt.Fprintf(e.stdout, "dropped replication slot %s (wal_status was %s)\n", slot, r.WALStatus)
	} else {
		fmt.Fprintf(e.stdout, "replication slot %s did not exist\n", slot)
	}
	if r.CheckpointCleared {
		fmt.Fprintf(e.stdout, "removed the target's checkpoint of slot %s\n", slot)
	}
	fmt.Fprintln(e.stdout, "Start pgveil: it creates the slot, copies every table again (each replaced in one transaction:\nreaders wait for it, never see it empty or half copied), then streams. Until then the replica keeps its rows.")
	return exitOK
}
