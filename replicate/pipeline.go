package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/rules"
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
	// failure, and between restarts that follow one another (default
	// 30s).
	RetryMax time.Duration
	// Observer is told what happens (metrics, health); nil ignores it.
	Observer Observer
	// MonitorInterval is how often the slot and the source schema are
	// checked while streaming (default 30s).
	MonitorInterval time.Duration
}

// Prepared is everything checked before replication starts.
type Prepared struct {
	Server      *source.Server
	Catalog     *schema.Catalog
	Plan        *transform.Plan
	Warnings    rules.Problems
	Publication *source.PublicationSpec
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
	slot, err := source.ReadSlot(ctx, src, cfg.Source.Slot)
	if err != nil {
		return nil, err
	}
	if probs := source.Check(srv, cat, plan, slot.Exists); len(probs) > 0 {
		return nil, fatal(&ProblemsError{Problems: probs})
	}
	pub, err := source.PlanPublication(ctx, src, srv, cat, plan, cfg.Source.Publication, cfg.Source.PublicationMode == rules.ColumnLists)
	if err != nil {
		return nil, fatal(err)
	}
	return &Prepared{Server: srv, Catalog: cat, Plan: plan, Warnings: warnings, Publication: pub}, nil
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

	// runAttempt is one attempt (runOnce) and sleep waits between
	// attempts (sleep): seams for the tests of Run's loop.
	runAttempt func(context.Context, Options, *runState) error
	sleep      func(context.Context, time.Duration) bool
}

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
	return &Pipeline{opts: opts, cfg: opts.Config, runAttempt: runOnce, sleep: sleep}
}

// Run replicates until ctx ends, then returns nil, or a *ShutdownError
// when the final commit on the way out failed. Transient failures
// (connections lost, servers restarting) are retried with exponential
// backoff; restarts (a reload, a schema change) are at once, then back
// off while they follow one another; a FatalError is returned at once.
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
	// The connections and the slot cannot change by a reload. Read under
	// the lock: Reload may put other rules in force at any moment.
	started := p.Config()
	spill, err := openSpillDir(opts.Stream.SpillDir, started.Source.Slot)
	if err != nil {
		return &FatalError{Err: err}
	}
	defer spill.close()
	if spill.removed > 0 {
		opts.Logger.Warn("removed transactions an earlier run had spilled (it was stopped hard)", "dir", spill.path, "files", spill.removed)
	}
	opts.Stream.SpillDir = spill.path
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
	l := &runLoop{p: p, opts: opts, run: &runState{fkBroken: map[string]string{}},
		// Transient failures wait 1s, 2s, 4s ... up to RetryMax.
		retries: &backoff{base: time.Second, max: opts.RetryMax},
		// Restarts (a reload, a schema change) start the next attempt at
		// once, then, while they follow one another without streaming for
		// a while, after restartBase, twice that ... up to RetryMax.
		restarts: &backoff{immediate: true, base: restartBase, max: opts.RetryMax, jitter: 0.2},
	}
	for {
		began := time.Now()
		cfg, err := l.attempt(ctx)
		if done, ret := l.next(ctx, cfg, err, began); done {
			return ret
		}
	}
}

// runLoop is Run's state across attempts.
type runLoop struct {
	p                 *Pipeline
	opts              Options // Config: the rules of the attempt under way
	run               *runState
	retries, restarts *backoff
}

// attempt runs one attempt with the rules in force, and notes what the
// next must copy again. It returns the attempt's rules and its error.
func (l *runLoop) attempt(ctx context.Context) (*rules.Config, error) {
	p, opts, run := l.p, &l.opts, l.run
	attempt, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	p.restart = cancel
	opts.Config = p.cfg
	p.mu.Unlock()
	opts.Observer.Phase(PhaseStarting, nil)
	opts.Observer.Tables(TableLabels(opts.Config))
	cfg := opts.Config
	run.settled = func() {
		p.mu.Lock()
		p.good = cfg
		waitedForThese := p.pending == cfg
		p.mu.Unlock()
		if waitedForThese {
			p.setPending(nil, nil)
			opts.Logger.Info("the rules in force run now: what they waited for is there")
		}
	}
	run.streaming = time.Time{}
	err := p.runAttempt(attempt, *opts, run)
	// Tables that missed changes are marked in the target by the next
	// attempt, so that the mark survives its failure.
	run.forceResync = nil
	var rr restartReason
	if errors.As(err, &rr) {
		run.replanned = true
		if len(rr.Recopy()) > 0 {
			run.forceResync = map[schema.TableName]bool{}
			for _, n := range rr.Recopy() {
				run.forceResync[n] = true
			}
		}
	}
	return cfg, err
}

