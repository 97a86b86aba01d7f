package replicate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"pgveil/replicate/pgcopy"
	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

// SnapshotOptions tune the initial copy.
type SnapshotOptions struct {
	// Workers is the number of source connections copying in parallel
	// (and the most tables loaded at once).
	Workers int
	// ChunkPages: tables larger than this many pages (8 KiB each) are
	// split into ranges of ctid that workers copy in parallel.
	ChunkPages int64
	// ProgressEvery is how often progress is logged.
	ProgressEvery time.Duration
}

func (o *SnapshotOptions) defaults() {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.ChunkPages <= 0 {
		o.ChunkPages = 8192
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
}

// chunkBytes is the size of the encoded blocks workers hand to a table's
// loader; with the channel's capacity it bounds the memory in flight.
const chunkBytes = 256 << 10

// chunkCap is the capacity a block is made with: room for the row that
// crosses chunkBytes.
const chunkCap = chunkBytes + chunkBytes/4

// tableCopy is one table being copied.
type tableCopy struct {
	plan    *transform.TablePlan // the source table and its rules
	dest    *transform.TablePlan // where it loads
	pub     source.PublishedTable
	info    *schema.TableInfo
	chunks  chan []byte
	left    atomic.Int32 // tasks not finished
	rows    atomic.Int64
	bytes   atomic.Int64
	started atomic.Int64 // unix nanoseconds; 0 until its loader starts
	done    atomic.Bool
}

func (t *tableCopy) startTime() time.Time { return time.Unix(0, t.started.Load()) }

// estimated is the catalog's estimate of the table's rows, -1 if unknown.
func (t *tableCopy) estimated() int64 {
	if t.info == nil {
		return -1
	}
	return t.info.EstimatedRows
}

type copyTask struct {
	t        *tableCopy
	from, to int64 // page range; to < 0: to the end; from < 0: the whole table
}

// snapshotter copies every table of the plan as of an exported snapshot.
type snapshotter struct {
	opts      SnapshotOptions
	log       *slog.Logger
	sourceDSN string
	targetDSN string
	snapshot  string
	plan      *transform.Plan
	pub       *source.PublicationSpec
	cat       *schema.Catalog
	obs       Observer
	// mu guards rewritten: the tables production gave new storage to
	// while they were copied.
	mu        sync.Mutex
	rewritten map[schema.TableName]bool
	// dest, when set, names where each table loads (staging tables of a
	// re-copy); otherwise tables load into their own names.
	dest map[schema.TableName]*transform.TablePlan
	// tenancy, when set, gets the tenant roles of each copied table
	// created after its copy.
	tenancy *target.Tenancy
	// free holds blocks loaders have written, for workers to fill again
	// (made by run). Why: a fresh 320 KiB block per 256 KiB of rows was
	// more than half of what the snapshot allocated, and with a live heap
	// of a few MB each one brought the next garbage collection closer.
	free chan []byte
}

// newChunk returns an empty block, a written one when there is one.
func (s *snapshotter) newChunk() []byte {
	select {
	case b := <-s.free:
		return b[:0]
	default:
		return make([]byte, 0, chunkCap)
	}
}

// reuseChunk offers a written block for reuse; a block a huge row grew is
// dropped, as are blocks beyond the free list's capacity, so the memory
// kept stays bounded.
func (s *snapshotter) reuseChunk(b []byte) {
	if cap(b) > chunkCap {
		return
	}
	select {
	case s.free <- b:
	default:
	}
}

func (s *snapshotter) run(ctx context.Context) error {
	s.opts.defaults()
	s.free = make(chan []byte, 2*s.opts.Workers)
	g, ctx := errgroup.WithContext(ctx)
	// Each task runs in a transaction of its own that imports the
	// exported snapshot (it lives while the exporting connection stays
	// idle, which it does until the copy ends), so that pgveil holds a
	// table's ACCESS SHARE lock only while it reads one chunk of it:
	// production's ALTER TABLE, VACUUM FULL or TRUNCATE waits for that
	// chunk, not for the whole copy, and every query queued behind the
	// migration with it. A table rewritten between its chunks is noticed
	// (see copy) and copied again.
	srcs, err := s.sourceConns(ctx)
	defer closeAll(srcs)
	if err != nil {
		return err
	}
	var (
		tables []*tableCopy
		tasks  []copyTask
	)
	err = InSnapshot(ctx, srcs[0], s.snapshot, func() (err error) {
		tables, tasks, err = s.tasks(ctx, srcs[0])
		return err
	})
	if err != nil {
		return err
	}
	// Target connections: at most one per table being loaded.
	tgts, err := s.targetConns(ctx)
	defer closeAll(tgts)
	if err != nil {
		return err
	}
	pool := make(chan *pgx.Conn, len(tgts))
	for _, c := range tgts {
		pool <- c
	}
	queue := make(chan copyTask)
	g.Go(func() error { return s.dispatch(ctx, g, tasks, pool, queue) })
	for _, conn := range srcs {
		g.Go(func() error {
			for t := range queue {
				if err := s.copy(ctx, conn, t); err != nil {
					return err
				}
				if t.t.left.Add(-1) == 0 {
					close(t.t.chunks)
				}
			}
			return nil
		})
	}
	stop := s.progress(tables)
	err = g.Wait()
	stop()
	if err != nil {
		return err
	}
	var rows, bytes int64
	for _, t := range tables {
		rows += t.rows.Load()
		bytes += t.bytes.Load()
	}
	s.log.Info("snapshot copied", "tables", len(tables), "rows", rows, "MB", bytes>>20)
	return nil
}

// sourceConns opens the copy workers' connections to production, with no
// statement or idle-in-transaction timeout: a chunk's read may be long,
// and the snapshot's transaction idles between chunks. On error, the
// connections opened so far are returned too, for the caller to close.
func (s *snapshotter) sourceConns(ctx context.Context) ([]*pgx.Conn, error) {
	var srcs []*pgx.Conn
	for range s.opts.Workers {
		c, err := connectSource(ctx, s.sourceDSN)
		if err != nil {
			return srcs, err
		}
		srcs = append(srcs, c)
		for _, q := range []string{
			"SET idle_in_transaction_session_timeout = 0",
			"SET statement_timeout = 0",
		} {
			if _, err := c.Exec(ctx, q); err != nil {
				return srcs, fmt.Errorf("setting up a copy connection: %w", err)
			}
		}
	}
	return srcs, nil
}

// targetConns opens the loaders' connections to the analytics database,
// one per worker. On error, those opened so far are returned too.
func (s *snapshotter) targetConns(ctx context.Context) ([]*pgx.Conn, error) {
	var tgts []*pgx.Conn
	for range s.opts.Workers {
		c, err := connectTarget(ctx, s.targetDSN)
		if err != nil {
			return tgts, err
		}
		tgts = append(tgts, c)
	}
	return tgts, nil
}

// dispatch hands out the tasks on queue, closing it at the end. It starts
// each table's loader in g (taking a target connection from pool, which
// may wait for another table to finish) before handing out the table's
// first task, so that a chunk read always has a loader to go to.
func (s *snapshotter) dispatch(ctx context.Context, g *errgroup.Group, tasks []copyTask, pool chan *pgx.Conn, queue chan<- copyTask) error {
	defer close(queue)
	for _, t := range tasks {
		if t.t.started.Load() == 0 {
			var conn *pgx.Conn
			select {
			case conn = <-pool:
			case <-ctx.Done():
				return ctx.Err()
			}
			t.t.started.Store(time.Now().UnixNano())
			tc := t.t
			g.Go(func() error {
				defer func() { pool <- conn }()
				return s.load(ctx, conn, tc)
			})
		}
		select {
		case queue <- t:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// closeAll closes connections, ignoring errors: they are being dropped.
func closeAll(conns []*pgx.Conn) {
	for _, c := range conns {
		c.Close(context.Background())
	}
}

// InSnapshot runs fn in a read-only transaction of conn that has
// imported the exported snapshot, and ends the transaction, releasing the
// locks fn's reads took. Reading one table (or one chunk) per such
// transaction is how pgveil reads production under one snapshot without
// making a migration wait for more than that one read.
func InSnapshot(ctx context.Context, conn *pgx.Conn, snapshot string, fn func() error) error {
	for _, q := range []string{
		"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
		"SET TRANSACTION SNAPSHOT '" + snapshot + "'",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			_, _ = conn.Exec(ctx, "ROLLBACK")
			return fmt.Errorf("joining the snapshot: %w", err)
		}
	}
	if err := fn(); err != nil {
		_, _ = conn.Exec(ctx, "ROLLBACK") // the connection may be gone: its owner closes it
		return err
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("ending a transaction under the snapshot: %w", err)
	}
	return nil
}

// rewrittenSQL tells, inside a transaction that imported the snapshot,
// whether a table (or one of its leaf partitions) still has the storage
// it had when the snapshot was taken: a query on pg_class sees the row as
// of the snapshot, pg_relation_filenode the catalog as it is now. TRUNCATE,
// VACUUM FULL, CLUSTER and the rewriting forms of ALTER TABLE give the
// table new storage, and none of them is MVCC-safe: rows read from it
// under the old snapshot may be missing (ALTER ... TYPE, TRUNCATE) or, by
// page range, read twice or not at all (VACUUM FULL, CLUSTER).
// (pg_partition_tree lists a partitioned table's tree, and nothing for a
// plain table.)
const rewrittenSQL = `
SELECT coalesce(bool_or(c.relfilenode IS DISTINCT FROM pg_catalog.pg_relation_filenode(c.oid)), false)
FROM pg_catalog.pg_class c
WHERE c.relkind = 'r' AND (c.oid = $1::oid
   OR c.oid IN (SELECT p.relid FROM pg_catalog.pg_partition_tree($1::oid::regclass) p WHERE p.isleaf))`

// Rewritten reports, inside a transaction that imported a snapshot,
// whether production gave the table with OID oid (or one of its leaves)
// new storage since the snapshot was taken: rows read from it under that
// snapshot may be missing.
func Rewritten(ctx context.Context, conn *pgx.Conn, oid uint32) (bool, error) {
	var rewritten bool
	if err := conn.QueryRow(ctx, rewrittenSQL, oid).Scan(&rewritten); err != nil {
		return false, fmt.Errorf("checking whether production rewrote the table: %w", err)
	}
	return rewritten, nil
}

// noteRewritten records that table must be copied again.
func (s *snapshotter) noteRewritten(t schema.TableName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rewritten == nil {
		s.rewritten = map[schema.TableName]bool{}
	}
	if !s.rewritten[t] {
		s.rewritten[t] = true
		s.log.Warn("production rewrote a table while it was being copied (TRUNCATE, ALTER TABLE ... TYPE, VACUUM FULL or CLUSTER): its copy may be incomplete, so it is copied again once streaming starts",
			"table", t.QualifiedName())
	}
}

// Rewritten lists the tables production rewrote during the copy: their
// copies are not to be trusted and must be made again.
func (s *snapshotter) Rewritten() []schema.TableName {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]schema.TableName, 0, len(s.rewritten))
	for t := range s.rewritten {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b schema.TableName) int { return cmp.Compare(a.QualifiedName(), b.QualifiedName()) })
	return out
}

