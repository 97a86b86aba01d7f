package replicate

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/internal/syncbuf"
	"pgveil/rules"
)

// Two shared clusters: production and analytics. The source streams any
// transaction over 64 kB, so that streaming is exercised by every test.
var clusters = pgtest.Pair{Source: pgtest.Shared{Options: pgtest.Options{Settings: map[string]string{"logical_decoding_work_mem": "64kB"}}}}

func TestMain(m *testing.M) { pgtest.Main(m, &clusters) }

// e2e is one test's production and analytics databases and pipeline.
type e2e struct {
	t           *testing.T
	srcDSN      string
	dstDSN      string
	src, dst    *pgx.Conn
	rulesYML    string
	preamble    string               // YAML put before tables: (a tenancy section)
	targetExtra string               // more keys of the target section: ", refresh_materialized_views: 1s"
	readers     []string             // target.readers
	mode        string               // source.publication_mode; "" for the default
	workers     int                  // the initial copy's workers; 0 for 3
	stream      func(*StreamOptions) // changes to the stream's options, if any
	stats       *Stats
	cancel      context.CancelFunc
	done        chan error
	p           *Pipeline
	marker      atomic.Int64
	logs        *syncbuf.Buffer
	obs         roundCounter
}

// roundCounter is the pipeline's observer in e2e tests: it counts the
// monitor's rounds (each reports the drift it found).
type roundCounter struct {
	nopObserver
	rounds  atomic.Int64
	pending atomic.Pointer[[]string] // the last RulesPending report
}

func (c *roundCounter) Drift(*Drift) { c.rounds.Add(1) }

func (c *roundCounter) RulesPending(statements []string) { c.pending.Store(&statements) }

// rulesPending is the last RulesPending report, nil before any.
func (c *roundCounter) rulesPending() []string {
	if p := c.pending.Load(); p != nil {
		return *p
	}
	return nil
}

// waitMonitorRounds waits until the monitor has finished n more rounds:
// whatever a round looks at, it has looked at since the call.
func (e *e2e) waitMonitorRounds(n int64) {
	e.t.Helper()
	want := e.obs.rounds.Load() + n + 1 // the round under way may have begun before the call
	e.eventually(fmt.Sprintf("%d monitor rounds", n), func() (bool, string) {
		got := e.obs.rounds.Load()
		return got >= want, fmt.Sprintf("%d rounds, want %d", got, want)
	})
}

func newE2E(t *testing.T, schema, rulesYAML string) *e2e {
	t.Helper()
	return newE2EWith(t, clusters.Source.NewDB(t), schema, rulesYAML)
}

// newE2EWith is newE2E on a production database of the test's choosing.
func newE2EWith(t *testing.T, srcDSN, schema, rulesYAML string) *e2e {
	t.Helper()
	e := &e2e{t: t, srcDSN: srcDSN, dstDSN: clusters.Target.NewDB(t), logs: &syncbuf.Buffer{}}
	ctx := context.Background()
	var err error
	if e.src, err = pgx.Connect(ctx, e.srcDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.src.Close(context.Background()) })
	if e.dst, err = testConnect(ctx, e.dstDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.dst.Close(context.Background()) })
	e.exec(schema + "\nCREATE TABLE pgveil_marker (id int PRIMARY KEY, n bigint);")
	e.rulesYML = rulesYAML + "\n  pgveil_marker:\n    columns: {id: keep, n: keep}\n"
	return e
}

func (e *e2e) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.src.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("source: %v\n%s", err, sql)
	}
}

func (e *e2e) config() *rules.Config {
	e.t.Helper()
	env := map[string]string{"SRC": e.srcDSN, "DST": e.dstDSN, "SECRET": pgtest.Secret}
	mode := ""
	if e.mode != "" {
		mode = ", publication_mode: " + e.mode
	}
	readers := ""
	if len(e.readers) > 0 {
		readers = ", readers: [" + strings.Join(e.readers, ", ") + "]"
	}
	yml := "source: {dsn: \"${SRC}\", slot: s1, publication: p1" + mode + "}\ntarget: {dsn: \"${DST}\"" + readers + e.targetExtra + "}\nsecret: ${SECRET}\n" + e.preamble + "tables:\n" + e.rulesYML
	cfg, err := rules.Parse("test.yaml", []byte(yml), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		e.t.Fatalf("rules: %v\n%s", err, yml)
	}
	return cfg
}

