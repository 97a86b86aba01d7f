package replicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/pgoutput"
	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

// The per-table re-copy's steps (resyncStep, switchIn) on the recorded
// session and the fakes: the table public.rec is re-copied beside the
// stream as of a snapshot taken at a position of the session.

// sessionTx is one source transaction of the recorded session.
type sessionTx struct {
	begin, commit int           // indexes of its Begin and Commit messages
	lsn           pglogrepl.LSN // its commit LSN
}

// sessionTxs are the recorded session's plain (not streamed) transactions.
func sessionTxs(t *testing.T, msgs [][]byte) []sessionTx {
	t.Helper()
	var txs []sessionTx
	var dec sessionDecoder
	for i, raw := range msgs {
		switch m := dec.decode(t, raw).(type) {
		case *pgoutput.Begin:
			txs = append(txs, sessionTx{begin: i, lsn: m.FinalLSN})
		case *pgoutput.Commit:
			txs[len(txs)-1].commit = i
		}
	}
	return txs
}

// resyncReplay is a replay whose streamer re-copies tp beside the stream,
// as of a snapshot at lsn; settled counts the switches.
type resyncReplay struct {
	*replay
	rs      *liveResync
	staging string // the staging table's name
	settled int
}

func newResyncReplay(t *testing.T, tp *transform.TablePlan, lsn pglogrepl.LSN, start target.Position) *resyncReplay {
	t.Helper()
	rp := newReplay(t, tp, StreamOptions{BatchChanges: 1})
	n := tableName(tp)
	st := target.StagingPlan(tp)
	sp, err := newSpill(rp.s.opts.SpillDir, 1)
	if err != nil {
		t.Fatal(err)
	}
	rs := &liveResync{tables: map[schema.TableName]bool{n: true},
		staging: map[schema.TableName]*transform.TablePlan{n: st}, live: map[schema.TableName]*transform.TablePlan{n: tp},
		hashes: map[schema.TableName]string{n: "fingerprint"}, spill: sp, lsn: lsn, done: make(chan error, 1), started: time.Now()}
	rr := &resyncReplay{replay: rp, rs: rs, staging: st.Table.QualifiedName()}
	// As the attempt builds it: the re-copy and the checkpoint are known
	// before the stream starts.
	rp.s.rs, rp.s.start, rp.s.startCommit = rs, start.LSN, start.CommitTime
	rp.s.settled = func() { rr.settled++ }
	rp.s.init(150000)
	return rr
}

// step hands the streamer one payload and then takes a re-copy step, as
// the stream's loop does after every message.
func (rr *resyncReplay) step(msgs ...[]byte) error {
	for _, m := range msgs {
		if err := rr.feed(m); err != nil {
			return err
		}
		if err := rr.s.resyncStep(context.Background()); err != nil {
			return err
		}
	}
	return nil
}

// switched reports whether the re-copy was switched in.
func (rr *resyncReplay) switched() bool { return rr.s.stats.Resyncs.Load() > 0 }

// liveChanges are the changes applied to the live table.
func (rr *resyncReplay) liveChanges() []string {
	var out []string
	for _, c := range rr.a.calls {
		if strings.Contains(c, " public.rec") {
			out = append(out, c)
		}
	}
	return out
}