// tasks lists the copy tasks, splitting large tables into page ranges
// (their size read inside the snapshot). The largest tables come first:
// each table loads through one target connection, so a big table started
// last would leave the other connections idle while it alone finishes.
func (s *snapshotter) tasks(ctx context.Context, conn *pgx.Conn) ([]*tableCopy, []copyTask, error) {
	pubs := map[schema.TableName]source.PublishedTable{}
	for _, pt := range s.pub.Tables {
		pubs[pt.Name] = pt
	}
	type sized struct {
		tc    *tableCopy
		pages int64
	}
	var tables []*tableCopy
	var bySize []sized
	for _, tp := range s.plan.Tables() {
		name := schema.TableName{Schema: tp.Table.Schema, Name: tp.Table.Name}
		tc := &tableCopy{plan: tp, dest: tp, pub: pubs[name], info: s.cat.Info[name], chunks: make(chan []byte, 8)}
		if d := s.dest[name]; d != nil {
			tc.dest = d
		}
		tables = append(tables, tc)
		var pages int64
		if tc.info != nil && !tc.info.Partitioned {
			err := conn.QueryRow(ctx, "SELECT pg_relation_size($1::regclass) / current_setting('block_size')::bigint",
				tp.Table.QualifiedName()).Scan(&pages)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: reading its size: %w", tp.Table.QualifiedName(), err)
			}
		}
		bySize = append(bySize, sized{tc, pages})
	}
	// Stable: tables of equal size (the empty ones) keep the plan's order.
	slices.SortStableFunc(bySize, func(a, b sized) int { return cmp.Compare(b.pages, a.pages) })
	var tasks []copyTask
	for _, t := range bySize {
		tc, pages := t.tc, t.pages
		if pages <= s.opts.ChunkPages {
			tc.left.Store(1)
			tasks = append(tasks, copyTask{t: tc, from: -1})
			continue
		}
		n := int32(0)
		for from := int64(0); from < pages; from += s.opts.ChunkPages {
			to := from + s.opts.ChunkPages
			if to >= pages {
				to = -1 // the last range is open: the table cannot grow inside the snapshot, but stay safe
			}
			tasks = append(tasks, copyTask{t: tc, from: from, to: to})
			n++
		}
		tc.left.Store(n)
	}
	return tables, tasks, nil
}

