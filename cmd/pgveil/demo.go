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

	prod, an       *cluster.Cluster
	prodDSN, anDSN string
	readerDSN      string
	log            *slog.Logger
	metrics        *metrics.Metrics
	traffic        demo.TrafficStats
	started        time.Time
	out            io.Writer
	shown          int // progress reports printed
}

func (d *demoRun) run(ctx context.Context, dir string) (int, error) {
	d.out, d.started = d.e.stdout, time.Now()
	if _, err := cluster.BinDir(); err != nil {
		return exitProblems, fmt.Errorf("%w\n(the demo runs PostgreSQL itself; only the server package is needed)", err)
	}
	base := dir
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "pgveil-demo-"); err != nil {
			return exitProblems, err
		}
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return exitProblems, err
	}
	os.Chmod(base, 0o755)
	defer func() {
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
		if dir == "" {
			os.RemoveAll(base)
		}
	}()

	// Two clusters, each in its own folder; they stop when the demo ends.
	// Minutes to spare: two initdb runs, seeding and the first connections
	// on a slow or busy machine.
	setup, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fmt.Fprintf(d.out, "pgveil demo: starting two PostgreSQL clusters (production and analytics) in %s\n", base)
	for _, c := range []struct {
		name string
		to   **cluster.Cluster
	}{{"production", &d.prod}, {"analytics", &d.an}} {
		sub := filepath.Join(base, c.name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return exitProblems, err
		}
		cl, err := cluster.Start(setup, cluster.Options{Dir: sub})
		if err != nil {
			return exitProblems, fmt.Errorf("starting the %s cluster: %w", c.name, err)
		}
		*c.to = cl
		defer func() {
			if d.keep {
				cl.Shutdown()
			} else {
				cl.Stop()
			}
		}()
	}
	var err error
	if d.prodDSN, err = d.prod.CreateDB(setup, "app"); err != nil {
		return exitProblems, err
	}
	if d.anDSN, err = d.an.CreateDB(setup, "analytics"); err != nil {
		return exitProblems, err
	}
	// pgveil writes the replica as setup-sql's writer role, and the
	// reader is setup-sql's (hardenAnalytics, once the rules are read).
	writerPW, readerPW := randomHex(12), randomHex(12)
	writerDSN := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/analytics?sslmode=disable", demoWriter, writerPW, d.an.Port)
	d.readerDSN = fmt.Sprintf("postgres://metabase_ro:%s@127.0.0.1:%d/analytics?sslmode=disable", readerPW, d.an.Port)

	// The example schema, seeded with realistic personal data.
	if err := cluster.Exec(setup, d.prodDSN, examples.SaaSSchema()); err != nil {
		return exitProblems, fmt.Errorf("loading the example schema: %w", err)
	}
	fmt.Fprintf(d.out, "Seeding production with about %d rows of realistic personal data...", d.scale)
	src, err := pgx.Connect(setup, d.prodDSN)
	if err != nil {
		return exitProblems, err
	}
	defer src.Close(context.Background())
	began := time.Now()
	rows, err := demo.Seed(setup, src, demo.Options{Scale: d.scale, Seed: 1})
	if err != nil {
		return exitProblems, fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(d.out, " %d rows in %.1fs\n", rows, time.Since(began).Seconds())

	// pgveil itself, with the example rules.
	secret := randomHex(32)
	env := map[string]string{"SOURCE_DSN": d.prodDSN, "TARGET_DSN": writerDSN, "PGVEIL_SECRET": secret}
	cfg, err := rules.Parse("examples/saas/pgveil.yaml", []byte(examples.SaaSRules()), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		return exitProblems, err
	}
	if err := d.hardenAnalytics(setup, cfg, writerPW, readerPW); err != nil {
		return exitProblems, err
	}
	logFile, err := os.Create(filepath.Join(base, "pgveil.log"))
	if err != nil {
		return exitProblems, err
	}
	defer logFile.Close()
	d.log = slog.New(slog.NewTextHandler(logFile, nil))
	d.metrics = metrics.New(time.Now)
	d.metrics.SetBuildInfo(buildVersion())
	d.metrics.Tables(replicate.TableLabels(cfg))
	if d.listen != "" {
		ln, err := net.Listen("tcp", d.listen)
		if err != nil {
			return exitProblems, fmt.Errorf("--listen: %w", err)
		}
		srv := &http.Server{Handler: d.metrics.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(d.out, "Metrics on http://%s/metrics, health on /healthz\n", ln.Addr())
	}
	stats := &replicate.Stats{}
	pipeCtx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	pipeDone := make(chan error, 1)
	go func() {
		pipeDone <- replicate.Run(pipeCtx, replicate.Options{
			Config: cfg, Logger: d.log, Stats: stats, Observer: d.metrics,
			Snapshot: replicate.SnapshotOptions{Workers: 2},
			Stream:   replicate.StreamOptions{SpillDir: base, StatusInterval: 2 * time.Second},
		})
	}()
	fmt.Fprintf(d.out, "pgveil is replicating with examples/saas/pgveil.yaml (log: %s)\n\n", filepath.Join(base, "pgveil.log"))
	fmt.Fprintf(d.out, "Metabase (or psql) reads the masked copy, read-only, at:\n  %s\n\n", d.readerDSN)
	if err := writeExplore(base, env); err != nil {
		return exitProblems, err
	}
	fmt.Fprintf(d.out, "Explore it from another terminal while it runs:\n  . %s\n  pgveil status -c %s\n  pgveil preview -c %[2]s customers\n  pgveil verify -c %[2]s\n\n",
		filepath.Join(base, "demo.env"), filepath.Join(base, "pgveil.yaml"))

	// Live traffic once the initial copy is in.
	plan, err := d.plan(setup, cfg)
	if err != nil {
		return exitProblems, err
	}
	if err := d.waitStreaming(ctx, pipeDone); err != nil {
		return exitProblems, err
	}
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	if d.duration > 0 {
		trafficCtx, stopTraffic = context.WithTimeout(trafficCtx, d.duration)
		defer stopTraffic()
	}
	trafficConn, err := pgx.Connect(setup, d.prodDSN)
	if err != nil {
		return exitProblems, err
	}
	defer trafficConn.Close(context.Background())
	trafficDone := make(chan error, 1)
	go func() { trafficDone <- demo.Traffic(trafficCtx, trafficConn, d.rate, &d.traffic) }()
	fmt.Fprintf(d.out, "Live traffic: about %d transactions/s (inserts, updates, deletes). Ctrl-C stops.\n", d.rate)

	tick := time.NewTicker(d.every)
	defer tick.Stop()
	// The traffic ends when trafficCtx does (Ctrl-C, --duration) or on
	// an error; either way its result is read exactly once, here.
	for trafficEnded := false; !trafficEnded; {
		select {
		case err := <-pipeDone:
			return exitProblems, fmt.Errorf("pgveil stopped: %v", err)
		case err := <-trafficDone:
			if err != nil {
				return exitProblems, fmt.Errorf("traffic: %w", err)
			}
			trafficEnded = true
		case <-tick.C:
			d.show(src, plan, stats)
		}
	}

	// Let the replica catch up, then check it against the masked source.
	fmt.Fprintln(d.out, "\nStopping the traffic; waiting for the replica to catch up, then verifying it...")
	end, cancelEnd := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelEnd()
	if err := d.catchUp(end, src, cfg, pipeDone); err != nil {
		return exitProblems, err
	}
	if err := d.showNewest(end, src, plan); err != nil {
		return exitProblems, err
	}
	ok, err := d.verify(end, cfg)
	stopPipe()
	if perr := <-pipeDone; perr != nil {
		return exitProblems, perr
	}
	if err != nil {
		return exitProblems, err
	}
	if !ok {
		return exitProblems, errors.New("the replica differs from the masked source")
	}
	if err := d.tenantView(end, cfg); err != nil {
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
// access to schema pgveil. On top, as setup-sql's script recommends (a
// database that holds the replica only), the cluster's other databases
// are closed to everyone but superusers: the reader connects to
// analytics only.
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
	if err := cluster.Exec(ctx, d.anDSN, r.targetScript()); err != nil {
		return fmt.Errorf("setting up the analytics roles (setup-sql --part target): %w", err)
	}
	if err := cluster.Exec(ctx, d.anDSN, `REVOKE CONNECT ON DATABASE postgres FROM PUBLIC; REVOKE CONNECT ON DATABASE template1 FROM PUBLIC`); err != nil {
		return fmt.Errorf("closing the other databases of the analytics cluster: %w", err)
	}
	return nil
}

// tenantView shows what one customer's role sees of the replica, when the
// rules have a tenancy section.
func (d *demoRun) tenantView(ctx context.Context, cfg *rules.Config) error {
	if cfg.Tenancy == nil {
		return nil
	}
	dst, err := replicate.ConnectSource(ctx, d.anDSN)
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
func (d *demoRun) waitStreaming(ctx context.Context, pipeDone <-chan error) error {
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
		case err := <-pipeDone:
			return fmt.Errorf("pgveil stopped: %v", err)
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
	raw, err := textRow(ctx, d.prodDSN, tp, "id = "+fmt.Sprint(id))
	if err != nil {
		return err
	}
	masked, err := tp.Mask(nil, raw)
	if err != nil {
		return err
	}
	replica, err := textRow(ctx, d.anDSN, tp, "id = "+string(masked[0].Text))
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

// textRow reads one row of tp's columns in text form.
func textRow(ctx context.Context, dsn string, tp *transform.TablePlan, where string) ([]schema.Value, error) {
	conn, err := replicate.ConnectSource(ctx, dsn)
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
func (d *demoRun) catchUp(ctx context.Context, src *pgx.Conn, cfg *rules.Config, pipeDone <-chan error) error {
	var target string
	if err := src.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		return err
	}
	for {
		var caught bool
		err := src.QueryRow(ctx, "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2", target, cfg.Source.Slot).Scan(&caught)
		if err == nil && caught {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the replica did not catch up within 5 minutes")
		case err := <-pipeDone:
			return fmt.Errorf("pgveil stopped: %v", err)
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
	dst, err := replicate.ConnectSource(ctx, d.anDSN)
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