// start runs the pipeline in the background.
func (e *e2e) start() {
	e.t.Helper()
	e.startWith(&e.obs)
}

// startWith is start with an observer of the test's own.
func (e *e2e) startWith(obs Observer) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	e.stats = &Stats{}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := Options{Config: e.config(), Logger: log, Stats: e.stats, Observer: obs,
		Snapshot: SnapshotOptions{Workers: cmp.Or(e.workers, 3), ChunkPages: 16},
		Stream:   StreamOptions{StatusInterval: 200 * time.Millisecond, BatchDelay: 20 * time.Millisecond, SpillDir: e.t.TempDir()},
		RetryMax: time.Second, MonitorInterval: time.Second}
	if e.stream != nil {
		e.stream(&opts.Stream)
	}
	e.p = New(opts)
	go func() { e.done <- e.p.Run(ctx) }()
	e.t.Cleanup(e.stop)
}

func (e *e2e) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("pipeline: %v", err)
		}
	case <-time.After(patience):
		e.t.Errorf("pipeline did not stop within %s\nlog:\n%s", patience, e.logs.String())
	}
	e.cancel = nil
}

// patience bounds every wait of these tests for something PostgreSQL or
// the pipeline does. It is long on purpose: a busy machine running
// several clusters is slow, and only a failing test waits it out.
const patience = 3 * time.Minute

