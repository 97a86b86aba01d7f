// Package bench measures pgveil against the baselines users already have,
// in one run on the same data: a raw COPY pipe, a native logical
// replication subscription, and pg_dump | psql. cmd/pgveil-bench drives it;
// BENCHMARKS.md holds its figures.
//
// pgveil runs as its own process (the binary built from cmd/pgveil), so its
// peak memory is its own, and it is measured from the outside as a user
// would see it: by when rows become visible in the analytics database.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/examples"
	"pgveil/internal/cluster"
	"pgveil/internal/demo"
	"pgveil/schema"
)

// Tables are the examples/saas tables, parents first.
var Tables = []string{"accounts", "users", "customers", "orders", "payments", "support_tickets", "events"}

// Site is the two clusters a run uses: production, seeded with the
// examples/saas schema, and analytics, which holds one database per
// subject (pgveil, native replication, the raw pipe, pg_dump).
type Site struct {
	Prod, Analytics *cluster.Cluster
	ProdDSN         string
	Dir             string
	Pgveil          string // the pgveil binary
	Log             *slog.Logger
	// Rows are the rows seeded, by table.
	Rows map[string]int64
	// ProfileDir, when set, receives a CPU profile of each pgveil process
	// (pgveil-NN.pprof, in start order).
	ProfileDir string
	profiles   int
}

// Settings for both clusters: the pgtest defaults (no fsync: the
// benchmark measures CPU and protocol work, not the disk) with buffers
// large enough for the data.
var clusterSettings = map[string]string{
	// Production commits as a real one does: the walsender sends only WAL
	// that is flushed, so asynchronous commit would add up to
	// wal_writer_delay to every subject's lag.
	"synchronous_commit":                "on",
	"shared_buffers":                    "512MB",
	"max_wal_size":                      "4GB",
	"checkpoint_timeout":                "30min",
	"maintenance_work_mem":              "256MB",
	"max_worker_processes":              "16",
	"max_logical_replication_workers":   "8",
	"max_sync_workers_per_subscription": "2",
	// The launcher starts a subscription's worker sooner after ENABLE.
	"wal_retrieve_retry_interval": "200ms",
	// No autovacuum: it would analyze freshly loaded tables at moments of
	// its own choosing, adding its CPU to whichever subject runs then.
	"autovacuum": "off",
}

// NewSite starts the clusters under dir and seeds production with about
// scale rows.
func NewSite(ctx context.Context, dir, pgveilBin string, scale int, log *slog.Logger) (*Site, error) {
	s := &Site{Dir: dir, Pgveil: pgveilBin, Log: log}
	for _, c := range []struct {
		name string
		to   **cluster.Cluster
	}{{"production", &s.Prod}, {"analytics", &s.Analytics}} {
		sub := filepath.Join(dir, c.name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, err
		}
		settings := clusterSettings
		if os.Getenv("PGVEIL_BENCH_STATEMENTS") != "" {
			settings = maps.Clone(clusterSettings)
			settings["shared_preload_libraries"] = "pg_stat_statements"
			settings["pg_stat_statements.track"] = "all"
		}
		cl, err := cluster.Start(ctx, cluster.Options{Dir: sub, Settings: settings})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("starting the %s cluster: %w", c.name, err)
		}
		*c.to = cl
	}
	var err error
	if s.ProdDSN, err = s.Prod.CreateDB(ctx, "app"); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.execProd(ctx, examples.SaaSSchema()); err != nil {
		s.Close()
		return nil, fmt.Errorf("loading the schema: %w", err)
	}
	conn, err := pgx.Connect(ctx, s.ProdDSN)
	if err != nil {
		s.Close()
		return nil, err
	}
	defer conn.Close(context.Background())
	began := time.Now()
	n, err := demo.Seed(ctx, conn, demo.Options{Scale: scale, Seed: 1})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("seeding: %w", err)
	}
	s.Rows = map[string]int64{}
	for _, t := range Tables {
		var c int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&c); err != nil {
			s.Close()
			return nil, err
		}
		s.Rows[t] = c
	}
	// Bench tables: a heartbeat for lag, a marker for catch-up, a wide
	// table for the big transaction.
	if err := s.execProd(ctx, benchSchema); err != nil {
		s.Close()
		return nil, err
	}
	log.Info("production seeded", "rows", n, "seconds", time.Since(began).Seconds())
	return s, nil
}

