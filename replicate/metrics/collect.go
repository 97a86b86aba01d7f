package metrics

import (
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"pgveil/replicate"
)

// Descriptions of the gauges worked out at scrape time.
var (
	descPhase = prometheus.NewDesc("pgveil_phase",
		"1 for the pipeline's current phase (starting, snapshot, streaming, retrying, stopped), 0 for the others.",
		[]string{"phase"}, nil)
	descLagBytes = prometheus.NewDesc("pgveil_lag_bytes",
		"The source server's WAL end minus the position known to be applied to the target.",
		nil, nil)
	descLagSeconds = prometheus.NewDesc("pgveil_lag_seconds",
		"0 when caught up, else the time since the later of the last applied source commit and the moment the copy was last caught up.",
		nil, nil)
	descCheckpoint = prometheus.NewDesc("pgveil_checkpoint_lsn",
		"The source position durable in the target (the checkpoint), as a number.",
		nil, nil)
	descLastCommit = prometheus.NewDesc("pgveil_last_commit_timestamp_seconds",
		"Source commit time of the last transaction committed to the target, in Unix seconds.",
		nil, nil)
	descSnapshotRows = prometheus.NewDesc("pgveil_snapshot_rows",
		"Rows copied of a table in the initial copy.",
		[]string{"table"}, nil)
	descSnapshotBytes = prometheus.NewDesc("pgveil_snapshot_bytes",
		"Bytes of values copied of a table in the initial copy.",
		[]string{"table"}, nil)
	descSnapshotEstimated = prometheus.NewDesc("pgveil_snapshot_estimated_rows",
		"The source's estimate of a table's rows, for the initial copy.",
		[]string{"table"}, nil)
	descSnapshotDone = prometheus.NewDesc("pgveil_snapshot_tables_done",
		"Tables the initial copy has finished.",
		nil, nil)
	descSlotExists = prometheus.NewDesc("pgveil_slot_exists",
		"1 if the replication slot exists.",
		nil, nil)
	descSlotActive = prometheus.NewDesc("pgveil_slot_active",
		"1 if the replication slot is in use.",
		nil, nil)
	descSlotRetained = prometheus.NewDesc("pgveil_slot_retained_bytes",
		"WAL the source keeps for the replication slot.",
		nil, nil)
	descSlotWALStatus = prometheus.NewDesc("pgveil_slot_wal_status",
		"1 for the replication slot's WAL status (reserved, extended, unreserved, lost), 0 for the others.",
		[]string{"wal_status"}, nil)
	descSlotConfirmed = prometheus.NewDesc("pgveil_slot_confirmed_flush_lsn",
		"The position the replication slot has been told is applied, as a number.",
		nil, nil)
	descUnruledColumns = prometheus.NewDesc("pgveil_unruled_columns",
		"Columns of a replicated table that no rule names (not replicated).",
		[]string{"table"}, nil)
	descUnruledTables = prometheus.NewDesc("pgveil_unruled_tables",
		"Source tables no rule names (not replicated).",
		nil, nil)
	descMissingColumns = prometheus.NewDesc("pgveil_missing_columns",
		"Columns the rules name that the source table no longer has.",
		[]string{"table"}, nil)
	descTypeChanged = prometheus.NewDesc("pgveil_type_changed_columns",
		"Columns whose type differs from the running plan's.",
		[]string{"table"}, nil)
	descMissingTables = prometheus.NewDesc("pgveil_missing_tables",
		"Tables the rules name that the source lacks.",
		nil, nil)
	descDrift = prometheus.NewDesc("pgveil_schema_drift",
		"1 if the source schema differs from what the rules and the plan say.",
		nil, nil)
	descTenantRoles = prometheus.NewDesc("pgveil_tenant_roles",
		"Tenant roles in the replica (tenancy section).",
		nil, nil)
	descTenancyUnprotected = prometheus.NewDesc("pgveil_tenancy_unprotected_tables",
		"Replicated tables tenants can read without row level security (every tenant's rows).",
		nil, nil)
	descTenancyLeakyViews = prometheus.NewDesc("pgveil_tenancy_leaky_views",
		"Views tenants can read that would show them other tenants' rows.",
		nil, nil)
	descSourceLockWait = prometheus.NewDesc("pgveil_source_lock_wait_seconds",
		"How long the longest of pgveil's statements waiting for a lock another session holds on production has run; 0 when none waits.",
		nil, nil)
	descViews = prometheus.NewDesc("pgveil_views",
		"Production's views (and materialized views) in the replicated schemas, by state: created on the replica, or kept_out (it reads something the replica does not have: pgveil status says what).",
		[]string{"state"}, nil)
	descRulesPending = prometheus.NewDesc("pgveil_rules_pending",
		"Statements and grants a valid rule change waits for on production (the rules in force keep streaming meanwhile); 0 when no change waits.",
		nil, nil)
)

