// Package metrics implements replicate.Observer with Prometheus metrics and
// a health check, served by `pgveil run --listen ADDR` as /metrics and
// /healthz.
//
// Like the Observer it implements, it never holds a value from the source:
// its labels are table names, operations, phases, error kinds and slot WAL
// statuses, each from a fixed set except table names; the errors it is given
// are reduced to "there was one".
//
// Every metric is there from the first scrape, so that alerts and
// dashboards never meet a series that appears only once something happens:
// a gauge pgveil cannot know yet (the slot before it is first read, the lag
// before a position is durable in the target, the schema drift before the
// first check) is NaN, Prometheus's "unknown", which no comparison in an
// alert matches; the per-table series exist for every table the rules
// replicate from the start of the pipeline. Only the initial copy's
// per-table progress exists just for the tables of a copy.
//
// Lag is worked out at scrape time from what the pipeline reported:
//
//   - The server's WAL end is the highest position known to exist: read
//     from the server (SourceWALEnd: at the stream's start and every
//     second), in the slot's reading, or received. The messages of a
//     logical walsender do not carry it: an XLogData's WAL end is the
//     record's own position (or 0), and a keepalive's is how far the
//     walsender has sent, far behind during a backlog.
//   - The copy is caught up when the pipeline is streaming, no change has
//     been applied since the last target commit, and the last message from
//     the source was a keepalive at or past the server's WAL end as known
//     when it came. The server sends one when it has sent everything, and
//     the streamer asks for one each status interval while idle, so an idle
//     copy reads as caught up even though unrelated WAL moves the server's
//     end past the last commit; a keepalive behind the server's end (a
//     backlog being decoded) is not caught up.
//   - pgveil_lag_bytes is the server's WAL end minus what is known to be
//     applied: the durable LSN, or the WAL end of the last keepalive that
//     found nothing pending, whichever is higher.
//   - pgveil_lag_seconds is 0 when caught up, else the time since the later
//     of the last committed source transaction's commit time and the moment
//     the copy was last known caught up. That is an upper bound on the age of
//     the oldest change not yet in the target: it does not jump to the length
//     of an idle spell when a transaction arrives after one, and it grows
//     while pgveil is not streaming or replays a backlog.
//   - Both are NaN until a position durable in the target is known (read
//     at start, written by the initial copy, or committed): during the
//     first initial copy nothing is applied yet to measure from.
package metrics

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus"

	"pgveil/replicate"
)

// Defaults of the health check's limits.
const (
	// DefaultSourceTimeout is twice the streamer's default status
	// interval: the streamer asks the idle server for a keepalive each
	// interval, so a healthy stream hears from it at least that often.
	DefaultSourceTimeout = 60 * time.Second
	// DefaultSnapshotTimeout is how long the initial copy may go without
	// progress; the snapshot reports progress every few seconds.
	DefaultSnapshotTimeout = 60 * time.Second
	// DefaultStartTimeout is how long starting (connecting, checking,
	// preparing) may take.
	DefaultStartTimeout = 2 * time.Minute
)

// Label values of the fixed sets. A value outside its set is counted under
// "other" (op, kind) or "unknown" (wal_status), so that nothing but these
// names and table names can become a label value.
var (
	phases      = []string{replicate.PhaseStarting, replicate.PhaseSnapshot, replicate.PhaseStreaming, replicate.PhaseRetrying, replicate.PhaseStopped}
	ops         = []string{"insert", "update", "delete", "truncate", "filtered"}
	errorKinds  = []string{"transient", "fatal", "masking"}
	walStatuses = []string{"reserved", "extended", "unreserved", "lost"}
)

const (
	otherLabel   = "other"
	unknownLabel = "unknown"
)

