package replicate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgproto3"

	"pgveil/replicate/pgoutput"
	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

// The streamer's unit tests: the recorded pgoutput session
// (stream_record_test.go) replayed into a streamer whose applier and
// replication connection are fakes that record what they are asked.

// fakeApplier records the target calls.
type fakeApplier struct {
	calls     []string
	pending   int
	commits   []target.Position
	commitErr error
	// execErr, when set, is what Exec returns for a statement (nil: it
	// runs).
	execErr func(sql string) error
}

var _ applier = (*fakeApplier)(nil)

func (a *fakeApplier) Begin(context.Context) error {
	a.calls, a.pending = append(a.calls, "begin"), 0
	return nil
}

func (a *fakeApplier) Apply(_ context.Context, c *target.Change) error {
	a.pending++
	a.calls = append(a.calls, describe(c))
	return nil
}

func (a *fakeApplier) Pending() int { return a.pending }

func (a *fakeApplier) Commit(_ context.Context, pos target.Position) error {
	if a.commitErr != nil {
		a.calls = append(a.calls, "commit failed")
		return a.commitErr
	}
	a.calls, a.pending = append(a.calls, "commit"), 0
	a.commits = append(a.commits, pos)
	return nil
}

func (a *fakeApplier) Rollback(context.Context) error {
	a.calls = append(a.calls, "rollback")
	return nil
}

func (a *fakeApplier) Exec(_ context.Context, sql string) error {
	if a.execErr != nil {
		if err := a.execErr(sql); err != nil {
			a.calls = append(a.calls, "exec failed")
			return err
		}
	}
	a.calls = append(a.calls, "exec "+strings.Fields(sql)[0])
	return nil
}

// ops is the calls' operations, runs of one collapsed: "insert×3".
func (a *fakeApplier) ops() string {
	var out []string
	n := 0
	for i, c := range a.calls {
		op, _, _ := strings.Cut(c, " ")
		if c == "commit failed" {
			op = c
		}
		n++
		if i+1 < len(a.calls) && strings.HasPrefix(a.calls[i+1], op+" ") && op != "begin" && op != "commit" {
			continue
		}
		if n > 1 {
			op += "×" + strconv.Itoa(n)
		}
		out, n = append(out, op), 0
	}
	return strings.Join(out, ", ")
}

// describe renders a change: op, table, row, key; long values by length.
func describe(c *target.Change) string {
	vals := func(vs []schema.Value) string {
		var out []string
		for _, v := range vs {
			switch {
			case v.State == schema.Null:
				out = append(out, "NULL")
			case v.State == schema.Unchanged:
				out = append(out, "unchanged")
			case len(v.Text) > 20:
				out = append(out, fmt.Sprintf("<%d bytes>", len(v.Text)))
			default:
				out = append(out, string(v.Text))
			}
		}
		return "[" + strings.Join(out, " ") + "]"
	}
	s := c.Op.String()
	if c.Table != nil {
		s += " " + c.Table.Table.QualifiedName()
	}
	for _, t := range c.Tables {
		s += " " + t.Table.QualifiedName()
	}
	if c.Row != nil {
		s += " " + vals(c.Row)
	}
	if c.Key != nil {
		s += " key=" + vals(c.Key)
	}
	return s
}

// fakeRepl records the status updates; it has nothing to receive.
type fakeRepl struct {
	statuses []pglogrepl.StandbyStatusUpdate
}

var _ replicationConn = (*fakeRepl)(nil)

func (r *fakeRepl) StartReplication(context.Context, string, pglogrepl.LSN, []string) error {
	return nil
}