// copy reads one task's rows from the source, masks them and hands
// encoded blocks to the table's loader.
func (s *snapshotter) copy(ctx context.Context, conn *pgx.Conn, task copyTask) error {
	t := task.t
	var ctid []string
	if task.from >= 0 {
		ctid = append(ctid, fmt.Sprintf("ctid >= '(%d,0)'::tid", task.from))
		if task.to >= 0 {
			ctid = append(ctid, fmt.Sprintf("ctid < '(%d,0)'::tid", task.to))
		}
	}
	q := SelectSQL(t.plan, "", append(ctid, t.plan.Where)...)
	rowMask := newCopyMasker(t.plan)
	buf := s.newChunk()
	var n int64
	send := func() error {
		t.rows.Add(n)
		n = 0
		if len(buf) == 0 {
			return nil
		}
		select {
		case t.chunks <- buf:
		case <-ctx.Done():
			return ctx.Err()
		}
		t.bytes.Add(int64(len(buf)))
		buf = s.newChunk()
		return nil
	}
	name := tableName(t.plan)
	err := InSnapshot(ctx, conn, s.snapshot, func() error {
		err := copyOut(ctx, conn, q, func(rd *pgcopy.Reader) error {
			var raw [][]byte
			for {
				var err error
				raw, err = rd.NextRaw(raw)
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				if buf, err = rowMask.appendRow(buf, rd, raw); err != nil {
					return err
				}
				if n++; len(buf) >= chunkBytes {
					if err := send(); err != nil {
						return err
					}
				}
			}
		})
		if err != nil || t.info == nil {
			return err
		}
		// Still holding the lock the read took: was the table rewritten
		// since the snapshot?
		rewritten, err := Rewritten(ctx, conn, t.info.OID)
		if err != nil {
			return err
		}
		if rewritten {
			s.noteRewritten(name)
		}
		return nil
	})
	var ve *transform.MaskError
	switch {
	case errors.As(err, &ve):
		return err
	case schema.SQLState(err) == "42703", schema.SQLState(err) == "42P01":
		// A column (or the table) was dropped in production between two
		// chunks: the plan no longer fits. Start again with the catalog
		// as it is now.
		s.log.Warn("production dropped a column or the table while it was being copied: planning again", "table", t.plan.Table.QualifiedName())
		return &schemaChange{tables: []schema.TableName{name}}
	case err != nil:
		return fmt.Errorf("%s: copying from the source: %w", t.plan.Table.QualifiedName(), err)
	}
	return send()
}

