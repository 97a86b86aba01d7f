package replicate

import (
	"context"
	"errors"
	"testing"
)

// TestStartOverRefusesARunningPgveil: while pgveil copies the tables its
// slot is not active yet, but its replication connection is there, and
// StartOver must not drop the slot under it.
func TestStartOverRefusesARunningPgveil(t *testing.T) {
	e := newE2E(t, `CREATE TABLE t (id int PRIMARY KEY);`, "  t:\n    columns: {id: keep}\n")
	ctx := context.Background()
	e.exec(`SELECT pg_create_logical_replication_slot('s1', 'pgoutput')`)
	repl, err := connectReplication(ctx, e.srcDSN, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StartOver(ctx, e.src, e.dst, "s1", true); !errors.Is(err, ErrSlotActive) {
		t.Fatalf("with pgveil's stream connection open: %v, want ErrSlotActive", err)
	}
	// Another slot's connection does not count.
	other, err := connectReplication(ctx, e.srcDSN, "s2")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	repl.Close(ctx)
	e.waitSlotInactive() // its backend ends after the close
	// A slot that is not lost is left alone unless forced.
	if _, err := StartOver(ctx, e.src, e.dst, "s1", false); !errors.Is(err, ErrSlotHealthy) {
		t.Fatalf("healthy slot: %v, want ErrSlotHealthy", err)
	}
	r, err := StartOver(ctx, e.src, e.dst, "s1", true)
	if err != nil || !r.SlotDropped || r.CheckpointCleared {
		t.Fatalf("forced: %+v, %v", r, err)
	}
	if s, err := ReadSlot(ctx, e.src, "s1"); err != nil || s.Exists {
		t.Fatalf("the slot is still there: %+v, %v", s, err)
	}
}
