package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/schema"
	"pgveil/transform"
)

// runState is what a Run carries from one attempt to the next: not
// configuration, and owned by Run's goroutine (an attempt runs in it).
type runState struct {
	// forceResync are tables the next attempt copies again whatever
	// their fingerprint (they missed changes).
	forceResync map[schema.TableName]bool
	// replanned: the attempt follows a schema change production made
	// under the previous one.
	replanned bool
	// fkBroken are the replica's foreign keys that production's changes
	// broke while streaming (target.BrokenID to why): left out by every
	// later attempt of this Run, which would meet the same changes again.
	fkBroken map[string]string
	// settled is called when the attempt streams with every table of
	// its rules copied: the rules then need nothing more of production.
	settled func()
	// liveOff: an attempt's change waited on a big transaction applied
	// as it streamed (liveLockWait); the later attempts of this Run apply
	// every streamed transaction at its commit.
	liveOff bool
	// streaming is when the last attempt began streaming; zero when it
	// never did. Run resets the restart backoff after one that streamed
	// for a while.
	streaming time.Time
}

// attempt is one attempt's state: its connections, the prepared plan and
// what the steps of runOnce decide for the next ones. Each step says
// what it guarantees once it returns nil.
type attempt struct {
	opts Options // Config: the rules in force for this attempt
	run  *runState
	cfg  *rules.Config
	log  *slog.Logger

	src, tgt *pgx.Conn      // connect
	repl     *pgconn.PgConn // startPosition
	closers  []func()       // closed, last first, when the attempt ends

	pos   target.Position // the checkpoint, when found
	found bool            // the target holds a checkpoint: the replica was copied
	prep  *Prepared

	hashes     map[schema.TableName]string // the rules' fingerprints, by table
	resync     map[schema.TableName]bool   // tables to copy again
	fks        *target.ForeignKeys
	views      *viewWatch
	tenancy    *target.Tenancy
	parts      *partitionWatch
	copyLeaves map[schema.TableName]string // leaves of the tables to copy, recorded once copied

	start   pglogrepl.LSN   // where the stream starts
	rs      *liveResync     // the re-copy running beside the stream, if any
	applier *target.Applier // the stream's, once built
}

// runOnce is one attempt: it replicates until ctx ends or something
// ends the attempt (an error, a restartReason).
func runOnce(ctx context.Context, opts Options, run *runState) error {
	a := &attempt{opts: opts, run: run, cfg: opts.Config, log: opts.Logger}
	defer a.close()
	for _, step := range []func(context.Context) error{a.connect, a.prepareSource, a.prepareTarget, a.startPosition} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return a.stream(ctx)
}

// close closes what the attempt opened, last first.
func (a *attempt) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// connect opens the connections to production and the replica and reads
// the checkpoint: found says whether the replica was copied.
func (a *attempt) connect(ctx context.Context) error {
	var err error
	if a.src, err = connectSource(ctx, a.cfg.Source.DSN.Reveal()); err != nil {
		return err
	}
	a.closers = append(a.closers, func() { a.src.Close(context.Background()) })
	if a.tgt, err = connectTarget(ctx, a.cfg.Target.DSN.Reveal()); err != nil {
		return err
	}
	a.closers = append(a.closers, func() { a.tgt.Close(context.Background()) })
	if a.pos, a.found, err = target.ReadCheckpoint(ctx, a.tgt, a.cfg.Source.Slot); err != nil {
		return err
	}
	if a.found {
		a.opts.Observer.Checkpoint(a.pos.LSN, a.pos.CommitTime)
	}
	return nil
}

// prepareSource compiles the rules against production's catalog, checks
// the prerequisites and makes the publication match the rules (or, when
// only the tables' owner can, stops with the statements to run).
func (a *attempt) prepareSource(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	// The first start holds the rules to what validate does: every column
	// of a listed table has a rule, every name exists. Once replicating,
	// production's schema changes are reported, not fatal.
	// After a schema change (a column or table gone while the first copy
	// ran) production's schema is followed as when streaming: reported,
	// not fatal.
	prep, err := prepare(ctx, a.src, cfg, a.opts.Registry, a.found || a.run.replanned)
	if err != nil {
		return err
	}
	a.prep = prep
	for _, w := range prep.Warnings {
		log.Warn("rules", "warning", w.String())
	}
	for _, pt := range prep.Publication.Tables {
		for _, n := range pt.Notes {
			log.Info("publication", "table", pt.Name.Schema+"."+pt.Name.Name, "note", n)
		}
	}
	changed, err := source.EnsurePublication(ctx, a.src, prep.Publication, prep.Catalog)
	if oe := (*source.OwnerNeededError)(nil); errors.As(err, &oe) && oe.Serves {
		// Stricter than the rules ask, and enough to replicate: go on.
		log.Warn(oe.Warning())
		err = nil
	}
	if err != nil {
		return blocked(a.found, fatalUnlessTransient(err))
	}
	if changed {
		log.Info("publication updated", "publication", cfg.Source.Publication)
	}
	return nil
}

