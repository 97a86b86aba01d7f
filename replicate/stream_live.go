package replicate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"pgveil/replicate/pgoutput"
	"pgveil/replicate/target"
	"pgveil/schema"
)

// Big transactions applied as they stream.
//
// With protocol 2 and streaming on, the walsender sends a transaction
// bigger than logical_decoding_work_mem in chunks (Stream Start, changes,
// Stream Stop, again and again, then Stream Commit or Stream Abort). Spilled
// and applied only at Stream Commit, all the target's work starts at the
// commit: a 500k-row INSERT was visible 3.8 s after its commit against
// native's 1.9 s. So one streamed transaction at a time is applied as its
// chunks arrive, into a target transaction of its own (the live
// transaction), on a target connection and Applier of its own: the main
// stream's Applier keeps its group. At Stream Commit only the tail and the
// COMMIT remain.
//
// Its chunks are spilled as well, as for every streamed transaction. The
// spill is what makes the live path safe to leave at any point: whatever
// it cannot handle (below), it rolls the live transaction back and the
// transaction is applied from its spill at Stream Commit, as before. The
// spill costs a buffered sequential write per message, and the same disk
// as before this path existed.
//
// Guarantees kept:
//   - No half transaction visible: the live transaction commits only at
//     Stream Commit.
//   - Exactly once, in order: at Stream Commit the main group (source
//     transactions committed before this one) is committed first, then
//     the checkpoint (the stream commit's end LSN and time) is written in
//     the live transaction, which commits. A crash or disconnect at any
//     point before rolls the live transaction back (the connection closes
//     with it open); the next attempt streams again from the checkpoint,
//     and PostgreSQL sends the whole transaction again, since it commits
//     after it.
//   - Acknowledge only what is committed: the live transaction never moves
//     s.committed before its COMMIT, and while it is open no keepalive's
//     WAL end is confirmed (sendStatus).
//   - Memory bounded: the Applier sends its statements (and writes its net
//     states) every 1000 changes, so nothing grows with the transaction
//     but the spill on disk.

// liveOpener opens a target connection of its own and an Applier on it,
// set up as the stream's (tenancy, foreign keys); the function returned
// closes the connection, which rolls back a transaction left open.
type liveOpener func(ctx context.Context) (applier, func(), error)

// maxLiveSavepoints is how many sub-transactions a live transaction may
// hold before it falls back to its spill: each costs a round trip and a
// subtransaction on the target, and past 64 (PGPROC_MAX_CACHED_SUBXIDS)
// every snapshot on the target, Metabase's included, overflows its
// subtransaction cache and reads pg_subtrans. A loop of PL/pgSQL blocks
// with EXCEPTION (a subtransaction per row) is better applied from the
// spill at its commit.
const maxLiveSavepoints = 64

// liveTx is the streamed transaction being applied as it arrives.
type liveTx struct {
	xid uint32
	// rels is the relation map its changes are applied with: the
	// stream's when it started, then its own Relation messages (sent
	// again by the walsender in every streamed transaction, for the
	// sub-transaction that first uses the table). The main stream's
	// transactions keep theirs: the two may disagree when this one
	// changes a table's schema.
	rels map[uint32]*relation
	// relMsgs are its own Relation messages: into the stream's map at
	// its commit, as a replay from the spill would.
	relMsgs map[uint32][]byte
	// savepoints are its sub-transactions with applied changes, in the
	// order of their first change; counts, what was counted before each.
	savepoints []uint32
	counts     []liveCounts
	stats      *Stats
	obs        *liveObserver
	bytes      int64
}

// liveCounts are a live transaction's change counts at one point.
type liveCounts struct {
	inserts, updates, deletes, truncates int64
	changes                              map[[2]string]int
}

func (lt *liveTx) snapshot() liveCounts {
	return liveCounts{lt.stats.Inserts.Load(), lt.stats.Updates.Load(), lt.stats.Deletes.Load(),
		lt.stats.Truncates.Load(), maps.Clone(lt.obs.changes)}
}

