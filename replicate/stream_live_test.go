package replicate

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

// The live path's unit tests (stream_live.go): pgoutput v2 messages built
// by hand (sub-transactions and interleavings the recorded session lacks),
// replayed into a streamer whose two appliers, the main stream's and the
// live transaction's, write into one shared log.

// pgw builds a pgoutput message.
type pgw []byte

func (w pgw) u8(v byte) pgw    { return append(w, v) }
func (w pgw) u16(v uint16) pgw { return binary.BigEndian.AppendUint16(w, v) }
func (w pgw) u32(v uint32) pgw { return binary.BigEndian.AppendUint32(w, v) }
func (w pgw) u64(v uint64) pgw { return binary.BigEndian.AppendUint64(w, v) }
func (w pgw) str(s string) pgw { return append(append(w, s...), 0) }

// xid puts a streamed message's transaction id, when in a stream (xid > 0).
func (w pgw) xid(xid uint32) pgw {
	if xid == 0 {
		return w
	}
	return w.u32(xid)
}

// xlog wraps a message as the connection delivers it (XLogData).
func xlog(w pgw) []byte {
	b := pgw{pglogrepl.XLogDataByteID}.u64(0).u64(0).u64(0)
	return append(b, w...)
}

const recOID = 16400

func lsnTime() uint64 {
	return uint64(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC).Sub(pgEpochTest).Microseconds())
}

var pgEpochTest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func mStreamStart(xid uint32, first bool) []byte {
	f := byte(0)
	if first {
		f = 1
	}
	return xlog(pgw{'S'}.u32(xid).u8(f))
}
func mStreamStop() []byte { return xlog(pgw{'E'}) }
func mStreamCommit(xid uint32, lsn uint64) []byte {
	return xlog(pgw{'c'}.u32(xid).u8(0).u64(lsn).u64(lsn + 8).u64(lsnTime()))
}
func mStreamAbort(xid, sub uint32) []byte { return xlog(pgw{'A'}.u32(xid).u32(sub)) }
func mBegin(lsn uint64, xid uint32) []byte {
	return xlog(pgw{'B'}.u64(lsn).u64(lsnTime()).u32(xid))
}
func mCommit(lsn uint64) []byte { return xlog(pgw{'C'}.u8(0).u64(lsn).u64(lsn + 8).u64(lsnTime())) }

// mRelation is public.rec's Relation message (id int key, name, big text).
func mRelation(xid uint32) []byte {
	w := pgw{'R'}.xid(xid).u32(recOID).str("public").str("rec").u8('d').u16(3)
	w = w.u8(1).str("id").u32(23).u32(0xffffffff)
	w = w.u8(0).str("name").u32(25).u32(0xffffffff)
	w = w.u8(0).str("big").u32(25).u32(0xffffffff)
	return xlog(w)
}

func tuple(w pgw, id, name string) pgw {
	w = w.u16(3)
	for _, v := range []string{id, name} {
		w = append(w.u8('t').u32(uint32(len(v))), v...)
	}
	return w.u8('n')
}

func mInsert(xid uint32, id, name string) []byte {
	return xlog(tuple(pgw{'I'}.xid(xid).u32(recOID).u8('N'), id, name))
}

func mTruncate(xid uint32) []byte {
	return xlog(pgw{'T'}.xid(xid).u32(1).u8(0).u32(recOID))
}

// logApplier is a fakeApplier that also writes its calls, named, into a
// log shared with the other applier: the order across both is what the
// tests check.
type logApplier struct {
	*fakeApplier
	name string
	log  *[]string
}

func (a *logApplier) note(s string) { *a.log = append(*a.log, a.name+" "+s) }

func (a *logApplier) Begin(ctx context.Context) error {
	a.note("begin")
	return a.fakeApplier.Begin(ctx)
}

func (a *logApplier) Apply(ctx context.Context, c *target.Change) error {
	a.note(describe(c))
	return a.fakeApplier.Apply(ctx, c)
}

func (a *logApplier) Commit(ctx context.Context, pos target.Position) error {
	a.note("commit " + pos.LSN.String())
	return a.fakeApplier.Commit(ctx, pos)
}

func (a *logApplier) Rollback(ctx context.Context) error {
	a.note("rollback")
	return a.fakeApplier.Rollback(ctx)
}

func (a *logApplier) Exec(ctx context.Context, sql string) error {
	a.note(sql)
	return a.fakeApplier.Exec(ctx, sql)
}

type liveReplay struct {
	*replay
	log    []string
	live   *logApplier
	opened int // live connections opened
	closed int // ... and closed
}