// prepareTarget brings the replica in line with the rules, except the
// tables to copy again: they stay as they are until their new copy is
// switched in. Once it returns, the replica's tables, readers, tenancy,
// views and foreign keys fit the rules, the tables no rule names are
// gone, and resync names the tables to copy again.
func (a *attempt) prepareTarget(ctx context.Context) error {
	cfg, log, tgt, prep := a.cfg, a.log, a.tgt, a.prep
	// Which tables must be copied again: those copied under other rules
	// (or never finished). They stay as they are until their new copy is
	// switched in; the others are brought in line by Setup now.
	keys, err := cfg.Keys()
	if err != nil {
		return fatal(err)
	}
	if len(a.run.forceResync) > 0 {
		marks := map[schema.TableName]string{}
		for n := range a.run.forceResync {
			marks[n] = target.ResyncRequired
		}
		if err := target.RecordRules(ctx, tgt, marks); err != nil {
			return err
		}
	}
	hashes, resync, removed, err := target.CompareRules(ctx, tgt, prep.Plan, keys.Fingerprint(), a.found)
	if err != nil {
		return err
	}
	a.hashes, a.resync = hashes, resync
	// The replica's foreign keys: those that no longer fit, and those
	// touching tables about to be copied, go before Setup reshapes the
	// tables and before any copy truncates or replaces them.
	a.fks = planForeignKeys(ctx, a.src, tgt, cfg, prep.Plan, log)
	a.fks.Exclude(a.run.fkBroken)
	if err := target.DropForeignKeys(ctx, tgt, a.fks, prep.Plan, resync, !a.found); err != nil {
		return err
	}
	var setupTables []*transform.TablePlan
	for _, tp := range prep.Plan.Tables() {
		if !resync[tableName(tp)] {
			setupTables = append(setupTables, tp)
		}
	}
	// Readers or tenant logins that can still create something (large
	// objects, WAL messages) stop the first start, as setup-sql says; an
	// existing replica keeps streaming and says so at every start, since
	// they could do the same before this check existed.
	createsOK := func(err error) error {
		var ce *target.CreatesError
		if a.found && errors.As(err, &ce) {
			log.Error("readers or tenant logins can create objects in the analytics database; replication goes on", "problem", err.Error())
			return nil
		}
		return err
	}
	// Views the rules no longer allow go before Setup drops their columns.
	a.views = newViewWatch(a.opts, prep.Plan)
	if err := a.views.dropStale(ctx, a.src, tgt); err != nil {
		return err
	}
	if err := createsOK(target.Setup(ctx, tgt, transform.NewPlan(setupTables), prep.Catalog.Enums, cfg.Target.Readers)); err != nil {
		return fatalUnlessTransient(err)
	}
	a.tenancy = TargetTenancy(cfg)
	revoked, err := target.SetupTenancy(ctx, tgt, transform.NewPlan(setupTables), a.tenancy, cfg.Target.Readers)
	if err = createsOK(err); err != nil {
		return fatalUnlessTransient(err)
	}
	for _, v := range revoked {
		log.Warn("tenants lost SELECT on a view that would show them other tenants' rows (materialized, or without security_invoker)", "view", v)
	}
	if err := target.DropRemoved(ctx, tgt, removed, log); err != nil {
		return err
	}
	if err := a.views.sync(ctx, a.src, tgt); err != nil {
		log.Warn("views: creating production's views on the replica", "error", err.Error())
	}
	if a.found {
		// The tables being copied again get theirs once switched in.
		if err := target.AddForeignKeys(ctx, tgt, a.fks, resync); err != nil {
			return err
		}
	}
	// The partitioned tables' leaves, read before any snapshot of this
	// attempt: a copy records them once done.
	a.parts, a.copyLeaves, err = newPartitionWatch(ctx, a.src, tgt, prep, cfg.Target.DSN.Reveal(), !a.found, resync)
	return err
}