func (lt *liveTx) restore(c liveCounts) {
	lt.stats.Inserts.Store(c.inserts)
	lt.stats.Updates.Store(c.updates)
	lt.stats.Deletes.Store(c.deletes)
	lt.stats.Truncates.Store(c.truncates)
	lt.obs.changes = c.changes
}

// liveObserver holds the changes of a live transaction until it commits:
// the metrics count what the replica holds, never the changes of a
// transaction that aborts or is applied again from its spill.
type liveObserver struct {
	Observer
	changes map[[2]string]int // by table and op
}

func (o *liveObserver) Change(table, op string) { o.changes[[2]string{table, op}]++ }

// savepointName names the target savepoint of sub-transaction xid: digits
// only, so it needs no quoting.
func savepointName(xid uint32) string { return "pgveil_sub_" + strconv.FormatUint(uint64(xid), 10) }

// goLive makes streamed transaction xid, whose first chunk starts, the
// live one when it can be: one live transaction at a time (a transaction
// whose first chunk arrives while another is live is spilled whole, as
// are the others), none while a re-copy is under way (its captured
// changes need the commit LSN of their transaction, known only at Stream
// Commit; s.rs is set only when the stream starts, so a live transaction
// never meets one).
func (s *streamer) goLive(ctx context.Context, xid uint32) error {
	if s.openLive == nil || s.live != nil || s.rs != nil {
		return nil
	}
	if s.liveAp == nil {
		if time.Now().Before(s.liveRetry) {
			return nil
		}
		ap, closeFn, err := s.openLive(ctx)
		if err != nil {
			// The target refusing one more connection (max_connections)
			// costs speed, not replication: spill, and try again later.
			s.log.Warn("cannot open the target connection big transactions are applied through as they stream: they are applied at their commit instead",
				"error", err.Error(), "retry_in", liveRetry.String())
			s.liveRetry = time.Now().Add(liveRetry)
			return nil
		}
		s.liveAp, s.liveClose = ap, closeFn
	}
	if err := s.liveChunk(ctx); err != nil {
		// The main group's commit failed: the stream stops with it, at the
		// next message or flush (its applier rolled back).
		return err
	}
	if err := s.liveAp.Begin(ctx); err != nil {
		s.log.Warn("cannot begin a transaction on the target connection big transactions are applied through: applying this one at its commit",
			"error", err.Error())
		s.closeLive()
		return nil
	}
	s.live = &liveTx{xid: xid, rels: maps.Clone(s.rels), relMsgs: map[uint32][]byte{}, stats: &Stats{},
		obs: &liveObserver{Observer: s.obs, changes: map[[2]string]int{}}}
	s.log.Debug("applying a streamed transaction as it arrives", "xid", xid)
	return nil
}

// liveRetry is how long after a failed connection the live path is tried
// again.
const liveRetry = 30 * time.Second

// isLive reports whether xid is the live transaction.
func (s *streamer) isLive(xid uint32) bool { return s.live != nil && s.live.xid == xid }

// liveChunk prepares a chunk of the live transaction: the main group, if
// open, is committed first. Otherwise the live transaction could wait for
// a row lock the group holds (a row the group changed and the streamed
// transaction changes after it), while the one goroutine that would
// commit the group waits for the live transaction: a deadlock no server
// can see. Committing it here is exact: it holds whole source
// transactions (a chunk never starts inside one).
func (s *streamer) liveChunk(ctx context.Context) error {
	if s.live != nil {
		s.log.Debug("streamed transaction: a chunk", "xid", s.live.xid, "changes_before", s.liveAp.Pending())
	}
	if s.groupOpen() {
		return s.flush(ctx)
	}
	return nil
}

