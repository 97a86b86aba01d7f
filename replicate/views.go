package replicate

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/rules"
	"pgveil/transform"
)

// ViewsObserver is told, after each look at production's views, how many
// the replica has and how many it is kept from. An Observer that also
// implements it gets the report (the metrics do).
type ViewsObserver interface {
	Views(created, keptOut int)
}

// viewWatch keeps the replica's copies of production's views in line with
// production and the rules (docs/operations.md, "Views"): before Setup it
// drops those the new rules leave without a column; after it, it creates
// the missing ones; then, beside the stream, it follows production's
// definitions and refreshes the materialized ones.
type viewWatch struct {
	opts    Options
	plan    *transform.Plan
	tn      *target.Tenancy
	readers []string
	last    string // the report last logged
}

func newViewWatch(opts Options, plan *transform.Plan) *viewWatch {
	return &viewWatch{opts: opts, plan: plan, tn: TargetTenancy(opts.Config), readers: opts.Config.Target.Readers}
}

// want reads production's views and decides which the replica gets.
func (w *viewWatch) want(ctx context.Context, src *pgx.Conn) ([]target.View, error) {
	var schemas []string
	for _, t := range w.plan.Tables() {
		if !slices.Contains(schemas, t.Table.Schema) {
			schemas = append(schemas, t.Table.Schema)
		}
	}
	vs, err := source.ReadViews(ctx, src, schemas)
	if err != nil {
		return nil, err
	}
	var out []target.View
	for _, d := range source.DecideViews(vs, w.plan) {
		v := target.View{Name: d.View.Name, Materialized: d.View.Materialized, Definition: d.View.Definition,
			SecurityBarrier: d.View.SecurityBarrier, Hash: d.View.Hash(), Reads: d.Views, KeptOut: d.KeptOut}
		// Tenants read a view as themselves (security_invoker), and only
		// when they read every table under it: a materialized view shows
		// its owner's rows, so never through one.
		if w.tn != nil && !v.Materialized && !d.ReadsMaterialized {
			v.Tenants = true
			for _, t := range d.Tables {
				if _, ok := w.tn.Tables[t]; !ok {
					v.Tenants = false
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func (w *viewWatch) group() string {
	if w.tn == nil {
		return ""
	}
	return w.tn.Group
}

// dropStale drops, before Setup, pgveil's views that the rules in force
// no longer allow or production changed: Setup cannot drop a column a
// view reads.
func (w *viewWatch) dropStale(ctx context.Context, src, tgt *pgx.Conn) error {
	want, err := w.want(ctx, src)
	if err != nil {
		return err
	}
	res, err := target.SyncViews(ctx, tgt, want, w.readers, w.group(), true)
	if err != nil {
		return err
	}
	if len(res.Dropped) > 0 {
		w.opts.Logger.Info("views dropped from the replica: production changed them, or the rules no longer replicate what they read", "views", strings.Join(res.Dropped, ", "))
	}
	return nil
}

// sync creates the views the replica lacks, drops those production
// changed or dropped, and reports.
func (w *viewWatch) sync(ctx context.Context, src, tgt *pgx.Conn) error {
	want, err := w.want(ctx, src)
	if err != nil {
		return err
	}
	res, err := target.SyncViews(ctx, tgt, want, w.readers, w.group(), false)
	if err != nil {
		return err
	}
	w.report(res)
	return nil
}

// report logs what changed (names and reasons only) and tells the
// observer the counts.
func (w *viewWatch) report(res *target.ViewsResult) {
	log := w.opts.Logger
	if len(res.Dropped) > 0 {
		log.Info("views dropped from the replica: production changed or dropped them, or the rules no longer replicate what they read", "views", strings.Join(res.Dropped, ", "))
	}
	if len(res.Created) > 0 {
		log.Info("views created on the replica from production's definitions", "views", strings.Join(res.Created, ", "))
	}
	var b strings.Builder
	kept := make([]string, 0, len(res.KeptOut))
	for k := range res.KeptOut {
		kept = append(kept, k)
	}
	slices.Sort(kept)
	for _, k := range kept {
		fmt.Fprintf(&b, "%s: %s\n", k, res.KeptOut[k])
	}
	if now := b.String(); now != w.last {
		for _, k := range kept {
			log.Warn("view kept out of the replica", "view", k, "reason", res.KeptOut[k])
		}
		w.last = now
	}
	if o, ok := w.opts.Observer.(ViewsObserver); ok {
		o.Views(len(res.Present), len(res.KeptOut))
	}
}

// run refreshes the materialized views that are due at once, then, every
// MonitorInterval, follows production's views and refreshes again, until
// ctx ends. It opens its own connections; failures are logged and tried
// again at the next round.
func (w *viewWatch) run(ctx context.Context) {
	cfg := w.opts.Config
	every := cfg.Target.RefreshMaterializedViews
	if every <= 0 {
		every = rules.DefaultRefreshMaterializedViews
	}
	var src, tgt *pgx.Conn
	defer func() {
		for _, c := range []*pgx.Conn{src, tgt} {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	warn := func(what string, err error) {
		if ctx.Err() == nil {
			w.opts.Logger.Warn(what, "error", err.Error())
		}
	}
	conns := func() bool {
		var err error
		if tgt == nil || tgt.IsClosed() {
			if tgt, err = connectTarget(ctx, cfg.Target.DSN.Reveal()); err != nil {
				tgt = nil
				warn("views: connecting to the replica", err)
				return false
			}
		}
		if src == nil || src.IsClosed() {
			if src, err = connectSource(ctx, cfg.Source.DSN.Reveal()); err != nil {
				src = nil
				warn("views: connecting to production", err)
				return false
			}
		}
		return true
	}
	round := func(follow bool) bool {
		if !conns() {
			return true
		}
		if follow {
			if err := w.sync(ctx, src, tgt); err != nil {
				warn("views: following production's views", err)
			}
		}
		done, err := target.RefreshViews(ctx, tgt, every)
		if len(done) > 0 {
			w.opts.Logger.Info("materialized views refreshed", "views", strings.Join(done, ", "))
		}
		if err != nil {
			warn("views: refreshing materialized views", err)
		}
		return true
	}
	round(false)
	everyInterval(ctx, w.opts.MonitorInterval, func() bool { return round(true) })
}
