package replicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/rules"
	"pgveil/schema"
)

// This file holds what makes a rule change safe under least privilege: a
// change that needs something pgveil's role lacks on production (a
// publication change only the tables' owner may make, SELECT on a new
// table) never stops replication. The rules in force keep streaming, the
// log, the metrics, /healthz and status say what is missing, and the
// change is put in force as soon as it is there.

// Waiting is what a rule change waits for before pgveil can put it in
// force. It holds names and statements only, never values.
type Waiting struct {
	// Publication holds the statements for the tables' owner when the
	// publication must change and pgveil's role cannot change it.
	Publication *source.OwnerNeededError
	// Grants are the privileges the copy of the rules' tables needs.
	Grants []source.Grant
	// Failed is the server's refusal when the change was tried and failed
	// on a privilege no check foresaw (names only, as PostgreSQL words it).
	Failed string
}

// Lines are what to run, one statement per line, in the order to run
// them: grants first (the copy needs them once the publication holds the
// tables).
func (w *Waiting) Lines() []string {
	if w == nil {
		return nil
	}
	var out []string
	for _, g := range w.Grants {
		out = append(out, g.Statement+";")
	}
	if w.Publication != nil {
		for _, s := range w.Publication.Statements {
			out = append(out, s+";")
		}
	}
	if w.Failed != "" && len(out) == 0 {
		out = append(out, "-- "+w.Failed)
	}
	return out
}

// String says what is missing and who can give it, over several lines.
func (w *Waiting) String() string {
	var b strings.Builder
	b.WriteString("run in the production database, as a superuser (or the objects' owner):\n")
	for _, l := range w.Lines() {
		b.WriteString("  " + l + "\n")
	}
	for _, g := range w.Grants {
		fmt.Fprintf(&b, "(%s: %s)\n", g.Object, g.Need)
	}
	if w.Publication != nil {
		fmt.Fprintf(&b, "(the publication: PostgreSQL lets only a table's owner add it to a publication, and %s does not own %s)\n",
			w.Publication.Role, strings.Join(w.Publication.Tables, ", "))
	}
	return strings.TrimRight(b.String(), "\n")
}

func joinNames(ns []schema.TableName) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.QualifiedName()
	}
	return strings.Join(s, ", ")
}