// eventually polls cond until it holds; after patience it fails the test
// with what cond last saw and the pipeline's log. A pipeline that stops
// meanwhile fails the test at once.
func (e *e2e) eventually(what string, cond func() (ok bool, saw string)) {
	e.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		if e.cancel != nil {
			select {
			case err := <-e.done:
				e.cancel()
				e.cancel = nil
				e.t.Fatalf("%s: the pipeline stopped: %v\nlog:\n%s", what, err, e.logs.String())
			default:
			}
		}
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not within %s; last saw: %s\nlog:\n%s", what, patience, saw, e.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sync writes a marker in production and waits until the replica has it:
// then every earlier source commit is applied.
func (e *e2e) sync() {
	e.t.Helper()
	n := e.marker.Add(1)
	e.exec("INSERT INTO pgveil_marker VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n", n)
	e.eventually("the replica catching up", func() (bool, string) { return e.caughtUp(n) })
}

// caughtUp reports whether the replica holds marker n, with what it saw.
// The marker may come with the initial copy, while larger tables are
// still loading: the checkpoint is written when all are in.
func (e *e2e) caughtUp(n int64) (ok bool, saw string) {
	var got int64
	var copied bool
	err := e.dst.QueryRow(context.Background(), "SELECT n, EXISTS (SELECT FROM pgveil.checkpoint WHERE slot = 's1') FROM public.pgveil_marker WHERE id = 1").Scan(&got, &copied)
	resyncing := e.stats.Resyncing.Load()
	return err == nil && got >= n && copied && !resyncing,
		fmt.Sprintf("marker %d (want %d), checkpoint written %v, re-copying %v, error %v", got, n, copied, resyncing, err)
}

// replicaStrings returns the replica's values of query (one text
// column), in order.
func (e *e2e) replicaStrings(query string) []string {
	e.t.Helper()
	rows, err := e.dst.Query(context.Background(), query)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// loop runs query, with the arguments args(i) gives its i-th run, over
// and over on a connection of its own until the returned stop is called;
// stop returns the first error a run met.
func (e *e2e) loop(query string, args func(i int) []any) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		conn, err := testConnect(context.Background(), e.srcDSN)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(context.Background())
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := conn.Exec(context.Background(), query, args(i)...); err != nil {
				done <- fmt.Errorf("traffic: %w", err)
				return
			}
		}
		done <- nil
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// prepare connects to production as pgveil does and prepares the test's
// rules against it; the connection is closed when the test ends.
func (e *e2e) prepare() (*pgx.Conn, *Prepared) {
	e.t.Helper()
	ctx := context.Background()
	src, err := testConnect(ctx, e.srcDSN)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { src.Close(context.Background()) })
	prep, err := PrepareRunning(ctx, src, e.config(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return src, prep
}

// verify compares the replica with mask(production), table by table.
func (e *e2e) verify() {
	e.t.Helper()
	ctx := context.Background()
	src, prep := e.prepare()
	diffs, err := Compare(ctx, src, e.dst, prep.Plan)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range diffs {
		if !d.OK() {
			e.t.Errorf("%s: source %d, replica %d, missing %d, extra %d, different %d", d.Table, d.Source, d.Target, d.Missing, d.Extra, d.Different)
		}
	}
}

// waitSlotInactive waits until the server has let go of the slot and
// pgveil's replication connection has left: a backend ends after its
// client closed the connection, and until then StartOver takes it for a
// running pgveil.
func (e *e2e) waitSlotInactive() {
	e.t.Helper()
	e.eventually("the slot let go", func() (bool, string) {
		var active bool
		var streams int
		err := e.src.QueryRow(context.Background(), `SELECT
  coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = 's1'), false),
  (SELECT count(*) FROM pg_stat_activity WHERE application_name = $1)`, streamAppName("s1")).Scan(&active, &streams)
		return err == nil && !active && streams == 0, fmt.Sprintf("slot active %v, replication connections %d, error %v", active, streams, err)
	})
}

func (e *e2e) count(table string) int64 {
	e.t.Helper()
	var n int64
	if err := e.dst.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

const shopSchema = `
CREATE TYPE tier AS ENUM ('free', 'pro', 'enterprise');
CREATE DOMAIN email_address AS varchar(120) CHECK (VALUE LIKE '%@%');
CREATE TABLE customers (
  id bigserial PRIMARY KEY,
  email email_address NOT NULL UNIQUE,
  full_name text,
  phone text,
  birth_date date,
  zip char(5),
  notes text,
  tier tier NOT NULL DEFAULT 'free',
  tags text[],
  profile jsonb,
  balance numeric(12,2),
  score real,
  created_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE TABLE orders (
  id integer PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
  total numeric(10,2) NOT NULL,
  shipped boolean NOT NULL DEFAULT false,
  payload bytea,
  uid uuid NOT NULL DEFAULT gen_random_uuid()
);
CREATE TABLE events (
  ts timestamp NOT NULL,
  kind text,
  ip inet
);
ALTER TABLE events REPLICA IDENTITY FULL;
`

const shopRules = `  customers:
    columns:
      id: hash
      email: {fake: {kind: email, unique: true}}
      full_name: {fake: name}
      phone: {partial: {keep_last: 2}}
      birth_date: {truncate: year}
      zip: {truncate: 2}
      notes: drop
      tier: keep
      tags: hash
      profile: {json: {"$.address.street": {fake: street}, "$.ssn": drop, "$..email": {fake: email}}}
      balance: {noise: 0.1}
      score: keep
      created_at: keep
      deleted_at: keep
  orders:
    columns:
      id: keep
      customer_id: hash
      total: {truncate: {step: 10}}
      shipped: keep
      payload: hash
      uid: hash
  events:
    columns:
      ts: {truncate: hour}
      kind: keep
      ip: {fake: ipv4}
`

func seedShop(e *e2e, n int) {
	e.exec(fmt.Sprintf(`
INSERT INTO customers (email, full_name, phone, birth_date, zip, notes, tier, tags, profile, balance, score, deleted_at)
SELECT 'user' || g || '@example.com', 'Person ' || g, '+3361234' || lpad(g::text, 4, '0'),
       date '1950-01-01' + (g * 37 %% 20000), lpad((g %% 99999)::text, 5, '0'), 'secret note ' || g,
       (ARRAY['free','pro','enterprise'])[1 + g %% 3]::tier, ARRAY['t' || g, NULL, 'x y'],
       jsonb_build_object('address', jsonb_build_object('street', g || ' Main St', 'city', 'Paris'), 'ssn', '123-45-' || g,
                          'contacts', jsonb_build_array(jsonb_build_object('email', 'c' || g || '@x.org'))),
       (g * 13.37)::numeric(12,2), g / 7.0, CASE WHEN g %% 10 = 0 THEN now() END
FROM generate_series(1, %d) g;
INSERT INTO orders (id, customer_id, total, shipped, payload)
SELECT g, 1 + (g %% %d), (g * 3.5)::numeric(10,2), g %% 2 = 0, decode(md5(g::text), 'hex')
FROM generate_series(1, %d) g;
INSERT INTO events SELECT timestamp '2024-01-01' + g * interval '17 minutes', 'k' || (g %% 5), ('10.0.' || (g %% 250) || '.1')::inet
FROM generate_series(1, %d) g;
`, n, n, n*2, n))
}

func TestReplicateSnapshotThenStream(t *testing.T) {
	e := newE2E(t, shopSchema, shopRules)
	seedShop(e, 600)
	e.start()
	e.sync()
	e.verify()
	if got := e.count("public.customers"); got != 600 {
		t.Errorf("customers: %d rows", got)
	}
	// Nothing raw in the replica.
	var leaks int64
	if err := e.dst.QueryRow(context.Background(),
		`SELECT count(*) FROM public.customers WHERE email LIKE 'user%@example.com' OR full_name LIKE 'Person %' OR profile::text LIKE '%Main St%' OR profile ? 'ssn'`).Scan(&leaks); err != nil {
		t.Fatal(err)
	}
	if leaks != 0 {
		t.Errorf("%d raw values in the replica", leaks)
	}
	var hasNotes bool
	e.dst.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'notes')`).Scan(&hasNotes)
	if hasNotes {
		t.Error("the dropped column exists in the replica")
	}

	// The stream: inserts, updates (also of keys), deletes, a cascade.
	e.exec(`INSERT INTO customers (email, full_name, tier) VALUES ('new@example.com', 'New Person', 'pro')`)
	e.exec(`UPDATE customers SET full_name = full_name || ' Jr', balance = balance + 1 WHERE id % 7 = 0`)
	e.exec(`UPDATE orders SET id = id + 100000 WHERE id % 11 = 0`)
	e.exec(`DELETE FROM customers WHERE id % 13 = 0`)
	e.exec(`UPDATE events SET kind = 'changed' WHERE kind = 'k1'`)
	e.exec(`DELETE FROM events WHERE kind = 'k2'`)
	e.exec(`INSERT INTO events SELECT * FROM events LIMIT 5`) // duplicates in a table without a key
	e.exec(`DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE kind = 'k3' LIMIT 1)`)
	e.sync()
	e.verify()

	// One large transaction (streamed in pieces), with a rolled back
	// subtransaction inside.
	e.exec(`BEGIN;
INSERT INTO events SELECT timestamp '2025-01-01' + g * interval '1 second', 'bulk', NULL FROM generate_series(1, 20000) g;
SAVEPOINT a;
INSERT INTO events SELECT timestamp '2026-01-01', 'rolled back', NULL FROM generate_series(1, 5000) g;
ROLLBACK TO SAVEPOINT a;
UPDATE customers SET phone = NULL WHERE id < 50;
COMMIT;`)
	e.sync()
	e.verify()
	if e.stats.Streamed.Load() == 0 {
		t.Error("the large transaction was not streamed: the spill path went untested")
	}
	var rolledBack int64
	e.dst.QueryRow(context.Background(), `SELECT count(*) FROM public.events WHERE kind = 'rolled back'`).Scan(&rolledBack)
	if rolledBack != 0 {
		t.Errorf("%d rows of a rolled-back subtransaction in the replica", rolledBack)
	}

	// A column added in production (no rule names it) changes nothing.
	e.exec(`ALTER TABLE customers ADD COLUMN loyalty_code text DEFAULT 'SECRET-LOYALTY'`)
	e.exec(`UPDATE customers SET loyalty_code = 'SECRET-' || id, full_name = full_name || '.' WHERE id % 5 = 0`)
	e.sync()
	var leaked bool
	e.dst.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'loyalty_code')`).Scan(&leaked)
	if leaked {
		t.Error("an unruled column reached the replica")
	}
	e.exec(`ALTER TABLE customers DROP COLUMN loyalty_code`)

	// TRUNCATE of several tables, and with CASCADE and RESTART IDENTITY.
	e.exec(`TRUNCATE orders, events`)
	e.sync()
	e.verify()
	if n := e.count("public.orders") + e.count("public.events"); n != 0 {
		t.Errorf("%d rows after TRUNCATE", n)
	}
	e.exec(`INSERT INTO orders (id, customer_id, total) SELECT g, id, 1 FROM customers, generate_series(1, 1) g WHERE id = 1`)
	e.exec(`TRUNCATE customers RESTART IDENTITY CASCADE`)
	e.sync()
	e.verify()
	if n := e.count("public.orders") + e.count("public.customers"); n != 0 {
		t.Errorf("%d rows after TRUNCATE CASCADE", n)
	}
}

