package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/examples"
	"pgveil/internal/cluster"
	"pgveil/internal/demo"
	"pgveil/replicate"
	"pgveil/replicate/metrics"
	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// runDemo is `pgveil demo`: two throwaway clusters, the example SaaS
// schema seeded with personal data, pgveil replicating it masked under
// live traffic, and a look at both sides every few seconds.
func runDemo(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "demo")
	dir := fs.String("dir", "", "`directory` for the two clusters (default: a new temporary one)")
	scale := fs.Int("scale", 100000, "about how many `rows` to seed")
	duration := fs.Duration("duration", 0, "stop the live traffic after this long (default: at Ctrl-C); setting up and the initial copy come before it")
	keep := fs.Bool("keep", false, "keep the clusters' data directory when the demo ends")
	rate := fs.Int("rate", 20, "live traffic, in `transactions` per second")
	every := fs.Duration("every", 3*time.Second, "how often to show progress")
	listen := fs.String("listen", "", "serve /metrics and /healthz on this `address` (e.g. :9187)")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	d := &demoRun{e: e, scale: *scale, rate: *rate, every: *every, keep: *keep, listen: *listen, duration: *duration}
	code, err := d.run(ctx, *dir)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil demo: %v\n", err)
		if code == exitOK {
			code = exitProblems
		}
	}
	return code
}

type demoRun struct {
	e      *env
	scale  int
	rate   int
	every  time.Duration
	keep   bool
	listen string
	// duration is how long the live traffic runs; 0: until Ctrl-C. It
	// starts with the traffic, so that a slow machine's set-up never
	// cuts the demo short.
	duration time.Duration
	// entering, when set, is told the name of each phase as run enters it
	// (demoPhases), and "stop" as the clusters are about to stop: tests
	// cancel the demo there, and check that nothing of it still runs.
	entering func(phase string)

	prod, an       *cluster.Cluster
	prodDSN, anDSN string
	writerDSN      string
	readerDSN      string
	writerPW       string
	readerPW       string
	log            *slog.Logger
	metrics        *metrics.Metrics
	traffic        demo.TrafficStats
	started        time.Time
	out            io.Writer
	shown          int // progress reports printed
}

// demoPhases are run's phases, in order.
var demoPhases = []string{"clusters", "seed", "pipeline", "copy", "traffic", "show"}

// enter marks the start of a phase.
func (d *demoRun) enter(phase string) {
	if d.entering != nil {
		d.entering(phase)
	}
}

// run is the demo: start the clusters, seed production, start the
// pipeline, wait for its initial copy, live traffic with progress, then
// show the caught-up replica. Every
// goroutine it starts (the pipeline, the traffic, the metrics server) is
// awaited before it returns, on every exit path, and before the clusters
// stop.
func (d *demoRun) run(ctx context.Context, dir string) (int, error) {
	d.out, d.started = d.e.stdout, time.Now()
	if _, err := cluster.BinDir(); err != nil {
		return exitProblems, fmt.Errorf("%w\n(the demo runs PostgreSQL itself; only the server package is needed)", err)
	}
	base, err := d.makeDir(dir)
	if err != nil {
		return exitProblems, err
	}
	defer d.leave(base, dir == "")

	// Minutes to spare: two initdb runs, seeding and the first connections
	// on a slow or busy machine. Ctrl-C ends the set-up too.
	setup, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	d.enter("clusters")
	err = d.startClusters(setup, base)
	defer d.stopClusters()
	if err != nil {
		return exitProblems, err
	}
	d.enter("seed")
	src, err := d.seed(setup)
	if err != nil {
		return exitProblems, err
	}
	defer src.Close(context.Background())
	d.enter("pipeline")
	pipe, err := d.startPipeline(setup, base)
	if pipe != nil {
		defer pipe.stop()
	}
	if err != nil {
		return exitProblems, err
	}
	plan, err := d.plan(setup, pipe.cfg)
	if err != nil {
		return exitProblems, err
	}
	d.enter("copy")
	if err := d.waitStreaming(ctx, pipe); err != nil {
		return exitProblems, err
	}
	d.enter("traffic")
	if err := d.liveTraffic(ctx, src, plan, pipe); err != nil {
		return exitProblems, err
	}
	d.enter("show")
	return d.finish(src, plan, pipe)
}

