package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"pgveil/replicate/pgoutput"
	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

// StreamOptions tune the stream.
type StreamOptions struct {
	// StatusInterval is how often the slot is told how far the target
	// has committed (and that pgveil is alive).
	StatusInterval time.Duration
	// BatchChanges, BatchBytes and BatchDelay group source transactions
	// into one target transaction: it commits when it holds BatchChanges
	// changes or BatchBytes bytes of values, or BatchDelay after its first
	// source transaction, whichever comes first, and only between source
	// transactions.
	BatchChanges int
	BatchBytes   int64
	BatchDelay   time.Duration
	// IdleFlush commits the group as soon as the source has sent nothing
	// for this long: while catching up, source transactions group into
	// large target transactions; once caught up, each is committed at
	// once instead of waiting for BatchDelay (default 250µs). It must be
	// shorter than the gap between two source commits under steady load,
	// or the group waits for BatchDelay: at 2000 tx/s (one every 500µs)
	// 2ms put the p50 lag at 40 ms against native's 2; 250µs puts it at
	// 5.6 ms and leaves the catch-up's grouping as it was (BENCHMARKS.md).
	IdleFlush time.Duration
	// SpillDir holds streamed in-progress transactions until they commit.
	SpillDir string
	// LiveLockWait bounds how long a change of the main stream waits for
	// a lock while a big transaction is applied as it streams: such a
	// wait can only be on the live transaction, which waits on the
	// stream in turn (stream_live.go, liveLockWait). Default 10s.
	LiveLockWait time.Duration
}

func (o *StreamOptions) defaults() {
	if o.StatusInterval <= 0 {
		o.StatusInterval = 10 * time.Second
	}
	if o.BatchChanges <= 0 {
		o.BatchChanges = 5000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 64 << 20
	}
	if o.BatchDelay <= 0 {
		o.BatchDelay = 50 * time.Millisecond
	}
	if o.IdleFlush <= 0 {
		o.IdleFlush = 250 * time.Microsecond
	}
	if o.SpillDir == "" {
		o.SpillDir = os.TempDir()
	}
	if o.LiveLockWait <= 0 {
		o.LiveLockWait = 10 * time.Second
	}
}

// Stats are counters of the stream, safe to read while it runs.
type Stats struct {
	Transactions  atomic.Int64 // source transactions applied
	Inserts       atomic.Int64
	Updates       atomic.Int64
	Deletes       atomic.Int64
	Truncates     atomic.Int64
	Filtered      atomic.Int64 // changes the in-process row filter turned away or into deletes
	Streamed      atomic.Int64 // large transactions received in pieces (applied as they arrived, or spilled to disk and applied at their commit)
	StreamedLive  atomic.Int64 // ... of which applied as they arrived (stream_live.go)
	Resyncing     atomic.Bool  // tables are being re-copied
	Resyncs       atomic.Int64 // re-copies switched in
	TargetCommits atomic.Int64
	Committed     atomic.Uint64 // LSN durable in the target
	Received      atomic.Uint64 // highest LSN received
	LastCommit    atomic.Int64  // source commit time (unix µs) of the last applied transaction
	// Where the stream's time goes, in nanoseconds: waiting for the
	// source's next message, and waiting for the target (sending batches
	// and commits); the rest is decoding and masking.
	SourceWait atomic.Int64
	TargetWait atomic.Int64
}

// applier is what the streamer does on the target: one target
// transaction at a time, holding whole source transactions, committed
// with the checkpoint of the last of them. target.Applier is the real one;
// the stream's unit tests record the calls instead.
type applier interface {
	// Begin opens a target transaction.
	Begin(ctx context.Context) error
	// Apply queues a masked change in the open transaction.
	Apply(ctx context.Context, c *target.Change) error
	// Pending is the number of changes applied since Begin.
	Pending() int
	// Commit writes the checkpoint pos and commits.
	Commit(ctx context.Context, pos target.Position) error
	// Rollback abandons the open transaction, if any.
	Rollback(ctx context.Context) error
	// Exec runs a statement in the open transaction, after the changes
	// applied before it (a re-copy's switch).
	Exec(ctx context.Context, sql string) error
}

var _ applier = (*target.Applier)(nil)

// replicationConn is the replication connection as the streamer uses it.
// pgReplicationConn is the real one; the stream's unit tests replay
// recorded messages through a fake.
type replicationConn interface {
	// StartReplication starts streaming slot from start with pgoutput's
	// plugin arguments.
	StartReplication(ctx context.Context, slot string, start pglogrepl.LSN, pluginArgs []string) error
	// ReceiveMessage returns the next message; a timeout error (see
	// pgconn.Timeout) when ctx's deadline passes first.
	ReceiveMessage(ctx context.Context) (pgproto3.BackendMessage, error)
	// SendStandbyStatus tells the server what the target holds.
	SendStandbyStatus(ctx context.Context, st pglogrepl.StandbyStatusUpdate) error
}