func TestReplicateUnchangedToast(t *testing.T) {
	e := newE2E(t, `CREATE TABLE docs (id int PRIMARY KEY, title text, body text, secret text);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE docs ALTER COLUMN secret SET STORAGE EXTERNAL;`,
		"  docs:\n    columns: {id: keep, title: keep, body: keep, secret: {fake: sentence}}\n")
	e.exec(`INSERT INTO docs SELECT g, 't' || g, repeat('body ' || g, 5000), repeat('secret ' || g, 5000) FROM generate_series(1, 20) g`)
	e.start()
	e.sync()
	// Updates that do not touch the toasted columns send them as unchanged.
	e.exec(`UPDATE docs SET title = title || '!'`)
	e.sync()
	e.verify()
	var n int64
	e.dst.QueryRow(context.Background(), `SELECT count(*) FROM public.docs WHERE body IS NULL OR secret IS NULL`).Scan(&n)
	if n != 0 {
		t.Errorf("%d rows lost a toasted value", n)
	}
}

func TestReplicateResumesExactlyOnce(t *testing.T) {
	e := newE2E(t, `CREATE TABLE counters (id int PRIMARY KEY, v bigint NOT NULL);`, "  counters:\n    columns: {id: keep, v: keep}\n")
	e.exec(`INSERT INTO counters SELECT g, 0 FROM generate_series(1, 100) g`)
	e.start()
	e.sync()
	for round := 0; round < 3; round++ {
		e.stop()
		// While pgveil is down: the slot keeps the changes.
		for i := 0; i < 20; i++ {
			e.exec(`UPDATE counters SET v = v + 1 WHERE id % 3 = $1`, i%3)
			e.exec(`INSERT INTO counters VALUES ($1, $2)`, 1000+round*100+i, i)
		}
		e.start()
		e.sync()
		e.verify()
	}
	if !strings.Contains(e.logs.String(), "resuming") {
		t.Error("the restarts did not resume from the checkpoint")
	}
}

