package replicate

import (
	"time"

	"github.com/jackc/pglogrepl"
)

// Observer is told what the pipeline does, for metrics, health and the
// demo's display. It never receives a value: only names, counts, positions
// and durations. Implementations must be safe for concurrent use and fast
// (they are called on the apply path).
type Observer interface {
	// Phase reports the pipeline's state: PhaseStarting, PhaseSnapshot,
	// PhaseStreaming, PhaseRetrying (err is the failure), PhaseStopped.
	Phase(phase string, err error)
	// Tables reports the tables the rules replicate (schema.name), at the
	// start of every attempt: the metrics keep a series for each from the
	// first scrape, not from its first change.
	Tables(tables []string)
	// Checkpoint reports the position durable in the target that a
	// stream starts from: read from the target at start, or written by
	// the initial copy (commitTime is zero when unknown).
	Checkpoint(lsn pglogrepl.LSN, commitTime time.Time)
	// SnapshotProgress reports a table of an initial copy or re-copy.
	SnapshotProgress(table string, rows, bytes, estimatedRows int64, done bool)
	// Change reports one change applied to table: op is "insert",
	// "update", "delete", "truncate", or "filtered" (turned away by the
	// table's row filter).
	Change(table, op string)
	// TargetCommit reports a committed target transaction: the changes
	// and bytes of values it held, how long the commit took, and the
	// source position now durable in the target.
	TargetCommit(changes int, bytes int64, took time.Duration, lsn pglogrepl.LSN, commitTime time.Time)
	// SourceAlive reports a message from the source and whether it was a
	// keepalive. walEnd is, for a keepalive, the position up to which the
	// server has sent everything; for a data message, the end of the WAL
	// received so far. Neither is the server's WAL end (SourceWALEnd): a
	// logical walsender's XLogData carries the record's position or 0, and
	// during a backlog a keepalive's is far behind.
	SourceAlive(walEnd pglogrepl.LSN, keepalive bool)
	// SourceWALEnd reports the source server's WAL end, read from the
	// server (pg_current_wal_flush_lsn) when the stream starts and every
	// second while it runs: how far there is to go.
	SourceWALEnd(lsn pglogrepl.LSN)
	// Slot reports the replication slot as last read from the source: at
	// start, during the initial copy and while streaming.
	Slot(s SlotStatus)
	// Drift reports what the source has that the rules do not name.
	Drift(d *Drift)
	// Tenancy reports the replica's tenant roles, the tables tenants can
	// read without row level security and the views that would show them
	// other tenants' rows: all three 0 without a tenancy section.
	Tenancy(roles, unprotectedTables, leakyViews int)
	// SourceLockWait reports how long the longest of pgveil's statements
	// on the source waiting for another session's lock has run: 0 when
	// none waits (see LockWait).
	SourceLockWait(longest time.Duration)
	// RulesPending reports a rule change that waits for what pgveil's
	// role lacks on production: the statements and grants to run, one per
	// line (names only); empty when no change waits.
	RulesPending(statements []string)
	// Error counts a failure: kind is "transient", "fatal" or "masking".
	Error(kind string)
	// Streamed counts a committed transaction production sent in pieces
	// (a big one): applied as its pieces arrived (live), or from its
	// spill at its commit.
	Streamed(live bool)
}

// Phases of the pipeline.
const (
	PhaseStarting  = "starting"
	PhaseSnapshot  = "snapshot"
	PhaseStreaming = "streaming"
	PhaseRetrying  = "retrying"
	PhaseStopped   = "stopped"
)

// SlotStatus is the replication slot as pg_replication_slots shows it.
type SlotStatus struct {
	Name              string
	Exists            bool
	Active            bool
	WALStatus         string // reserved, extended, unreserved, lost
	RetainedBytes     int64  // WAL kept for the slot: current LSN - restart_lsn
	ConfirmedFlushLSN pglogrepl.LSN
	CurrentLSN        pglogrepl.LSN
}

// nopObserver ignores everything.
type nopObserver struct{}

func (nopObserver) Phase(string, error)                                              {}
func (nopObserver) Tables([]string)                                                  {}
func (nopObserver) Checkpoint(pglogrepl.LSN, time.Time)                              {}
func (nopObserver) SnapshotProgress(string, int64, int64, int64, bool)               {}
func (nopObserver) Change(string, string)                                            {}
func (nopObserver) TargetCommit(int, int64, time.Duration, pglogrepl.LSN, time.Time) {}
func (nopObserver) SourceAlive(pglogrepl.LSN, bool)                                  {}
func (nopObserver) SourceWALEnd(pglogrepl.LSN)                                       {}
func (nopObserver) Slot(SlotStatus)                                                  {}
func (nopObserver) Drift(*Drift)                                                     {}
func (nopObserver) Tenancy(int, int, int)                                            {}
func (nopObserver) SourceLockWait(time.Duration)                                     {}
func (nopObserver) Streamed(bool)                                                    {}
func (nopObserver) RulesPending([]string)                                            {}
func (nopObserver) Error(string)                                                     {}

var _ Observer = nopObserver{}