// A table re-copied beside the stream is switched in at the first source
// commit at or after the copy's snapshot position once the copy is done,
// never before: its changes until then are captured, not applied, and
// those committed at or after the snapshot are replayed into the staging
// table in the switch's own target transaction; the changes after the
// switch go to the live table.
func TestResyncSwitchesInAtSnapshotPosition(t *testing.T) {
	msgs := readRecorded(t)
	txs := sessionTxs(t, msgs)
	// tx 0 inserts 1 and 2, tx 1 updates 1, tx 2 updates key 2 to 3,
	// tx 3 deletes 3: the snapshot is taken at tx 2's commit.
	snap := txs[2].lsn
	rr := newResyncReplay(t, recPlan(""), snap, target.Position{})

	// The copy is not done: whatever the stream passes, no switch.
	if err := rr.step(msgs[:txs[0].commit+1]...); err != nil {
		t.Fatal(err)
	}
	if rr.switched() {
		t.Fatal("switched in before the copy was done")
	}
	rr.rs.done <- nil // the copy is done
	for i := txs[1].begin; i <= txs[2].commit; i++ {
		if err := rr.step(msgs[i]); err != nil {
			t.Fatal(err)
		}
		if rr.switched() != (i == txs[2].commit) {
			t.Fatalf("after message %d: switched %v; the snapshot is at tx 2's commit (message %d)\ncalls: %s", i, rr.switched(), txs[2].commit, rr.a.ops())
		}
	}
	if live := rr.liveChanges(); len(live) > 0 {
		t.Errorf("changes applied to the live table before the switch: %v", live)
	}
	// The switch: the group of source transactions so far is committed,
	// then one target transaction replays what was captured at or after
	// the snapshot into the staging table and swaps it in.
	want := []string{"begin", "commit", "begin", "update " + rr.staging + " [3 m3 NULL] key=[2]"}
	if got := rr.a.calls[:min(len(want), len(rr.a.calls))]; !slices.Equal(got, want) {
		t.Errorf("calls\n got %q\nwant %q...", rr.a.calls, want)
	}
	if n := strings.Count(strings.Join(rr.a.calls, "\n"), rr.staging); n != 1 {
		t.Errorf("%d changes replayed into the staging table, want 1 (the changes before the snapshot are in the copy): %q", n, rr.a.calls)
	}
	// Every statement of the swap, and nothing else, then the commit.
	stmts := 0
	for n, live := range rr.rs.live {
		stmts += len(target.SwitchSQL(live, rr.rs.staging[n], rr.rs.readers, rr.rs.hashes[n]))
	}
	if got := rr.a.ops(); !strings.HasSuffix(got, fmt.Sprintf("exec×%d, commit", stmts)) {
		t.Errorf("the switch: %s, want %d statements", got, stmts)
	}
	if c := rr.a.commits; len(c) != 2 || c[1].LSN < snap || c[1] != rr.s.applied {
		t.Errorf("checkpoints %v: the switch commits at the last source commit applied (%v), at or after the snapshot %s", c, rr.s.applied, snap)
	}
	if rr.s.rs != nil || rr.s.stats.Resyncing.Load() || rr.settled != 1 {
		t.Errorf("after the switch: re-copy %v, resyncing %v, settled %d", rr.s.rs, rr.s.stats.Resyncing.Load(), rr.settled)
	}

	// From now on the table streams as any other.
	if err := rr.step(msgs[txs[3].begin : txs[3].commit+1]...); err != nil {
		t.Fatal(err)
	}
	if live := rr.liveChanges(); !slices.Equal(live, []string{"delete public.rec key=[3]"}) {
		t.Errorf("changes applied to the live table after the switch: %v", live)
	}
}

// lockTimeout is the error the applier returns when a statement's lock
// timeout fires: the server's error, as target keeps it, wrapped.
func lockTimeout(sql string) error {
	return fmt.Errorf("statement: %s: %w", strings.Join(strings.Fields(sql)[:2], " "),
		&target.ServerError{Severity: "ERROR", Code: "55P03", Message: "canceling statement due to lock timeout"})
}