func (r *fakeRepl) ReceiveMessage(ctx context.Context) (pgproto3.BackendMessage, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (r *fakeRepl) SendStandbyStatus(_ context.Context, st pglogrepl.StandbyStatusUpdate) error {
	r.statuses = append(r.statuses, st)
	return nil
}

// changeCounter is an observer that counts changes by table and op.
type changeCounter struct {
	nopObserver
	changes  map[string]int
	walEnds  []pglogrepl.LSN
	streamed [2]int // big transactions applied at their commit, as they streamed
}

func (c *changeCounter) Streamed(live bool) {
	if live {
		c.streamed[1]++
	} else {
		c.streamed[0]++
	}
}

func (c *changeCounter) Change(table, op string) { c.changes[table+" "+op]++ }
func (c *changeCounter) SourceAlive(walEnd pglogrepl.LSN, keepalive bool) {
	if keepalive {
		c.walEnds = append(c.walEnds, walEnd)
	}
}

// recPlan is the plan of the recorded table: id and big kept, name masked
// to its length; masking fails on the name poison. The column added in
// the session (extra) has no rule.
func recPlan(poison string) *transform.TablePlan {
	tbl := &schema.Table{Schema: "public", Name: "rec", Columns: []schema.Column{
		{Name: "id", Type: schema.MustType("integer"), PrimaryKey: true, NotNull: true},
		{Name: "name", Type: schema.MustType("text")},
		{Name: "big", Type: schema.MustType("text")},
	}}
	keep := transform.Func(func(v schema.Value) (schema.Value, error) { return v, nil })
	name := transform.Func(func(v schema.Value) (schema.Value, error) {
		if string(v.Text) == poison {
			return schema.Value{}, &transform.MaskError{Reason: "not a name"}
		}
		return schema.Text("m" + strconv.Itoa(len(v.Text))), nil
	})
	tp := &transform.TablePlan{Table: tbl}
	for i, c := range tbl.Columns {
		cp := transform.ColumnPlan{Column: c, Rule: transform.Rule{Name: "keep"}, Transformer: keep}
		if i == 1 {
			cp.Rule.Name, cp.Transformer = "fake", name
		}
		tp.Columns = append(tp.Columns, cp)
	}
	return tp
}

type replay struct {
	s   *streamer
	a   *fakeApplier
	r   *fakeRepl
	obs *changeCounter
}

func newReplay(t *testing.T, tp *transform.TablePlan, opts StreamOptions) *replay {
	t.Helper()
	rp := &replay{a: &fakeApplier{}, r: &fakeRepl{}, obs: &changeCounter{changes: map[string]int{}}}
	if opts.BatchDelay == 0 {
		opts.BatchDelay = time.Hour // batches end by their size in these tests
	}
	opts.SpillDir = t.TempDir()
	if err := os.Chmod(opts.SpillDir, 0o700); err != nil {
		t.Fatal(err)
	}
	rp.s = &streamer{opts: opts, log: slog.New(slog.NewTextHandler(io.Discard, nil)), repl: rp.r, slot: "s1",
		plan: transform.NewPlan([]*transform.TablePlan{tp}), applier: rp.a, stats: &Stats{}, obs: rp.obs}
	rp.s.init(150000)
	t.Cleanup(rp.s.close)
	return rp
}

// feed hands the streamer recorded payloads as the connection would.
func (rp *replay) feed(msgs ...[]byte) error {
	for _, m := range msgs {
		if err := rp.s.receive(context.Background(), &pgproto3.CopyData{Data: m}); err != nil {
			return err
		}
	}
	return nil
}

func TestStreamReplay(t *testing.T) {
	rp := newReplay(t, recPlan(""), StreamOptions{BatchChanges: 1})
	if err := rp.feed(readRecorded(t)...); err != nil {
		t.Fatal(err)
	}
	// Each source transaction is its own target transaction (BatchChanges
	// 1); the streamed one arrives whole at its Stream Commit, the
	// aborted one never reaches the target.
	want := "begin, insert×2, commit, begin, update, commit, begin, update, commit, begin, delete, commit, " +
		"begin, insert×1100, commit, begin, truncate, commit, begin, insert, commit"
	if got := rp.a.ops(); got != want {
		t.Fatalf("target calls\n got %s\nwant %s", got, want)
	}
	for _, want := range []string{
		"insert public.rec [1 m3 <6400 bytes>]", // masked name, the TOAST value in full
		"insert public.rec [2 m3 NULL]",
		"update public.rec [1 m4 unchanged]", // the TOAST value unchanged: left as it is
		"update public.rec [3 m3 NULL] key=[2]",
		"delete public.rec key=[3]",
		"insert public.rec [100 m60 NULL]",
		"truncate public.rec",
		"insert public.rec [9 m3 NULL]", // after the Relation message with extra, which has no rule
	} {
		if !containsCall(rp.a.calls, want) {
			t.Errorf("no call %q", want)
		}
	}
	for i := 1; i < len(rp.a.commits); i++ {
		if rp.a.commits[i].LSN <= rp.a.commits[i-1].LSN || rp.a.commits[i].CommitTime.IsZero() {
			t.Errorf("checkpoints %v", rp.a.commits)
		}
	}
	st := rp.s.stats
	if st.Inserts.Load() != 1103 || st.Updates.Load() != 2 || st.Deletes.Load() != 1 || st.Truncates.Load() != 1 ||
		st.Transactions.Load() != 7 || st.Streamed.Load() != 1 || st.TargetCommits.Load() != 7 {
		t.Errorf("stats: %d inserts, %d updates, %d deletes, %d truncates, %d transactions, %d streamed, %d commits",
			st.Inserts.Load(), st.Updates.Load(), st.Deletes.Load(), st.Truncates.Load(), st.Transactions.Load(), st.Streamed.Load(), st.TargetCommits.Load())
	}
	if got := rp.obs.changes; got["public.rec insert"] != 1103 || got["public.rec update"] != 2 || got["public.rec delete"] != 1 || got["public.rec truncate"] != 1 {
		t.Errorf("observer: %v", got)
	}
	if pglogrepl.LSN(st.Committed.Load()) != rp.a.commits[len(rp.a.commits)-1].LSN {
		t.Errorf("committed %s, last checkpoint %s", pglogrepl.LSN(st.Committed.Load()), rp.a.commits[len(rp.a.commits)-1].LSN)
	}
}

func containsCall(calls []string, want string) bool {
	for _, c := range calls {
		if c == want {
			return true
		}
	}
	return false
}

// A target transaction holds whole source transactions: it ends at a
// source commit once full, never inside one, however big.
func TestStreamBatchesEndAtSourceCommits(t *testing.T) {
	rp := newReplay(t, recPlan(""), StreamOptions{BatchChanges: 100})
	if err := rp.feed(readRecorded(t)...); err != nil {
		t.Fatal(err)
	}
	want := "begin, insert×2, update×2, delete, insert×1100, commit, begin, truncate, insert"
	if got := rp.a.ops(); got != want {
		t.Fatalf("target calls\n got %s\nwant %s", got, want)
	}
	// The open group is committed on shutdown, with the last checkpoint.
	if err := rp.s.stop(); err != nil {
		t.Fatal(err)
	}
	if got := rp.a.ops(); got != want+", commit" || len(rp.a.commits) != 2 || rp.a.commits[1] != rp.s.applied {
		t.Errorf("after stop: %s, checkpoints %v", got, rp.a.commits)
	}
}

// A failed commit on shutdown is returned: the transactions it held are
// not in the target.
func TestStreamStopReturnsFailedCommit(t *testing.T) {
	rp := newReplay(t, recPlan(""), StreamOptions{BatchChanges: 100})
	msgs := readRecorded(t)
	if err := rp.feed(msgs[:4]...); err != nil { // relation, begin, 2 inserts, commit
		t.Fatal(err)
	}
	if err := rp.feed(msgs[4]); err != nil {
		t.Fatal(err)
	}
	// A keepalive after the source transaction, past the group: the
	// failed commit loses the group, so its WAL end must not be
	// confirmed on the way out.
	if err := rp.feed(keepalive(0x7fffffff, false)); err != nil {
		t.Fatal(err)
	}
	if !rp.s.groupOpen() {
		t.Fatalf("no group open after %s", rp.a.ops())
	}
	rp.a.commitErr = errors.New("connection reset")
	err := rp.s.stop()
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("stop: %v", err)
	}
	if rp.s.committed != 0 || rp.s.stats.Committed.Load() != 0 {
		t.Errorf("committed %s after a failed commit", rp.s.committed)
	}
	if len(rp.r.statuses) != 1 || rp.r.statuses[0].WALFlushPosition != 0 {
		t.Errorf("status %+v: must not confirm what the target does not hold", rp.r.statuses)
	}
}