// decodingWorkMemSQL lowers, for the replication session alone, the
// memory above which the walsender streams an in-progress transaction
// (logical_decoding_work_mem, 64MB by default) to decodingWorkMem, and
// never raises it. The walsender sends a big transaction's first chunk
// only once it holds that much of it: at 64MB, half of a 500k-row INSERT
// had been written by then, and pgveil and the target could apply only
// the other half before its commit (stream_live.go). Smaller chunks start
// that work early and keep it flowing while production writes; the
// walsender holds less memory too. Only with streaming: without it, the
// walsender would spill to production's disk instead.
const decodingWorkMemSQL = `SELECT set_config('logical_decoding_work_mem', '` + decodingWorkMem + `', false)
 WHERE pg_size_bytes(current_setting('logical_decoding_work_mem')) > pg_size_bytes('` + decodingWorkMem + `')`

const decodingWorkMem = "8MB"

// streamingOn is the plugin argument that asks for streamed transactions.
const streamingOn = "streaming 'on'"

// pgReplicationConn is a replication connection to the source.
type pgReplicationConn struct{ conn *pgconn.PgConn }

var _ replicationConn = pgReplicationConn{}

func (c pgReplicationConn) StartReplication(ctx context.Context, slot string, start pglogrepl.LSN, pluginArgs []string) error {
	if slices.Contains(pluginArgs, streamingOn) {
		if _, err := c.conn.Exec(ctx, decodingWorkMemSQL).ReadAll(); err != nil {
			return fmt.Errorf("setting the replication session's logical_decoding_work_mem: %w", err)
		}
	}
	return pglogrepl.StartReplication(ctx, c.conn, slot, start, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication, PluginArgs: pluginArgs,
	})
}

func (c pgReplicationConn) ReceiveMessage(ctx context.Context) (pgproto3.BackendMessage, error) {
	return c.conn.ReceiveMessage(ctx)
}

func (c pgReplicationConn) SendStandbyStatus(ctx context.Context, st pglogrepl.StandbyStatusUpdate) error {
	return pglogrepl.SendStandbyStatusUpdate(ctx, c.conn, st)
}

// walEndReader reads the source server's WAL end. A logical walsender's
// messages do not carry it: an XLogData's WAL end is the record's own
// position (or 0), and a keepalive's is how far the walsender has sent,
// which during a backlog is far behind. The lag figures need the real one.
type walEndReader interface {
	WALEnd(ctx context.Context) (pglogrepl.LSN, error)
}

// sqlWALEnd reads the WAL end from a source connection of its own: the
// flush position, the end of what a walsender can send. The stream does
// not depend on it: when production refuses the connection
// (max_connections, the role's CONNECTION LIMIT) or it breaks (a reading
// that timed out closes it), the reading fails, the lag figures go by
// keepalives, and the connection is opened again at most every
// walEndRetry, so that a saturated production is not asked for a backend
// every second.
type sqlWALEnd struct {
	dsn     string
	conn    *pgx.Conn
	retryAt time.Time     // no connection attempt before
	retry   time.Duration // between connection attempts
}

var _ walEndReader = (*sqlWALEnd)(nil)

// walEndRetry is how long sqlWALEnd waits before opening its connection
// again after a failure.
const walEndRetry = 30 * time.Second

// errWALEndWaiting: the connection failed and is not tried again yet.
var errWALEndWaiting = errors.New("reading the source's WAL position: connection failed, tried again later")

func (w *sqlWALEnd) WALEnd(ctx context.Context) (pglogrepl.LSN, error) {
	if w.conn == nil || w.conn.IsClosed() {
		w.conn = nil
		if time.Now().Before(w.retryAt) {
			return 0, errWALEndWaiting
		}
		conn, err := connectSource(ctx, w.dsn)
		if err != nil {
			w.retryAt = time.Now().Add(w.retry)
			return 0, fmt.Errorf("reading the source's WAL position: %w", err)
		}
		w.conn = conn
	}
	var lsn pglogrepl.LSN
	if err := w.conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()").Scan(&lsn); err != nil {
		if w.conn.IsClosed() {
			w.retryAt = time.Now().Add(w.retry)
		}
		return 0, fmt.Errorf("reading the source's WAL position: %w", err)
	}
	return lsn, nil
}

// Close closes the connection, if open.
func (w *sqlWALEnd) Close() {
	if w.conn != nil {
		w.conn.Close(context.Background())
		w.conn = nil
	}
}

// walEndInterval is how often the streamer reads the source's WAL end:
// one trivial query a second keeps pgveil_lag_bytes true within a second.
const walEndInterval = time.Second