// collector exposes the gauges of Metrics that are worked out from its
// state at scrape time, all from one consistent look at it.
type collector Metrics

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descPhase, descLagBytes, descLagSeconds, descCheckpoint, descLastCommit,
		descSnapshotRows, descSnapshotBytes, descSnapshotEstimated, descSnapshotDone,
		descSlotExists, descSlotActive, descSlotRetained, descSlotWALStatus, descSlotConfirmed,
		descUnruledColumns, descUnruledTables, descMissingColumns, descTypeChanged, descMissingTables, descDrift,
		descTenantRoles, descTenancyUnprotected, descTenancyLeakyViews, descSourceLockWait, descRulesPending, descViews,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	unknown := math.NaN()

	now := m.now()
	m.mu.Lock()
	s := &m.st
	for _, p := range phases {
		gauge(descPhase, flag(s.phase == p), p)
	}
	lagBytes, lagSeconds := m.lag(now)
	gauge(descLagBytes, lagBytes)
	gauge(descLagSeconds, lagSeconds)
	gauge(descCheckpoint, known(s.durableKnown, float64(s.durable)))
	gauge(descLastCommit, known(!s.commitTime.IsZero(), float64(s.commitTime.UnixNano())/1e9))

	done := 0
	for t, p := range s.snapshot {
		gauge(descSnapshotRows, float64(p.rows), t)
		gauge(descSnapshotBytes, float64(p.bytes), t)
		gauge(descSnapshotEstimated, float64(p.estimated), t)
		if p.done {
			done++
		}
	}
	gauge(descSnapshotDone, float64(done))

	if sl := s.slot; sl != nil {
		gauge(descSlotExists, flag(sl.Exists))
		gauge(descSlotActive, flag(sl.Active))
		gauge(descSlotRetained, float64(max(sl.RetainedBytes, 0)))
		gauge(descSlotConfirmed, float64(sl.ConfirmedFlushLSN))
		status := ""
		if sl.Exists {
			status = oneOf(sl.WALStatus, walStatuses, unknownLabel)
		}
		for _, w := range walStatuses {
			gauge(descSlotWALStatus, flag(status == w), w)
		}
		if status == unknownLabel {
			gauge(descSlotWALStatus, 1, unknownLabel)
		}
	} else {
		for _, d := range []*prometheus.Desc{descSlotExists, descSlotActive, descSlotRetained, descSlotConfirmed} {
			gauge(d, unknown)
		}
		for _, w := range walStatuses {
			gauge(descSlotWALStatus, unknown, w)
		}
	}

	if d := s.drift; d != nil {
		for desc, byTable := range map[*prometheus.Desc]map[string]int{
			descUnruledColumns: d.unruled, descMissingColumns: d.missing, descTypeChanged: d.typeChanged,
		} {
			for _, t := range s.tables {
				gauge(desc, float64(byTable[t]), t)
			}
			for t, n := range byTable {
				if !slices.Contains(s.tables, t) {
					gauge(desc, float64(n), t)
				}
			}
		}
		gauge(descUnruledTables, float64(d.newTables))
		gauge(descMissingTables, float64(d.missingTables))
		gauge(descDrift, flag(d.any))
	} else {
		for _, desc := range []*prometheus.Desc{descUnruledColumns, descMissingColumns, descTypeChanged} {
			for _, t := range s.tables {
				gauge(desc, unknown, t)
			}
		}
		gauge(descUnruledTables, unknown)
		gauge(descMissingTables, unknown)
		gauge(descDrift, unknown)
	}
	tn := [3]float64{unknown, unknown, unknown}
	if s.tenancy != nil {
		for i, n := range s.tenancy {
			tn[i] = float64(n)
		}
	}
	gauge(descTenantRoles, tn[0])
	gauge(descTenancyUnprotected, tn[1])
	gauge(descTenancyLeakyViews, tn[2])
	vw := [2]float64{unknown, unknown}
	if s.views != nil {
		vw = [2]float64{float64(s.views[0]), float64(s.views[1])}
	}
	gauge(descViews, vw[0], "created")
	gauge(descViews, vw[1], "kept_out")
	if w := s.lockWait; w != nil {
		gauge(descSourceLockWait, w.Seconds())
	} else {
		gauge(descSourceLockWait, unknown)
	}
	gauge(descRulesPending, float64(len(s.rulesPending)))
	m.mu.Unlock()

	for _, x := range out {
		ch <- x
	}
}

// lag works out pgveil_lag_bytes and pgveil_lag_seconds at now: NaN when
// unknown. m.mu is held.
func (m *Metrics) lag(now time.Time) (bytes, seconds float64) {
	s := &m.st
	if !s.durableKnown {
		// Nothing is durable in the target yet (the first initial copy),
		// or pgveil has not read where it is: nothing to measure from.
		return math.NaN(), math.NaN()
	}
	end := s.serverEnd
	if end == 0 {
		bytes = math.NaN()
	} else if applied := max(s.durable, s.confirmed); end > applied {
		bytes = float64(end - applied)
	}
	if m.caughtUp() {
		return bytes, 0
	}
	ref := later(s.commitTime, s.caughtUpAt)
	switch {
	case ref.IsZero():
		// Never caught up, and no commit time to measure from (the
		// initial copy's checkpoint has none).
		seconds = math.NaN()
	case now.After(ref):
		seconds = now.Sub(ref).Seconds()
	}
	return bytes, seconds
}

// caughtUp reports whether the target holds everything the source has
// sent: streaming, nothing applied since the last target commit, and the
// source's last message a keepalive at the server's WAL end. m.mu is held.
func (m *Metrics) caughtUp() bool {
	return m.st.phase == replicate.PhaseStreaming && m.st.lastKeepalive && m.st.sentAll && m.pending.Load() == 0
}

// known returns v, or NaN (unknown) when ok is false.
func known(ok bool, v float64) float64 {
	if ok {
		return v
	}
	return math.NaN()
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// CurrentPhase returns the phase last reported.
func (m *Metrics) CurrentPhase() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.phase
}

// Lag returns pgveil_lag_bytes and pgveil_lag_seconds as of now; ok is
// false while either is unknown.
func (m *Metrics) Lag() (bytes int64, seconds float64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, s := m.lag(m.now())
	if math.IsNaN(b) || math.IsNaN(s) {
		return 0, 0, false
	}
	return int64(b), s, true
}