func TestReplicateInProcessRowFilter(t *testing.T) {
	e := newE2E(t, `CREATE TABLE accounts (id int PRIMARY KEY, name text, deleted_at timestamptz, region text);`,
		`  accounts:
    where: "deleted_at IS NULL AND region <> 'hidden'"
    columns: {id: keep, name: {fake: company}, deleted_at: drop, region: keep}
`)
	e.exec(`INSERT INTO accounts SELECT g, 'acct ' || g, CASE WHEN g % 4 = 0 THEN now() END, CASE WHEN g % 5 = 0 THEN 'hidden' ELSE 'eu' END FROM generate_series(1, 200) g`)
	e.start()
	e.sync()
	e.verify()
	want := func() int64 {
		var n int64
		e.src.QueryRow(context.Background(), `SELECT count(*) FROM accounts WHERE deleted_at IS NULL AND region <> 'hidden'`).Scan(&n)
		return n
	}
	if got := e.count("public.accounts"); got != want() {
		t.Errorf("snapshot: %d rows, want %d", got, want())
	}
	// Rows move into and out of the filter.
	e.exec(`UPDATE accounts SET deleted_at = now() WHERE id % 3 = 0`)
	e.exec(`UPDATE accounts SET deleted_at = NULL WHERE id % 8 = 0`)
	e.exec(`UPDATE accounts SET region = 'eu' WHERE id % 10 = 0`)
	e.exec(`INSERT INTO accounts VALUES (1000, 'x', now(), 'eu'), (1001, 'y', NULL, 'eu')`)
	e.sync()
	e.verify()
	if got := e.count("public.accounts"); got != want() {
		t.Errorf("stream: %d rows, want %d", got, want())
	}
}

// testConnect opens the tests' own connection to either database, with
// the value formats pgveil uses but the default search_path: the tests'
// SQL names tables unqualified, which pgveil's production sessions
// (search_path pg_catalog) would not find.
func testConnect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	for k, v := range sourceParams() {
		cfg.RuntimeParams[k] = v
	}
	return pgx.ConnectConfig(ctx, cfg)
}