// streamer applies the pgoutput stream to the target.
type streamer struct {
	opts        StreamOptions
	log         *slog.Logger
	repl        replicationConn
	slot        string
	publication string
	plan        *transform.Plan
	filters     map[schema.TableName]*source.Filter
	filterConn  *pgx.Conn // a source connection for in-process filters
	applier     applier
	stats       *Stats
	obs         Observer
	protoV2     bool
	// walEnd reads the source server's WAL end for the lag figures; nil
	// leaves them to keepalives alone.
	walEnd     walEndReader
	walEndFail bool // a failed reading was logged

	dec  pgoutput.Decoder
	rels map[uint32]*relation
	// lookup finds the plan of a source table (the plan's own, or a
	// staging table's while a re-copy is replayed).
	lookup func(schemaName, name string) *transform.TablePlan
	// relMsgs are the last Relation message of each relation, to rebuild
	// the mapping when the plan changes and to seed a capture.
	relMsgs map[uint32][]byte
	// colWarnings says once what Relation messages show unlike the plan.
	colWarnings *columnWarnings
	// rs is the re-copy of some tables under way, or nil.
	rs *liveResync
	// settled, when set, is called once a re-copy is switched in.
	settled func()
	// colTypes are the column types the plan was built for.
	colTypes columnTypes

	start pglogrepl.LSN // the checkpoint at start: transactions committed before it are applied
	// startCommit is the commit time of the checkpoint at start (zero
	// when unknown, as after an initial copy).
	startCommit time.Time
	committed   pglogrepl.LSN // durable in the target
	// applied is the last source commit inside the open target
	// transaction or, before any, the checkpoint at start: a target
	// transaction that holds no source commit (a re-copy's switch) keeps
	// the checkpoint where it was, never writes 0/0.
	applied  target.Position
	received pglogrepl.LSN
	idleEnd  pglogrepl.LSN // server WAL end from a keepalive received while idle

	txOpen     bool // a target transaction is open
	groupSince time.Time
	groupBytes int64
	curLSN     pglogrepl.LSN // commit LSN of the source transaction being applied
	inTx       bool          // inside a (non-streamed) source transaction
	skip       bool          // ... that was applied before the restart

	inStream  bool
	streamXid uint32
	streams   map[uint32]*spill

	// Big transactions applied as they stream (stream_live.go). openLive
	// opens their target connection (nil: every streamed transaction is
	// spilled and applied at its commit); liveAp is it once open; live is
	// the transaction being applied, or nil; referenced are the tables a
	// replica foreign key references; liveTenancy, that tenant roles are
	// made for the values applied.
	openLive    liveOpener
	liveTenancy bool
	liveAp      applier
	liveClose   func()
	liveRetry   time.Time // no connection attempt before
	// groupLive: the open (or last) main group began while a transaction
	// was live, so its lock waits are bounded (boundLiveWait).
	groupLive   bool
	live        *liveTx
	referenced  map[schema.TableName]bool
	referencing map[schema.TableName]bool // ... and those that have one
}

// pluginArgs asks pgoutput for text values and, on PostgreSQL 14 and
// later, protocol 2 with streaming of large in-progress transactions.
// The publication's name needs no quoting: the rules accept only plain
// lower-case names for it (rules/parse.go, pgName).
func pluginArgs(publication string, serverVersion int) []string {
	args := []string{"publication_names '" + publication + "'"}
	if serverVersion >= 140000 {
		return append([]string{"proto_version '2'", streamingOn}, args...)
	}
	return append([]string{"proto_version '1'"}, args...)
}

// init prepares the streamer's state for a stream from s.start.
func (s *streamer) init(serverVersion int) {
	s.opts.defaults()
	s.rels = map[uint32]*relation{}
	s.relMsgs = map[uint32][]byte{}
	s.streams = map[uint32]*spill{}
	if s.lookup == nil {
		s.lookup = s.plan.Table
	}
	s.committed = s.start
	s.applied = target.Position{LSN: s.start, CommitTime: s.startCommit}
	s.stats.Committed.Store(uint64(s.committed))
	s.stats.Resyncing.Store(s.rs != nil)
	s.protoV2 = serverVersion >= 140000
}

// close releases what the stream holds on disk, and the live
// transaction's connection (which rolls it back).
func (s *streamer) close() {
	s.closeLive()
	for _, sp := range s.streams {
		sp.close()
	}
	if s.rs != nil {
		s.rs.spill.close()
	}
}

func (s *streamer) run(ctx context.Context, serverVersion int) error {
	return s.blameLive(s.loop(ctx, serverVersion))
}