// copyMasker turns a row of production's COPY text into the masked row
// of the target's COPY text, touching only the columns that need it.
//
// Why: COPY TO writes a field exactly as COPY FROM reads it (the same
// escapes; the bytes are passed in whatever encoding they came, as the
// decoded values always were), so a kept column's bytes go from one
// stream to the other as they are: no decoding into a Value, no escaping
// again; a column whose rule is null becomes \N unread. The other columns
// are decoded, masked (TablePlan.MaskColumn, Mask's rules: NULL stays
// NULL, on_error) and escaped. The output is byte for byte what decoding,
// Plan.Mask and pgcopy.AppendRow give (TestCopyMaskerIsMask).
type copyMasker struct {
	plan *transform.TablePlan
	how  []columnCopy
}

// columnCopy is what copyMasker does with one column.
type columnCopy uint8

const (
	maskField columnCopy = iota // decode, mask, encode
	passField                   // keep: the raw bytes
	nullField                   // null: \N
)

func newCopyMasker(tp *transform.TablePlan) *copyMasker {
	m := &copyMasker{plan: tp, how: make([]columnCopy, len(tp.Columns))}
	for i := range tp.Columns {
		switch c := &tp.Columns[i]; {
		case c.Kept():
			m.how[i] = passField
		case c.Nulled():
			m.how[i] = nullField
		}
	}
	return m
}

