package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
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

// Options configure a pipeline.
type Options struct {
	Config   *rules.Config
	Registry *transform.Registry // transform.Builtin() when nil
	Logger   *slog.Logger        // slog.Default() when nil
	Snapshot SnapshotOptions
	Stream   StreamOptions
	// Stats, when set, is updated as the stream runs.
	Stats *Stats
	// RetryMax bounds the wait between attempts after a transient
	// failure (default 30s).
	RetryMax time.Duration
	// Observer is told what happens (metrics, health); nil ignores it.
	Observer Observer
	// forceResync are tables the next attempt copies again whatever
	// their fingerprint (they missed changes).
	forceResync map[schema.TableName]bool
	// replanned: the attempt follows a schema change production made
	// under the previous one.
	replanned bool
	// settled is called when the attempt streams with every table of
	// its rules copied: the rules then need nothing more of production.
	settled func()
	// MonitorInterval is how often the slot and the source schema are
	// checked while streaming (default 30s).
	MonitorInterval time.Duration
	// fkBroken are the replica's foreign keys that production's changes
	// broke while streaming (target.BrokenID to why): left out by every
	// later attempt of this Run, which would meet the same changes again.
	fkBroken map[string]string
}

// Prepared is everything checked before replication starts.
type Prepared struct {
	Server      *source.Server
	Catalog     *schema.Catalog
	Plan        *transform.Plan
	Warnings    rules.Problems
	Publication *source.PublicationSpec
}

// FatalError is a failure that retrying cannot fix: the rules, the
// prerequisites, a lost slot, a value no rule can mask. Run stops on it.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

func fatal(err error) error {
	if err == nil {
		return nil
	}
	var fe *FatalError
	if errors.As(err, &fe) {
		return err
	}
	return &FatalError{Err: err}
}

// SlotBusyError: another connection holds the slot (another pgveil, or
// this one's previous connection that the server has not yet noticed is
// gone). Run retries it.
type SlotBusyError struct {
	Slot string
	PID  int32
}

func (e *SlotBusyError) Error() string {
	return fmt.Sprintf("replication slot %s is in use by process %d (a previous connection the server has not yet dropped, or another pgveil running with this slot)", e.Slot, e.PID)
}

// ProblemsError lists every prerequisite problem found.
type ProblemsError struct{ Problems []source.Problem }