func (s *streamer) loop(ctx context.Context, serverVersion int) error {
	s.init(serverVersion)
	defer s.close()
	// The server's WAL end before the first message: a keepalive that
	// arrives behind it is not caught up (a restart's backlog).
	s.readWALEnd(ctx)
	err := s.repl.StartReplication(ctx, s.slot, s.start, pluginArgs(s.publication, serverVersion))
	if err != nil {
		return fmt.Errorf("starting replication from slot %s at %s: %w", s.slot, s.start, err)
	}
	s.log.Info("streaming", "slot", s.slot, "from", s.start.String())
	now := time.Now()
	nextStatus := now.Add(s.opts.StatusInterval)
	nextWALEnd := now.Add(walEndInterval)
	lastMsg := now
	var recv receiveContext
	defer recv.release()
	for {
		deadline := nextStatus
		if s.walEnd != nil {
			deadline = minTime(deadline, nextWALEnd)
		}
		if s.groupOpen() {
			deadline = minTime(deadline, minTime(s.groupSince.Add(s.opts.BatchDelay), lastMsg.Add(s.opts.IdleFlush)))
		}
		if s.rs != nil {
			deadline = minTime(deadline, now.Add(250*time.Millisecond))
		}
		waited := now
		raw, err := s.repl.ReceiveMessage(recv.until(ctx, deadline))
		now = time.Now()
		s.stats.SourceWait.Add(int64(now.Sub(waited)))
		if err == nil {
			lastMsg = now
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return s.stop()
		case err != nil && pgconn.Timeout(err):
			if s.groupOpen() && (now.Sub(s.groupSince) >= s.opts.BatchDelay || now.Sub(lastMsg) >= s.opts.IdleFlush) {
				if err := s.flush(ctx); err != nil {
					return err
				}
			}
		case err != nil:
			return fmt.Errorf("replication stream: %w", err)
		default:
			if err := s.receive(ctx, raw); err != nil {
				s.rollback()
				return err
			}
		}
		if err := s.resyncStep(ctx); err != nil {
			s.rollback()
			return err
		}
		if now = time.Now(); !now.Before(nextStatus) {
			// When idle, ask for a keepalive: its WAL end is what the
			// next status confirms, so an idle slot does not hold WAL.
			if err := s.sendStatus(!s.txOpen && !s.inTx); err != nil {
				return err
			}
			nextStatus = time.Now().Add(s.opts.StatusInterval)
		}
		if !now.Before(nextWALEnd) {
			s.readWALEnd(ctx)
			nextWALEnd = time.Now().Add(walEndInterval)
		}
	}
}

// readWALEnd reports the source server's WAL end to the observer. A
// failed reading leaves the lag figures to the keepalives, logged once:
// the stream does not depend on it.
func (s *streamer) readWALEnd(ctx context.Context) {
	if s.walEnd == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	lsn, err := s.walEnd.WALEnd(rctx)
	if err != nil {
		if !s.walEndFail && ctx.Err() == nil {
			s.log.Warn("cannot read the source's WAL position: the lag figures go by keepalives alone until it can", "error", err.Error())
			s.walEndFail = true
		}
		return
	}
	if s.walEndFail {
		s.log.Info("reading the source's WAL position again: the lag figures are exact again")
		s.walEndFail = false
	}
	s.obs.SourceWALEnd(lsn)
}

// receiveContext is the context the stream receives with, reused while
// its deadline is not later than the one wanted: the idle-flush deadline
// moves with every message, and a context (and its timer) per message was
// a tenth of the stream's CPU. Waking early costs a turn of the loop.
type receiveContext struct {
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

// until returns a context, derived from parent, that ends at deadline or
// before.
func (r *receiveContext) until(parent context.Context, deadline time.Time) context.Context {
	if r.ctx == nil || r.deadline.After(deadline) || r.ctx.Err() != nil {
		r.release()
		r.ctx, r.cancel = context.WithDeadline(parent, deadline)
		r.deadline = deadline
	}
	return r.ctx
}

func (r *receiveContext) release() {
	if r.cancel != nil {
		r.cancel()
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// groupOpen: a target transaction holds whole source transactions and
// may be committed now.
func (s *streamer) groupOpen() bool { return s.txOpen && !s.inTx }

func (s *streamer) receive(ctx context.Context, raw pgproto3.BackendMessage) error {
	switch msg := raw.(type) {
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return nil
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("replication stream: %w", err)
			}
			if !s.inTx && !s.inStream && k.ServerWALEnd > s.idleEnd {
				s.idleEnd = k.ServerWALEnd
			}
			s.obs.SourceAlive(k.ServerWALEnd, true)
			if k.ReplyRequested {
				return s.sendStatus(false)
			}
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("replication stream: %w", err)
			}
			if end := x.WALStart + pglogrepl.LSN(len(x.WALData)); end > s.received {
				s.received = end
				s.stats.Received.Store(uint64(end))
			}
			// Not x.ServerWALEnd: a logical walsender puts the record's
			// own position there, or 0 (readWALEnd reports the real end).
			s.obs.SourceAlive(s.received, false)
			// The connection reuses its buffer: keep our own copy, since
			// masked values may point into it until the target has them.
			data := append([]byte(nil), x.WALData...)
			return s.handle(ctx, data)
		}
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
	}
	return nil
}