// Metrics implements replicate.Observer and serves /metrics and /healthz.
// Its methods are safe for concurrent use.
type Metrics struct {
	// SourceTimeout is how long the stream may go without a message from
	// the source and without a target commit before it is unhealthy
	// (twice the streamer's status interval). Zero means
	// DefaultSourceTimeout. Set it before the Metrics is used.
	SourceTimeout time.Duration
	// SnapshotTimeout is how long the initial copy may go without progress
	// before it is unhealthy. Zero means DefaultSnapshotTimeout. Set it
	// before the Metrics is used.
	SnapshotTimeout time.Duration
	// StartTimeout is how long starting may take before it is unhealthy.
	// Zero means DefaultStartTimeout. Set it before the Metrics is used.
	StartTimeout time.Duration

	now func() time.Time
	reg *prometheus.Registry

	changes      *prometheus.CounterVec
	transactions prometheus.Counter
	batchChanges prometheus.Histogram
	batchBytes   prometheus.Histogram
	applySeconds prometheus.Histogram
	errors       *prometheus.CounterVec
	streamed     *prometheus.CounterVec
	buildInfo    *prometheus.GaugeVec

	// pending counts changes applied since the last target commit. It is
	// kept outside mu: Change is on the apply path.
	pending atomic.Int64

	mu sync.Mutex
	st state
}

// state is what the gauges and the health check are worked out from.
type state struct {
	phase      string
	phaseSince time.Time
	failed     bool // the phase was reported with an error

	heardAt       time.Time     // last message from the source
	walEnd        pglogrepl.LSN // WAL end in that message (see SourceAlive)
	lastKeepalive bool          // ... which was a keepalive
	sentAll       bool          // ... at or past serverEnd: the server had sent everything
	serverEnd     pglogrepl.LSN // the server's WAL end: the highest position known to exist
	durable       pglogrepl.LSN // position durable in the target
	durableKnown  bool          // durable was reported (checkpoint or commit)
	committedAt   time.Time     // when the last target commit was reported
	commitTime    time.Time     // source commit time of the last target commit; zero when unknown
	confirmed     pglogrepl.LSN // WAL end of the last keepalive that found nothing pending
	caughtUpAt    time.Time     // when the copy was last known caught up

	snapshot        map[string]*tableProgress
	snapshotMovedAt time.Time

	// tables are the replicated tables' label values, sorted: each has
	// its per-table series from the start.
	tables []string

	slot      *replicate.SlotStatus // nil until first read
	slotFresh bool                  // slot was reported since the pipeline last started

	drift *driftCounts // nil until first checked

	// tenancy holds the last Tenancy report: roles, unprotected tables,
	// leaky views; nil until first checked.
	tenancy *[3]int

	// views holds the last Views report: created, kept out; nil until
	// the first.
	views *[2]int

	// lockWait is the last SourceLockWait report; nil until the first.
	lockWait *time.Duration

	// rulesPending are the statements a waiting rule change needs.
	rulesPending []string
}

type tableProgress struct {
	rows, bytes, estimated int64
	done                   bool
}

// driftCounts is what the metrics keep of a Drift: counts by table.
type driftCounts struct {
	unruled, missing, typeChanged map[string]int
	newTables, missingTables      int
	any                           bool
}

// New creates the metrics on their own prometheus.Registry. now is the
// clock: time.Now in production, a fake in tests.
func New(now func() time.Time) *Metrics {
	m := &Metrics{now: now, reg: prometheus.NewRegistry()}
	m.st.phase = replicate.PhaseStarting
	m.st.phaseSince = now()
	m.st.snapshot = map[string]*tableProgress{}

	m.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgveil_changes_total",
		Help: "Changes applied to the target by table and op (insert, update, delete, truncate; filtered: turned away by the table's row filter).",
	}, []string{"table", "op"})
	m.transactions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgveil_transactions_total",
		Help: "Target transactions committed.",
	})
	m.batchChanges = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pgveil_batch_changes",
		Help:    "Changes per committed target transaction.",
		Buckets: prometheus.ExponentialBucketsRange(1, 100000, 11),
	})
	m.batchBytes = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pgveil_batch_bytes",
		Help:    "Bytes of values per committed target transaction.",
		Buckets: prometheus.ExponentialBuckets(1024, 4, 10),
	})
	m.applySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pgveil_apply_seconds",
		Help:    "Time a target transaction's commit took.",
		Buckets: prometheus.ExponentialBucketsRange(0.001, 30, 16),
	})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgveil_errors_total",
		Help: "Failures by kind: transient (retried), fatal (stopped), masking (a value the rules could not mask).",
	}, []string{"kind"})
	for _, k := range errorKinds {
		m.errors.WithLabelValues(k)
	}
	m.streamed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgveil_streamed_transactions_total",
		Help: "Big transactions production sent in pieces, by how they were applied: as_streamed (as their pieces arrived) or at_commit (from their spill).",
	}, []string{"applied"})
	for _, k := range streamedHow {
		m.streamed.WithLabelValues(k)
	}
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pgveil_build_info",
		Help: "Always 1, labelled with the version of pgveil.",
	}, []string{"version"})
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pgveil_up",
		Help: "Always 1 while pgveil serves metrics.",
	})
	up.Set(1)

	m.reg.MustRegister(m.changes, m.transactions, m.batchChanges, m.batchBytes, m.applySeconds,
		m.errors, m.streamed, m.buildInfo, up, (*collector)(m))
	return m
}