func (e *ProblemsError) Error() string {
	var b strings.Builder
	b.WriteString("the source is not ready for pgveil:")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		if p.Table != "" {
			b.WriteString(p.Table + ": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// Prepare reads the source catalog, compiles the rules against it, checks
// the prerequisites and decides the publication's content. It changes
// nothing anywhere.
func Prepare(ctx context.Context, src *pgx.Conn, cfg *rules.Config, reg *transform.Registry) (*Prepared, error) {
	return prepare(ctx, src, cfg, reg, false)
}

// PrepareRunning is Prepare for a pipeline that runs (or is compared with
// the source while it runs): columns added in production that no rule
// names are warnings, left out of the plan and the publication, not
// errors. Deny by default still holds: they are not replicated.
func PrepareRunning(ctx context.Context, src *pgx.Conn, cfg *rules.Config, reg *transform.Registry) (*Prepared, error) {
	return prepare(ctx, src, cfg, reg, true)
}

func prepare(ctx context.Context, src *pgx.Conn, cfg *rules.Config, reg *transform.Registry, running bool) (*Prepared, error) {
	if reg == nil {
		reg = transform.Builtin()
	}
	srv, err := source.ReadServer(ctx, src)
	if err != nil {
		return nil, err
	}
	names := make([]schema.TableName, len(cfg.Tables))
	for i, t := range cfg.Tables {
		names[i] = schema.TableName{Schema: t.Schema, Name: t.Name}
	}
	cat, err := schema.ReadCatalog(ctx, src, names)
	if err != nil {
		return nil, err
	}
	keys, err := cfg.Keys()
	if err != nil {
		return nil, fatal(err)
	}
	compile := cfg.Compile
	if running {
		compile = cfg.CompileAllowingUnruled
	}
	plan, warnings, err := compile(cat.Tables, keys, reg)
	if err != nil {
		return nil, fatal(err)
	}
	slotExists, err := slotExists(ctx, src, cfg.Source.Slot)
	if err != nil {
		return nil, err
	}
	if probs := source.Check(srv, cat, plan, slotExists); len(probs) > 0 {
		return nil, fatal(&ProblemsError{Problems: probs})
	}
	pub, err := source.PlanPublication(ctx, src, srv, cat, plan, cfg.Source.Publication, cfg.Source.PublicationMode == rules.ColumnLists)
	if err != nil {
		return nil, fatal(err)
	}
	return &Prepared{Server: srv, Catalog: cat, Plan: plan, Warnings: warnings, Publication: pub}, nil
}

func slotExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	s, err := ReadSlot(ctx, conn, name)
	return s.Exists, err
}

// slotInfo is a row of pg_replication_slots, as runOnce needs it.
type slotInfo struct {
	SlotStatus
	activePID int32
	plugin    string
}

func readSlot(ctx context.Context, conn *pgx.Conn, name string) (slotInfo, error) {
	var s slotInfo
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
		s.activePID = *pid
	}
	if plugin != nil {
		s.plugin = *plugin
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

// ReadSlot reads the replication slot's state from pg_replication_slots
// (Exists is false when there is no such slot).
func ReadSlot(ctx context.Context, conn *pgx.Conn, name string) (SlotStatus, error) {
	s, err := readSlot(ctx, conn, name)
	return s.SlotStatus, err
}

// Pipeline replicates with rules that may change while it runs.
type Pipeline struct {
	opts Options

	mu       sync.Mutex
	cfg      *rules.Config
	restart  context.CancelFunc // ends the current attempt
	reloaded bool
	// good is the last configuration that streamed with every table
	// copied: the one to go back to when a rule change turns out to need
	// a privilege pgveil lacks.
	good *rules.Config
	// pending is a rule change that waits for what pgveil's role lacks
	// (statements for the tables' owner, grants), and waiting says what.
	pending *rules.Config
	waiting *Waiting
	// readyKey names the part of the pending change put in force while
	// the rest waits, so that a retry does not put it in force again.
	readyKey string
	// reloadMu makes reloads (SIGHUP, the pending rules' retries) one at
	// a time.
	reloadMu sync.Mutex
}

// schemaChange ends an attempt whose plan no longer fits the source (a
// column's type changed) or whose tables left the publication behind
// pgveil's back; the next attempt starts at once and copies the tables
// listed again.
type schemaChange struct {
	tables []schema.TableName
}

func (e *schemaChange) Error() string { return "the source schema changed" }

// New returns a pipeline; Run starts it.
func New(opts Options) *Pipeline {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = transform.Builtin()
	}
	if opts.Stats == nil {
		opts.Stats = &Stats{}
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 30 * time.Second
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.MonitorInterval <= 0 {
		opts.MonitorInterval = 30 * time.Second
	}
	return &Pipeline{opts: opts, cfg: opts.Config}
}

// Run replicates until ctx ends, then returns nil. Transient failures
// (connections lost, servers restarting) are retried with exponential
// backoff; a FatalError is returned at once.
func Run(ctx context.Context, opts Options) error { return New(opts).Run(ctx) }

// Config returns the rules in force.
func (p *Pipeline) Config() *rules.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// Reload checks new rules against the source and, when they hold, puts
// them in force: the pipeline restarts at its checkpoint at once, tables
// whose rules changed are copied again (the others keep streaming) and
// switched in atomically, tables no rule names any more leave the replica.
// Invalid rules are rejected with their problems and the old ones stay.
// The connections, the slot and the publication cannot change this way.
func (p *Pipeline) Reload(ctx context.Context, cfg *rules.Config) error {
	return p.reload(ctx, cfg, nil)
}

// errStale: the waiting rule change a retry meant to apply was replaced.
var errStale = errors.New("the waiting rule change was replaced by a newer one")

// reload is Reload; with ifPending set, only while ifPending is still the
// rule change that waits (a newer reload may have replaced it meanwhile).
func (p *Pipeline) reload(ctx context.Context, cfg *rules.Config, ifPending *rules.Config) error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if ifPending != nil {
		if pending, _ := p.Pending(); pending != ifPending {
			return errStale
		}
	}
	old := p.Config()
	switch {
	case cfg.Source.DSN.Reveal() != old.Source.DSN.Reveal(), cfg.Target.DSN.Reveal() != old.Target.DSN.Reveal():
		return errors.New("the source or target DSN changed: restart pgveil to use new connections")
	case cfg.Source.Slot != old.Source.Slot, cfg.Source.Publication != old.Source.Publication:
		return errors.New("the slot or publication name changed: restart pgveil (the old slot keeps WAL until dropped)")
	}
	src, err := connectSource(ctx, cfg.Source.DSN.Reveal())
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	// Planning a where needs a temporary view: without TEMPORARY the
	// rules cannot even be checked, and the change waits for it.
	if w, err := temporaryNeeded(ctx, src, cfg); err != nil || w != nil {
		if err != nil {
			return err
		}
		p.setPending(cfg, w)
		return &RulesPendingError{Waiting: w}
	}
	prep, err := PrepareRunning(ctx, src, cfg, p.opts.Registry)
	if err != nil {
		return err
	}
	// A name that went missing in production is tolerated while the old
	// rules still name it; a new rule must name something that exists.
	var typos rules.Problems
	for _, w := range prep.Warnings {
		if w.Kind == rules.KindMissing && !old.Names(w) {
			w.Warning = false
			typos = append(typos, w)
		}
	}
	if len(typos) > 0 {
		return typos
	}
	// What the new rules need that pgveil's role lacks: until it is there
	// the rules in force keep streaming, and the change waits.
	toCopy, err := TablesToCopy(ctx, cfg, prep)
	if err != nil {
		return err
	}
	waiting, err := Prerequisites(ctx, src, prep, toCopy)
	if err != nil {
		return err
	}
	if waiting != nil {
		p.setPending(cfg, waiting)
		pe := &RulesPendingError{Waiting: waiting}
		// When grants on some tables are all that is missing (and the
		// tables are published whole), the rest of the change goes ahead.
		if held := waiting.held(); len(held) > 0 && cfg.Source.PublicationMode != rules.ColumnLists {
			pe.Held = held
			key := fmt.Sprintf("%p %s", cfg, joinNames(held))
			p.mu.Lock()
			again := p.readyKey == key
			p.readyKey = key
			p.mu.Unlock()
			if !again {
				pe.readyNow = true
				p.opts.Logger.Info("putting in force the part of the rule change that can run; the tables pgveil may not read yet wait", "tables", joinNames(held))
				p.putInForce(readyPart(old, cfg, held))
			}
		}
		return pe
	}
	p.setPending(nil, nil)
	p.putInForce(cfg)
	return nil
}

// putInForce makes cfg the rules in force and restarts the attempt.
func (p *Pipeline) putInForce(cfg *rules.Config) {
	p.mu.Lock()
	p.cfg, p.reloaded = cfg, true
	restart := p.restart
	p.mu.Unlock()
	if restart != nil {
		restart()
	}
}

// Run replicates until ctx ends; see the package Run.
func (p *Pipeline) Run(ctx context.Context) error {
	opts := p.opts
	spill, err := openSpillDir(opts.Stream.SpillDir, p.cfg.Source.Slot)
	if err != nil {
		return &FatalError{Err: err}
	}
	defer spill.close()
	if spill.removed > 0 {
		opts.Logger.Warn("removed transactions an earlier run had spilled (it was stopped hard)", "dir", spill.path, "files", spill.removed)
	}
	opts.Stream.SpillDir = spill.path
	opts.fkBroken = map[string]string{}
	// The connections and the slot cannot change by a reload.
	started := p.Config()
	// Beside the attempts, for as long as Run runs: the lock watcher and
	// the retries of a rule change that waits.
	besideCtx, stopBeside := context.WithCancel(ctx)
	var beside sync.WaitGroup
	beside.Go(func() {
		watchLockWaits(besideCtx, started.Source.DSN.Reveal(), started.Source.Slot, opts.Logger, opts.Observer)
	})
	beside.Go(func() { p.retryPending(besideCtx) })
	defer func() {
		stopBeside()
		beside.Wait()
	}()
	wait := time.Second
	for {
		started := time.Now()
		attempt, cancel := context.WithCancel(ctx)
		p.mu.Lock()
		p.restart = cancel
		opts.Config = p.cfg
		p.mu.Unlock()
		opts.Observer.Phase(PhaseStarting, nil)
		opts.Observer.Tables(TableLabels(opts.Config))
		cfg := opts.Config
		opts.settled = func() {
			p.mu.Lock()
			p.good = cfg
			waitedForThese := p.pending == cfg
			p.mu.Unlock()
			if waitedForThese {
				p.setPending(nil, nil)
				opts.Logger.Info("the rules in force run now: what they waited for is there")
			}
		}
		err := runOnce(attempt, opts)
		// Tables that missed changes are marked in the target by the next
		// attempt, so that the mark survives its failure.
		opts.forceResync = nil
		var sc *schemaChange
		opts.replanned = opts.replanned || errors.As(err, &sc)
		if errors.As(err, &sc) && len(sc.tables) > 0 {
			opts.forceResync = map[schema.TableName]bool{}
			for _, n := range sc.tables {
				opts.forceResync[n] = true
			}
		}
		cancel()
		if ctx.Err() != nil {
			opts.Observer.Phase(PhaseStopped, nil)
			return nil
		}
		p.mu.Lock()
		reloaded := p.reloaded
		p.reloaded = false
		p.mu.Unlock()
		if reloaded || sc != nil {
			opts.Logger.Info("restarting at the checkpoint with the rules and schema as they are now")
			wait = time.Second
			continue
		}
		if p.fallBack(ctx, err, cfg) {
			wait = time.Second
			continue
		}
		if be := (*blockedError)(nil); errors.As(err, &be) {
			if !p.waitBlocked(ctx, be, cfg) {
				opts.Observer.Phase(PhaseStopped, nil)
				return nil
			}
			continue
		}
		var fe *FatalError
		if errors.As(err, &fe) || !transient(err) {
			var ve *ValueError
			if errors.As(err, &ve) {
				opts.Observer.Error("masking")
			}
			opts.Observer.Error("fatal")
			opts.Observer.Phase(PhaseStopped, err)
			return err
		}
		opts.Observer.Error("transient")
		opts.Observer.Phase(PhaseRetrying, err)
		if time.Since(started) > time.Minute {
			wait = time.Second // it ran for a while: start the backoff again
		}
		opts.Logger.Warn("replication interrupted; retrying", "error", err.Error(), "in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, opts.RetryMax)
	}
}

// transient tells whether an error may go away by itself: network
// failures and the server errors of a restart, shutdown or overload.
func transient(err error) bool {
	if err == nil {
		return true
	}
	var ne net.Error
	var busy *SlotBusyError
	if errors.As(err, &ne) || errors.As(err, &busy) {
		return true
	}
	// A server's error, as pgconn reports it or as pgveil passes it on
	// without its message (target.ServerError, source.FilterError).
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		switch code := se.SQLState(); {
		case strings.HasPrefix(code, "08"), // connection exception
			code == "57P01", code == "57P02", code == "57P03", // admin shutdown, crash shutdown, cannot connect now
			code == "53300",                  // too many connections
			code == "55006",                  // object in use: the slot is still held by our previous walsender
			code == "40001", code == "40P01", // serialization failure, deadlock
			code == "25006", // read-only transaction: the target refuses writes for a while
			code == "55P03": // lock not available: pgveil's short lock_timeout met a lock held in production
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.SafeToRetry(err) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "connection refused")
}

func runOnce(ctx context.Context, opts Options) error {
	cfg, log := opts.Config, opts.Logger
	src, err := connectSource(ctx, cfg.Source.DSN.Reveal())
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	tgt, err := connectTarget(ctx, cfg.Target.DSN.Reveal())
	if err != nil {
		return err
	}
	defer tgt.Close(context.Background())
	pos, found, err := target.ReadCheckpoint(ctx, tgt, cfg.Source.Slot)
	if err != nil {
		return err
	}
	if found {
		opts.Observer.Checkpoint(pos.LSN, pos.CommitTime)
	}
	// The first start holds the rules to what validate does: every column
	// of a listed table has a rule, every name exists. Once replicating,
	// production's schema changes are reported, not fatal.
	// After a schema change (a column or table gone while the first copy
	// ran) production's schema is followed as when streaming: reported,
	// not fatal.
	prep, err := prepare(ctx, src, cfg, opts.Registry, found || opts.replanned)
	if err != nil {
		return err
	}
	for _, w := range prep.Warnings {
		log.Warn("rules", "warning", w.String())
	}
	for _, pt := range prep.Publication.Tables {
		for _, n := range pt.Notes {
			log.Info("publication", "table", pt.Name.Schema+"."+pt.Name.Name, "note", n)
		}
	}
	changed, err := source.EnsurePublication(ctx, src, prep.Publication, prep.Catalog)
	if oe := (*source.OwnerNeededError)(nil); errors.As(err, &oe) && oe.Serves {
		// Stricter than the rules ask, and enough to replicate: go on.
		log.Warn(oe.Warning())
		err = nil
	}
	if err != nil {
		return blocked(found, fatalUnlessTransient(err))
	}
	if changed {
		log.Info("publication updated", "publication", cfg.Source.Publication)
	}
	// Which tables must be copied again: those copied under other rules
	// (or never finished). They stay as they are until their new copy is
	// switched in; the others are brought in line by Setup now.
	keys, err := cfg.Keys()
	if err != nil {
		return fatal(err)
	}
	if len(opts.forceResync) > 0 {
		marks := map[schema.TableName]string{}
		for n := range opts.forceResync {
			marks[n] = resyncRequired
		}
		if err := target.RecordRules(ctx, tgt, marks); err != nil {
			return err
		}
	}
	hashes, resync, removed, err := compareRules(ctx, tgt, prep.Plan, keys.Fingerprint(), found)
	if err != nil {
		return err
	}
	// The replica's foreign keys: those that no longer fit, and those
	// touching tables about to be copied, go before Setup reshapes the
	// tables and before any copy truncates or replaces them.
	fks := planForeignKeys(ctx, src, cfg, prep.Plan, log)
	fks.Exclude(opts.fkBroken)
	if err := target.DropForeignKeys(ctx, tgt, fks, prep.Plan, resync, !found); err != nil {
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
		if found && errors.As(err, &ce) {
			log.Error("readers or tenant logins can create objects in the analytics database; replication goes on", "problem", err.Error())
			return nil
		}
		return err
	}
	// Views the rules no longer allow go before Setup drops their columns.
	views := newViewWatch(opts, prep.Plan)
	if err := views.dropStale(ctx, src, tgt); err != nil {
		return err
	}
	if err := createsOK(target.Setup(ctx, tgt, transform.NewPlan(setupTables), prep.Catalog.Enums, cfg.Target.Readers)); err != nil {
		return fatalUnlessTransient(err)
	}
	tenancy := TargetTenancy(cfg)
	revoked, err := target.SetupTenancy(ctx, tgt, transform.NewPlan(setupTables), tenancy, cfg.Target.Readers)
	if err = createsOK(err); err != nil {
		return fatalUnlessTransient(err)
	}
	for _, v := range revoked {
		log.Warn("tenants lost SELECT on a view that would show them other tenants' rows (materialized, or without security_invoker)", "view", v)
	}
	if err := dropRemoved(ctx, tgt, removed, log); err != nil {
		return err
	}
	if err := views.sync(ctx, src, tgt); err != nil {
		log.Warn("views: creating production's views on the replica", "error", err.Error())
	}
	if found {
		// The tables being copied again get theirs once switched in.
		if err := target.AddForeignKeys(ctx, tgt, fks, resync); err != nil {
			return err
		}
	}
	// The partitioned tables' leaves, read before any snapshot of this
	// attempt: a copy records them once done.
	parts, copyLeaves, err := newPartitionWatch(ctx, src, tgt, prep, cfg.Target.DSN.Reveal(), !found, resync)
	if err != nil {
		return err
	}
	slot, err := readSlot(ctx, src, cfg.Source.Slot)
	if err != nil {
		return err
	}
	opts.Observer.Slot(slot.SlotStatus)
	if slot.Active {
		// Retried: after a crash or a network cut the server may hold the
		// old connection until wal_sender_timeout.
		return &SlotBusyError{Slot: cfg.Source.Slot, PID: slot.activePID}
	}
	repl, err := connectReplication(ctx, cfg.Source.DSN.Reveal(), cfg.Source.Slot)
	if err != nil {
		return err
	}
	defer repl.Close(context.Background())

	start := pos.LSN
	var rs *liveResync
	if !found {
		opts.Observer.Phase(PhaseSnapshot, nil)
		// The slot holds WAL from its creation on: its retention is
		// watched during the copy too, which may take hours.
		stopWatch := watchSlot(ctx, opts, src)
		lsn, rewritten, err := initialCopy(ctx, opts, prep, repl, tgt, slot)
		stopWatch()
		if err != nil {
			return err
		}
		opts.Observer.Checkpoint(lsn, time.Time{})
		if err := target.RecordRules(ctx, tgt, hashes); err != nil {
			return err
		}
		if err := target.RecordPartitions(ctx, tgt, copyLeaves); err != nil {
			return err
		}
		// Every table is in: the foreign keys now, except on the tables
		// the next attempt copies again.
		skip := map[schema.TableName]bool{}
		for _, n := range rewritten {
			skip[n] = true
		}
		if err := target.AddForeignKeys(ctx, tgt, fks, skip); err != nil {
			return err
		}
		if len(rewritten) > 0 {
			// The copy stands, checkpoint and all; the next attempt
			// copies these tables again while the others stream.
			return &schemaChange{tables: rewritten}
		}
		start = lsn
	} else {
		switch {
		case !slot.Exists:
			return fatal(fmt.Errorf("replication slot %s does not exist, but the target holds a checkpoint: changes made since then are lost to pgveil; to copy everything again, run pgveil resync and start pgveil (docs/operations.md)", cfg.Source.Slot))
		case slot.WALStatus == "lost":
			return fatal(fmt.Errorf("replication slot %s is invalidated (wal_status = lost: production removed WAL pgveil had not read, see max_slot_wal_keep_size); to copy everything again, run pgveil resync (it drops the slot and the target's checkpoint) and start pgveil (docs/operations.md)", cfg.Source.Slot))
		case slot.plugin != "pgoutput":
			return fatal(fmt.Errorf("replication slot %s uses plugin %s, not pgoutput: is it pgveil's? choose another slot name", cfg.Source.Slot, slot.plugin))
		}
		log.Info("resuming", "slot", cfg.Source.Slot, "checkpoint", pos.LSN.String())
		if len(resync) > 0 {
			if rs, err = startResync(ctx, opts, prep, resync, hashes, copyLeaves); err != nil {
				return err
			}
			defer rs.stop()
		}
	}

	filters := map[schema.TableName]*source.Filter{}
	var filterConn *pgx.Conn
	for _, pt := range prep.Publication.Tables {
		if pt.InProcessFilter == "" {
			continue
		}
		f, err := source.NewFilter(prep.Catalog.Tables.Lookup(pt.Name.Schema, pt.Name.Name), pt)
		if err != nil {
			return fatal(err)
		}
		filters[pt.Name] = f
	}
	if len(filters) > 0 {
		if filterConn, err = connectSource(ctx, cfg.Source.DSN.Reveal()); err != nil {
			return err
		}
		defer filterConn.Close(context.Background())
	}
	st := &streamer{
		opts: opts.Stream, log: log, repl: repl, slot: cfg.Source.Slot, publication: cfg.Source.Publication,
		plan: prep.Plan, filters: filters, filterConn: filterConn, obs: opts.Observer,
		applier: target.NewApplier(tgt, cfg.Source.Slot), stats: opts.Stats, start: start, rs: rs,
	}
	st.applier.SetTenancy(tenancy)
	st.applier.SetForeignKeys(fks)
	if st.colTypes, err = readColumnTypes(ctx, src, prep.Plan); err != nil {
		return err
	}
	// The monitor's first round runs before the stream starts, so that
	// the slot, drift and tenancy gauges are current from the first moment
	// of streaming; then it runs every MonitorInterval beside the stream
	// and ends it (cleanly) when a column's type changes in production:
	// the restart re-copies that table with the new type.
	mon := newMonitor(opts, src, prep.Plan, prep.Publication, parts)
	defer mon.close()
	if sc := mon.round(ctx); sc != nil {
		return sc
	}
	opts.Observer.Phase(PhaseStreaming, nil)
	if rs == nil && opts.settled != nil {
		opts.settled()
	}
	// Once re-copied tables are switched in, their foreign keys come back.
	st.settled = func() {
		if err := st.applier.AddForeignKeys(ctx); err != nil && ctx.Err() == nil {
			log.Warn("adding the foreign keys of re-copied tables; tried again at the next start", "error", err.Error())
		}
		if opts.settled != nil {
			opts.settled()
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
		views.run(mctx)
	}()
	err = st.run(sctx, prep.Server.Version)
	stopMonitor()
	<-monitorDone
	<-viewsDone
	if k, ok := fks.ViolatedKey(err); ok && ctx.Err() == nil {
		// Production's rows break a foreign key of the replica (a
		// reference it does not enforce): replication goes on without it.
		conn, cerr := connectTarget(ctx, cfg.Target.DSN.Reveal())
		if cerr != nil {
			return cerr
		}
		why, lerr := target.LeaveOutViolated(ctx, conn, fks, k)
		conn.Close(context.Background())
		if lerr != nil {
			return lerr
		}
		opts.fkBroken[target.BrokenID(k)] = why
		return &schemaChange{}
	}
	var sc *schemaChange
	if cause := context.Cause(sctx); errors.As(cause, &sc) && ctx.Err() == nil {
		return cause
	}
	if errors.As(err, &sc) {
		return err
	}
	var ve *ValueError
	if errors.As(err, &ve) {
		return fatal(err)
	}
	if sqlState(err) == "22P02" && ctx.Err() == nil {
		// A value the replica's type refuses: an enum label added in
		// production since the replica's type was made? Then restart at
		// the checkpoint: Setup adds the label.
		if behind, lerr := enumsBehind(ctx, src, cfg.Target.DSN.Reveal(), prep.Catalog.Enums); lerr == nil && len(behind) > 0 {
			log.Warn("an enum type gained labels in production: restarting at the checkpoint to add them to the replica",
				"types", strings.Join(behind, ", "))
			return &schemaChange{}
		}
	}
	return err
}

// sqlState is the SQLSTATE of a server error in err's chain, "" when none.
func sqlState(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

// enumsBehind returns the enum types of enums (as the plan's catalog names
// them) that have, in production, a label the replica's type lacks.
func enumsBehind(ctx context.Context, src *pgx.Conn, targetDSN string, enums map[string][]string) ([]string, error) {
	if len(enums) == 0 {
		return nil, nil
	}
	// A connection of its own: the applier's may be in a failed state.
	tgt, err := connectTarget(ctx, targetDSN)
	if err != nil {
		return nil, err
	}
	defer tgt.Close(context.Background())
	const labels = `SELECT coalesce(array_agg(e.enumlabel::text), '{}') FROM pg_catalog.pg_enum e WHERE e.enumtypid = to_regtype($1)`
	var behind []string
	for name := range enums {
		var have, want []string
		if err := src.QueryRow(ctx, labels, name).Scan(&want); err != nil {
			return nil, fmt.Errorf("reading enum %s in production: %w", name, err)
		}
		if err := tgt.QueryRow(ctx, labels, name).Scan(&have); err != nil {
			return nil, fmt.Errorf("reading enum %s in the replica: %w", name, err)
		}
		for _, l := range want {
			if !slices.Contains(have, l) {
				behind = append(behind, name)
				break
			}
		}
	}
	slices.Sort(behind)
	return behind, nil
}

func fatalUnlessTransient(err error) error {
	if transient(err) {
		return err
	}
	return fatal(err)
}

// initialCopy creates the slot with an exported snapshot, copies every
// table as of that snapshot and writes the checkpoint; it returns the
// position the stream starts from.
func initialCopy(ctx context.Context, opts Options, prep *Prepared, repl *pgconn.PgConn, tgt *pgx.Conn, slot slotInfo) (lsn pglogrepl.LSN, rewritten []schema.TableName, err error) {
	cfg, log := opts.Config, opts.Logger
	if slot.Exists {
		// A slot without a checkpoint: a copy that did not finish. Its
		// snapshot is gone, so start again from a new slot.
		log.Info("dropping the slot of an unfinished initial copy", "slot", cfg.Source.Slot)
		if err := pglogrepl.DropReplicationSlot(ctx, repl, cfg.Source.Slot, pglogrepl.DropReplicationSlotOptions{}); err != nil {
			return 0, nil, fmt.Errorf("dropping slot %s: %w", cfg.Source.Slot, err)
		}
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, cfg.Source.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return 0, nil, fmt.Errorf("creating replication slot %s: %w", cfg.Source.Slot, err)
	}
	lsn, err = pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, nil, fmt.Errorf("slot %s: consistent point: %w", cfg.Source.Slot, err)
	}
	log.Info("initial copy", "slot", cfg.Source.Slot, "consistent_point", lsn.String(), "tables", len(prep.Plan.Tables()))
	started := time.Now()
	sn := &snapshotter{
		opts: opts.Snapshot, log: log, snapshot: res.SnapshotName, obs: opts.Observer,
		sourceDSN: cfg.Source.DSN.Reveal(), targetDSN: cfg.Target.DSN.Reveal(),
		plan: prep.Plan, pub: prep.Publication, cat: prep.Catalog, tenancy: TargetTenancy(cfg),
	}
	if err := sn.run(ctx); err != nil {
		var ve *ValueError
		if errors.As(err, &ve) {
			return 0, nil, fatal(err)
		}
		return 0, nil, err
	}
	if err := target.WriteCheckpoint(ctx, tgt, cfg.Source.Slot, target.Position{LSN: lsn}); err != nil {
		return 0, nil, err
	}
	log.Info("initial copy done", "seconds", time.Since(started).Round(time.Millisecond).Seconds())
	return lsn, sn.Rewritten(), nil
}

// TableLabels are the names of the tables cfg replicates, as the
// observer is given them.
func TableLabels(cfg *rules.Config) []string {
	names := make([]string, len(cfg.Tables))
	for i, t := range cfg.Tables {
		names[i] = schema.TableName{Schema: t.Schema, Name: t.Name}.QualifiedName()
	}
	return names
}

// watchSlot reports the slot's state to the observer every
// MonitorInterval until the returned stop is called. It owns src until
// then.
func watchSlot(ctx context.Context, opts Options, src *pgx.Conn) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		everyInterval(ctx, opts.MonitorInterval, func() bool {
			reportSlot(ctx, opts, src)
			return true
		})
	}()
	return func() {
		cancel()
		<-done
	}
}

// reportSlot reads the slot's state and reports it to the observer; a
// failure is logged (the next round tries again).
func reportSlot(ctx context.Context, opts Options, src *pgx.Conn) {
	if s, err := ReadSlot(ctx, src, opts.Config.Source.Slot); err == nil {
		opts.Observer.Slot(s)
	} else if ctx.Err() == nil {
		opts.Logger.Warn("reading the slot's state", "error", err.Error())
	}
}

// everyInterval calls round every interval until ctx ends or round
// returns false.
func everyInterval(ctx context.Context, interval time.Duration, round func() bool) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !round() {
			return
		}
	}
}