// liveUnsafe says why message m cannot be applied in the live
// transaction, or "" when it can.
func (s *streamer) liveUnsafe(m pgoutput.Message) string {
	var oid uint32
	insert := false
	switch m := m.(type) {
	case *pgoutput.Truncate:
		// TRUNCATE takes an ACCESS EXCLUSIVE lock on the replica's table
		// (and, through truncateSQL, on tables whose foreign keys it
		// drops) that the live transaction would hold until its commit:
		// Metabase's queries, and the main stream's writes to a table
		// whose replica key production does not enforce, would wait for
		// the whole stream. At the commit, it is held for a moment.
		return "a TRUNCATE"
	case *pgoutput.Insert:
		oid, insert = m.RelationID, true
	case *pgoutput.Update:
		oid = m.RelationID
	case *pgoutput.Delete:
		oid = m.RelationID
	default:
		return ""
	}
	r := s.live.rels[oid]
	if r == nil || r.table == nil {
		return "" // an error or nothing, as applying it says
	}
	if r.filter != nil {
		// An in-process row filter reads unchanged TOAST values back from
		// production's committed rows: before this transaction commits,
		// those are the values before it, and a row the where excludes
		// could pass. At the commit, they are this transaction's.
		return "a table with an in-process row filter (" + r.label + ")"
	}
	if s.referenced[r.name] {
		// A replica foreign key references the table: the live
		// transaction's writes lock its rows (an upsert locks the key
		// too), and the main group's deferred check of a new
		// referencing row (FOR KEY SHARE) would wait for the live
		// transaction at the group's commit, which production allowed
		// (a non-key UPDATE does not block a reference to its row
		// there): the goroutine would wait for itself.
		return "a table a replica foreign key references (" + r.label + ")"
	}
	if s.referencing[r.name] && !insert {
		// The other side: a row of the live transaction's UPDATE or
		// DELETE is locked (an upsert locks its key too), and the main
		// group's deferred check of a referenced row it deletes reads the
		// referencing rows FOR KEY SHARE: it would wait for the live
		// transaction. New rows are safe: no other session sees them, and
		// the live transaction checks its own at its commit, after the
		// group's.
		return "an update or delete of a table with a replica foreign key (" + r.label + ")"
	}
	if !insert && !target.HasPrimaryKey(r.table) {
		// Without a key, an UPDATE or DELETE picks the first row equal to
		// the old one: with identical rows, the live transaction and the
		// main group pick the same one in the replica where production
		// had two, and the main group would wait for the live
		// transaction (then the lock-wait bound restarts the attempt and
		// turns the live path off for the run).
		return "an update or delete of a table without a key (" + r.label + ")"
	}
	return ""
}

// liveApply applies message m of (sub-)transaction xid of the live
// transaction, already spilled. Whatever goes wrong rolls the live
// transaction back and leaves the transaction to its spill: applied from
// it at Stream Commit, a value no rule can mask or a schema change is
// reported there with the commit LSN, and a target error where it would
// have happened without the live path.
func (s *streamer) liveApply(ctx context.Context, m pgoutput.Message, data []byte, xid uint32) error {
	lt := s.live
	if why := s.liveUnsafe(m); why != "" {
		s.fallBack(ctx, why)
		return nil
	}
	switch m := m.(type) {
	case *pgoutput.Insert, *pgoutput.Update, *pgoutput.Delete:
		// A savepoint at the first change of each sub-transaction (change
		// messages in a stream carry the sub-transaction's xid), so that
		// its abort undoes its changes and those of every sub-transaction
		// whose first change came after it, as PostgreSQL's apply worker
		// does (worker.c, pa_start_subtrans).
		if xid != lt.xid && !slices.Contains(lt.savepoints, xid) {
			if len(lt.savepoints) >= maxLiveSavepoints {
				s.fallBack(ctx, "more than "+strconv.Itoa(maxLiveSavepoints)+" sub-transactions")
				return nil
			}
			if err := s.liveAp.Exec(ctx, "SAVEPOINT "+savepointName(xid)); err != nil {
				s.fallBack(ctx, "the target: "+err.Error())
				return nil
			}
			lt.savepoints, lt.counts = append(lt.savepoints, xid), append(lt.counts, lt.snapshot())
		}
	case *pgoutput.Relation:
		lt.relMsgs[m.OID] = relationRecord(data, true)
	default:
		return nil
	}
	// The change goes through the stream's one path (apply, emit), with
	// the live transaction's applier, relations and counters in place of
	// the main stream's for its duration.
	ap, rels, relMsgs, stats, obs, curLSN, bytes := s.applier, s.rels, s.relMsgs, s.stats, s.obs, s.curLSN, s.groupBytes
	s.applier, s.rels, s.relMsgs, s.stats, s.obs, s.curLSN, s.groupBytes = s.liveAp, lt.rels, map[uint32][]byte{}, lt.stats, lt.obs, 0, 0
	err := s.apply(ctx, m, data, true)
	lt.bytes += s.groupBytes
	s.applier, s.rels, s.relMsgs, s.stats, s.obs, s.curLSN, s.groupBytes = ap, rels, relMsgs, stats, obs, curLSN, bytes
	if err != nil {
		s.fallBack(ctx, err.Error())
	}
	return nil
}

