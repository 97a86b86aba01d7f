package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// StreamOptions size the streaming scenarios.
type StreamOptions struct {
	Backlog   int           // changes in the catch-up backlog
	Rates     []int         // steady-load transactions per second
	LagFor    time.Duration // how long each steady-load run lasts
	BigRows   int           // rows of the big transaction
	SkipBig   bool
	SkipLag   bool
	SkipCatch bool
}

// replicas are the two subjects kept replicating for the streaming
// scenarios: pgveil (stopped between runs) and a native subscription
// (disabled between runs), both holding the seeded data.
type replicas struct {
	s            *Site
	pgCfg        string
	pgEnv        []string
	pgConn       *pgx.Conn // to pgveil's replica
	native       *Native
	src          *pgx.Conn
	markerID     atomic.Int64
	heartbeatSeq atomic.Int64
}

const pgveilName = "stream_pgveil"

// Stream runs catch-up, steady lag and the big transaction against pgveil
// and native replication.
func Stream(ctx context.Context, s *Site, o StreamOptions, r *Report) error {
	rp, err := newReplicas(ctx, s)
	if err != nil {
		return err
	}
	defer rp.close(ctx)
	if !o.SkipCatch {
		if err := rp.catchUp(ctx, o.Backlog, r); err != nil {
			return fmt.Errorf("catch-up: %w", err)
		}
	}
	if !o.SkipLag {
		for _, rate := range o.Rates {
			if err := rp.steadyLag(ctx, rate, o.LagFor, r); err != nil {
				return fmt.Errorf("steady lag at %d tx/s: %w", rate, err)
			}
		}
	}
	if !o.SkipBig {
		if err := rp.bigTransaction(ctx, o.BigRows, r); err != nil {
			return fmt.Errorf("big transaction: %w", err)
		}
	}
	return nil
}

func newReplicas(ctx context.Context, s *Site) (*replicas, error) {
	rp := &replicas{s: s}
	var err error
	if rp.src, err = pgx.Connect(ctx, s.ProdDSN); err != nil {
		return nil, err
	}
	dsn, err := s.NewTargetDB(ctx, pgveilName, false)
	if err != nil {
		return nil, err
	}
	if rp.pgCfg, rp.pgEnv, err = s.Config(pgveilName, dsn); err != nil {
		return nil, err
	}
	if rp.pgConn, err = pgx.Connect(ctx, dsn); err != nil {
		return nil, err
	}
	// Both copy the data first, then stop.
	p, err := s.StartPgveil(rp.pgCfg, rp.pgEnv)
	if err != nil {
		return nil, err
	}
	err = waitUntil(ctx, p, 30*time.Minute, 50*time.Millisecond, "pgveil's initial copy", checkpointWritten(rp.pgConn, pgveilName))
	if err == nil {
		// The copy's last steps (the foreign keys, added and validated
		// over every row) follow the checkpoint: stopped before them,
		// pgveil would do them at the catch-up's start, and the catch-up
		// would count their CPU.
		err = waitUntil(ctx, p, 30*time.Minute, 50*time.Millisecond, "pgveil to start streaming", func(context.Context) (bool, error) {
			return p.StreamingSince() != p.Started(), nil
		})
	}
	if stopErr := p.Stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return nil, err
	}
	if rp.native, err = s.NewNative(ctx, "stream_native"); err != nil {
		return nil, err
	}
	if err := rp.native.Subscribe(ctx, true); err != nil {
		return nil, err
	}
	if err := rp.native.WaitSynced(ctx, 30*time.Minute); err != nil {
		return nil, err
	}
	if err := rp.native.Disable(ctx); err != nil {
		return nil, err
	}
	s.Log.Info("streaming scenarios: both replicas hold the data")
	return rp, nil
}

func (rp *replicas) close(ctx context.Context) {
	if rp.native != nil {
		_ = rp.native.Drop(ctx, rp.s)
	}
	_ = rp.s.DropSlot(ctx, pgveilName)
	for _, c := range []*pgx.Conn{rp.src, rp.pgConn} {
		if c != nil {
			c.Close(context.Background())
		}
	}
}