// makeDir makes the folder the clusters live in: dir, or a new temporary
// one.
func (d *demoRun) makeDir(dir string) (string, error) {
	base := dir
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "pgveil-demo-"); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	os.Chmod(base, 0o755)
	return base, nil
}

// leave says how to start a kept demo's clusters again, or removes the
// temporary folder the demo made.
func (d *demoRun) leave(base string, made bool) {
	if d.keep {
		fmt.Fprintf(d.out, "\nThe clusters' data is kept in %s, with their settings (wal_level = logical, ports). Start them again with:\n", base)
		for _, c := range []*cluster.Cluster{d.prod, d.an} {
			if c != nil {
				fmt.Fprintf(d.out, "  %s\n", c.StartCommand())
			}
		}
		fmt.Fprintln(d.out, "and stop them with:")
		for _, c := range []*cluster.Cluster{d.prod, d.an} {
			if c != nil {
				fmt.Fprintf(d.out, "  %s\n", c.StopCommand())
			}
		}
		return
	}
	if made {
		os.RemoveAll(base)
	}
}

// startClusters starts two clusters, each in its own folder, and creates
// the databases; stopClusters stops those that started.
func (d *demoRun) startClusters(ctx context.Context, base string) error {
	fmt.Fprintf(d.out, "pgveil demo: starting two PostgreSQL clusters (production and analytics) in %s\n", base)
	for _, c := range []struct {
		name string
		to   **cluster.Cluster
	}{{"production", &d.prod}, {"analytics", &d.an}} {
		sub := filepath.Join(base, c.name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		cl, err := cluster.Start(ctx, cluster.Options{Dir: sub})
		if err != nil {
			return fmt.Errorf("starting the %s cluster: %w", c.name, err)
		}
		*c.to = cl
	}
	var err error
	if d.prodDSN, err = d.prod.CreateDB(ctx, "app"); err != nil {
		return err
	}
	if d.anDSN, err = d.an.CreateDB(ctx, "analytics"); err != nil {
		return err
	}
	// pgveil writes the replica as setup-sql's writer role, and the
	// reader is setup-sql's (hardenAnalytics, once the rules are read).
	d.writerPW, d.readerPW = randomHex(12), randomHex(12)
	d.writerDSN = fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/analytics?sslmode=disable", demoWriter, d.writerPW, d.an.Port)
	d.readerDSN = fmt.Sprintf("postgres://metabase_ro:%s@127.0.0.1:%d/analytics?sslmode=disable", d.readerPW, d.an.Port)
	return nil
}

// stopClusters stops the clusters that started (a kept demo's cleanly,
// so that they start again).
func (d *demoRun) stopClusters() {
	d.enter("stop")
	for _, c := range []*cluster.Cluster{d.an, d.prod} {
		switch {
		case c == nil:
		case d.keep:
			c.Shutdown()
		default:
			c.Stop()
		}
	}
}

// seed loads the example schema into production and seeds it with
// realistic personal data; it returns a connection to production for the
// progress reports.
func (d *demoRun) seed(ctx context.Context) (*pgx.Conn, error) {
	if err := cluster.Exec(ctx, d.prodDSN, examples.SaaSSchema()); err != nil {
		return nil, fmt.Errorf("loading the example schema: %w", err)
	}
	fmt.Fprintf(d.out, "Seeding production with about %d rows of realistic personal data...", d.scale)
	src, err := pgx.Connect(ctx, d.prodDSN)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	rows, err := demo.Seed(ctx, src, demo.Options{Scale: d.scale, Seed: 1})
	if err != nil {
		src.Close(context.Background())
		return nil, fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(d.out, " %d rows in %.1fs\n", rows, time.Since(began).Seconds())
	return src, nil
}

// demoPipeline is pgveil replicating inside the demo, with what serves
// it (its metrics server, its log file). stop ends it and waits for it;
// run defers it as soon as the pipeline exists, so that nothing of it
// outlives run or the clusters.
type demoPipeline struct {
	cfg   *rules.Config
	stats *replicate.Stats
	// finished is closed when Run has returned, err then holding its
	// result: any number of selects may wait on it, and stop still gets
	// the result.
	finished chan struct{}
	err      error
	cancel   context.CancelFunc
	closers  []func() // in reverse order of need, run by stop after the pipeline ended
	once     sync.Once
}

// stop cancels the pipeline, waits for it, and then closes what it used;
// it returns Run's result, and may be called more than once.
func (p *demoPipeline) stop() error {
	p.once.Do(func() {
		if p.cancel != nil {
			p.cancel()
			<-p.finished
		}
		for i := len(p.closers) - 1; i >= 0; i-- {
			p.closers[i]()
		}
	})
	return p.err
}

// stopped is the error a phase returns when the pipeline ended under it.
func (p *demoPipeline) stopped() error { return fmt.Errorf("pgveil stopped: %v", p.err) }

// startPipeline reads the example rules, gives the analytics cluster
// setup-sql's roles, and starts pgveil replicating, with its log in base
// and, with --listen, its metrics served. The pipeline it returns, even
// with an error, is to be stopped.
func (d *demoRun) startPipeline(ctx context.Context, base string) (*demoPipeline, error) {
	p := &demoPipeline{stats: &replicate.Stats{}, finished: make(chan struct{})}
	secret := randomHex(32)
	env := map[string]string{"SOURCE_DSN": d.prodDSN, "TARGET_DSN": d.writerDSN, "PGVEIL_SECRET": secret}
	cfg, err := rules.Parse("examples/saas/pgveil.yaml", []byte(examples.SaaSRules()), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		return p, err
	}
	p.cfg = cfg
	if err := d.hardenAnalytics(ctx, cfg, d.writerPW, d.readerPW); err != nil {
		return p, err
	}
	logFile, err := os.Create(filepath.Join(base, "pgveil.log"))
	if err != nil {
		return p, err
	}
	p.closers = append(p.closers, func() { logFile.Close() })
	d.log = slog.New(slog.NewTextHandler(logFile, nil))
	d.metrics = metrics.New(time.Now)
	d.metrics.SetBuildInfo(buildVersion())
	d.metrics.Tables(replicate.TableLabels(cfg))
	if d.listen != "" {
		ln, err := net.Listen("tcp", d.listen)
		if err != nil {
			return p, fmt.Errorf("--listen: %w", err)
		}
		srv := &http.Server{Handler: d.metrics.Handler(), ReadHeaderTimeout: 5 * time.Second}
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.Serve(ln)
		}()
		p.closers = append(p.closers, func() { srv.Close(); <-served })
		fmt.Fprintf(d.out, "Metrics on http://%s/metrics, health on /healthz\n", ln.Addr())
	}
	pipeCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.finished)
		p.err = replicate.Run(pipeCtx, replicate.Options{
			Config: cfg, Logger: d.log, Stats: p.stats, Observer: d.metrics,
			Snapshot: replicate.SnapshotOptions{Workers: 2},
			Stream:   replicate.StreamOptions{SpillDir: base, StatusInterval: 2 * time.Second},
		})
	}()
	fmt.Fprintf(d.out, "pgveil is replicating with examples/saas/pgveil.yaml (log: %s)\n\n", filepath.Join(base, "pgveil.log"))
	fmt.Fprintf(d.out, "Metabase (or psql) reads the masked copy, read-only, at:\n  %s\n\n", d.readerDSN)
	if err := writeExplore(base, env); err != nil {
		return p, err
	}
	fmt.Fprintf(d.out, "Explore it from another terminal while it runs:\n  . %s\n  pgveil status -c %s\n  pgveil preview -c %[2]s customers\n  pgveil verify -c %[2]s\n\n",
		filepath.Join(base, "demo.env"), filepath.Join(base, "pgveil.yaml"))
	return p, nil
}

