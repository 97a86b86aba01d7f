package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pgveil/replicate"
)

// TestResync: after the slot is lost, resync prepares a full re-copy and
// the next start brings the replica back to the masked source, while a
// reader never finds a table empty. resync refuses while pgveil runs, and
// for a healthy slot unless forced.
func TestResync(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	p := s.start()
	s.sync(p)
	s.streaming(p)
	if code, _, errOut := s.cli("resync", "-c", s.config, "--force"); code != exitProblems || !strings.Contains(errOut, "in use: stop pgveil first") {
		t.Errorf("resync while pgveil streams: exit %d, %q", code, errOut)
	}
	s.terminate(p)
	waitSlotIdle(t, s)
	if code, _, errOut := s.cli("resync", "-c", s.config); code != exitProblems || !strings.Contains(errOut, "healthy") {
		t.Errorf("resync of a healthy slot: exit %d, %q", code, errOut)
	}

	// The slot is lost, and production changes meanwhile: those changes
	// never reach pgveil through the stream.
	s.exec(`SELECT pg_drop_replication_slot('pgveil')`)
	s.exec(`UPDATE customers SET city = 'Lost ' || id WHERE id % 4 = 0`)
	s.exec(`DELETE FROM orders WHERE id % 6 = 0`)
	code, out, errOut := s.cli("resync", "-c", s.config)
	if code != exitOK || !strings.Contains(out, "slot pgveil did not exist") || !strings.Contains(out, "removed the target's checkpoint") {
		t.Fatalf("resync: exit %d\n%s%s", code, out, errOut)
	}
	// Nothing else to do a second time.
	if code, _, errOut := s.cli("resync", "-c", s.config); code != exitProblems || !strings.Contains(errOut, "nothing to start over") {
		t.Errorf("resync again: exit %d, %q", code, errOut)
	}

	// A reader counts the replica's customers while the tables are copied
	// again: it may wait, never see the table empty. pgveil starts once
	// the reader has looked, however long its connection took.
	ctx, stop := context.WithCancel(ctx)
	var looks, empty atomic.Int64
	done := make(chan error, 1)
	looked := make(chan struct{})
	go func() {
		rd, err := replicate.ConnectTarget(ctx, s.dstDSN)
		if err != nil {
			done <- err
			return
		}
		defer rd.Close(context.Background())
		for ctx.Err() == nil {
			var n int64
			if err := rd.QueryRow(ctx, `SELECT count(*) FROM public.customers`).Scan(&n); err != nil {
				if ctx.Err() == nil {
					done <- err
					return
				}
				break
			}
			if looks.Add(1) == 1 {
				close(looked)
			}
			if n == 0 {
				empty.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		done <- nil
	}()
	select {
	case <-looked:
	case err := <-done:
		t.Fatalf("reader: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("the reader did not look at the replica within 3 minutes")
	}
	p = s.start()
	s.sync(p)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("reader: %v", err)
	}
	s.verify()
	if empty.Load() > 0 || looks.Load() == 0 {
		t.Errorf("reader: %d of %d looks found customers empty", empty.Load(), looks.Load())
	}
	s.noCanary("the log", p.Output())
}

// waitSlotIdle waits until the slot of the example rules is not active
// (its walsender ends after pgveil has: within a moment, on a loaded
// machine longer).
func waitSlotIdle(t *testing.T, s *site) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := replicate.ReadSlot(context.Background(), s.src, "pgveil")
		if err != nil {
			t.Fatal(err)
		}
		if !st.Active {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the slot stayed active for 3 minutes after pgveil stopped")
}