// handle processes one pgoutput message.
func (s *streamer) handle(ctx context.Context, data []byte) error {
	m, err := s.dec.Decode(data, s.inStream)
	if err != nil {
		if errors.Is(err, pgoutput.ErrUnknownType) {
			return fmt.Errorf("replication stream: %w (is the source a newer PostgreSQL with a protocol pgveil does not know?)", err)
		}
		return fmt.Errorf("replication stream: %w", err)
	}
	if s.inStream {
		return s.spool(ctx, m, data)
	}
	switch m := m.(type) {
	case *pgoutput.Begin:
		s.inTx = true
		s.curLSN = m.FinalLSN
		s.skip = m.FinalLSN < s.start
		if !s.skip {
			return s.beginTarget(ctx)
		}
	case *pgoutput.Commit:
		s.inTx = false
		if s.skip {
			s.skip = false
			return nil
		}
		return s.committedSource(ctx, target.Position{LSN: m.EndLSN, CommitTime: m.CommitTime})
	case *pgoutput.StreamStart:
		s.inStream, s.streamXid = true, m.Xid
		if s.streams[m.Xid] == nil {
			sp, err := newSpill(s.opts.SpillDir, m.Xid)
			if err != nil {
				return err
			}
			s.streams[m.Xid] = sp
			return s.goLive(ctx, m.Xid)
		}
		if s.isLive(m.Xid) {
			return s.liveChunk(ctx)
		}
	case *pgoutput.StreamCommit:
		if s.isLive(m.Xid) {
			return s.liveCommit(ctx, m)
		}
		return s.streamCommit(ctx, m)
	case *pgoutput.StreamAbort:
		if s.isLive(m.Xid) {
			if err := s.liveAbort(ctx, m); err != nil {
				return err
			}
		}
		sp := s.streams[m.Xid]
		if sp == nil {
			return nil
		}
		if m.SubXid == m.Xid {
			sp.close()
			delete(s.streams, m.Xid)
			return nil
		}
		return sp.abortSub(m.SubXid)
	default:
		if s.skip {
			if r, ok := m.(*pgoutput.Relation); ok {
				s.relMsgs[r.OID] = relationRecord(data, false)
				s.relation(r)
			}
			return nil
		}
		return s.apply(ctx, m, data, false)
	}
	return nil
}

// spool keeps a message of a streamed transaction chunk for later, and
// applies it at once when the transaction is the live one.
func (s *streamer) spool(ctx context.Context, m pgoutput.Message, data []byte) error {
	if _, ok := m.(*pgoutput.StreamStop); ok {
		s.inStream = false
		return nil
	}
	sp := s.streams[s.streamXid]
	if sp == nil {
		return fmt.Errorf("replication stream: change of streamed transaction %d outside a stream", s.streamXid)
	}
	var xid uint32
	switch m := m.(type) {
	case *pgoutput.Relation:
		xid = m.Xid
	case *pgoutput.TypeInfo:
		xid = m.Xid
	case *pgoutput.Insert:
		xid = m.Xid
	case *pgoutput.Update:
		xid = m.Xid
	case *pgoutput.Delete:
		xid = m.Xid
	case *pgoutput.Truncate:
		xid = m.Xid
	case *pgoutput.LogicalMessage:
		return nil
	default:
		return fmt.Errorf("replication stream: unexpected %q message inside a stream", m.Type())
	}
	if err := sp.add(xid, data); err != nil {
		return err
	}
	if s.isLive(s.streamXid) {
		return s.liveApply(ctx, m, data, xid)
	}
	return nil
}

// streamCommit applies a streamed transaction from its spill file.
func (s *streamer) streamCommit(ctx context.Context, m *pgoutput.StreamCommit) error {
	sp := s.streams[m.Xid]
	delete(s.streams, m.Xid)
	if sp != nil {
		defer sp.close()
	}
	if m.CommitLSN < s.start {
		return nil // applied before the restart
	}
	if err := s.beginTarget(ctx); err != nil {
		return err
	}
	s.curLSN = m.CommitLSN
	if sp != nil {
		s.stats.Streamed.Add(1)
		var dec pgoutput.Decoder
		err := sp.replay(func(buf []byte) error {
			// replay reuses buf; masked values may point into it until the
			// target has them.
			data := append([]byte(nil), buf...)
			msg, err := dec.Decode(data, true)
			if err != nil {
				return fmt.Errorf("replaying streamed transaction %d: %w", m.Xid, err)
			}
			return s.apply(ctx, msg, data, true)
		})
		if err != nil {
			return err
		}
		s.obs.Streamed(false) // counted as applied, as its changes are
	}
	return s.committedSource(ctx, target.Position{LSN: m.EndLSN, CommitTime: m.CommitTime})
}

func (s *streamer) beginTarget(ctx context.Context) error {
	if s.txOpen {
		return nil
	}
	if err := s.applier.Begin(ctx); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if err := s.boundLiveWait(ctx); err != nil {
		return err
	}
	s.txOpen = true
	s.groupSince = time.Now()
	s.groupBytes = 0
	return nil
}

// committedSource records a source commit inside the open target
// transaction, and commits the target when the group is full or old.
func (s *streamer) committedSource(ctx context.Context, pos target.Position) error {
	s.sourceCommit(pos)
	if s.applier.Pending() >= s.opts.BatchChanges || s.groupBytes >= s.opts.BatchBytes || time.Since(s.groupSince) >= s.opts.BatchDelay {
		return s.flush(ctx)
	}
	return nil
}