// monitor reads the slot's state and looks for schema drift and for
// tenant isolation broken behind pgveil's back, reporting to the observer
// and new drift to the log. It owns src while it runs.
type monitor struct {
	opts  Options
	src   *pgx.Conn
	plan  *transform.Plan
	tw    *tenancyWatch
	parts *partitionWatch
	spec  *source.PublicationSpec
	last  string // the drift last logged
}

func newMonitor(opts Options, src *pgx.Conn, plan *transform.Plan, spec *source.PublicationSpec, parts *partitionWatch) *monitor {
	return &monitor{opts: opts, src: src, plan: plan, spec: spec, parts: parts,
		tw: &tenancyWatch{tn: TargetTenancy(opts.Config), dsn: opts.Config.Target.DSN.Reveal(), plan: plan}}
}

func (m *monitor) close() { m.tw.close() }

// partitionInterval is how often, at most, the monitor looks at the
// partitioned tables' leaves: partition maintenance diverges the replica
// until the table is copied again, so it is looked for within seconds (a
// cheap catalog query), not at the monitor's pace.
const partitionInterval = 5 * time.Second

// run does a round every MonitorInterval, and checks the partitions every
// partitionInterval, until ctx ends or a check finds that the pipeline
// must restart, which it then asks of restart.
func (m *monitor) run(ctx context.Context, restart context.CancelCauseFunc) {
	every := min(m.opts.MonitorInterval, partitionInterval)
	next := time.Now().Add(m.opts.MonitorInterval)
	everyInterval(ctx, every, func() bool {
		sc := m.urgent(ctx)
		if sc == nil && !time.Now().Before(next) {
			next = time.Now().Add(m.opts.MonitorInterval)
			sc = m.round(ctx)
		}
		if sc != nil {
			restart(sc)
			return false
		}
		return true
	})
}

