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
	"pgveil/rules"
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

// RulesPendingError is Reload's answer when the new rules are valid but
// need something pgveil's role lacks: the rules in force stay and keep
// streaming, and the new ones are put in force as soon as it is there.
type RulesPendingError struct{ Waiting *Waiting }

func (e *RulesPendingError) Error() string {
	return "the new rules are valid, but pgveil's role cannot put them in force yet; the rules in force keep streaming, and pgveil applies the new ones as soon as this is done (it checks every few seconds): " +
		e.Waiting.String()
}

// Prerequisites returns what the prepared rules need on production that
// pgveil's role lacks, or nil when nothing is missing: the publication
// change (when only the tables' owner can make it) and the grants the
// copy of their tables needs. A change that would make production's
// writes fail is an error (*source.UnsafeError), not something to wait for.
func Prerequisites(ctx context.Context, src *pgx.Conn, prep *Prepared) (*Waiting, error) {
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
	if w.Grants, err = source.MissingGrants(ctx, src, prep.Plan, prep.Publication); err != nil {
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
		err := p.Reload(ctx, cfg)
		var pe *RulesPendingError
		switch {
		case err == nil:
			p.opts.Logger.Info("the rule change that waited is in force now", "file", cfg.File)
		case errors.As(err, &pe), ctx.Err() != nil:
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
func (p *Pipeline) fallBack(err error, cfg *rules.Config) bool {
	var oe *source.OwnerNeededError
	var w *Waiting
	switch {
	case errors.As(err, &oe) && !oe.Serves:
		w = &Waiting{Publication: oe}
	case sqlState(err) == "42501":
		w = &Waiting{Failed: serverMessage(err)}
	default:
		return false
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