// A value no rule can mask stops the stream with a MaskError that says
// which source transaction holds it, never the value.
func TestStreamMaskErrorNamesTransaction(t *testing.T) {
	rp := newReplay(t, recPlan("zed"), StreamOptions{BatchChanges: 1})
	err := rp.feed(readRecorded(t)...)
	var me *transform.MaskError
	if !errors.As(err, &me) || !strings.HasSuffix(me.Column, "name") || !strings.HasPrefix(me.Where, "in the transaction committed at LSN ") {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), "zed") {
		t.Errorf("error leaks the value: %v", err)
	}
	if transient(err) {
		t.Error("a value no rule can mask is retried")
	}
}

// keepalive is a primary keepalive message.
func keepalive(walEnd pglogrepl.LSN, reply bool) []byte {
	b := []byte{pglogrepl.PrimaryKeepaliveMessageByteID}
	b = binary.BigEndian.AppendUint64(b, uint64(walEnd))
	b = binary.BigEndian.AppendUint64(b, 0)
	if reply {
		return append(b, 1)
	}
	return append(b, 0)
}

// A keepalive that asks for a reply gets one at once, with the position
// durable in the target; one while idle lets the next status confirm its
// WAL end, so that an idle slot does not hold WAL.
func TestStreamKeepalive(t *testing.T) {
	rp := newReplay(t, recPlan(""), StreamOptions{BatchChanges: 1})
	msgs := readRecorded(t)
	if err := rp.feed(msgs[:5]...); err != nil {
		t.Fatal(err)
	}
	committed := rp.s.committed
	if committed == 0 {
		t.Fatalf("nothing committed: %s", rp.a.ops())
	}
	if err := rp.feed(keepalive(committed+100, false)); err != nil {
		t.Fatal(err)
	}
	if len(rp.r.statuses) != 0 {
		t.Fatalf("replied unasked: %+v", rp.r.statuses)
	}
	if err := rp.feed(keepalive(committed+200, true)); err != nil {
		t.Fatal(err)
	}
	if len(rp.r.statuses) != 1 || rp.r.statuses[0].WALFlushPosition != committed+200 {
		t.Fatalf("reply %+v, want flush %s (idle: the keepalive's WAL end)", rp.r.statuses, committed+200)
	}
	// Inside a source transaction the keepalive's WAL end is not
	// confirmed: only what the target committed (the server keeps the
	// higher position it was told before).
	if err := rp.feed(msgs[5]); err != nil { // begin
		t.Fatal(err)
	}
	if err := rp.feed(keepalive(committed+300, true)); err != nil {
		t.Fatal(err)
	}
	if got := rp.r.statuses[len(rp.r.statuses)-1].WALFlushPosition; got != committed {
		t.Errorf("flush %s inside a transaction, want %s", got, committed)
	}
	if got := rp.obs.walEnds; len(got) != 3 {
		t.Errorf("observer heard keepalives %v", got)
	}
}

// Malformed messages, cut anywhere, are errors, never panics; so is a
// message type pgveil does not know.
func TestStreamMalformed(t *testing.T) {
	msgs := readRecorded(t)
	for i := range min(len(msgs), 12) {
		for _, cut := range []int{1, 2, 5, 9, len(msgs[i]) / 2, len(msgs[i]) - 1} {
			if cut <= 0 || cut >= len(msgs[i]) {
				continue
			}
			rp := newReplay(t, recPlan(""), StreamOptions{BatchChanges: 1})
			if err := rp.feed(msgs[:i]...); err != nil {
				t.Fatal(err)
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("message %d cut at %d: panic %v", i, cut, p)
					}
				}()
				if err := rp.feed(msgs[i][:cut]); err == nil {
					t.Errorf("message %d (%q) cut at %d of %d: no error", i, msgs[i][25], cut, len(msgs[i]))
				}
			}()
		}
	}
	rp := newReplay(t, recPlan(""), StreamOptions{})
	bad := append(append([]byte{}, msgs[0][:25]...), 'Z', 0, 0)
	if err := rp.feed(bad); !errors.Is(err, pgoutput.ErrUnknownType) {
		t.Errorf("unknown type: %v", err)
	}
}