// fallBack leaves the live transaction to its spill: rolled back now,
// applied from the spill at Stream Commit.
func (s *streamer) fallBack(ctx context.Context, why string) {
	s.log.Info("a big transaction streamed in pieces is applied at its commit instead of as it arrives", "xid", s.live.xid, "because", why)
	s.rollbackLive(ctx)
}

// rollbackLive abandons the live transaction.
func (s *streamer) rollbackLive(ctx context.Context) {
	s.live = nil
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.liveAp.Rollback(rctx); err != nil {
		// A connection that cannot roll back is of no further use.
		s.closeLive()
	}
}

// liveAbort handles Stream Abort of the live transaction: ROLLBACK of the
// whole transaction, or ROLLBACK TO SAVEPOINT of a sub-transaction, which
// also discards the savepoints taken after it, as a nested abort must
// (and PostgreSQL sends no abort for those).
func (s *streamer) liveAbort(ctx context.Context, m *pgoutput.StreamAbort) error {
	lt := s.live
	if m.SubXid == m.Xid {
		s.rollbackLive(ctx)
		return nil
	}
	i := slices.Index(lt.savepoints, m.SubXid)
	if i < 0 {
		return nil // no change of it was applied
	}
	if s.liveTenancy {
		// The Applier has noted the tenant values of the rows it undoes,
		// and would give them login roles at the commit: a row that never
		// reaches the replica must not name a role (target.Applier.Apply).
		s.fallBack(ctx, "a sub-transaction aborted under tenancy")
		return nil
	}
	if err := s.liveAp.Exec(ctx, "ROLLBACK TO SAVEPOINT "+savepointName(m.SubXid)); err != nil {
		s.fallBack(ctx, "the target: "+err.Error())
		return nil
	}
	lt.restore(lt.counts[i])
	lt.savepoints, lt.counts = lt.savepoints[:i], lt.counts[:i]
	return nil
}