// mark inserts a marker row on production and returns its id: a subject
// has applied everything before it once the row is visible.
func (rp *replicas) mark(ctx context.Context, label string) (int64, error) {
	id := rp.markerID.Add(1)
	_, err := rp.src.Exec(ctx, `INSERT INTO bench_marker VALUES ($1, $2)`, id, label)
	return id, err
}

// drainPgveil starts pgveil and waits until the marker is visible; it
// returns the running process and the time from when it started streaming
// (as native's clock starts when its apply worker runs).
func (rp *replicas) drainPgveil(ctx context.Context, marker int64) (*Proc, time.Duration, error) {
	p, err := rp.s.StartPgveil(rp.pgCfg, rp.pgEnv)
	if err != nil {
		return nil, 0, err
	}
	err = waitUntil(ctx, p, 30*time.Minute, 5*time.Millisecond, "pgveil to apply the marker", rowVisible(rp.pgConn, "bench_marker", marker))
	elapsed := time.Since(p.StreamingSince())
	if err != nil {
		_ = p.Stop()
		return nil, 0, err
	}
	return p, elapsed, nil
}

// drainNative enables the subscription and waits until the marker is
// visible.
//
// The clock starts when the subscription's apply worker has started: the
// launcher takes a moment (up to wal_retrieve_retry_interval) to start it
// after ENABLE, a delay that says nothing about applying.
func (rp *replicas) drainNative(ctx context.Context, marker int64) (time.Duration, error) {
	if err := rp.native.Enable(ctx); err != nil {
		return 0, err
	}
	if err := rp.native.waitWorker(ctx); err != nil {
		return 0, err
	}
	began := time.Now()
	err := waitUntil(ctx, nil, 30*time.Minute, 5*time.Millisecond, "native replication to apply the marker", rowVisible(rp.native.Conn(), "bench_marker", marker))
	return time.Since(began), err
}

// catchUp builds a backlog of about n changes while both subjects are
// stopped, then times each draining it alone.
func (rp *replicas) catchUp(ctx context.Context, n int, r *Report) error {
	changes, err := backlog(ctx, rp.src, n)
	if err != nil {
		return err
	}
	marker, err := rp.mark(ctx, "catch-up")
	if err != nil {
		return err
	}
	rp.s.Log.Info("catch-up: backlog built", "changes", changes)
	// CPU is counted from start to stop, connecting and checking included.
	mark := rp.s.cpuNow()
	p, took, err := rp.drainPgveil(ctx, marker)
	if err != nil {
		return err
	}
	rss, _ := p.PeakRSS()
	if err := p.Stop(); err != nil {
		return err
	}
	res := Result{Scenario: "catch-up", Subject: "pgveil", Rows: changes, Seconds: took.Seconds(), PgveilCPU: p.CPU().Seconds(), PeakRSS: rss,
		Note: "streaming started (after connecting and checking the rules) to the backlog applied, masked"}
	rp.s.cpuSince(mark, &res)
	r.Add(res)
	rp.s.PrintStatements(ctx, pgveilName, os.Stderr)
	mark = rp.s.cpuNow()
	took, err = rp.drainNative(ctx, marker)
	if err != nil {
		return err
	}
	if err := rp.native.Disable(ctx); err != nil {
		return err
	}
	res = Result{Scenario: "catch-up", Subject: "native", Rows: changes, Seconds: took.Seconds(),
		Note: "apply worker started (after ALTER SUBSCRIPTION ENABLE) to the backlog applied"}
	rp.s.cpuSince(mark, &res)
	r.Add(res)
	rp.s.PrintStatements(ctx, rp.native.Name, os.Stderr)
	return nil
}

// backlog runs small transactions on production, a mix of inserts,
// updates and deletes over several tables, until about n rows changed. It
// returns the changes as production's statistics count them.
func backlog(ctx context.Context, conn *pgx.Conn, n int) (int64, error) {
	before, err := tupleChanges(ctx, conn)
	if err != nil {
		return 0, err
	}
	var maxCustomer, maxOrder int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT max(id) FROM customers), (SELECT max(id) FROM orders)`).Scan(&maxCustomer, &maxOrder); err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const perTx = 12 // 5 inserts, 3 + 2 updates, 2 deletes
	for done := 0; done < n; done += perTx {
		c1, c2, c3 := 1+rng.Int64N(maxCustomer), 1+rng.Int64N(maxCustomer), 1+rng.Int64N(maxCustomer)
		o1, o2 := 1+rng.Int64N(maxOrder), 1+rng.Int64N(maxOrder)
		// One Exec of several statements is one transaction.
		_, err := conn.Exec(ctx, fmt.Sprintf(`