func newLiveReplay(t *testing.T, tp *transform.TablePlan) *liveReplay {
	t.Helper()
	rp := newReplay(t, tp, StreamOptions{BatchChanges: 1000})
	lr := &liveReplay{replay: rp}
	rp.s.applier = &logApplier{fakeApplier: rp.a, name: "main", log: &lr.log}
	lr.live = &logApplier{fakeApplier: &fakeApplier{}, name: "live", log: &lr.log}
	rp.s.openLive = func(context.Context) (applier, func(), error) {
		lr.opened++
		return lr.live, func() { lr.closed++ }, nil
	}
	return lr
}

func (lr *liveReplay) feed(t *testing.T, msgs ...[]byte) {
	t.Helper()
	if err := lr.replay.feed(msgs...); err != nil {
		t.Fatal(err)
	}
}

// since returns the log from index i on, joined.
func (lr *liveReplay) since(i int) string { return strings.Join(lr.log[i:], "; ") }

// A streamed transaction's changes reach the target as each chunk arrives,
// in a target transaction of its own; the main group is committed before
// each chunk and before the live transaction's commit, which carries the
// stream commit's checkpoint.
func TestLiveStreamAppliesChunksAsTheyArrive(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.feed(t, mRelation(0), mBegin(100, 10), mInsert(0, "1", "ann"), mCommit(100))
	if got := lr.since(0); got != "main begin; main insert public.rec [1 m3 NULL]" {
		t.Fatalf("main group: %s", got)
	}
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "2", "bob"), mInsert(500, "3", "cy"))
	want := "main begin; main insert public.rec [1 m3 NULL]; main commit 0/6C; " +
		"live begin; live insert public.rec [2 m3 NULL]; live insert public.rec [3 m2 NULL]"
	if got := lr.since(0); got != want {
		t.Fatalf("first chunk, before its end:\n got %s\nwant %s", got, want)
	}
	lr.feed(t, mStreamStop())
	// A plain transaction between chunks goes to the main group, which is
	// committed before the next chunk.
	n := len(lr.log)
	lr.feed(t, mBegin(200, 11), mInsert(0, "4", "dee"), mCommit(200))
	lr.feed(t, mStreamStart(500, false), mInsert(500, "5", "eve"), mStreamStop())
	// The main group begun while a transaction is live bounds its lock
	// waits (boundLiveWait).
	want = "main begin; main SET LOCAL lock_timeout = '10000ms'; main insert public.rec [4 m3 NULL]; main commit 0/D0; live insert public.rec [5 m3 NULL]"
	if got := lr.since(n); got != want {
		t.Fatalf("second chunk:\n got %s\nwant %s", got, want)
	}
	// Nothing of the live transaction is confirmed before its commit.
	if err := lr.s.sendStatus(false); err != nil {
		t.Fatal(err)
	}
	if got := lr.r.statuses[len(lr.r.statuses)-1].WALFlushPosition; got != 0xD0 {
		t.Errorf("status during the live transaction confirms %s, want 0/D0", got)
	}
	n = len(lr.log)
	lr.feed(t, mBegin(300, 12), mInsert(0, "6", "fay"), mCommit(300), mStreamCommit(500, 400))
	want = "main begin; main SET LOCAL lock_timeout = '10000ms'; main insert public.rec [6 m3 NULL]; main commit 0/134; live commit 0/198"
	if got := lr.since(n); got != want {
		t.Fatalf("stream commit:\n got %s\nwant %s", got, want)
	}
	st := lr.s.stats
	if lr.s.committed != 0x198 || st.Committed.Load() != 0x198 || lr.s.applied.LSN != 0x198 || lr.s.applied.CommitTime.IsZero() {
		t.Errorf("committed %s, applied %+v", lr.s.committed, lr.s.applied)
	}
	if st.Inserts.Load() != 6 || st.Streamed.Load() != 1 || st.Transactions.Load() != 4 || lr.obs.changes["public.rec insert"] != 6 {
		t.Errorf("stats: %d inserts, %d streamed, %d transactions; observer %v", st.Inserts.Load(), st.Streamed.Load(), st.Transactions.Load(), lr.obs.changes)
	}
	// The next streamed transaction goes live on the same connection.
	n = len(lr.log)
	lr.feed(t, mStreamStart(501, true), mRelation(501), mInsert(501, "7", "gil"), mStreamStop(), mStreamCommit(501, 500))
	if got := lr.since(n); got != "live begin; live insert public.rec [7 m3 NULL]; live commit 0/1FC" || lr.opened != 1 {
		t.Errorf("next streamed transaction: %s (%d connections)", got, lr.opened)
	}
}