// liveTraffic runs the live traffic, once the initial copy is in, and
// shows progress until it ends (Ctrl-C, --duration) or the pipeline does.
// The traffic's goroutine is awaited on every path.
func (d *demoRun) liveTraffic(ctx context.Context, src *pgx.Conn, plan *transform.Plan, pipe *demoPipeline) error {
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	if d.duration > 0 {
		var cancel context.CancelFunc
		trafficCtx, cancel = context.WithTimeout(trafficCtx, d.duration)
		defer cancel()
	}
	// Connected whatever ctx: a Ctrl-C as the traffic starts is the
	// demo's normal end, which shows the replica.
	connCtx, cancelConn := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancelConn()
	trafficConn, err := pgx.Connect(connCtx, d.prodDSN)
	if err != nil {
		return err
	}
	defer trafficConn.Close(context.Background())
	trafficDone := make(chan error, 1)
	go func() { trafficDone <- demo.Traffic(trafficCtx, trafficConn, d.rate, &d.traffic) }()
	fmt.Fprintf(d.out, "Live traffic: about %d transactions/s (inserts, updates, deletes). Ctrl-C stops.\n", d.rate)

	tick := time.NewTicker(d.every)
	defer tick.Stop()
	// The traffic ends when trafficCtx does (Ctrl-C, --duration) or on
	// an error; either way its result is read exactly once, here.
	for {
		select {
		case <-pipe.finished:
			stopTraffic()
			<-trafficDone
			return pipe.stopped()
		case err := <-trafficDone:
			if err != nil {
				return fmt.Errorf("traffic: %w", err)
			}
			return nil
		case <-tick.C:
			d.show(src, plan, pipe.stats)
		}
	}
}