// urgent runs the checks that cannot wait for a round: production's
// writes broken by a REPLICA IDENTITY change under column lists, and the
// partitioned tables' leaves. It returns a schemaChange when the pipeline
// must restart: to bring the publication in line, or to copy again the
// tables whose rows partition maintenance changed unpublished.
func (m *monitor) urgent(ctx context.Context) *schemaChange {
	if broken, err := source.BrokenWrites(ctx, m.src, m.opts.Config.Source.Publication); err != nil {
		if ctx.Err() == nil {
			m.opts.Logger.Warn("checking the publication against the tables' replica identity", "error", err.Error())
		}
	} else if len(broken) > 0 {
		m.opts.Logger.Error("production's UPDATE and DELETE now fail on tables whose REPLICA IDENTITY changed while the publication lists their columns (publication_mode column_lists): restarting to bring the publication in line",
			"tables", strings.Join(broken, ", "))
		return &schemaChange{}
	}
	if m.spec != nil && m.spec.ColumnLists {
		// Under column_lists nothing unpublished may leave production:
		// a publication widened behind pgveil's back is narrowed again.
		if wider, err := source.Widened(ctx, m.src, m.spec); err != nil {
			if ctx.Err() == nil {
				m.opts.Logger.Warn("checking the publication's column lists", "error", err.Error())
			}
		} else if len(wider) > 0 {
			m.opts.Logger.Error("the publication sends production's columns or tables that the rules do not publish (it was changed behind pgveil's back; publication_mode column_lists): restarting to narrow it",
				"publication", m.spec.Name, "tables", strings.Join(wider, ", "))
			return &schemaChange{}
		}
	}
	diverged, err := m.parts.check(ctx, m.src, m.opts.Logger)
	if err != nil {
		if ctx.Err() == nil {
			m.opts.Logger.Warn("checking the partitions", "error", err.Error())
		}
		return nil
	}
	if len(diverged) > 0 {
		return &schemaChange{tables: diverged}
	}
	return nil
}

