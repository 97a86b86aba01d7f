package replicate

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
)

// copyDone records which tables an initial copy has finished.
type copyDone struct {
	roundCounter
	mu   sync.Mutex
	done map[string]bool
}

func (c *copyDone) SnapshotProgress(table string, _, _, _ int64, done bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = map[string]bool{}
	}
	c.done[table] = c.done[table] || done
}

// A migration never waits for the whole initial copy: pgveil holds a
// table's lock only while it reads one chunk of it. While the copy of one
// table is held up, production alters another that is already copied, and
// rewrites (VACUUM FULL) the held-up one between two of its chunks: both
// succeed at once, and the rewritten table, whose chunks no longer match
// the snapshot's pages, is copied again, so the replica ends equal to the
// masked source.
func TestInitialCopyHoldsLocksPerChunk(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE first (id int PRIMARY KEY, v text);
CREATE TABLE big (id int PRIMARY KEY, v text);
-- One worker copies the largest table first: first, then big.
INSERT INTO first SELECT g, repeat('f', 40) || g FROM generate_series(1, 40000) g;
INSERT INTO big SELECT g, repeat('b', 40) || g FROM generate_series(1, 20000) g;
DELETE FROM big WHERE id % 3 = 0; -- VACUUM FULL moves rows to other pages
-- The copy of big waits at this gate for as long as the test holds the
-- advisory lock, each chunk in its own transaction.
-- Marked IMMUTABLE (a lie, for the test): a where must be deterministic.
CREATE FUNCTION gate(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN true; END $$;`,
		`  first:
    columns: {id: keep, v: keep}
  big:
    where: "public.gate(id) AND id > 0"
    columns: {id: keep, v: keep}
`)
	ctx := context.Background()
	gate := pgtest.Connect(t, e.srcDSN)
	if _, err := gate.Exec(ctx, `SELECT pg_advisory_lock(4242)`); err != nil {
		t.Fatal(err)
	}
	obs := &copyDone{}
	e.workers = 1
	e.startWith(obs)
	e.eventually("first copied while big waits at the gate", func() (bool, string) {
		obs.mu.Lock()
		firstDone := obs.done["public.first"]
		obs.mu.Unlock()
		var waiting int
		err := e.src.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND datname = current_database()`).Scan(&waiting)
		return err == nil && firstDone && waiting > 0, "first copied " + boolString(firstDone)
	})

	// A migration on the copied table: under a lock_timeout well below
	// the copy's remaining time, which is unbounded here.
	e.exec(`SET lock_timeout = '20s'; ALTER TABLE first ADD COLUMN added int; RESET lock_timeout`)

	// A rewrite of the table being copied: it waits for the chunks under
	// way (their transactions hold its lock), not for the whole copy.
	vacuumed := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, e.srcDSN)
		if err != nil {
			vacuumed <- err
			return
		}
		defer conn.Close(ctx)
		if _, err = conn.Exec(ctx, `SET lock_timeout = '60s'`); err == nil {
			_, err = conn.Exec(ctx, `VACUUM FULL big`)
		}
		vacuumed <- err
	}()
	e.eventually("VACUUM FULL waiting for the chunks under way", func() (bool, string) {
		select {
		case err := <-vacuumed:
			t.Fatalf("VACUUM FULL ended while the copy of big was held up: %v", err)
		default:
		}
		var n int
		err := e.src.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%VACUUM FULL big%' AND wait_event_type = 'Lock' AND wait_event = 'relation'`).Scan(&n)
		return err == nil && n > 0, "not waiting yet"
	})
	if _, err := gate.Exec(ctx, `SELECT pg_advisory_unlock(4242)`); err != nil {
		t.Fatal(err)
	}
	if err := <-vacuumed; err != nil {
		t.Fatalf("VACUUM FULL during the copy: %v", err)
	}
	e.sync()
	e.verify()
	if !strings.Contains(e.logs.String(), "production rewrote a table while it was being copied") {
		t.Errorf("the rewrite went unnoticed; log:\n%s", e.logs.String())
	}
}

func boolString(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