// next decides what follows an attempt that ended with err: done reports
// that Run returns ret; otherwise the next attempt starts, after the
// backoff its reason calls for.
func (l *runLoop) next(ctx context.Context, cfg *rules.Config, err error, began time.Time) (done bool, ret error) {
	p, opts := l.p, l.opts
	if ctx.Err() != nil {
		// Whatever failed because the context ended is a clean shutdown;
		// a final commit that failed is not: what it held is not in the
		// target.
		if se := (*ShutdownError)(nil); errors.As(err, &se) {
			opts.Observer.Phase(PhaseStopped, err)
			return true, err
		}
		opts.Observer.Phase(PhaseStopped, nil)
		return true, nil
	}
	if !l.run.streaming.IsZero() && time.Since(l.run.streaming) >= healthyAfter {
		l.restarts.reset() // it streamed for a while: restart at once again
	}
	p.mu.Lock()
	reloaded := p.reloaded
	p.reloaded = false
	p.mu.Unlock()
	if reloaded || errors.As(err, new(restartReason)) {
		wait := l.restarts.next()
		if wait > 0 {
			opts.Logger.Info("restarting at the checkpoint with the rules and schema as they are now", "in", wait.String())
		} else {
			opts.Logger.Info("restarting at the checkpoint with the rules and schema as they are now")
		}
		l.retries.reset()
		return l.stopUnlessSlept(ctx, wait)
	}
	if p.fallBack(ctx, err, cfg) {
		l.retries.reset()
		return false, nil
	}
	if be := (*blockedError)(nil); errors.As(err, &be) {
		if !p.waitBlocked(ctx, be, cfg) {
			opts.Observer.Phase(PhaseStopped, nil)
			return true, nil
		}
		return false, nil
	}
	var fe *FatalError
	if errors.As(err, &fe) || !transient(err) {
		if errors.As(err, new(*transform.MaskError)) {
			opts.Observer.Error("masking")
			err = fatal(err) // as every stop retrying cannot fix
		}
		opts.Observer.Error("fatal")
		opts.Observer.Phase(PhaseStopped, err)
		return true, err
	}
	opts.Observer.Error("transient")
	opts.Observer.Phase(PhaseRetrying, err)
	if time.Since(began) > time.Minute {
		l.retries.reset() // it ran for a while: start the backoff again
	}
	wait := l.retries.next()
	opts.Logger.Warn("replication interrupted; retrying", "error", err.Error(), "in", wait.String())
	if !p.sleep(ctx, wait) {
		return true, nil
	}
	return false, nil
}

// stopUnlessSlept waits before a restart; done when ctx ended meanwhile.
func (l *runLoop) stopUnlessSlept(ctx context.Context, wait time.Duration) (bool, error) {
	if !l.p.sleep(ctx, wait) {
		l.opts.Observer.Phase(PhaseStopped, nil)
		return true, nil
	}
	return false, nil
}

// restartBase is the wait before the second of restarts that follow one
// another; healthyAfter is how long an attempt streams before the next
// restart is at once again.
const (
	restartBase  = 250 * time.Millisecond
	healthyAfter = time.Minute
)

// initialCopy creates the slot with an exported snapshot, copies every
// table as of that snapshot and writes the checkpoint; it returns the
// position the stream starts from.
func initialCopy(ctx context.Context, opts Options, prep *Prepared, repl *pgconn.PgConn, tgt *pgx.Conn, slot source.Slot) (lsn pglogrepl.LSN, rewritten []schema.TableName, err error) {
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
		return 0, nil, err // a value no rule can mask is fatal (transient)
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