// round checks everything once. It returns a schemaChange when the
// pipeline must restart to repair what it found.
func (m *monitor) round(ctx context.Context) *schemaChange {
	if sc := m.urgent(ctx); sc != nil {
		return sc
	}
	opts, src, plan := m.opts, m.src, m.plan
	unprotected, leaky := m.tw.check(ctx, opts.Logger, opts.Observer)
	if len(unprotected) > 0 {
		opts.Logger.Error("row level security is off on replicated tables although the rules have a tenancy section: tenants could read every row; restarting to set it up again",
			"tables", strings.Join(unprotected, ", "))
		return &schemaChange{}
	}
	if len(leaky) > 0 {
		// The restart takes the group's SELECT off views pgveil's role
		// owns, and stops, naming them, at the others.
		opts.Logger.Error("tenants can read views that would show them other tenants' rows (materialized, or without security_invoker); restarting to take them away",
			"views", strings.Join(leaky, ", "))
		return &schemaChange{}
	}
	reportSlot(ctx, opts, src)
	if d, err := DetectDrift(ctx, src, opts.Config, plan); err == nil {
		opts.Observer.Drift(d)
		if len(d.TypeChanged) > 0 {
			opts.Logger.Warn("a column's type changed in production: restarting to copy the table again with the new type",
				"changed", strings.TrimSpace(d.String()))
			return &schemaChange{}
		}
		if now := d.String(); now != m.last {
			if now != "" {
				opts.Logger.Warn("the source schema has changed: what no rule names is not replicated; write rules for it (then reload)",
					"drift", strings.TrimSpace(now))
			}
			m.last = now
		}
	} else if ctx.Err() == nil {
		opts.Logger.Warn("checking the source schema", "error", err.Error())
	}
	if gone, err := unpublished(ctx, src, opts.Config.Source.Publication, plan); err == nil && len(gone) > 0 {
		var names []string
		for _, n := range gone {
			names = append(names, n.QualifiedName())
		}
		opts.Logger.Error("tables left the publication behind pgveil's back (DROP COLUMN ... CASCADE, or a manual ALTER PUBLICATION): their changes since then were not sent; restarting to publish and copy them again",
			"tables", strings.Join(names, ", "))
		return &schemaChange{tables: gone}
	}
	return nil
}