// startPosition decides where the stream starts and opens the
// replication connection: at the checkpoint of a usable slot (starting
// the re-copy of the tables to copy again beside the stream), or, on the
// first start, where the initial copy's slot was created, once that copy
// is in. A slot that cannot serve the checkpoint is fatal.
func (a *attempt) startPosition(ctx context.Context) error {
	cfg := a.cfg
	slot, err := source.ReadSlot(ctx, a.src, cfg.Source.Slot)
	if err != nil {
		return err
	}
	a.opts.Observer.Slot(slotStatus(slot))
	if slot.Active {
		// Retried: after a crash or a network cut the server may hold the
		// old connection until wal_sender_timeout.
		return &SlotBusyError{Slot: cfg.Source.Slot, PID: slot.ActivePID}
	}
	if a.repl, err = connectReplication(ctx, cfg.Source.DSN.Reveal(), cfg.Source.Slot); err != nil {
		return err
	}
	a.closers = append(a.closers, func() { a.repl.Close(context.Background()) })
	if !a.found {
		return a.copyAll(ctx, slot)
	}
	switch {
	case !slot.Exists:
		return fatal(fmt.Errorf("replication slot %s does not exist, but the target holds a checkpoint: changes made since then are lost to pgveil; to copy everything again, run pgveil resync and start pgveil (docs/operations.md)", cfg.Source.Slot))
	case slot.WALStatus == "lost":
		return fatal(fmt.Errorf("replication slot %s is invalidated (wal_status = lost: production removed WAL pgveil had not read, see max_slot_wal_keep_size); to copy everything again, run pgveil resync (it drops the slot and the target's checkpoint) and start pgveil (docs/operations.md)", cfg.Source.Slot))
	case slot.Plugin != "pgoutput":
		return fatal(fmt.Errorf("replication slot %s uses plugin %s, not pgoutput: is it pgveil's? choose another slot name", cfg.Source.Slot, slot.Plugin))
	}
	a.log.Info("resuming", "slot", cfg.Source.Slot, "checkpoint", a.pos.LSN.String())
	a.start = a.pos.LSN
	if len(a.resync) > 0 {
		if a.rs, err = startResync(ctx, a.opts, a.prep, a.resync, a.hashes, a.copyLeaves); err != nil {
			return err
		}
		// The re-copy's goroutine is joined whatever ends the attempt: the
		// next attempt's DROP SCHEMA of the staging tables must not wait
		// on its loaders.
		a.closers = append(a.closers, a.rs.stop)
	}
	return nil
}

// copyAll is the first start's initial copy: every table copied as of the
// new slot's snapshot, the checkpoint, the rules' fingerprints, the
// partitions' leaves and the foreign keys recorded. Tables rewritten in
// production during the copy end the attempt: the next copies them
// again while the others stream.
func (a *attempt) copyAll(ctx context.Context, slot source.Slot) error {
	a.opts.Observer.Phase(PhaseSnapshot, nil)
	// The slot holds WAL from its creation on: its retention is
	// watched during the copy too, which may take hours.
	stopWatch := watchSlot(ctx, a.opts, a.src)
	lsn, rewritten, err := initialCopy(ctx, a.opts, a.prep, a.repl, a.tgt, slot)
	stopWatch()
	if err != nil {
		return err
	}
	a.opts.Observer.Checkpoint(lsn, time.Time{})
	if err := target.RecordRules(ctx, a.tgt, a.hashes); err != nil {
		return err
	}
	if err := target.RecordPartitions(ctx, a.tgt, a.copyLeaves); err != nil {
		return err
	}
	// Every table is in: the foreign keys now, except on the tables
	// the next attempt copies again.
	skip := map[schema.TableName]bool{}
	for _, n := range rewritten {
		skip[n] = true
	}
	if err := target.AddForeignKeys(ctx, a.tgt, a.fks, skip); err != nil {
		return err
	}
	if len(rewritten) > 0 {
		// The copy stands, checkpoint and all; the next attempt
		// copies these tables again while the others stream.
		return &restart{kind: restartRewritten, tables: rewritten}
	}
	a.start = lsn
	return nil
}

