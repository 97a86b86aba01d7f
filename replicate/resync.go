package replicate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"pgveil/replicate/pgoutput"
	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

// liveResync re-copies some tables under a fresh snapshot while the stream
// goes on for the others: tables whose rules changed (their fingerprint in
// pgveil.tables differs), tables new to the rules, tables whose copy never
// finished.
//
// How: the stream captures (does not apply) the changes of those tables
// from the start; a temporary slot exports a snapshot at LSN L; the tables
// are copied as of L, masked with the current rules, into staging tables;
// once the copy is done and the stream has passed L, one target
// transaction replays the captured changes committed at or after L into
// the staging tables and swaps each staging table for the live one. A
// reader sees the old table until that commit, then the new one: never a
// half-masked table.
type liveResync struct {
	tables  map[schema.TableName]bool
	staging map[schema.TableName]*transform.TablePlan
	live    map[schema.TableName]*transform.TablePlan
	hashes  map[schema.TableName]string
	// leaves are the partitioned tables' leaves as the copy's snapshot
	// found them (or before), recorded at the switch.
	leaves  map[schema.TableName]string
	readers []string
	tenancy *target.Tenancy
	spill   *spill
	lsn     pglogrepl.LSN // the snapshot's consistent point
	done    chan error    // the copy's result
	copied  bool
	retryAt time.Time // after a switch that could not take its locks
	started time.Time
}

// covers reports whether t's changes are being captured.
func (rs *liveResync) covers(t schema.TableName) bool { return rs != nil && rs.tables[t] }

// capture records one message with the commit LSN of its transaction (0
// for a Relation message, which is always replayed).
func (rs *liveResync) capture(lsn pglogrepl.LSN, data []byte, inStream bool) error {
	rec := make([]byte, 9+len(data))
	binary.BigEndian.PutUint64(rec, uint64(lsn))
	if inStream {
		rec[8] = 1
	}
	copy(rec[9:], data)
	return rs.spill.add(0, rec)
}

// relationRecord keeps a Relation message with how to decode it.
func relationRecord(data []byte, inStream bool) []byte {
	rec := make([]byte, 1+len(data))
	if inStream {
		rec[0] = 1
	}
	copy(rec[1:], data)
	return rec
}

// tableName is a plan's table name.
func tableName(tp *transform.TablePlan) schema.TableName {
	return schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}
}

// startResync captures the tables' changes, exports a snapshot from a
// temporary slot, prepares the staging tables and copies the tables into
// them in the background. It returns before the copy ends.
func startResync(ctx context.Context, opts Options, prep *Prepared, tables map[schema.TableName]bool, hashes, leaves map[schema.TableName]string) (*liveResync, error) {
	cfg, log := opts.Config, opts.Logger
	rs := &liveResync{tables: tables, staging: map[schema.TableName]*transform.TablePlan{},
		live: map[schema.TableName]*transform.TablePlan{}, hashes: hashes, leaves: leaves, readers: cfg.Target.Readers,
		tenancy: TargetTenancy(cfg), done: make(chan error, 1), started: time.Now()}
	var plans, staging []*transform.TablePlan
	var names []string
	for _, tp := range prep.Plan.Tables() {
		n := tableName(tp)
		if !tables[n] {
			continue
		}
		st := target.StagingPlan(tp)
		rs.live[n], rs.staging[n] = tp, st
		plans, staging = append(plans, tp), append(staging, st)
		names = append(names, tp.Table.QualifiedName())
	}
	sort.Strings(names)
	var err error
	if rs.spill, err = newSpill(opts.Stream.SpillDir, rand.Uint32()); err != nil {
		return nil, err
	}
	fail := func(err error) (*liveResync, error) {
		rs.spill.close()
		return nil, err
	}
	tgt, err := connectTarget(ctx, cfg.Target.DSN.Reveal())
	if err != nil {
		return fail(err)
	}
	err = target.PrepareStaging(ctx, tgt, staging, prep.Catalog.Enums)
	tgt.Close(context.Background())
	if err != nil {
		return fail(err)
	}
	// The snapshot comes from a temporary slot on its own connection; the
	// stream captures from before it, so nothing committed after its
	// consistent point escapes the capture.
	repl, err := connectReplication(ctx, cfg.Source.DSN.Reveal(), cfg.Source.Slot)
	if err != nil {
		return fail(err)
	}
	slot := fmt.Sprintf("pgveil_resync_%d", rand.Uint32())
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		repl.Close(context.Background())
		return fail(fmt.Errorf("re-copy: creating a temporary slot: %w", err))
	}
	if rs.lsn, err = pglogrepl.ParseLSN(res.ConsistentPoint); err != nil {
		repl.Close(context.Background())
		return fail(fmt.Errorf("re-copy: consistent point: %w", err))
	}
	log.Info("re-copying tables whose rules changed, while the others stream", "tables", strings.Join(names, ", "), "snapshot_lsn", rs.lsn.String())
	dest := map[schema.TableName]*transform.TablePlan{}
	for n, st := range rs.staging {
		dest[n] = st
	}
	sn := &snapshotter{
		opts: opts.Snapshot, log: log, snapshot: res.SnapshotName, obs: opts.Observer,
		sourceDSN: cfg.Source.DSN.Reveal(), targetDSN: cfg.Target.DSN.Reveal(),
		plan: transform.NewPlan(plans), pub: prep.Publication, cat: prep.Catalog, dest: dest,
	}
	go func() {
		err := sn.run(ctx)
		if rw := sn.Rewritten(); err == nil && len(rw) > 0 {
			err = &schemaChange{tables: rw}
		}
		repl.Close(context.Background()) // drops the temporary slot
		rs.done <- err
	}()
	return rs, nil
}