// held returns the tables that cannot be copied for want of the waiting
// grants, or nil when something else is missing too (the publication's
// statements, a privilege on the database): then nothing of the change
// can go ahead.
func (w *Waiting) held() []schema.TableName {
	if w == nil || w.Publication != nil || w.Failed != "" {
		return nil
	}
	var out []schema.TableName
	for _, g := range w.Grants {
		if len(g.Tables) == 0 {
			return nil
		}
		for _, t := range g.Tables {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	slices.SortFunc(out, func(a, b schema.TableName) int { return strings.Compare(a.QualifiedName(), b.QualifiedName()) })
	return out
}

// readyPart is the part of the rule change cfg that can go ahead while
// the held tables wait: cfg, with the rules in force (old) for the held
// tables that old names, and without the held tables that are new.
func readyPart(old, cfg *rules.Config, held []schema.TableName) *rules.Config {
	ready := *cfg
	ready.Tables = nil
	for _, t := range cfg.Tables {
		n := schema.TableName{Schema: t.Schema, Name: t.Name}
		if !slices.Contains(held, n) {
			ready.Tables = append(ready.Tables, t)
			continue
		}
		for _, o := range old.Tables {
			if o.Schema == t.Schema && o.Name == t.Name {
				ready.Tables = append(ready.Tables, o)
			}
		}
	}
	return &ready
}

// TablesToCopy returns the tables the prepared rules would copy (new, or
// under changed rules, or marked for a re-copy), or nil when the target
// holds no checkpoint yet (a first copy reads every table). Reload and
// status ask it.
func TablesToCopy(ctx context.Context, cfg *rules.Config, prep *Prepared) (map[schema.TableName]bool, error) {
	tgt, err := connectTarget(ctx, cfg.Target.DSN.Reveal())
	if err != nil {
		return nil, err
	}
	defer tgt.Close(context.Background())
	_, found, err := target.ReadCheckpoint(ctx, tgt, cfg.Source.Slot)
	if err != nil || !found {
		return nil, err
	}
	keys, err := cfg.Keys()
	if err != nil {
		return nil, err
	}
	_, resync, _, err := target.CompareRules(ctx, tgt, prep.Plan, keys.Fingerprint(), true)
	return resync, err
}

// Prerequisites returns what the prepared rules need on production that
// pgveil's role lacks, or nil when nothing is missing: the publication
// change (when only the tables' owner can make it) and the grants the
// copy of their tables needs (of the tables in copyOnly, when not nil: a
// table already replicated under the same rules needs no SELECT). A
// change that would make production's writes fail is an error
// (*source.UnsafeError), not something to wait for.
func Prerequisites(ctx context.Context, src *pgx.Conn, prep *Prepared, copyOnly map[schema.TableName]bool) (*Waiting, error) {
	var w Waiting
	_, err := source.CheckPublication(ctx, src, prep.Publication, prep.Catalog)
	var oe *source.OwnerNeededError
	switch {
	case errors.As(err, &oe) && oe.Serves:
		// Stricter than the rules ask, and enough to replicate.
	case errors.As(err, &oe):
		w.Publication = oe
	case err != nil:
		return nil, err
	}
	if w.Grants, err = source.MissingGrants(ctx, src, prep.Plan, prep.Publication, copyOnly); err != nil {
		return nil, err
	}
	if w.Publication == nil && len(w.Grants) == 0 {
		return nil, nil
	}
	return &w, nil
}

// setPending records the rule change that waits (nil: none) and tells the
// log and the observer when what it waits for changes.
func (p *Pipeline) setPending(cfg *rules.Config, w *Waiting) {
	p.mu.Lock()
	was := p.waiting
	p.pending, p.waiting = cfg, w
	if cfg == nil {
		p.readyKey = ""
	}
	p.mu.Unlock()
	lines := w.Lines()
	if slices.Equal(was.Lines(), lines) && (was == nil) == (w == nil) {
		return
	}
	p.opts.Observer.RulesPending(lines)
	switch {
	case w != nil:
		p.opts.Logger.Warn("a rule change waits for what pgveil's role lacks on production; the rules in force keep streaming",
			"file", cfg.File, "waiting_for", w.String())
	case was != nil && cfg == nil:
		p.opts.Logger.Info("the rule change no longer waits")
	}
}

// Pending returns the rule change that waits and what it waits for, or
// nil, nil.
func (p *Pipeline) Pending() (*rules.Config, *Waiting) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending, p.waiting
}

// pendingInterval is how often a waiting rule change is tried again.
func (p *Pipeline) pendingInterval() time.Duration {
	return min(p.opts.MonitorInterval, 10*time.Second)
}

// retryPending tries a waiting rule change again every pendingInterval
// until ctx ends, and puts it in force once nothing is missing.
func (p *Pipeline) retryPending(ctx context.Context) {
	t := time.NewTicker(p.pendingInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cfg, _ := p.Pending()
		if cfg == nil {
			continue
		}
		err := p.reload(ctx, cfg, cfg)
		var pe *RulesPendingError
		switch {
		case err == nil:
			p.opts.Logger.Info("the rule change that waited is in force now", "file", cfg.File)
		case errors.As(err, &pe), errors.Is(err, errStale), ctx.Err() != nil:
		default:
			// Not a missing privilege any more (production's schema moved
			// on, or the source is away): say so, and try again later.
			p.opts.Logger.Warn("trying the waiting rule change again", "file", cfg.File, "error", strings.TrimSpace(err.Error()))
		}
	}
}

// fallBack handles an attempt with rules cfg that failed for a privilege
// pgveil's role lacks (the publication's owner statements, or a copy's
// "permission denied") after a rule change: it puts the rules that
// streamed before back in force and makes cfg wait, and reports whether
// it did. On a first start there is nothing to go back to, and the
// failure stops pgveil with its message.
func (p *Pipeline) fallBack(ctx context.Context, err error, cfg *rules.Config) bool {
	w := privilegeWait(err)
	if w == nil {
		return false
	}
	// The owner may have run the waiting change's statements, which the
	// rules in force then no longer fit (a table taken out of the
	// publication): go forward to the waiting rules, or to the part of
	// them that can run, when they can.
	if pending, _ := p.Pending(); pending != nil && pending != cfg {
		rerr := p.reload(ctx, pending, pending)
		var pe *RulesPendingError
		if rerr == nil || errors.As(rerr, &pe) && pe.readyNow {
			p.mu.Lock()
			p.reloaded = false // this attempt's failure is answered: the next one runs the new rules
			p.mu.Unlock()
			p.opts.Logger.Info("the rules in force no longer fit production's publication; the rule change that waited is in force now", "file", pending.File)
			return true
		}
	}
	p.mu.Lock()
	good := p.good
	if good == nil || good == cfg {
		p.mu.Unlock()
		return false
	}
	p.cfg = good
	p.mu.Unlock()
	p.opts.Logger.Warn("the new rules need a privilege pgveil's role lacks: the rules that streamed before are back in force", "error", serverMessage(err))
	p.setPending(cfg, w)
	return true
}

// temporaryNeeded returns a wait for TEMPORARY on the database when a
// table of cfg has a where (pgveil plans and evaluates it through a
// temporary view) and pgveil's role lacks it; nil otherwise.
func temporaryNeeded(ctx context.Context, src *pgx.Conn, cfg *rules.Config) (*Waiting, error) {
	if !slices.ContainsFunc(cfg.Tables, func(t *rules.TableRule) bool { return t != nil && t.Where != "" }) {
		return nil, nil
	}
	g, err := source.MissingTemporary(ctx, src)
	if err != nil || g == nil {
		return nil, err
	}
	return &Waiting{Grants: []source.Grant{*g}}, nil
}

// privilegeWait is what err, an attempt's failure, says pgveil's role
// lacks: the publication's statements for the tables' owner, or a
// privilege PostgreSQL refused (42501); nil for any other failure.
func privilegeWait(err error) *Waiting {
	var oe *source.OwnerNeededError
	switch {
	case errors.As(err, &oe) && !oe.Serves:
		return &Waiting{Publication: oe}
	case schema.SQLState(err) == "42501":
		return &Waiting{Failed: serverMessage(err)}
	}
	return nil
}

// waitBlocked reports that the rules in force cannot run for want of a
// privilege, and waits before the next attempt; false when ctx ended.
func (p *Pipeline) waitBlocked(ctx context.Context, be *blockedError, cfg *rules.Config) bool {
	w := be.wait
	p.setPending(cfg, w)
	p.opts.Observer.Phase(PhaseRetrying, be)
	p.opts.Logger.Error("pgveil cannot replicate with the rules in force until pgveil's role gets what they need on production; it tries again every few seconds, and the slot keeps production's WAL meanwhile",
		"waiting_for", w.String(), "in", p.pendingInterval().String())
	return p.sleep(ctx, p.pendingInterval())
}

// serverMessage is the server's own message in err's chain (it names
// objects, never values), or err's text.
func serverMessage(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		if e, ok := se.(error); ok {
			return e.Error()
		}
	}
	return err.Error()
}