// stream streams from the start position until ctx ends or the stream,
// or the monitor beside it, ends the attempt. It turns the failures a
// restart repairs (a foreign key production's rows break, an enum label
// the replica lacks) into restartReasons.
func (a *attempt) stream(ctx context.Context) error {
	cfg, log, prep := a.cfg, a.log, a.prep
	st, err := a.streamer(ctx)
	if err != nil {
		return err
	}
	// The monitor's first round runs before the stream starts, so that
	// the slot, drift and tenancy gauges are current from the first moment
	// of streaming; then it runs every MonitorInterval beside the stream
	// and ends it (cleanly) when a column's type changes in production:
	// the restart re-copies that table with the new type.
	mon := newMonitor(a.opts, a.src, prep.Plan, prep.Publication, a.parts)
	defer mon.close()
	if r := mon.round(ctx); r != nil {
		return r
	}
	a.opts.Observer.Phase(PhaseStreaming, nil)
	a.run.streaming = time.Now()
	settled := a.run.settled
	if a.rs == nil && settled != nil {
		settled()
	}
	// Once re-copied tables are switched in, their foreign keys come back.
	st.settled = func() {
		if err := a.applier.AddForeignKeys(ctx); err != nil && ctx.Err() == nil {
			log.Warn("adding the foreign keys of re-copied tables; tried again at the next start", "error", err.Error())
		}
		if settled != nil {
			settled()
		}
	}
	sctx, stopStream := context.WithCancelCause(ctx)
	defer stopStream(nil)
	mctx, stopMonitor := context.WithCancel(ctx)
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		mon.run(mctx, stopStream)
	}()
	viewsDone := make(chan struct{})
	go func() {
		defer close(viewsDone)
		a.views.run(mctx)
	}()
	err = st.run(sctx, prep.Server.Version)
	stopMonitor()
	<-monitorDone
	<-viewsDone
	var lw *liveLockWait
	if errors.As(err, &lw) && ctx.Err() == nil {
		log.Warn("a change waited on a big transaction applied as it streamed: restarting at the checkpoint; from now on big transactions are applied at their commit",
			"error", err.Error())
		a.run.liveOff = true
		return &restart{kind: restartLiveLock}
	}
	if k, ok := a.fks.ViolatedKey(err); ok && ctx.Err() == nil {
		// Production's rows break a foreign key of the replica (a
		// reference it does not enforce): replication goes on without it.
		conn, cerr := connectTarget(ctx, cfg.Target.DSN.Reveal())
		if cerr != nil {
			return cerr
		}
		why, lerr := target.LeaveOutViolated(ctx, conn, a.fks, k)
		conn.Close(context.Background())
		if lerr != nil {
			return lerr
		}
		a.run.fkBroken[target.BrokenID(k)] = why
		return &restart{kind: restartForeignKey}
	}
	var rr restartReason
	if cause := context.Cause(sctx); errors.As(cause, &rr) && ctx.Err() == nil {
		return cause
	}
	if errors.As(err, &rr) {
		return err
	}
	if schema.SQLState(err) == "22P02" && ctx.Err() == nil {
		// A value the replica's type refuses: an enum label added in
		// production since the replica's type was made? Then restart at
		// the checkpoint: Setup adds the label.
		if behind, lerr := a.enumsBehind(ctx); lerr == nil && len(behind) > 0 {
			log.Warn("an enum type gained labels in production: restarting at the checkpoint to add them to the replica",
				"types", strings.Join(behind, ", "))
			return &restart{kind: restartEnumLabels}
		}
	}
	return err
}