// benchSchema holds the tables the scenarios add to the example.
const benchSchema = `
CREATE TABLE bench_heartbeat (id bigint PRIMARY KEY, sent_at timestamptz NOT NULL);
CREATE TABLE bench_marker (id bigint PRIMARY KEY, label text NOT NULL);
CREATE TABLE bench_big (id bigint PRIMARY KEY, account_id bigint NOT NULL, email text NOT NULL, amount numeric(12,2) NOT NULL, note text, created_at timestamptz NOT NULL);
`

// benchRules are the rules for the bench tables, appended to the
// example's.
const benchRules = `
  bench_heartbeat:
    columns: {id: keep, sent_at: keep}
  bench_marker:
    columns: {id: keep, label: keep}
  bench_big:
    columns:
      id: keep
      account_id: keep
      email: {fake: email}
      amount: {noise: 0.05}
      note: {redact: "x"}
      created_at: {truncate: day}
`

// Close stops the clusters and removes their data.
func (s *Site) Close() {
	for _, c := range []*cluster.Cluster{s.Prod, s.Analytics} {
		if c != nil {
			c.Stop()
		}
	}
}

// TotalRows is the number of seeded rows in the example's tables.
func (s *Site) TotalRows() int64 {
	var n int64
	for _, t := range Tables {
		n += s.Rows[t]
	}
	return n
}

func (s *Site) execProd(ctx context.Context, sql string) error {
	return cluster.Exec(ctx, s.ProdDSN, sql)
}

// NewTargetDB creates an empty analytics database; withSchema loads the
// example's schema and the bench tables into it (as native replication
// and the raw pipe need).
func (s *Site) NewTargetDB(ctx context.Context, name string, withSchema bool) (string, error) {
	_ = s.Analytics.DropDB(ctx, name)
	dsn, err := s.Analytics.CreateDB(ctx, name)
	if err != nil {
		return "", err
	}
	if withSchema {
		if err := cluster.Exec(ctx, dsn, examples.SaaSSchema()+benchSchema+bareSchema); err != nil {
			return "", fmt.Errorf("loading the schema into %s: %w", name, err)
		}
	}
	return dsn, nil
}

// bareSchema leaves the tables as pgveil's replica has them: primary keys
// and nothing else (no foreign keys, no other indexes), so that the
// baselines load into the same shape of table.
const bareSchema = `
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint WHERE contype IN ('f', 'u', 'c') AND connamespace = 'public'::regnamespace LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
  END LOOP;
  FOR r IN SELECT i.indexrelid::regclass AS idx FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
           WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisprimary LOOP
    EXECUTE format('DROP INDEX %s', r.idx);
  END LOOP;
END $$;`

// Config writes a pgveil rules file for the example plus the bench tables,
// with its own slot and publication, and returns its path and the
// environment it reads.
func (s *Site) Config(name, targetDSN string) (path string, env []string, err error) {
	yml := examples.SaaSRules()
	yml = strings.Replace(yml, "slot: pgveil", "slot: "+name, 1)
	yml = strings.Replace(yml, "publication: pgveil", "publication: "+name, 1)
	yml = strings.Replace(yml, "readers: [metabase_ro]", "readers: []", 1)
	yml = strings.TrimRight(yml, "\n") + "\n" + benchRules
	return s.writeConfig(name, yml, s.ProdDSN, targetDSN)
}