// liveCommit commits the live transaction at its Stream Commit.
func (s *streamer) liveCommit(ctx context.Context, m *pgoutput.StreamCommit) error {
	lt := s.live
	if sp := s.streams[m.Xid]; sp != nil {
		sp.close()
		delete(s.streams, m.Xid)
	}
	if m.CommitLSN < s.start {
		// Applied before the restart (a walsender does not stream what it
		// skips, but should one).
		s.rollbackLive(ctx)
		return nil
	}
	// The main group holds source transactions committed before this one:
	// it commits first, with its own checkpoint, lower than this one's.
	if err := s.flush(ctx); err != nil {
		s.rollbackLive(ctx)
		return err
	}
	s.live = nil
	pos := target.Position{LSN: m.EndLSN, CommitTime: m.CommitTime}
	changes, began := s.liveAp.Pending(), time.Now()
	err := s.liveAp.Commit(ctx, pos)
	s.stats.TargetWait.Add(int64(time.Since(began)) + lt.stats.TargetWait.Load())
	if err != nil {
		// As flush: a commit that failed is not in the target (or, when the
		// connection broke during it, the next attempt's checkpoint says).
		s.closeLive()
		s.targetCommitFailed()
		return fmt.Errorf("target: %w", err)
	}
	s.sourceCommit(pos)
	s.stats.Streamed.Add(1)
	s.stats.StreamedLive.Add(1)
	s.obs.Streamed(true)
	s.stats.Inserts.Add(lt.stats.Inserts.Load())
	s.stats.Updates.Add(lt.stats.Updates.Load())
	s.stats.Deletes.Add(lt.stats.Deletes.Load())
	s.stats.Truncates.Add(lt.stats.Truncates.Load())
	for k, n := range lt.obs.changes {
		for range n {
			s.obs.Change(k[0], k[1])
		}
	}
	// Its Relation messages now map the stream's changes, as a replay
	// from the spill leaves them.
	for oid, rec := range lt.relMsgs {
		s.relMsgs[oid], s.rels[oid] = rec, lt.rels[oid]
	}
	s.targetCommitted(pos, changes, lt.bytes, began)
	// Info: big transactions are rare, and an operator tracing a burst of
	// lag wants to see them and what was left to do at their commit.
	s.log.Info("a big transaction applied as it streamed", "xid", lt.xid, "changes", changes, "commit_s", time.Since(began).Seconds())
	return nil
}

// closeLive closes the live connection (rolling back what it holds); the
// next streamed transaction opens another.
func (s *streamer) closeLive() {
	s.live = nil
	if s.liveClose != nil {
		s.liveClose()
	}
	s.liveAp, s.liveClose = nil, nil
}

// fkTables are the tables a replica foreign key references, and those
// that have one.
func fkTables(keys []target.ForeignKey) (referenced, referencing map[schema.TableName]bool) {
	referenced, referencing = map[schema.TableName]bool{}, map[schema.TableName]bool{}
	for _, k := range keys {
		referenced[k.RefTable], referencing[k.Table] = true, true
	}
	return referenced, referencing
}

// A main group's change that waits on a lock while a transaction is live
// can only be waiting on the live transaction (nothing else writes the
// replica's tables), and the live transaction waits for the stream, which
// waits for the change: the stream would stop for good. The paths known
// to lead there leave the live path beforehand (liveUnsafe: foreign keys,
// TRUNCATE, re-copies); a constraint or unique index added to the replica
// by hand could still. So a main group begun while a transaction is live
// waits at most LiveLockWait for a lock; the lock timeout ends the attempt
// as a liveLockWait, and the attempts after it apply every streamed
// transaction at its commit (runState.liveOff).

// boundLiveWait bounds the open main group's lock waits while a
// transaction is live.
func (s *streamer) boundLiveWait(ctx context.Context) error {
	s.groupLive = s.live != nil
	if !s.groupLive {
		return nil
	}
	ms := strconv.FormatInt(s.opts.LiveLockWait.Milliseconds(), 10)
	if err := s.applier.Exec(ctx, `SET LOCAL lock_timeout = '`+ms+`ms'`); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	return nil
}

// liveLockWait is the error of a main group's change that waited on the
// live transaction (see boundLiveWait).
type liveLockWait struct {
	wait time.Duration
	err  error
}

func (e *liveLockWait) Error() string {
	return fmt.Sprintf("a change waited more than %s on a lock held by a big transaction applied as it streams (a constraint or unique index added to the replica by hand?): %v", e.wait, e.err)
}

func (e *liveLockWait) Unwrap() error { return e.err }

// blameLive turns the lock timeout of a main group begun while a
// transaction was live into a liveLockWait.
func (s *streamer) blameLive(err error) error {
	if err != nil && s.groupLive && schema.IsLockTimeout(err) {
		return &liveLockWait{wait: s.opts.LiveLockWait, err: err}
	}
	return err
}