// streamer builds the attempt's streamer: the row filters evaluated in
// process (with a connection of their own), the applier and production's
// column types.
func (a *attempt) streamer(ctx context.Context) (*streamer, error) {
	cfg, prep := a.cfg, a.prep
	filters := map[schema.TableName]*source.Filter{}
	var filterConn *pgx.Conn
	for _, pt := range prep.Publication.Tables {
		if pt.InProcessFilter == "" {
			continue
		}
		f, err := source.NewFilter(prep.Catalog.Tables.Lookup(pt.Name.Schema, pt.Name.Name), pt)
		if err != nil {
			return nil, fatal(err)
		}
		filters[pt.Name] = f
	}
	if len(filters) > 0 {
		var err error
		if filterConn, err = connectSource(ctx, cfg.Source.DSN.Reveal()); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, func() { filterConn.Close(context.Background()) })
	}
	// The lag figures read the source's WAL end on a connection of their
	// own: src belongs to the monitor. The stream does not depend on it:
	// production refusing one more connection (max_connections, the
	// role's CONNECTION LIMIT) leaves the lag figures to the keepalives
	// and the monitor's slot readings instead of stopping the stream.
	// The connection opens at the stream's first reading.
	walEnd := &sqlWALEnd{dsn: cfg.Source.DSN.Reveal(), retry: walEndRetry}
	a.closers = append(a.closers, walEnd.Close)
	ap := target.NewApplier(a.tgt, cfg.Source.Slot)
	ap.SetTenancy(a.tenancy)
	ap.SetForeignKeys(a.fks)
	a.applier = ap
	st := &streamer{
		opts: a.opts.Stream, log: a.log, repl: pgReplicationConn{a.repl}, slot: cfg.Source.Slot, publication: cfg.Source.Publication,
		plan: prep.Plan, filters: filters, filterConn: filterConn, obs: a.opts.Observer, walEnd: walEnd,
		applier: ap, stats: a.opts.Stats, start: a.start, startCommit: a.pos.CommitTime, rs: a.rs,
	}
	// Big transactions are applied as they stream through a target
	// connection and Applier of their own, set up as the stream's
	// (stream_live.go); after a lock wait on one (liveLockWait), the rest
	// of the run applies them at their commit.
	if !a.run.liveOff {
		st.openLive = func(ctx context.Context) (applier, func(), error) {
			conn, err := connectTarget(ctx, cfg.Target.DSN.Reveal())
			if err != nil {
				return nil, nil, err
			}
			// The live transaction idles, by design, for as long as
			// production's transaction does between its chunks, and the
			// connection between big transactions: an
			// idle_in_transaction_session_timeout or idle_session_timeout
			// set on the analytics server (common on managed ones) would end
			// the session, met first at a Stream Commit when the Applier had
			// sent nothing before, and the attempt with it. As the
			// snapshot's copy connections do, it has neither
			// (idle_session_timeout exists from PostgreSQL 14).
			for _, q := range []string{
				"SET idle_in_transaction_session_timeout = 0",
				"SELECT set_config('idle_session_timeout', '0', false) WHERE current_setting('server_version_num')::int >= 140000",
			} {
				if _, err := conn.Exec(ctx, q); err != nil {
					conn.Close(context.Background())
					return nil, nil, fmt.Errorf("setting up the target connection big transactions are applied through: %w", err)
				}
			}
			lap := target.NewApplier(conn, cfg.Source.Slot)
			lap.SetTenancy(a.tenancy)
			lap.SetForeignKeys(a.fks)
			return lap, func() { conn.Close(context.Background()) }, nil
		}
	}
	st.referenced, st.referencing = fkTables(a.fks.Keys())
	st.liveTenancy = a.tenancy != nil
	var err error
	if st.colTypes, err = source.ReadColumnTypes(ctx, a.src, prep.Plan); err != nil {
		return nil, err
	}
	return st, nil
}

// enumsBehind returns the enum types of the plan's catalog that have, in
// production, a label the replica's type lacks.
func (a *attempt) enumsBehind(ctx context.Context) ([]string, error) {
	enums := a.prep.Catalog.Enums
	if len(enums) == 0 {
		return nil, nil
	}
	// A connection of its own: the applier's may be in a failed state.
	tgt, err := connectTarget(ctx, a.cfg.Target.DSN.Reveal())
	if err != nil {
		return nil, err
	}
	defer tgt.Close(context.Background())
	return target.EnumsBehind(ctx, a.src, tgt, enums)
}

// planForeignKeys reads production's foreign keys and the rules'
// references and decides which the replica gets (target.PlanForeignKeys).
// When production's cannot be read, the replica keeps the keys it has
// that still hold (target.PresentForeignKeys), which keeps replication
// going without dropping them; the next start plans them again.
func planForeignKeys(ctx context.Context, src, tgt *pgx.Conn, cfg *rules.Config, plan *transform.Plan, log *slog.Logger) *target.ForeignKeys {
	m, err := refs.Read(ctx, src, refs.Options{})
	if err != nil {
		f, kerr := target.PresentForeignKeys(ctx, tgt, plan)
		if kerr != nil {
			log.Warn("reading production's foreign keys, and the replica's: the replica gets none until the next start", "error", err.Error(), "replica_error", kerr.Error())
			f = &target.ForeignKeys{}
		} else {
			log.Warn("reading production's foreign keys: the replica keeps those it has until the next start", "error", err.Error(), "kept", len(f.Keys()))
		}
		f.Log = log
		return f
	}
	f := target.PlanForeignKeys(m.WithRules(cfg), plan)
	f.Log = log
	for _, l := range f.LeftOut() {
		log.Info("reference left out of the replica's foreign keys", "reference", l.Key.String(), "why", l.Reason)
	}
	return f
}