// planForeignKeys reads production's foreign keys and the rules'
// references and decides which the replica gets (target.PlanForeignKeys).
// A failure to read them is logged: the replica then gets none this time,
// which keeps replication going.
func planForeignKeys(ctx context.Context, src *pgx.Conn, cfg *rules.Config, plan *transform.Plan, log *slog.Logger) *target.ForeignKeys {
	m, err := refs.Read(ctx, src, refs.Options{})
	if err != nil {
		log.Warn("reading production's foreign keys: the replica gets none until the next start", "error", err.Error())
		m = &refs.Model{}
	}
	f := target.PlanForeignKeys(m.WithRules(cfg), plan)
	f.Log = log
	for _, l := range f.LeftOut() {
		log.Info("reference left out of the replica's foreign keys", "reference", l.Key.String(), "why", l.Reason)
	}
	return f
}

// resyncRequired marks, in pgveil.tables, a table that missed changes and
// must be copied again whatever its rules.
const resyncRequired = "resync-required"

// compareRules fingerprints the plan's tables and compares them with what
// pgveil.tables says each replica table was copied under. It returns the
// fingerprints, the tables to copy again (none before the initial copy,
// which copies everything), and the replica tables no rule names any more.
func compareRules(ctx context.Context, tgt *pgx.Conn, plan *transform.Plan, keys string, copied bool) (hashes map[schema.TableName]string, resync map[schema.TableName]bool, removed []target.TableState, err error) {
	hashes = map[schema.TableName]string{}
	resync = map[schema.TableName]bool{}
	states, err := target.ReadTables(ctx, tgt)
	if err != nil {
		return nil, nil, nil, err
	}
	byName := map[schema.TableName]target.TableState{}
	for _, st := range states {
		byName[schema.TableName{Schema: st.Schema, Name: st.Name}] = st
	}
	for _, tp := range plan.Tables() {
		n := tableName(tp)
		hashes[n] = tp.Fingerprint(keys)
		st, ok := byName[n]
		// A table copied before fingerprints were recorded keeps its copy.
		if copied && (!ok || st.State != target.StateCopied || st.RulesHash != "" && st.RulesHash != hashes[n]) {
			resync[n] = true
		}
	}
	for _, st := range states {
		n := schema.TableName{Schema: st.Schema, Name: st.Name}
		if plan.Table(n.Schema, n.Name) == nil && st.Schema != target.StagingSchema {
			removed = append(removed, st)
		}
	}
	return hashes, resync, removed, nil
}