// flush commits the open target transaction with the checkpoint.
func (s *streamer) flush(ctx context.Context) error {
	if !s.txOpen {
		return nil
	}
	changes, began := s.applier.Pending(), time.Now()
	err := s.applier.Commit(ctx, s.applied)
	s.stats.TargetWait.Add(int64(time.Since(began)))
	s.txOpen = false
	if err != nil {
		s.targetCommitFailed()
		return fmt.Errorf("target: %w", err)
	}
	s.targetCommitted(s.applied, changes, s.groupBytes, began)
	return nil
}

// sourceCommit records source commit pos as applied in the open target
// transaction.
func (s *streamer) sourceCommit(pos target.Position) {
	s.applied = pos
	s.stats.Transactions.Add(1)
	s.stats.LastCommit.Store(pos.CommitTime.UnixMicro())
}

// targetCommitted records a target commit, begun at began, of changes
// changes and bytes of values, that made pos durable.
func (s *streamer) targetCommitted(pos target.Position, changes int, bytes int64, began time.Time) {
	s.committed = pos.LSN
	s.stats.Committed.Store(uint64(s.committed))
	s.stats.TargetCommits.Add(1)
	s.obs.TargetCommit(changes, bytes, time.Since(began), pos.LSN, pos.CommitTime)
}

// targetCommitFailed forgets the idle keepalive's WAL end after a failed
// target commit: it may lie past the lost transactions, and a status sent
// on the way out (stop) must confirm only what the target holds.
func (s *streamer) targetCommitFailed() { s.idleEnd = 0 }

func (s *streamer) rollback() {
	if s.txOpen {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.applier.Rollback(ctx)
		s.txOpen = false
	}
}

// stop ends the stream on shutdown: whole source transactions already in
// the target transaction are committed, a partial one is rolled back. A
// failed commit is returned: those transactions are not in the target,
// and the next start applies them again from the checkpoint.
func (s *streamer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if s.groupOpen() && s.applied.LSN > s.committed {
		if err = s.flush(ctx); err != nil {
			err = &ShutdownError{Err: err}
		}
	}
	s.rollback()
	_ = s.sendStatus(false)
	s.log.Debug("stream time", "waiting_for_source_s", time.Duration(s.stats.SourceWait.Load()).Seconds(),
		"waiting_for_target_s", time.Duration(s.stats.TargetWait.Load()).Seconds(), "transactions", s.stats.Transactions.Load())
	return err
}

// sendStatus tells the server how far the target has durably committed.
// When nothing is in flight, it confirms the server's WAL end from the last
// keepalive, so that an idle slot does not hold WAL.
func (s *streamer) sendStatus(reply bool) error {
	flush := s.committed
	// Not while a live transaction is open (stream_live.go): its rows are
	// not durable, and nothing past what is committed is confirmed then.
	if !s.txOpen && !s.inTx && s.live == nil && s.idleEnd > flush {
		flush = s.idleEnd
	}
	write := max(s.received, flush)
	err := s.repl.SendStandbyStatus(context.Background(), pglogrepl.StandbyStatusUpdate{
		WALWritePosition: write, WALFlushPosition: flush, WALApplyPosition: flush, ReplyRequested: reply,
	})
	if err != nil {
		return fmt.Errorf("sending status to the source: %w", err)
	}
	return nil
}

func (s *streamer) relation(m *pgoutput.Relation) *relation {
	if s.colWarnings == nil {
		s.colWarnings = &columnWarnings{log: s.log}
	}
	r := newRelation(m, s.lookup, s.filters, s.colWarnings)
	if r.filter != nil && target.HasPrimaryKey(r.table) {
		// The applier evaluates a batch's filters at once.
		r.deferFilter, r.rowFilter = true, &deferredFilter{s: s, r: r}
	}
	s.rels[m.OID] = r
	return r
}

// identityCoversKey reports whether the old rows of m's UPDATE and DELETE
// messages carry every column of the replica's key: under REPLICA
// IDENTITY FULL they carry every column; otherwise only m's key columns.
func identityCoversKey(tp *transform.TablePlan, m *pgoutput.Relation) bool {
	if m.ReplicaIdentity == 'f' {
		return true
	}
	for _, i := range target.KeyColumns(tp) {
		name := tp.Columns[i].Column.Name
		if !slices.ContainsFunc(m.Columns, func(c pgoutput.Column) bool { return c.Key && c.Name == name }) {
			return false
		}
	}
	return true
}

func (s *streamer) rel(oid uint32) (*relation, error) {
	r := s.rels[oid]
	if r == nil {
		return nil, fmt.Errorf("replication stream: change for relation %d before its Relation message", oid)
	}
	return r, nil
}

// apply turns a change message into a target change. data is the
// message as received (inStream: with its transaction id), for a capture.
func (s *streamer) apply(ctx context.Context, m pgoutput.Message, data []byte, inStream bool) error {
	switch m := m.(type) {
	case *pgoutput.Relation:
		return s.applyRelation(m, data, inStream)
	case *pgoutput.Insert:
		return s.applyInsert(ctx, m, data, inStream)
	case *pgoutput.Update:
		return s.applyUpdate(ctx, m, data, inStream)
	case *pgoutput.Delete:
		return s.applyDelete(ctx, m, data, inStream)
	case *pgoutput.Truncate:
		return s.applyTruncate(ctx, m, data, inStream)
	}
	return nil
}