// resyncStep moves a re-copy on between source transactions: it notes the
// end of the copy and switches the tables in once the stream has passed
// the snapshot's LSN.
func (s *streamer) resyncStep(ctx context.Context) error {
	rs := s.rs
	if rs == nil || s.inTx {
		return nil
	}
	if !rs.copied {
		select {
		case err := <-rs.done:
			if err != nil {
				var ve *transform.MaskError
				if errors.As(err, &ve) {
					return err
				}
				return fmt.Errorf("re-copying tables: %w", err)
			}
			rs.copied = true
		default:
			return nil
		}
	}
	if time.Now().Before(rs.retryAt) {
		return nil
	}
	if s.applied.LSN < rs.lsn && s.idleEnd < rs.lsn && s.committed < rs.lsn {
		return nil // changes committed before the snapshot are still coming
	}
	return s.switchIn(ctx)
}

// switchIn replays the captured changes into the staging tables and swaps
// them in, in one target transaction of its own.
func (s *streamer) switchIn(ctx context.Context) error {
	rs := s.rs
	if err := s.flush(ctx); err != nil {
		return err
	}
	if err := s.beginTarget(ctx); err != nil {
		return err
	}
	// Replay with the staging tables in the plan's place.
	rels, lookup, curLSN := s.rels, s.lookup, s.curLSN
	s.rels = map[uint32]*relation{}
	s.lookup = func(schemaName, name string) *transform.TablePlan {
		return rs.staging[schema.TableName{Schema: schemaName, Name: name}]
	}
	s.rs = nil
	var dec pgoutput.Decoder
	replayed := 0
	err := rs.spill.replay(func(rec []byte) error {
		lsn := pglogrepl.LSN(binary.BigEndian.Uint64(rec))
		data := append([]byte(nil), rec[9:]...)
		m, err := dec.Decode(data, rec[8] == 1)
		if err != nil {
			return fmt.Errorf("replaying a re-copy's changes: %w", err)
		}
		if _, isRel := m.(*pgoutput.Relation); !isRel && lsn < rs.lsn {
			return nil // already in the snapshot
		}
		s.curLSN = lsn
		replayed++
		return s.apply(ctx, m, data, rec[8] == 1)
	})
	s.rels, s.lookup, s.curLSN, s.rs = rels, lookup, curLSN, rs
	if err == nil {
		for n, live := range rs.live {
			stmts := target.SwitchSQL(live, rs.staging[n], rs.readers, rs.hashes[n])
			if l, ok := rs.leaves[n]; ok {
				stmts = append(stmts, target.PartitionsSQL(n, l))
			}
			more, terr := target.SwitchTenancySQL(live, rs.tenancy, rs.readers)
			if terr != nil {
				err = terr
				break
			}
			for _, q := range append(stmts, more...) {
				if err = s.applier.Exec(ctx, q); err != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
	}
	if err == nil {
		err = s.flush(ctx)
	}
	if err != nil {
		s.rollback()
		// By SQLSTATE, never by the message's text: a name may hold
		// "55P03". Every step above wraps with %w, and the applier's
		// server errors (target.ServerError) keep their SQLSTATE.
		if schema.IsLockTimeout(err) {
			s.log.Warn("switching re-copied tables in waits for readers' locks; trying again in 10s")
			rs.retryAt = time.Now().Add(10 * time.Second)
			return nil
		}
		return fmt.Errorf("switching re-copied tables in: %w", err)
	}
	rs.spill.close()
	s.rs = nil
	s.stats.Resyncing.Store(false)
	s.stats.Resyncs.Add(1)
	// Map every relation again: the switched tables now apply normally.
	for _, rec := range s.relMsgs {
		var d pgoutput.Decoder
		if m, err := d.Decode(rec[1:], rec[0] == 1); err == nil {
			s.relation(m.(*pgoutput.Relation))
		}
	}
	s.log.Info("re-copied tables switched in", "tables", len(rs.live), "changes_replayed", replayed,
		"seconds", time.Since(rs.started).Round(time.Millisecond).Seconds())
	if s.settled != nil {
		s.settled()
	}
	return nil
}