// A switch that cannot take its locks in time (readers' queries on the
// live table) is rolled back and tried again later, with the changes
// captured meanwhile; the stream goes on. It never fails the stream.
func TestResyncLockTimeoutRetriesLater(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  func(sql string) error
	}{
		{"server error", lockTimeout},
		// A pgconn.PgError as pgx returns it (not sanitized).
		{"pgx error", func(string) error { return &pgconn.PgError{Severity: "ERROR", Code: "55P03", Message: "lock timeout"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := readRecorded(t)
			txs := sessionTxs(t, msgs)
			rr := newResyncReplay(t, recPlan(""), txs[2].lsn, target.Position{})
			rr.rs.done <- nil
			rr.a.execErr = func(sql string) error {
				if strings.HasPrefix(sql, "DROP TABLE") {
					return tc.err(sql)
				}
				return nil
			}
			if err := rr.step(msgs[:txs[2].commit+1]...); err != nil {
				t.Fatalf("a lock timeout on the switch failed the stream: %v", err)
			}
			if rr.switched() || rr.s.rs == nil || !rr.s.stats.Resyncing.Load() {
				t.Fatalf("switched %v, re-copy %v, resyncing %v after a lock timeout", rr.switched(), rr.s.rs, rr.s.stats.Resyncing.Load())
			}
			if last := rr.a.calls[len(rr.a.calls)-2:]; !slices.Equal(last, []string{"exec failed", "rollback"}) {
				t.Errorf("calls end %q, want the switch rolled back", last)
			}
			if !rr.rs.retryAt.After(time.Now()) {
				t.Errorf("retry at %v", rr.rs.retryAt)
			}
			// Until the retry is due, the stream goes on and the table's
			// changes are still captured.
			calls := len(rr.a.calls)
			if err := rr.step(msgs[txs[3].begin : txs[3].commit+1]...); err != nil {
				t.Fatal(err)
			}
			if got := rr.a.calls[calls:]; !slices.Equal(got, []string{"begin"}) || rr.switched() {
				t.Errorf("before the retry is due: calls %q, switched %v", got, rr.switched())
			}
			// The retry is due and the locks are free.
			rr.rs.retryAt = time.Now().Add(-time.Millisecond)
			rr.a.execErr = nil
			calls = len(rr.a.calls)
			if err := rr.s.resyncStep(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !rr.switched() {
				t.Fatalf("not switched in once the retry was due: %s", rr.a.ops())
			}
			replayed := []string{}
			for _, c := range rr.a.calls[calls:] {
				if strings.Contains(c, rr.staging) {
					replayed = append(replayed, c)
				}
			}
			if want := []string{"update " + rr.staging + " [3 m3 NULL] key=[2]", "delete " + rr.staging + " key=[3]"}; !slices.Equal(replayed, want) {
				t.Errorf("replayed %q, want %q", replayed, want)
			}
			if live := rr.liveChanges(); len(live) > 0 {
				t.Errorf("changes applied to the live table: %v", live)
			}
		})
	}
}

// An error of the switch that is not a lock timeout stops the stream,
// even when its text happens to hold "55P03" (a name, say): only the
// SQLSTATE says what failed.
func TestResyncSwitchErrorFails(t *testing.T) {
	msgs := readRecorded(t)
	txs := sessionTxs(t, msgs)
	rr := newResyncReplay(t, recPlan(""), txs[2].lsn, target.Position{})
	rr.rs.done <- nil
	missing := &target.ServerError{Severity: "ERROR", Code: "42P01", Message: `relation "pgveil_staging.s55P03_rec" does not exist`}
	rr.a.execErr = func(sql string) error {
		if strings.HasPrefix(sql, "DROP TABLE") { // a statement every switch runs
			return fmt.Errorf("statement: DROP TABLE: %w", missing)
		}
		return nil
	}
	err := rr.step(msgs[:txs[2].commit+1]...)
	if !errors.Is(err, missing) || !strings.Contains(err.Error(), "switching re-copied tables in") {
		t.Fatalf("err %v, want the switch's failure", err)
	}
	if rr.switched() {
		t.Error("switched in")
	}
}

// A switch whose target transaction holds no source commit (nothing was
// committed in production since the stream started, and a keepalive says
// the server has passed the snapshot) keeps the checkpoint at the start
// position, commit time and all: it wrote 0/0, which the metrics showed
// as pgveil_checkpoint_lsn 0.
func TestResyncSwitchWithoutCommitKeepsCheckpoint(t *testing.T) {
	start := target.Position{LSN: 0x1000, CommitTime: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	obs := &commitObserver{}
	rr := newResyncReplay(t, recPlan(""), start.LSN+0x10, start)
	rr.s.obs = obs
	rr.rs.done <- nil
	if err := rr.step(keepalive(start.LSN+0x20, false)); err != nil {
		t.Fatal(err)
	}
	if !rr.switched() {
		t.Fatalf("not switched in: %s", rr.a.ops())
	}
	if c := rr.a.commits; len(c) != 1 || c[0] != start {
		t.Errorf("the switch's checkpoint %v, want the start's %v", c, start)
	}
	if len(obs.lsns) != 1 || obs.lsns[0] != start.LSN || rr.s.committed != start.LSN {
		t.Errorf("reported %v, committed %s; want %s", obs.lsns, rr.s.committed, start.LSN)
	}
}

// commitObserver records the positions of the target commits reported.
type commitObserver struct {
	nopObserver
	lsns []pglogrepl.LSN
}

func (o *commitObserver) TargetCommit(_ int, _ int64, _ time.Duration, lsn pglogrepl.LSN, _ time.Time) {
	o.lsns = append(o.lsns, lsn)
}