INSERT INTO events (account_id, kind, properties) SELECT 1, 'bench', jsonb_build_object('email', 'b' || g || '@bench.example', 'n', g) FROM generate_series(1, 5) g;
UPDATE customers SET city = 'Bench ' || %[6]d, phone = '+49 30 ' || id WHERE id IN (%[1]d, %[2]d, %[3]d);
UPDATE orders SET status = 'shipped' WHERE id IN (%[4]d, %[5]d);
DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT 2)`, c1, c2, c3, o1, o2, done))
		if err != nil {
			return 0, err
		}
	}
	if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		return 0, err
	}
	after, err := tupleChanges(ctx, conn)
	return after - before, err
}

// tupleChanges sums the rows inserted, updated and deleted in the example's
// tables, as the statistics count them.
func tupleChanges(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, `SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables WHERE relname = ANY($1)`, Tables).Scan(&n)
	return n, err
}

// steadyLag runs a fixed-rate load for d, once replicated by pgveil and
// once by native replication, and measures the lag with heartbeats.
func (rp *replicas) steadyLag(ctx context.Context, rate int, d time.Duration, r *Report) error {
	scenario := fmt.Sprintf("steady lag %d tx/s", rate)
	// pgveil.
	marker, err := rp.mark(ctx, "before lag")
	if err != nil {
		return err
	}
	p, _, err := rp.drainPgveil(ctx, marker)
	if err != nil {
		return err
	}
	lag, achieved, err := rp.load(ctx, rate, d, rp.pgConn, p)
	rss, _ := p.PeakRSS()
	if stopErr := p.Stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	res := lag.result(scenario, "pgveil", achieved)
	res.PeakRSS = rss
	r.Add(res)
	// Native.
	if marker, err = rp.mark(ctx, "before lag"); err != nil {
		return err
	}
	if _, err := rp.drainNative(ctx, marker); err != nil {
		return err
	}
	lag, achieved, err = rp.load(ctx, rate, d, rp.native.Conn(), nil)
	if err != nil {
		return err
	}
	if err := rp.native.Disable(ctx); err != nil {
		return err
	}
	r.Add(lag.result(scenario, "native", achieved))
	return nil
}

// lagSample are the lags of heartbeats, in milliseconds.
type lagSample []float64

func (l lagSample) result(scenario, subject string, rate float64) Result {
	res := Result{Scenario: scenario, Subject: subject, Rate: rate, Rows: int64(len(l))}
	if len(l) == 0 {
		res.Note = "no heartbeat arrived"
		return res
	}
	s := slices.Clone(l)
	slices.Sort(s)
	at := func(q float64) float64 { return s[min(len(s)-1, int(q*float64(len(s))))] }
	res.LagP50ms, res.LagP99ms, res.LagMaxms = at(0.50), at(0.99), s[len(s)-1]
	res.Note = fmt.Sprintf("%d heartbeats, source commit to visible in the replica", len(l))
	return res
}

// load runs rate small transactions per second on production for d, plus
// a heartbeat every 20 ms whose arrival in the replica (watched through
// replica) gives the lag. It returns the lags and the achieved rate.
func (rp *replicas) load(ctx context.Context, rate int, d time.Duration, replica *pgx.Conn, p *Proc) (lagSample, float64, error) {
	var maxCustomer int64
	if err := rp.src.QueryRow(ctx, `SELECT max(id) FROM customers`).Scan(&maxCustomer); err != nil {
		return nil, 0, err
	}
	lctx, stop := context.WithTimeout(ctx, d)
	defer stop()
	lr := &lagRun{rp: rp, sent: map[int64]time.Time{}, errc: make(chan error, 16)}
	// Workers share the rate; each transaction updates a customer and adds
	// an event, as an application would.
	workers := max(2, min(12, rate/100))
	interval := time.Duration(float64(time.Second) * float64(workers) / float64(rate))
	for w := range workers {
		lr.wg.Add(1)
		go lr.worker(ctx, lctx, uint64(w), interval, maxCustomer)
	}
	lr.wg.Add(2)
	first := rp.heartbeatSeq.Load() + 1
	go lr.heartbeats(ctx, lctx)
	watchEnd := make(chan struct{})
	go lr.watch(ctx, replica, first, watchEnd)
	<-lctx.Done()
	err := lr.drain(p)
	close(watchEnd)
	lr.wg.Wait()
	if err != nil {
		return nil, 0, err
	}
	select {
	case err := <-lr.errc:
		return nil, 0, err
	default:
	}
	if missing := lr.waiting(); missing > 0 {
		return nil, 0, fmt.Errorf("%d heartbeats never arrived", missing)
	}
	return lr.lags, float64(lr.done.Load()) / d.Seconds(), nil
}

// lagRun is one load: the workers' count, the heartbeats sent and not yet
// seen in the replica, and the lags of those seen.
type lagRun struct {
	rp   *replicas
	wg   sync.WaitGroup
	done atomic.Int64
	errc chan error

	mu   sync.Mutex
	sent map[int64]time.Time // heartbeat id -> when it was committed
	lags lagSample
}

// waiting is how many heartbeats have not arrived in the replica.
func (lr *lagRun) waiting() int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return len(lr.sent)
}

// worker runs small transactions at its share of the rate until lctx
// ends.
func (lr *lagRun) worker(ctx, lctx context.Context, seed uint64, interval time.Duration, maxCustomer int64) {
	defer lr.wg.Done()
	conn, err := pgx.Connect(ctx, lr.rp.s.ProdDSN)
	if err != nil {
		lr.errc <- err
		return
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(seed, 7))
	next := time.Now()
	for lctx.Err() == nil {
		c := 1 + rng.Int64N(maxCustomer)
		_, err := conn.Exec(lctx, `UPDATE customers SET city = 'Lag', phone = '+1 555 ' || id WHERE id = $1`, c)
		if err == nil {
			_, err = conn.Exec(lctx, `INSERT INTO events (account_id, kind, properties) VALUES (1, 'lag', '{"email": "x@lag.example"}')`)
		}
		if err != nil {
			if lctx.Err() == nil {
				lr.errc <- err
			}
			return
		}
		lr.done.Add(1)
		next = next.Add(interval)
		if wait := time.Until(next); wait > 0 {
			select {
			case <-lctx.Done():
			case <-time.After(wait):
			}
		}
	}
}

// heartbeats inserts a heartbeat every 20 ms until lctx ends, noting
// when each was committed.
func (lr *lagRun) heartbeats(ctx, lctx context.Context) {
	defer lr.wg.Done()
	hb, err := pgx.Connect(ctx, lr.rp.s.ProdDSN)
	if err != nil {
		lr.errc <- err
		return
	}
	defer hb.Close(context.Background())
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for lctx.Err() == nil {
		id := lr.rp.heartbeatSeq.Add(1)
		// Noted before the insert: a fast replica can show the row
		// before Exec returns here. The time is then corrected to the
		// commit's, unless the watcher saw it first.
		lr.mu.Lock()
		lr.sent[id] = time.Now()
		lr.mu.Unlock()
		if _, err := hb.Exec(lctx, `INSERT INTO bench_heartbeat VALUES ($1, now())`, id); err != nil {
			lr.mu.Lock()
			delete(lr.sent, id)
			lr.mu.Unlock()
			if lctx.Err() == nil {
				lr.errc <- err
			}
			return
		}
		lr.mu.Lock()
		if _, waiting := lr.sent[id]; waiting {
			lr.sent[id] = time.Now()
		}
		lr.mu.Unlock()
		select {
		case <-lctx.Done():
		case <-tick.C:
		}
	}
}

// watch polls the replica for heartbeats from first on, every 2 ms, and
// records the lag of each as it arrives, until end is closed.
func (lr *lagRun) watch(ctx context.Context, replica *pgx.Conn, first int64, end <-chan struct{}) {
	defer lr.wg.Done()
	seen := first - 1
	for {
		select {
		case <-end:
			return
		case <-time.After(2 * time.Millisecond):
		}
		var top *int64
		if err := replica.QueryRow(ctx, `SELECT max(id) FROM bench_heartbeat WHERE id >= $1`, first).Scan(&top); err != nil {
			lr.errc <- err
			return
		}
		now := time.Now()
		if top == nil || *top <= seen {
			continue
		}
		lr.mu.Lock()
		for id := seen + 1; id <= *top; id++ {
			if t, ok := lr.sent[id]; ok {
				lr.lags = append(lr.lags, float64(now.Sub(t).Microseconds())/1000)
				delete(lr.sent, id)
			}
		}
		lr.mu.Unlock()
		seen = *top
	}
}

// drain lets the last heartbeats arrive (at most 2 minutes); the error
// is pgveil's (p, when measured) if it exited meanwhile.
func (lr *lagRun) drain(p *Proc) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && lr.waiting() > 0 {
		if p != nil {
			if err := p.exitError(); err != nil {
				return err
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// insertBig inserts the rows with ids $1 to $2 into bench_big, in one
// statement (one transaction).
const insertBig = `INSERT INTO bench_big SELECT g, 1 + g % 50, 'user' || g || '@big.example', (g % 100000) / 100.0,
  'a note that holds personal data about someone ' || g, timestamptz '2026-01-01' + g * interval '1 second'
  FROM generate_series($1::bigint, $2::bigint) g`

// bigTransaction commits one transaction of n rows and times until its last
// row is visible; for pgveil it also reads the process's peak memory.
func (rp *replicas) bigTransaction(ctx context.Context, n int, r *Report) error {
	if n <= 0 {
		return errors.New("no rows")
	}
	marker, err := rp.mark(ctx, "before big")
	if err != nil {
		return err
	}
	// A fresh pgveil process, caught up, so that its peak memory is the
	// transaction's.
	p, _, err := rp.drainPgveil(ctx, marker)
	if err != nil {
		return err
	}
	_ = p.Stop()
	// CPU from the fresh process's start to its stop: catching up to the
	// marker costs it next to nothing.
	mark := rp.s.cpuNow()
	p, _, err = rp.drainPgveil(ctx, marker)
	if err != nil {
		return err
	}
	base, err := p.PeakRSS()
	if err != nil {
		_ = p.Stop()
		return err
	}
	var first int64
	if err := rp.src.QueryRow(ctx, `SELECT COALESCE(max(id), 0) + 1 FROM bench_big`).Scan(&first); err != nil {
		return err
	}
	last := first + int64(n) - 1
	rp.s.Log.Info("big transaction: inserting", "rows", n)
	_, err = rp.src.Exec(ctx, insertBig, first, last)
	if err != nil {
		_ = p.Stop()
		return err
	}
	committed := time.Now()
	err = waitUntil(ctx, p, 60*time.Minute, 10*time.Millisecond, "pgveil to apply the big transaction", rowVisible(rp.pgConn, "bench_big", last))
	took := time.Since(committed)
	peak, _ := p.PeakRSS()
	if stopErr := p.Stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	res := Result{Scenario: "big transaction", Subject: "pgveil", Rows: int64(n), Seconds: took.Seconds(), PeakRSS: peak, PgveilCPU: p.CPU().Seconds(),
		Note: fmt.Sprintf("commit to last row visible; peak RSS of the pgveil process (%.0f MiB before the transaction)", float64(base)/(1<<20))}
	rp.s.cpuSince(mark, &res)
	r.Add(res)
	// Native: the same transaction size again.
	marker, err = rp.mark(ctx, "before native big")
	if err != nil {
		return err
	}
	mark = rp.s.cpuNow()
	if _, err := rp.drainNative(ctx, marker); err != nil {
		return err
	}
	first, last = last+1, last+int64(n)
	if _, err := rp.src.Exec(ctx, insertBig, first, last); err != nil {
		return err
	}
	committed = time.Now()
	err = waitUntil(ctx, nil, 60*time.Minute, 10*time.Millisecond, "native replication to apply the big transaction", rowVisible(rp.native.Conn(), "bench_big", last))
	took = time.Since(committed)
	if err != nil {
		return err
	}
	if err := rp.native.Disable(ctx); err != nil {
		return err
	}
	res = Result{Scenario: "big transaction", Subject: "native", Rows: int64(n), Seconds: took.Seconds(),
		Note: "commit to last row visible (subscription streaming = off: the publisher spills, then sends at commit)"}
	rp.s.cpuSince(mark, &res) // counted once the apply worker and walsender have exited (Disable)
	r.Add(res)
	return nil
}