// finish lets the replica catch up, shows the newest customer, checks
// the replica against the masked source, stops the pipeline and shows a
// tenant's view.
func (d *demoRun) finish(src *pgx.Conn, plan *transform.Plan, pipe *demoPipeline) (int, error) {
	fmt.Fprintln(d.out, "\nStopping the traffic; waiting for the replica to catch up, then verifying it...")
	end, cancelEnd := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelEnd()
	if err := d.catchUp(end, src, pipe); err != nil {
		return exitProblems, err
	}
	if err := d.showNewest(end, src, plan); err != nil {
		return exitProblems, err
	}
	ok, err := d.verify(end, pipe.cfg)
	if perr := pipe.stop(); perr != nil {
		return exitProblems, perr
	}
	if err != nil {
		return exitProblems, err
	}
	if !ok {
		return exitProblems, errors.New("the replica differs from the masked source")
	}
	if err := d.tenantView(end, pipe.cfg); err != nil {
		return exitProblems, err
	}
	return exitOK, nil
}

// demoWriter is the role pgveil writes the demo's replica as.
const demoWriter = "pgveil"

// hardenAnalytics gives the analytics cluster the roles and hardening
// `pgveil setup-sql --part target` prints for the rules, from the same
// generator (as plain SQL, run here rather than by psql): the writer
// role pgveil runs as, and readers that are NOINHERIT, read-only by
// default, with a statement timeout, no CREATE or TEMPORARY and no
// access to schema pgveil. The cluster holds the replica only, so its
// other databases are closed to everyone but superusers, as
// --close-other-databases does: the reader connects to analytics only.
func (d *demoRun) hardenAnalytics(ctx context.Context, cfg *rules.Config, writerPW, readerPW string) error {
	r, err := newSetupRoles(cfg, "pgveil", demoWriter, "5min")
	if err != nil {
		return fmt.Errorf("the demo's roles: %w", err)
	}
	pw := map[string]string{demoWriter: writerPW}
	for _, name := range cfg.Target.Readers {
		pw[name] = readerPW
	}
	r.direct = &directTarget{database: "analytics", passwords: pw}
	r.closeOthers = true
	if err := cluster.Exec(ctx, d.anDSN, r.targetScript()); err != nil {
		return fmt.Errorf("setting up the analytics roles (setup-sql --part target --close-other-databases): %w", err)
	}
	return nil
}