var _ replicate.Observer = (*Metrics)(nil)

// Registry returns the registry the metrics are on, for adding collectors
// of the process or the Go runtime.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetBuildInfo sets pgveil_build_info{version} to 1 for version.
func (m *Metrics) SetBuildInfo(version string) {
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(label(version)).Set(1)
}

// Phase records the pipeline's phase. Of err it keeps only whether there
// was one: its text could hold anything.
func (m *Metrics) Phase(phase string, err error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.st
	if phase != s.phase {
		s.phaseSince = now
		switch phase {
		case replicate.PhaseStarting:
			// A new attempt, perhaps after a re-sync: the slot's state is
			// the last one's until the stream reads it again.
			s.slotFresh = false
		case replicate.PhaseSnapshot:
			// A new copy: the last one's progress no longer says anything.
			s.snapshot = map[string]*tableProgress{}
			s.snapshotMovedAt = now
		case replicate.PhaseStreaming:
			// A new stream: what a failed attempt applied was rolled back,
			// and being caught up takes a keepalive on this stream.
			m.pending.Store(0)
			s.lastKeepalive, s.sentAll = false, false
		}
	}
	s.phase = phase
	s.failed = err != nil
}

// Tables records the tables the rules replicate: each gets its
// pgveil_changes_total series (at 0) and its per-table drift series now,
// before its first change or check.
func (m *Metrics) Tables(tables []string) {
	labels := make([]string, len(tables))
	for i, t := range tables {
		labels[i] = label(t)
	}
	slices.Sort(labels)
	labels = slices.Compact(labels)
	for _, t := range labels {
		for _, op := range ops {
			m.changes.WithLabelValues(t, op)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.tables = labels
}

// Checkpoint records the position durable in the target that a stream
// starts from.
func (m *Metrics) Checkpoint(lsn pglogrepl.LSN, commitTime time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.st
	s.durable, s.durableKnown, s.commitTime = lsn, true, commitTime
}

// SnapshotProgress records the progress of a table being copied.
func (m *Metrics) SnapshotProgress(table string, rows, bytes, estimatedRows int64, done bool) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.st
	table = label(table)
	p := s.snapshot[table]
	moved := p == nil
	if p == nil {
		p = &tableProgress{}
		s.snapshot[table] = p
	}
	if rows > p.rows || bytes > p.bytes || (done && !p.done) {
		moved = true
	}
	p.rows, p.bytes, p.estimated, p.done = rows, bytes, estimatedRows, p.done || done
	if moved {
		s.snapshotMovedAt = now
	}
}

// Change counts a change applied to table.
func (m *Metrics) Change(table, op string) {
	m.changes.WithLabelValues(label(table), oneOf(op, ops, otherLabel)).Inc()
	m.pending.Add(1)
}

// TargetCommit records a committed target transaction.
func (m *Metrics) TargetCommit(changes int, bytes int64, took time.Duration, lsn pglogrepl.LSN, commitTime time.Time) {
	m.transactions.Inc()
	m.batchChanges.Observe(float64(changes))
	m.batchBytes.Observe(float64(bytes))
	m.applySeconds.Observe(took.Seconds())
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending.Store(0)
	s := &m.st
	s.durable, s.durableKnown, s.commitTime, s.committedAt = lsn, true, commitTime, now
	if s.lastKeepalive {
		// The keepalive came after the last source commit: everything up
		// to its WAL end is now in the target.
		s.confirmed = max(s.confirmed, s.walEnd)
		if s.sentAll {
			s.caughtUpAt = now
		}
	}
}

// SourceAlive records a message from the source. A keepalive with nothing
// pending is caught up only if it is at or past the server's WAL end as
// known now: during a backlog the walsender sends keepalives too.
func (m *Metrics) SourceAlive(walEnd pglogrepl.LSN, keepalive bool) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.st
	s.heardAt, s.walEnd, s.lastKeepalive = now, walEnd, keepalive
	s.sentAll = keepalive && walEnd >= s.serverEnd
	s.serverEnd = max(s.serverEnd, walEnd)
	if keepalive && m.pending.Load() == 0 {
		// Everything up to the keepalive's WAL end is in the target; the
		// copy is caught up only if that is the server's end.
		s.confirmed = max(s.confirmed, walEnd)
		if s.sentAll {
			s.caughtUpAt = now
		}
	}
}