// Stream Abort of the transaction rolls the live transaction back: nothing
// committed, nothing counted.
func TestLiveStreamAbort(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "2", "bob"), mStreamStop(),
		mStreamStart(500, false), mInsert(500, "3", "cy"), mStreamStop(), mStreamAbort(500, 500))
	want := "live begin; live insert public.rec [2 m3 NULL]; live insert public.rec [3 m2 NULL]; live rollback"
	if got := lr.since(0); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if lr.s.committed != 0 || lr.s.stats.Inserts.Load() != 0 || len(lr.obs.changes) != 0 || lr.s.live != nil || len(lr.s.streams) != 0 {
		t.Errorf("after the abort: committed %s, %d inserts, observer %v", lr.s.committed, lr.s.stats.Inserts.Load(), lr.obs.changes)
	}
}

// A savepoint is taken at the first change of each sub-transaction; its
// abort rolls back to it, which also undoes the sub-transactions whose
// first change came after it, and only what they counted is forgotten.
func TestLiveStreamSubAbort(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "1", "a"),
		mInsert(501, "2", "b"), mInsert(501, "3", "c"), mInsert(502, "4", "d"), mInsert(500, "5", "e"),
		mStreamStop(), mStreamAbort(500, 502), mStreamAbort(500, 501), mStreamAbort(500, 502),
		mStreamStart(500, false), mInsert(503, "6", "f"), mStreamStop(), mStreamCommit(500, 100))
	want := "live begin; live insert public.rec [1 m1 NULL]; " +
		"live SAVEPOINT pgveil_sub_501; live insert public.rec [2 m1 NULL]; live insert public.rec [3 m1 NULL]; " +
		"live SAVEPOINT pgveil_sub_502; live insert public.rec [4 m1 NULL]; live insert public.rec [5 m1 NULL]; " +
		"live ROLLBACK TO SAVEPOINT pgveil_sub_502; live ROLLBACK TO SAVEPOINT pgveil_sub_501; " +
		"live SAVEPOINT pgveil_sub_503; live insert public.rec [6 m1 NULL]; live commit 0/6C"
	if got := lr.since(0); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := lr.s.stats.Inserts.Load(); got != 2 || lr.obs.changes["public.rec insert"] != 2 {
		t.Errorf("%d inserts counted (observer %v), want 2: 1 and 6", got, lr.obs.changes)
	}
}

// One transaction is live at a time: one whose first chunk arrives while
// another is live is spilled whole and applied at its commit by the main
// applier, even once the live one has ended.
func TestLiveStreamInterleaved(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "1", "a"), mStreamStop(),
		mStreamStart(600, true), mRelation(600), mInsert(600, "2", "b"), mStreamStop(),
		mStreamStart(500, false), mInsert(500, "3", "c"), mStreamStop(),
		mStreamCommit(500, 100),
		mStreamStart(600, false), mInsert(600, "4", "d"), mStreamStop(),
		mStreamStart(700, true), mRelation(700), mInsert(700, "5", "e"), mStreamStop(),
		mStreamCommit(600, 200), mStreamCommit(700, 300))
	want := "live begin; live insert public.rec [1 m1 NULL]; live insert public.rec [3 m1 NULL]; live commit 0/6C; " +
		"live begin; live insert public.rec [5 m1 NULL]; " +
		"main begin; main SET LOCAL lock_timeout = '10000ms'; main insert public.rec [2 m1 NULL]; main insert public.rec [4 m1 NULL]; " +
		"main commit 0/D0; live commit 0/134"
	if got := lr.since(0); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := lr.obs.streamed; got != [2]int{1, 2} { // 600 from its spill; 500 and 700 live
		t.Errorf("streamed transactions counted (at commit, as streamed) %v, want [1 2]", got)
	}
	if got := lr.s.stats.Streamed.Load(); got != 3 || lr.s.stats.StreamedLive.Load() != 2 || lr.s.committed != 0x134 {
		t.Errorf("%d streamed (%d live), committed %s", got, lr.s.stats.StreamedLive.Load(), lr.s.committed)
	}
}

// What the live path cannot apply safely (here a TRUNCATE) rolls it back;
// the transaction is then applied whole from its spill at its commit.
func TestLiveStreamFallsBackToSpill(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "1", "a"), mTruncate(500),
		mInsert(500, "2", "b"), mStreamStop(), mStreamCommit(500, 100))
	want := "live begin; live insert public.rec [1 m1 NULL]; live rollback; " +
		"main begin; main insert public.rec [1 m1 NULL]; main truncate public.rec; main insert public.rec [2 m1 NULL]"
	if got := lr.since(0); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := lr.s.stats.Inserts.Load(); got != 2 {
		t.Errorf("%d inserts counted, want 2", got)
	}
}

