package replicate

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/replicate/source"
	"pgveil/transform"
)

// ReadSlot reads the replication slot's state from pg_replication_slots
// (Exists is false when there is no such slot).
func ReadSlot(ctx context.Context, conn *pgx.Conn, name string) (SlotStatus, error) {
	s, err := source.ReadSlot(ctx, conn, name)
	return slotStatus(s), err
}

// slotStatus is s as the observer is told it.
func slotStatus(s source.Slot) SlotStatus {
	return SlotStatus{Name: s.Name, Exists: s.Exists, Active: s.Active, WALStatus: s.WALStatus,
		RetainedBytes: s.RetainedBytes, ConfirmedFlushLSN: s.ConfirmedFlushLSN, CurrentLSN: s.CurrentLSN}
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
// and new drift to the log. It owns src while it runs. Each check is a
// method that logs what it found and returns the reason to restart, or
// nil; a check that cannot read what it looks at logs it and lets the
// next round try again.
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

// run does a round every MonitorInterval, and the urgent checks every
// partitionInterval, until ctx ends or a check finds that the pipeline
// must restart, which it then asks of restart.
func (m *monitor) run(ctx context.Context, restart context.CancelCauseFunc) {
	every := min(m.opts.MonitorInterval, partitionInterval)
	next := time.Now().Add(m.opts.MonitorInterval)
	everyInterval(ctx, every, func() bool {
		r := m.urgent(ctx)
		if r == nil && !time.Now().Before(next) {
			next = time.Now().Add(m.opts.MonitorInterval)
			r = m.round(ctx)
		}
		if r != nil {
			restart(r)
			return false
		}
		return true
	})
}

// check is one of the monitor's checks.
type check func(context.Context) restartReason

// first runs checks in order and returns the first reason to restart.
func first(ctx context.Context, checks ...check) restartReason {
	for _, c := range checks {
		if r := c(ctx); r != nil {
			return r
		}
	}
	return nil
}

// urgent runs the checks that cannot wait for a round: production's
// writes broken by a REPLICA IDENTITY change under column lists, a
// publication widened behind pgveil's back, and the partitioned tables'
// leaves.
func (m *monitor) urgent(ctx context.Context) restartReason {
	return first(ctx, m.brokenWrites, m.widened, m.partitions)
}

// round checks everything once, and reports the slot and the drift.
func (m *monitor) round(ctx context.Context) restartReason {
	return first(ctx, m.urgent, m.tenancy, m.slot, m.drift, m.unpublished)
}

// warn logs a check's failure to read, unless the attempt is ending.
func (m *monitor) warn(ctx context.Context, what string, err error) {
	if ctx.Err() == nil {
		m.opts.Logger.Warn(what, "error", err.Error())
	}
}

// brokenWrites: under column lists, a REPLICA IDENTITY changed in
// production makes its UPDATE and DELETE fail; the restart brings the
// publication in line.
func (m *monitor) brokenWrites(ctx context.Context) restartReason {
	broken, err := source.BrokenWrites(ctx, m.src, m.opts.Config.Source.Publication)
	if err != nil {
		m.warn(ctx, "checking the publication against the tables' replica identity", err)
		return nil
	}
	if len(broken) == 0 {
		return nil
	}
	m.opts.Logger.Error("production's UPDATE and DELETE now fail on tables whose REPLICA IDENTITY changed while the publication lists their columns (publication_mode column_lists): restarting to bring the publication in line",
		"tables", strings.Join(broken, ", "))
	return &restart{kind: restartBrokenWrites}
}

// widened: under column_lists nothing unpublished may leave production:
// a publication widened behind pgveil's back is narrowed again.
func (m *monitor) widened(ctx context.Context) restartReason {
	if m.spec == nil || !m.spec.ColumnLists {
		return nil
	}
	wider, err := source.Widened(ctx, m.src, m.spec)
	if err != nil {
		m.warn(ctx, "checking the publication's column lists", err)
		return nil
	}
	if len(wider) == 0 {
		return nil
	}
	m.opts.Logger.Error("the publication sends production's columns or tables that the rules do not publish (it was changed behind pgveil's back; publication_mode column_lists): restarting to narrow it",
		"publication", m.spec.Name, "tables", strings.Join(wider, ", "))
	return &restart{kind: restartWidened}
}

// partitions: partition maintenance changed tables' rows without a
// published change; the restart copies them again.
func (m *monitor) partitions(ctx context.Context) restartReason {
	diverged, err := m.parts.check(ctx, m.src, m.opts.Logger)
	if err != nil {
		m.warn(ctx, "checking the partitions", err)
		return nil
	}
	if len(diverged) == 0 {
		return nil
	}
	return &restart{kind: restartPartitions, tables: diverged}
}

// tenancy: under a tenancy section, row level security turned off on a
// replicated table, or a view that shows tenants other tenants' rows;
// the restart sets row level security up again, or takes the views away.
func (m *monitor) tenancy(ctx context.Context) restartReason {
	unprotected, leaky := m.tw.check(ctx, m.opts.Logger, m.opts.Observer)
	if len(unprotected) > 0 {
		m.opts.Logger.Error("row level security is off on replicated tables although the rules have a tenancy section: tenants could read every row; restarting to set it up again",
			"tables", strings.Join(unprotected, ", "))
		return &restart{kind: restartRowSecurity}
	}
	if len(leaky) > 0 {
		// The restart takes the group's SELECT off views pgveil's role
		// owns, and stops, naming them, at the others.
		m.opts.Logger.Error("tenants can read views that would show them other tenants' rows (materialized, or without security_invoker); restarting to take them away",
			"views", strings.Join(leaky, ", "))
		return &restart{kind: restartLeakyViews}
	}
	return nil
}

// slot reports the slot's state; it never restarts.
func (m *monitor) slot(ctx context.Context) restartReason {
	reportSlot(ctx, m.opts, m.src)
	return nil
}

// drift reports what production has that the rules do not name (logged
// when it changes); a column whose type changed restarts, to copy its
// table again with the new type.
func (m *monitor) drift(ctx context.Context) restartReason {
	d, err := DetectDrift(ctx, m.src, m.opts.Config, m.plan)
	if err != nil {
		m.warn(ctx, "checking the source schema", err)
		return nil
	}
	m.opts.Observer.Drift(d)
	if len(d.TypeChanged) > 0 {
		m.opts.Logger.Warn("a column's type changed in production: restarting to copy the table again with the new type",
			"changed", strings.TrimSpace(d.String()))
		return &restart{kind: restartColumnType}
	}
	if now := d.String(); now != m.last {
		if now != "" {
			m.opts.Logger.Warn("the source schema has changed: what no rule names is not replicated; write rules for it (then reload)",
				"drift", strings.TrimSpace(now))
		}
		m.last = now
	}
	return nil
}

// unpublished: tables that left the publication behind pgveil's back
// missed their changes since; the restart publishes and copies them
// again.
func (m *monitor) unpublished(ctx context.Context) restartReason {
	gone, err := source.Unpublished(ctx, m.src, m.opts.Config.Source.Publication, m.plan)
	if err != nil || len(gone) == 0 {
		return nil
	}
	m.opts.Logger.Error("tables left the publication behind pgveil's back (DROP COLUMN ... CASCADE, or a manual ALTER PUBLICATION): their changes since then were not sent; restarting to publish and copy them again",
		"tables", joinNames(gone))
	return &restart{kind: restartUnpublished, tables: gone}
}