// appendRow appends to dst the masked line of raw, a row's fields as
// rd.NextRaw returned them. On error dst is returned as it was; a value
// the rules cannot mask is a *transform.MaskError naming the initial copy.
func (m *copyMasker) appendRow(dst []byte, rd *pgcopy.Reader, raw [][]byte) ([]byte, error) {
	if len(raw) != len(m.how) {
		return dst, fmt.Errorf("%s: row has %d columns, the plan %d", m.plan.Table.QualifiedName(), len(raw), len(m.how))
	}
	orig := len(dst)
	for i, f := range raw {
		if i > 0 {
			dst = append(dst, '\t')
		}
		switch m.how[i] {
		case passField:
			dst = append(dst, f...)
		case nullField:
			dst = append(dst, '\\', 'N')
		default:
			v, err := rd.DecodeField(f, i+1)
			if err != nil {
				return dst[:orig], err
			}
			if v, err = m.plan.MaskColumn(i, v); err != nil {
				return dst[:orig], maskedAt(err, 0)
			}
			if dst, err = pgcopy.AppendField(dst, v); err != nil {
				return dst[:orig], fmt.Errorf("%s: column %d: %w", m.plan.Table.QualifiedName(), i+1, err)
			}
		}
	}
	return append(dst, '\n'), nil
}

// load feeds a table's blocks into one COPY on the target: one
// transaction per table, so a table is either entirely loaded or not.
func (s *snapshotter) load(ctx context.Context, conn *pgx.Conn, t *tableCopy) error {
	pr, pw := io.Pipe()
	go func() {
		for {
			select {
			case chunk, ok := <-t.chunks:
				if !ok {
					pw.Close()
					return
				}
				if _, err := pw.Write(chunk); err != nil {
					return // the load failed; workers see ctx end
				}
				// The pipe's Write returns once the COPY has read (copied)
				// every byte: the block is free.
				s.reuseChunk(chunk)
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			}
		}
	}()
	rows, err := target.CopyIn(ctx, conn, t.dest, pr)
	pr.CloseWithError(errStopped)
	if err != nil {
		return fmt.Errorf("%s: loading into the target: %w", t.plan.Table.QualifiedName(), err)
	}
	if s.tenancy != nil {
		stmts, err := target.SyncTenantsSQL(t.dest, s.tenancy)
		if err == nil && len(stmts) > 0 {
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				for _, q := range stmts {
					if _, err := tx.Exec(ctx, q); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("%s: creating its tenant roles: %w", t.plan.Table.QualifiedName(), err)
		}
	}
	t.done.Store(true)
	s.obs.SnapshotProgress(t.plan.Table.QualifiedName(), rows, t.bytes.Load(), t.estimated(), true)
	s.log.Info("table copied", "table", t.plan.Table.QualifiedName(), "rows", rows,
		"MB", t.bytes.Load()>>20, "seconds", time.Since(t.startTime()).Round(time.Millisecond).Seconds())
	return nil
}

// progress logs the tables being copied every ProgressEvery.
func (s *snapshotter) progress(tables []*tableCopy) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(s.opts.ProgressEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for _, t := range tables {
				if t.started.Load() == 0 || t.done.Load() {
					continue
				}
				rows, secs := t.rows.Load(), time.Since(t.startTime()).Seconds()
				s.obs.SnapshotProgress(t.plan.Table.QualifiedName(), rows, t.bytes.Load(), t.estimated(), false)
				attrs := []any{"table", t.plan.Table.QualifiedName(), "rows", rows, "MB", t.bytes.Load() >> 20}
				if t.info != nil && t.info.EstimatedRows > rows && rows > 0 && secs > 0 {
					eta := time.Duration(float64(t.info.EstimatedRows-rows) / (float64(rows) / secs) * float64(time.Second))
					attrs = append(attrs, "estimated_rows", t.info.EstimatedRows, "eta", eta.Round(time.Second).String())
				}
				s.log.Info("copying", attrs...)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