// applyRelation maps a relation anew, or restarts the stream when the
// change in production needs the table planned and copied again.
func (s *streamer) applyRelation(m *pgoutput.Relation, data []byte, inStream bool) error {
	name := schema.TableName{Schema: m.Namespace, Name: m.Name}
	if !s.rs.covers(name) && s.colTypes.changed(name, m) {
		// The values that follow no longer fit the plan: restart,
		// which copies the table again under the new types.
		s.log.Warn("a column's type changed in production: restarting to copy the table again with the new type",
			"table", schema.QuoteIdent(m.Namespace)+"."+schema.QuoteIdent(m.Name))
		return &schemaChange{}
	}
	if tp := s.lookup(m.Namespace, m.Name); tp != nil && !s.rs.covers(name) && !identityCoversKey(tp, m) {
		// UPDATE and DELETE would now name rows by columns the
		// replica's key does not hold (REPLICA IDENTITY changed):
		// restart, which plans the key anew and copies the table
		// again under it.
		s.log.Warn("the table's replica identity changed in production: restarting to copy the table again under its new key",
			"table", tp.Table.QualifiedName())
		return &schemaChange{tables: []schema.TableName{name}}
	}
	s.relMsgs[m.OID] = relationRecord(data, inStream)
	r := s.relation(m)
	if i := slices.Index(r.filterIdx, -1); i >= 0 && !s.rs.covers(name) {
		// Without the column the where cannot be evaluated, and NULL
		// in its place could let rows it excludes in: restart, which
		// plans the where anew (and stops with the rules' error if it
		// no longer fits).
		s.log.Warn("a column the table's where reads is no longer sent by the source (dropped or renamed in production?): restarting to check the where",
			"table", r.label, "column", slices.Concat(r.filter.Columns(), r.filter.Keys())[i])
		return &schemaChange{tables: []schema.TableName{name}}
	}
	if s.rs.covers(r.name) {
		return s.rs.capture(0, data, inStream)
	}
	return nil
}

// changed returns the replicated relation a row change is for, or nil
// when there is nothing to apply: the table is not replicated, or its
// changes are captured for a re-copy (done here).
func (s *streamer) changed(oid uint32, data []byte, inStream bool) (*relation, error) {
	r, err := s.rel(oid)
	if err != nil || r.table == nil {
		return nil, err
	}
	if s.rs.covers(r.name) {
		return nil, s.rs.capture(s.curLSN, data, inStream)
	}
	return r, nil
}

func (s *streamer) applyInsert(ctx context.Context, m *pgoutput.Insert, data []byte, inStream bool) error {
	r, err := s.changed(m.RelationID, data, inStream)
	if r == nil {
		return err
	}
	c := &target.Change{Op: target.OpInsert, Table: r.table}
	if r.filter != nil {
		if r.deferFilter {
			c.Filter, c.FilterRow = r.rowFilter, r.filterRow(m.New, nil)
		} else if ok, err := s.match(ctx, r, r.filterRow(m.New, nil)); err != nil || !ok {
			return err
		}
	}
	if c.Row, err = s.mask(r, m.New, false); err != nil {
		return err
	}
	return s.emit(ctx, c, r.label)
}

func (s *streamer) applyUpdate(ctx context.Context, m *pgoutput.Update, data []byte, inStream bool) error {
	r, err := s.changed(m.RelationID, data, inStream)
	if r == nil {
		return err
	}
	var oldKey []schema.Value
	if m.Old != nil {
		old, err := s.mask(r, m.Old, false)
		if err != nil {
			return err
		}
		oldKey = r.key(old)
	}
	row, err := s.mask(r, m.New, true)
	if err != nil {
		return err
	}
	c := &target.Change{Op: target.OpUpdate, Table: r.table, Row: row, Key: oldKey}
	switch {
	case r.filter != nil && r.deferFilter:
		c.Filter, c.FilterRow = r.rowFilter, r.filterRow(m.New, m.Old)
	case r.filter != nil:
		ok, err := s.match(ctx, r, r.filterRow(m.New, m.Old))
		if err != nil {
			return err
		}
		if !ok {
			// The row no longer passes the filter: it leaves the replica.
			key := oldKey
			if key == nil {
				key = r.key(row)
			}
			c = &target.Change{Op: target.OpDelete, Table: r.table, Key: key}
		}
	}
	return s.emit(ctx, c, r.label)
}

func (s *streamer) applyDelete(ctx context.Context, m *pgoutput.Delete, data []byte, inStream bool) error {
	r, err := s.changed(m.RelationID, data, inStream)
	if r == nil {
		return err
	}
	old, err := s.mask(r, m.Old, false)
	if err != nil {
		return err
	}
	return s.emit(ctx, &target.Change{Op: target.OpDelete, Table: r.table, Key: r.key(old)}, r.label)
}

