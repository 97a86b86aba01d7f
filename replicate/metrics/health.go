package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"pgveil/replicate"
)

// Reasons Health gives. They are fixed sentences: no error text, name or
// number from the pipeline goes into them.
const (
	reasonStartSlow      = "starting is taking too long"
	reasonSnapshotStuck  = "the initial copy has made no progress recently"
	reasonSourceSilent   = "nothing heard from the source and nothing committed to the target recently"
	reasonSlotLost       = "the replication slot has lost WAL it needs; a re-sync is needed"
	reasonRetrying       = "retrying after a failure (see the log)"
	reasonStoppedFailure = "stopped after a failure (see the log)"
	reasonStopped        = "stopped"
	reasonUnknownPhase   = "the pipeline is in an unknown phase"
	reasonRulesPending   = "a rule change waits: run in production, as a superuser or the tables' owner:"
)

// Handler serves GET /metrics (Prometheus text format, from the Metrics'
// own registry) and GET /healthz (200 "ok" when healthy, else 503 with the
// reason).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", m.serveHealth)
	return mux
}

func (m *Metrics) serveHealth(w http.ResponseWriter, _ *http.Request) {
	ok, reason := m.Health()
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if ok {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
		// A rule change waiting for a privilege is not a failure (the
		// rules in force stream, and restarting would not help), but it
		// needs a person: say what to run, names only.
		if pending := m.PendingRules(); len(pending) > 0 {
			_, _ = w.Write([]byte(reasonRulesPending + "\n  " + strings.Join(pending, "\n  ") + "\n"))
		}
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(reason + "\n"))
}

// Health returns whether pgveil is healthy and, when not, why (a short
// sentence, no values):
//
//   - starting is healthy for StartTimeout;
//   - snapshot is healthy while the copy progresses: a table's rows or
//     bytes grew, or a table started or finished, within SnapshotTimeout
//     (entering the phase counts);
//   - streaming is healthy while the source was heard from or a target
//     transaction committed within SourceTimeout (entering the phase
//     counts), unless the slot, as read since the pipeline last started, has
//     lost WAL;
//   - retrying and stopped are unhealthy.
func (m *Metrics) Health() (ok bool, reason string) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.st
	within := func(limit, dflt time.Duration, ts ...time.Time) bool {
		if limit <= 0 {
			limit = dflt
		}
		return now.Sub(later(ts...)) <= limit
	}
	switch s.phase {
	case replicate.PhaseStarting:
		if !within(m.StartTimeout, DefaultStartTimeout, s.phaseSince) {
			return false, reasonStartSlow
		}
	case replicate.PhaseSnapshot:
		if !within(m.SnapshotTimeout, DefaultSnapshotTimeout, s.phaseSince, s.snapshotMovedAt) {
			return false, reasonSnapshotStuck
		}
	case replicate.PhaseStreaming:
		if s.slot != nil && s.slot.Exists && s.slot.WALStatus == "lost" && s.slotFresh {
			return false, reasonSlotLost
		}
		if !within(m.SourceTimeout, DefaultSourceTimeout, s.phaseSince, s.heardAt, s.committedAt) {
			return false, reasonSourceSilent
		}
	case replicate.PhaseRetrying:
		return false, reasonRetrying
	case replicate.PhaseStopped:
		if s.failed {
			return false, reasonStoppedFailure
		}
		return false, reasonStopped
	default:
		return false, reasonUnknownPhase
	}
	return true, ""
}