// tenantView shows what one customer's role sees of the replica, when the
// rules have a tenancy section.
func (d *demoRun) tenantView(ctx context.Context, cfg *rules.Config) error {
	if cfg.Tenancy == nil {
		return nil
	}
	dst, err := replicate.ConnectTarget(ctx, d.anDSN)
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	var roles, all, mine int64
	var first string
	if err := dst.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE starts_with(rolname::text, $1)`, cfg.Tenancy.RolePrefix).Scan(&roles); err != nil {
		return fmt.Errorf("reading the tenant roles: %w", err)
	}
	if roles == 0 {
		return errors.New("the rules have a tenancy section, but the replica has no tenant role")
	}
	if err := dst.QueryRow(ctx, `SELECT (SELECT min(id) FROM public.accounts)::text`).Scan(&first); err != nil {
		return fmt.Errorf("reading the replica: %w", err)
	}
	role := cfg.Tenancy.RolePrefix + first
	err = pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM public.customers`).Scan(&all); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+schema.QuoteIdent(role)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM public.customers`).Scan(&mine)
	})
	if err != nil {
		return fmt.Errorf("reading the replica as %s: %w", role, err)
	}
	fmt.Fprintf(d.out, "per-customer dashboards: %d tenant roles; as %s, SELECT count(*) FROM customers gives %d of %d rows (row level security).\n",
		roles, role, mine, all)
	return nil
}

// plan compiles the rules the way the pipeline does, to show a customer.
func (d *demoRun) plan(ctx context.Context, cfg *rules.Config) (*transform.Plan, error) {
	src, err := replicate.ConnectSource(ctx, d.prodDSN)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.Background())
	prep, err := replicate.PrepareRunning(ctx, src, cfg, nil)
	if err != nil {
		return nil, err
	}
	return prep.Plan, nil
}

// waitStreaming waits for the initial copy, showing its progress.
func (d *demoRun) waitStreaming(ctx context.Context, pipe *demoPipeline) error {
	fmt.Fprint(d.out, "Initial copy (snapshot, masked on the way)...")
	began := time.Now()
	for {
		if ok, _ := d.metrics.Health(); ok && d.phase() == replicate.PhaseStreaming {
			fmt.Fprintf(d.out, " done in %.1fs\n", time.Since(began).Seconds())
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pipe.finished:
			return pipe.stopped()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (d *demoRun) phase() string { return d.metrics.CurrentPhase() }

// show prints progress and one customer, raw beside masked.
func (d *demoRun) show(src *pgx.Conn, plan *transform.Plan, stats *replicate.Stats) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lag := "unknown"
	if lagBytes, lagSeconds, ok := d.metrics.Lag(); ok {
		lag = fmt.Sprintf("%s, %.1fs", humanBytes(lagBytes), lagSeconds)
	}
	fmt.Fprintf(d.out, "\n[%s] traffic: %d transactions | replicated: %d inserts, %d updates, %d deletes in %d transactions | lag: %s\n",
		time.Since(d.started).Round(time.Second), d.traffic.Transactions.Load(),
		stats.Inserts.Load(), stats.Updates.Load(), stats.Deletes.Load(), stats.Transactions.Load(), lag)
	d.shown++
	if d.shown > 1 {
		// Later ticks show the newest customer the replica has, to
		// watch rows arrive.
		ids, _ := demo.NewestCustomerIDs(ctx, src, 10)
		for _, id := range ids {
			if d.showCustomer(ctx, plan, "newest customer", id) == nil {
				return
			}
		}
	}
	id, err := demo.SampleCustomerID(ctx, src)
	if err == nil {
		err = d.showCustomer(ctx, plan, "customer", id)
	}
	if err != nil {
		fmt.Fprintf(d.out, "  (could not show a customer: %v)\n", err)
	}
}

// showNewest prints the newest customer the live traffic added, raw beside
// masked, once the replica has caught up: the stream's own work, shown
// whatever the progress reports managed to show while it ran.
func (d *demoRun) showNewest(ctx context.Context, src *pgx.Conn, plan *transform.Plan) error {
	ids, err := demo.NewestCustomerIDs(ctx, src, 1)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return errors.New("production has no customer to show")
	}
	fmt.Fprintln(d.out)
	if err := d.showCustomer(ctx, plan, "newest customer", ids[0]); err != nil {
		return fmt.Errorf("the newest customer, once caught up: %w", err)
	}
	fmt.Fprintln(d.out)
	return nil
}

// showCustomer prints customer id as production holds it and as the
// replica does, or nothing and an error when the replica lacks it yet.
func (d *demoRun) showCustomer(ctx context.Context, plan *transform.Plan, title string, id int64) error {
	tp := plan.Table("public", "customers")
	if tp == nil {
		return errors.New("no customers table in the rules")
	}
	cols := tp.ColumnNames()
	raw, err := textRow(ctx, replicate.ConnectSource, d.prodDSN, tp, "id = "+fmt.Sprint(id))
	if err != nil {
		return err
	}
	masked, err := tp.Mask(nil, raw)
	if err != nil {
		return err
	}
	replica, err := textRow(ctx, replicate.ConnectTarget, d.anDSN, tp, "id = "+string(masked[0].Text))
	if err != nil {
		return fmt.Errorf("not in the replica yet")
	}
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\tproduction (raw)\treplica (masked)\n", title)
	for i, c := range cols {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c, cell(raw[i]), cell(replica[i]))
	}
	for _, c := range tp.Dropped {
		fmt.Fprintf(tw, "  %s\t(not replicated)\t-\n", c)
	}
	return tw.Flush()
}

// textRow reads one row of tp's columns in text form, connected with
// connect: replicate.ConnectSource to production, replicate.ConnectTarget
// to the analytics database. Both give the same text forms of values;
// only the source connector also pins search_path to pg_catalog, a
// defence against production's application roles that the analytics
// database, pgveil's own, does not need (and every name here is
// qualified anyway).
func textRow(ctx context.Context, connect func(context.Context, string) (*pgx.Conn, error), dsn string, tp *transform.TablePlan, where string) ([]schema.Value, error) {
	conn, err := connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	cols := make([]string, len(tp.Columns))
	for i, c := range tp.Columns {
		cols[i] = schema.QuoteIdent(c.Column.Name) + "::text"
	}
	row := make([]*string, len(cols))
	dst := make([]any, len(cols))
	for i := range row {
		dst[i] = &row[i]
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + tp.Table.QualifiedName() + " WHERE " + where
	if err := conn.QueryRow(ctx, q).Scan(dst...); err != nil {
		return nil, err
	}
	out := make([]schema.Value, len(row))
	for i, v := range row {
		if v == nil {
			out[i] = schema.SQLNull()
		} else {
			out[i] = schema.Text(*v)
		}
	}
	return out, nil
}

func cell(v schema.Value) string {
	s := v.String()
	if r := []rune(s); len(r) > 38 {
		s = string(r[:37]) + "…"
	}
	return strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
}

// catchUp waits until the slot has confirmed everything production wrote.
func (d *demoRun) catchUp(ctx context.Context, src *pgx.Conn, pipe *demoPipeline) error {
	var target string
	if err := src.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		return err
	}
	for {
		var caught bool
		err := src.QueryRow(ctx, "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2", target, pipe.cfg.Source.Slot).Scan(&caught)
		if err == nil && caught {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the replica did not catch up within 5 minutes")
		case <-pipe.finished:
			return pipe.stopped()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// verify compares the replica with the masked source and prints counts.
func (d *demoRun) verify(ctx context.Context, cfg *rules.Config) (bool, error) {
	src, err := replicate.ConnectSource(ctx, d.prodDSN)
	if err != nil {
		return false, err
	}
	defer src.Close(context.Background())
	dst, err := replicate.ConnectTarget(ctx, d.anDSN)
	if err != nil {
		return false, err
	}
	defer dst.Close(context.Background())
	prep, err := replicate.PrepareRunning(ctx, src, cfg, nil)
	if err != nil {
		return false, err
	}
	diffs, err := replicate.Compare(ctx, src, dst, prep.Plan)
	if err != nil {
		return false, err
	}
	ok := true
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TABLE\tSOURCE\tREPLICA\tMISSING\tEXTRA\tDIFFERENT\tRESULT\n")
	for _, df := range diffs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", df.Table, df.Source, df.Target, df.Missing, df.Extra, df.Different, okWord(df.OK()))
		ok = ok && df.OK()
	}
	tw.Flush()
	if ok {
		fmt.Fprintln(d.out, "verify: the replica equals the masked source, table by table.")
	}
	return ok, nil
}

func okWord(ok bool) string {
	if ok {
		return "OK"
	}
	return "DIFF"
}

// writeExplore writes the demo's rules and the environment they read
// (DSNs and the throwaway secret, owner-only) into dir, for the other
// commands to be tried against the running demo.
func writeExplore(dir string, env map[string]string) error {
	if err := os.WriteFile(filepath.Join(dir, "pgveil.yaml"), []byte(examples.SaaSRules()), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# The demo's connections and its throwaway secret: . this file, then run pgveil status, preview or verify.\n")
	for _, k := range []string{"SOURCE_DSN", "TARGET_DSN", "PGVEIL_SECRET"} {
		fmt.Fprintf(&b, "export %s='%s'\n", k, env[k])
	}
	return os.WriteFile(filepath.Join(dir, "demo.env"), []byte(b.String()), 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// humanBytes prints a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