// SourceWALEnd records the server's WAL end as read from the server.
func (m *Metrics) SourceWALEnd(lsn pglogrepl.LSN) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.serverEnd = max(m.st.serverEnd, lsn)
}

// Slot records the replication slot's state.
func (m *Metrics) Slot(st replicate.SlotStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.slot, m.st.slotFresh = &st, true
	m.st.serverEnd = max(m.st.serverEnd, st.CurrentLSN)
}

// Drift records what the source holds that the rules do not name. A nil
// Drift says nothing and is ignored.
func (m *Metrics) Drift(d *replicate.Drift) {
	if d == nil {
		return
	}
	c := &driftCounts{
		unruled:       counts(d.Unruled),
		missing:       counts(d.Missing),
		typeChanged:   counts(d.TypeChanged),
		newTables:     len(d.NewTables),
		missingTables: len(d.MissingTables),
		any:           !d.Empty(),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.drift = c
}

// Tenancy records the replica's tenant isolation as the monitor last read it.
func (m *Metrics) Tenancy(roles, unprotectedTables, leakyViews int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.tenancy = &[3]int{roles, unprotectedTables, leakyViews}
}

// Views records how many of production's views the replica has and how
// many it is kept from (replicate.ViewsObserver).
func (m *Metrics) Views(created, keptOut int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.views = &[2]int{created, keptOut}
}

var _ replicate.ViewsObserver = (*Metrics)(nil)

// SourceLockWait records how long the longest of pgveil's statements
// waiting for a production lock has run (0: none waits).
func (m *Metrics) SourceLockWait(longest time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.lockWait = &longest
}

// streamedHow are the values of pgveil_streamed_transactions_total's
// label: applied as the pieces arrived, or from the spill at the commit.
var streamedHow = []string{"as_streamed", "at_commit"}

// Streamed counts a big transaction production sent in pieces.
func (m *Metrics) Streamed(live bool) {
	if live {
		m.streamed.WithLabelValues(streamedHow[0]).Inc()
	} else {
		m.streamed.WithLabelValues(streamedHow[1]).Inc()
	}
}

// RulesPending records the statements a waiting rule change needs
// (none: no change waits).
func (m *Metrics) RulesPending(statements []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.rulesPending = slices.Clone(statements)
}

// PendingRules returns the statements a waiting rule change needs.
func (m *Metrics) PendingRules() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.st.rulesPending)
}

// Error counts a failure of kind transient, fatal or masking.
func (m *Metrics) Error(kind string) {
	m.errors.WithLabelValues(oneOf(kind, errorKinds, otherLabel)).Inc()
}

// counts keeps the number of columns by table, for tables with any.
func counts(m map[string][]string) map[string]int {
	c := make(map[string]int, len(m))
	for t, cols := range m {
		if len(cols) > 0 {
			c[label(t)] += len(cols)
		}
	}
	return c
}

// oneOf returns s when set holds it, else other.
func oneOf(s string, set []string, other string) string {
	for _, v := range set {
		if s == v {
			return s
		}
	}
	return other
}

// label makes s a valid label value: Prometheus refuses (panics on) label
// values that are not UTF-8, and a table's name in a SQL_ASCII database
// need not be.
func label(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// later returns the latest of ts.
func later(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}