// applyTruncate empties the replicated tables a TRUNCATE names; those
// being re-copied get it in their capture instead.
func (s *streamer) applyTruncate(ctx context.Context, m *pgoutput.Truncate, data []byte, inStream bool) error {
	var tables []*transform.TablePlan
	var labels []string
	captured := false
	for _, oid := range m.RelationIDs {
		if r := s.rels[oid]; r != nil && r.table != nil {
			if s.rs.covers(r.name) {
				captured = true
				continue
			}
			tables, labels = append(tables, r.table), append(labels, r.label)
		}
	}
	if captured {
		if err := s.rs.capture(s.curLSN, data, inStream); err != nil {
			return err
		}
	}
	if len(tables) == 0 {
		return nil
	}
	return s.emit(ctx, &target.Change{Op: target.OpTruncate, Tables: tables,
		Cascade: m.Options&pgoutput.TruncateCascade != 0, RestartIdentity: m.Options&pgoutput.TruncateRestartIdentity != 0}, labels...)
}

// emit is the one way a change reaches the target: it is counted (the
// stats and the observer, under the labels of the tables it changes) and
// applied in the open target transaction.
func (s *streamer) emit(ctx context.Context, c *target.Change, labels ...string) error {
	var counter *atomic.Int64
	switch c.Op {
	case target.OpInsert:
		counter = &s.stats.Inserts
	case target.OpUpdate:
		counter = &s.stats.Updates
	case target.OpDelete:
		counter = &s.stats.Deletes
	case target.OpTruncate:
		counter = &s.stats.Truncates // one TRUNCATE, however many tables
	}
	counter.Add(1)
	for _, l := range labels {
		s.obs.Change(l, c.Op.String())
	}
	for _, v := range c.Row {
		s.groupBytes += int64(len(v.Text))
	}
	began := time.Now()
	err := s.applier.Apply(ctx, c)
	s.stats.TargetWait.Add(int64(time.Since(began)))
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	return nil
}

// countFiltered counts a change the table's row filter turned away.
func (s *streamer) countFiltered(label string) {
	s.stats.Filtered.Add(1)
	s.obs.Change(label, "filtered")
}

// mask masks a tuple into plan column order. A value its rule cannot
// mask is a *transform.MaskError that says in which source transaction.
func (s *streamer) mask(r *relation, t pgoutput.Tuple, update bool) ([]schema.Value, error) {
	raw, err := r.planRow(t, update)
	if err != nil {
		return nil, err
	}
	out, err := r.table.Mask(make([]schema.Value, 0, len(raw)), raw)
	if err != nil {
		return nil, maskedAt(err, s.curLSN)
	}
	return out, nil
}

// deferredFilter evaluates a table's in-process filter for the applier,
// many rows at a time, and counts the rows it turns away.
type deferredFilter struct {
	s *streamer
	r *relation
}

var _ target.RowFilter = (*deferredFilter)(nil)

func (f *deferredFilter) Match(ctx context.Context, rows [][]schema.Value) ([]bool, error) {
	res, err := f.r.filter.Match(ctx, f.s.filterConn, rows)
	if err != nil {
		return nil, fmt.Errorf("%s: row filter: %w", f.r.label, err)
	}
	for _, ok := range res {
		if !ok {
			f.s.countFiltered(f.r.label)
		}
	}
	return res, nil
}

// match runs the table's in-process filter on the new row's filter
// values (relation.filterRow).
func (s *streamer) match(ctx context.Context, r *relation, row []schema.Value) (bool, error) {
	res, err := r.filter.Match(ctx, s.filterConn, [][]schema.Value{row})
	if err != nil {
		return false, fmt.Errorf("%s: row filter: %w", r.label, err)
	}
	if !res[0] {
		s.countFiltered(r.label)
	}
	return res[0], nil
}

// maskedAt says where in replication a value could not be masked: in the
// source transaction committed at lsn, or in the initial copy when lsn is
// 0. Other errors are returned as they are.
func maskedAt(err error, lsn pglogrepl.LSN) error {
	var me *transform.MaskError
	if !errors.As(err, &me) {
		return err
	}
	if lsn == 0 {
		return me.At("in the initial copy")
	}
	return me.At("in the transaction committed at LSN " + lsn.String())
}

// columnTypes are the source columns' types (atttypid, atttypmod) as the
// plan was built for them, by table and column.
type columnTypes map[schema.TableName]map[string][2]int64

// changed reports whether a Relation message shows a column of a table
// with another type than the plan was built for.
func (ct columnTypes) changed(t schema.TableName, m *pgoutput.Relation) bool {
	cols := ct[t]
	for _, c := range m.Columns {
		if want, ok := cols[c.Name]; ok && (want[0] != int64(c.TypeOID) || want[1] != int64(c.TypeMod)) {
			return true
		}
	}
	return false
}