// A table a replica foreign key references is not written live (the main
// group's deferred check could wait for the live transaction).
func TestLiveStreamReferencedTableSpills(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.s.referenced, lr.s.referencing = fkTables([]target.ForeignKey{{RefTable: schema.TableName{Schema: "public", Name: "rec"}}})
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "1", "a"), mStreamStop(), mStreamCommit(500, 100))
	want := "live begin; live rollback; main begin; main insert public.rec [1 m1 NULL]"
	if got := lr.since(0); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// A value no rule can mask is reported as before: from the spill, at the
// commit, with the commit's LSN.
func TestLiveStreamMaskErrorAtCommit(t *testing.T) {
	lr := newLiveReplay(t, recPlan("zed"))
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "1", "zed"), mStreamStop())
	err := lr.replay.feed(mStreamCommit(500, 100))
	var me *transform.MaskError
	if !errors.As(err, &me) || me.Where != "in the transaction committed at LSN 0/64" {
		t.Fatalf("err %v", err)
	}
}

// Past maxLiveSavepoints sub-transactions the live path gives up.
func TestLiveStreamTooManySubtransactions(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.feed(t, mStreamStart(500, true), mRelation(500))
	for i := range maxLiveSavepoints + 1 {
		lr.feed(t, mInsert(uint32(1000+i), "1", "a"))
	}
	if lr.s.live != nil || lr.log[len(lr.log)-1] != "live rollback" {
		t.Errorf("still live after %d sub-transactions: %s", maxLiveSavepoints+1, lr.log[len(lr.log)-1])
	}
}

// A keepalive between chunks is not confirmed while a transaction is live.
func TestLiveStreamKeepaliveNotConfirmed(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "1", "a"), mStreamStop(),
		keepalive(0x500, false), keepalive(0x600, true))
	if got := lr.r.statuses[len(lr.r.statuses)-1].WALFlushPosition; got != 0 {
		t.Errorf("confirmed %s while a transaction is live", got)
	}
}

// Stopping rolls the live transaction back by closing its connection: the
// next start streams it again from the checkpoint.
func TestLiveStreamStopRollsBack(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "1", "a"), mStreamStop())
	if err := lr.s.stop(); err != nil {
		t.Fatal(err)
	}
	lr.s.close()
	if lr.closed != 1 || lr.s.live != nil || len(lr.live.commits) != 0 {
		t.Errorf("after stop: %d closed, live %v, commits %v", lr.closed, lr.s.live, lr.live.commits)
	}
	if got := lr.r.statuses[len(lr.r.statuses)-1].WALFlushPosition; got != 0 {
		t.Errorf("stop confirmed %s", got)
	}
}

// Under tenancy, a sub-transaction's abort leaves the live path: the
// Applier has noted the tenant values of the rows undone.
func TestLiveStreamSubAbortUnderTenancySpills(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.s.liveTenancy = true
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "1", "a"), mInsert(501, "2", "b"),
		mStreamStop(), mStreamAbort(500, 501), mStreamCommit(500, 100))
	want := "live begin; live insert public.rec [1 m1 NULL]; live SAVEPOINT pgveil_sub_501; live insert public.rec [2 m1 NULL]; " +
		"live rollback; main begin; main insert public.rec [1 m1 NULL]"
	if got := lr.since(0); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// A table with a replica foreign key takes new rows live, but its updates
// and deletes leave the live path (the main group's check of a deleted
// referenced row reads them FOR KEY SHARE).
func TestLiveStreamReferencingTableInsertsOnly(t *testing.T) {
	lr := newLiveReplay(t, recPlan(""))
	lr.s.referenced, lr.s.referencing = fkTables([]target.ForeignKey{{Table: schema.TableName{Schema: "public", Name: "rec"},
		RefTable: schema.TableName{Schema: "public", Name: "other"}}})
	lr.feed(t, mStreamStart(500, true), mRelation(500), mInsert(500, "1", "a"), mStreamStop())
	if lr.s.live == nil {
		t.Fatalf("an insert left the live path: %s", lr.since(0))
	}
	lr.feed(t, mStreamStart(500, false), mDelete(500, "1"), mStreamStop())
	want := "live begin; live insert public.rec [1 m1 NULL]; live rollback"
	if got := lr.since(0); got != want || lr.s.live != nil {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func mDelete(xid uint32, id string) []byte {
	w := pgw{'D'}.xid(xid).u32(recOID).u8('K').u16(3)
	w = append(w.u8('t').u32(uint32(len(id))), id...)
	return xlog(w.u8('n').u8('n'))
}