// dropRemoved removes from the replica the tables no rule names any more:
// what the rules no longer allow must not stay readable.
func dropRemoved(ctx context.Context, tgt *pgx.Conn, removed []target.TableState, log *slog.Logger) error {
	for _, st := range removed {
		tp := &transform.TablePlan{Table: &schema.Table{Schema: st.Schema, Name: st.Name}}
		err := pgx.BeginFunc(ctx, tgt, func(tx pgx.Tx) error {
			for _, q := range target.DropSQL(tp) {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("dropping %s, which no rule names any more: %w", tp.Table.QualifiedName(), err)
		}
		log.Info("table dropped from the replica: no rule names it any more", "table", tp.Table.QualifiedName())
	}
	return nil
}

// unpublished returns the plan's tables the publication no longer holds.
func unpublished(ctx context.Context, src *pgx.Conn, publication string, plan *transform.Plan) ([]schema.TableName, error) {
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
		if !in[tableName(tp)] {
			gone = append(gone, tableName(tp))
		}
	}
	return gone, nil
}

// readColumnTypes reads the type and modifier of every column of the
// plan's tables, to notice type changes in the stream.
func readColumnTypes(ctx context.Context, src *pgx.Conn, plan *transform.Plan) (columnTypes, error) {
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
	out := columnTypes{}
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