// writeConfig writes a rules file and returns its path and the
// environment its ${VAR}s read.
func (s *Site) writeConfig(name, yml, sourceDSN, targetDSN string) (path string, env []string, err error) {
	path = filepath.Join(s.Dir, name+".yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		return "", nil, err
	}
	env = []string{"SOURCE_DSN=" + sourceDSN, "TARGET_DSN=" + targetDSN, "PGVEIL_SECRET=" + benchSecret}
	return path, env, nil
}

// benchSecret keys the bench's masking (and the micro-benchmarks').
const benchSecret = "bench-secret-0123456789abcdef0123456789abcdef"

// KeepConfig is Config with every column kept as it is (and no row
// filter): pgveil's pipeline without the cost of masking.
func (s *Site) KeepConfig(ctx context.Context, name, targetDSN string) (path string, env []string, err error) {
	conn, err := pgx.Connect(ctx, s.ProdDSN)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(context.Background())
	var b strings.Builder
	fmt.Fprintf(&b, "source: {dsn: \"${SOURCE_DSN}\", slot: %s, publication: %s}\ntarget: {dsn: \"${TARGET_DSN}\"}\nsecret: ${PGVEIL_SECRET}\ntables:\n", name, name)
	for _, t := range allTables() {
		rows, err := conn.Query(ctx, `SELECT attname::text FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, t)
		if err != nil {
			return "", nil, err
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(&b, "  %s:\n    columns: {%s: keep}\n", t, strings.Join(cols, ": keep, "))
	}
	return s.writeConfig(name, b.String(), s.ProdDSN, targetDSN)
}

// DropSlot removes a slot and publication of production, once their
// consumer has stopped, so that they keep no WAL.
func (s *Site) DropSlot(ctx context.Context, name string) error {
	return dropSlotIn(ctx, s.ProdDSN, name)
}

// dropSlotIn is DropSlot for a slot and publication of the production
// database at dsn (the publication lives in one database).
func dropSlotIn(ctx context.Context, dsn, name string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, name)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // still active: its walsender is ending
	}
	if err != nil {
		return fmt.Errorf("dropping slot %s: %w", name, err)
	}
	_, err = conn.Exec(ctx, `DROP PUBLICATION IF EXISTS `+schema.QuoteIdent(name))
	return err
}

// ServerVersion is production's server_version, or "" if unreadable.
func (s *Site) ServerVersion(ctx context.Context) string {
	conn, err := pgx.Connect(ctx, s.ProdDSN)
	if err != nil {
		return ""
	}
	defer conn.Close(context.Background())
	var v string
	_ = conn.QueryRow(ctx, `SHOW server_version`).Scan(&v)
	return v
}

// PrintStatements prints, when PGVEIL_BENCH_STATEMENTS is set, the
// statements that took the most time in an analytics database (from
// pg_stat_statements), then resets the statistics: where the target's
// time goes.
func (s *Site) PrintStatements(ctx context.Context, db string, w io.Writer) {
	if os.Getenv("PGVEIL_BENCH_STATEMENTS") == "" {
		return
	}
	conn, err := pgx.Connect(ctx, s.Analytics.DSN(db))
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	_, _ = conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)
	rows, err := conn.Query(ctx, `SELECT round(total_exec_time)::bigint, calls, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 140)
  FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY total_exec_time DESC LIMIT 12`, db)
	if err != nil {
		fmt.Fprintln(w, "pg_stat_statements:", err)
		return
	}
	fmt.Fprintf(w, "top statements in %s (ms, calls, rows, query):\n", db)
	for rows.Next() {
		var ms, calls, n int64
		var q string
		if rows.Scan(&ms, &calls, &n, &q) == nil {
			fmt.Fprintf(w, "  %6d %6d %8d  %s\n", ms, calls, n, q)
		}
	}
	_, _ = conn.Exec(ctx, `SELECT pg_stat_statements_reset()`)
}
