package demo

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { pgtest.Main(m, &shared) }

// newDB returns a connection to a fresh database with the saas schema.
func newDB(t testing.TB) *pgx.Conn {
	t.Helper()
	schemaSQL, err := os.ReadFile("../../examples/saas/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := shared.NewDBWith(t, string(schemaSQL))
	return conn
}

func seed(t testing.TB, conn *pgx.Conn, o Options) int64 {
	t.Helper()
	rows, err := Seed(context.Background(), conn, o)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func count(t testing.TB, conn *pgx.Conn, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestSeed(t *testing.T) {
	conn := newDB(t)
	ctx := context.Background()
	rows := seed(t, conn, Options{Scale: 3000, Seed: 42})

	n := map[string]int64{}
	var total int64
	for _, table := range seedTables {
		n[table] = count(t, conn, "SELECT count(*) FROM "+table)
		total += n[table]
		if n[table] == 0 {
			t.Errorf("%s is empty", table)
		}
	}
	t.Logf("rows %d: %v", rows, n)
	if total != rows {
		t.Errorf("Seed reported %d rows, the tables hold %d", rows, total)
	}
	if rows < 2700 || rows > 3300 {
		t.Errorf("%d rows for scale 3000", rows)
	}
	less := func(a, b string) {
		if n[a] >= n[b] {
			t.Errorf("%s (%d) should be fewer than %s (%d)", a, n[a], b, n[b])
		}
	}
	less("accounts", "users")
	less("users", "customers")
	less("customers", "orders")
	less("support_tickets", "customers")
	less("customers", "events")
	if p, o := n["payments"], n["orders"]; p < o*7/10 || p > o*11/10 {
		t.Errorf("%d payments for %d orders", p, o)
	}

	checks := []struct {
		what string
		q    string
		min  int64 // at least
		max  int64 // at most, when > 0
	}{
		{"plans", "SELECT count(DISTINCT plan) FROM accounts", 4, 0},
		{"account countries", "SELECT count(DISTINCT country) FROM accounts", 4, 0},
		{"customer countries", "SELECT count(DISTINCT country) FROM customers", 7, 0},
		{"currencies", "SELECT count(DISTINCT currency) FROM orders", 3, 0},
		{"soft-deleted customers", "SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL", 5, n["customers"] / 7},
		{"deleted after created", "SELECT count(*) FROM customers WHERE deleted_at < created_at", 0, -1},
		{"email domains", "SELECT count(DISTINCT split_part(email, '@', 2)) FROM customers", 20, 0},
		{"non-ASCII names", "SELECT count(*) FROM customers WHERE full_name ~ '[^ -~]'", 10, 0},
		{"phone formats", "SELECT count(DISTINCT translate(phone, '0123456789', '##########')) FROM customers", 15, 0},
		{"zip formats", "SELECT count(DISTINCT regexp_replace(regexp_replace(zip, '[0-9]', '#', 'g'), '[A-Z]', '?', 'g')) FROM customers", 4, 0},
		{"birth dates", "SELECT count(*) FROM customers WHERE birth_date IS NOT NULL", n["customers"] / 2, 0},
		{"notes quoting digits", "SELECT count(*) FROM customers WHERE notes ~ '[0-9]{4}'", 10, 0},
		{"empty profiles", "SELECT count(*) FROM customers WHERE profile = '{}'", 1, 0},
		{"profiles with address.street", "SELECT count(*) FROM customers WHERE profile #> '{address,street}' IS NOT NULL", 10, 0},
		{"profiles with ssn", "SELECT count(*) FROM customers WHERE profile ? 'ssn'", 10, 0},
		{"profiles with nested emails", "SELECT count(*) FROM customers WHERE jsonb_path_exists(profile, 'strict $.**.email')", 10, 0},
		{"orders of another tenant's customer", "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.account_id <> c.account_id", 0, -1},
		{"order statuses", "SELECT count(DISTINCT status) FROM orders", 6, 0},
		{"shipping addresses", "SELECT count(*) FROM orders WHERE shipping_address IS NOT NULL", n["orders"] / 2, 0},
		{"refunds", "SELECT count(*) FROM payments WHERE amount < 0", 1, 0},
		{"refunded orders not netting to zero", "SELECT count(*) FROM (SELECT order_id FROM payments p JOIN orders o ON o.id = p.order_id WHERE o.status = 'refunded' GROUP BY order_id HAVING sum(amount) <> 0) s", 0, -1},
		{"payment methods", "SELECT count(DISTINCT method) FROM payments", 5, 0},
		{"card digits", "SELECT count(*) FROM payments WHERE card_last4 ~ '^[0-9]{4}$'", 10, 0},
		{"IBANs", "SELECT count(*) FROM payments WHERE iban IS NOT NULL", 5, 0},
		{"tickets with ip, user agent and tags", "SELECT count(*) FROM support_tickets WHERE metadata ? 'ip' AND metadata ? 'user_agent' AND metadata ? 'tags'", 10, 0},
		{"tickets quoting digits", "SELECT count(*) FROM support_tickets WHERE body ~ '[0-9]{4}'", 10, 0},
		{"ticket statuses", "SELECT count(DISTINCT status) FROM support_tickets", 2, 0},
		{"prospect tickets", "SELECT count(*) FROM support_tickets WHERE customer_id IS NULL", 1, 0},
		{"event kinds", "SELECT count(DISTINCT kind) FROM events", 10, 0},
		{"events with nested email", "SELECT count(*) FROM events WHERE jsonb_path_exists(properties, 'lax $.*.email')", 10, 0},
		{"events with nested phone", "SELECT count(*) FROM events WHERE jsonb_path_exists(properties, 'strict $.**.phone')", 10, 0},
		{"events with an ip", "SELECT count(*) FROM events WHERE ip IS NOT NULL", 10, 0},
		{"system events", "SELECT count(*) FROM events WHERE user_id IS NULL", 10, 0},
		{"staff without login", "SELECT count(*) FROM users WHERE last_login_at IS NULL", 1, 0},
		{"owners", "SELECT count(*) FROM users WHERE role = 'owner'", n["accounts"], n["accounts"]},
		{"customers ids against time", "SELECT count(*) FROM (SELECT created_at < lag(created_at) OVER (ORDER BY id) AS back FROM customers) s WHERE back", 0, -1},
		{"events ids against time", "SELECT count(*) FROM (SELECT occurred_at < lag(occurred_at) OVER (ORDER BY id) AS back FROM events) s WHERE back", 0, -1},
		{"future timestamps", "SELECT count(*) FROM events WHERE occurred_at > '2026-11-01'", 0, -1},
	}
	for _, c := range checks {
		got := count(t, conn, c.q)
		switch {
		case c.max < 0 && got != 0:
			t.Errorf("%s: %d, want none", c.what, got)
		case got < c.min:
			t.Errorf("%s: %d, want at least %d", c.what, got, c.min)
		case c.max > 0 && got > c.max:
			t.Errorf("%s: %d, want at most %d", c.what, got, c.max)
		}
	}

	ibans, err := conn.Query(ctx, "SELECT iban FROM payments WHERE iban IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	for ibans.Next() {
		var iban string
		if err := ibans.Scan(&iban); err != nil {
			t.Fatal(err)
		}
		if !validIBAN(iban) {
			t.Errorf("invalid IBAN %s", iban)
		}
	}
	if err := ibans.Err(); err != nil {
		t.Fatal(err)
	}

	// The sequences are past the seeded ids: inserts without ids work.
	for _, q := range []string{
		"INSERT INTO accounts (name, plan, country) VALUES ('New', 'free', 'DE') RETURNING id",
		"INSERT INTO users (account_id, email, full_name, password_hash) VALUES (1, 'new@example.com', 'New', 'x') RETURNING id",
		"INSERT INTO customers (account_id, email, full_name) VALUES (1, 'new@example.com', 'New') RETURNING id",
		"INSERT INTO orders (account_id, customer_id, total) VALUES (1, 1, 9.99) RETURNING id",
		"INSERT INTO payments (order_id, amount, method) VALUES (1, 9.99, 'card') RETURNING id",
		"INSERT INTO support_tickets (account_id, subject, body) VALUES (1, 's', 'b') RETURNING id",
		"INSERT INTO events (account_id, kind) VALUES (1, 'k') RETURNING id",
	} {
		table := strings.Fields(q)[2]
		if id := count(t, conn, q); id != n[table]+1 {
			t.Errorf("%s: new id %d, want %d", table, id, n[table]+1)
		}
	}

	if _, err := Seed(ctx, conn, Options{Scale: 1000}); err == nil || !strings.Contains(err.Error(), "already has rows") {
		t.Errorf("seeding a seeded database: %v", err)
	}
}

// checksums fingerprints a few tables' full contents.
func checksums(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"accounts", "users", "customers", "orders", "payments", "support_tickets", "events"} {
		var sum string
		q := "SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM " + table + " t"
		if err := conn.QueryRow(context.Background(), q).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		b.WriteString(table + "=" + sum + " ")
	}
	return b.String()
}

func TestSeedDeterministic(t *testing.T) {
	a, b, c := newDB(t), newDB(t), newDB(t)
	seed(t, a, Options{Scale: 2000, Seed: 7})
	seed(t, b, Options{Scale: 2000, Seed: 7})
	seed(t, c, Options{Scale: 2000, Seed: 8})
	sa, sb, sc := checksums(t, a), checksums(t, b), checksums(t, c)
	if sa != sb {
		t.Errorf("the same seed gave different data:\n%s\n%s", sa, sb)
	}
	if sa == sc {
		t.Error("different seeds gave the same data")
	}
}

// tableStats reads the row counters of the tables; the caller's backend
// flushes its own pending counters first.
func tableStats(t *testing.T, conn *pgx.Conn) map[string][3]int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")
	if err != nil {
		t.Fatal(err)
	}
	stats := map[string][3]int64{}
	for rows.Next() {
		var name string
		var s [3]int64
		if err := rows.Scan(&name, &s[0], &s[1], &s[2]); err != nil {
			t.Fatal(err)
		}
		stats[name] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return stats
}

// TestTraffic runs Traffic at rate 50 until it has committed 50
// transactions (every kind of change, most of them more than once),
// however long the machine takes, then ends its context. What holds at
// any speed: Traffic never runs ahead of its rate, it returns once its
// context has ended, and its connection is still usable.
func TestTraffic(t *testing.T) {
	conn := newDB(t)
	seed(t, conn, Options{Scale: 2000, Seed: 1})
	before := tableStats(t, conn)
	// Soft-deletes are counted as they happen: a later restore may bring
	// the same customer back within the run.
	if _, err := conn.Exec(context.Background(), `
CREATE TABLE test_soft_deletes (id bigint);
CREATE FUNCTION test_note_soft_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO test_soft_deletes VALUES (NEW.id); RETURN NULL; END $$;
CREATE TRIGGER test_soft_delete AFTER UPDATE OF deleted_at ON customers
  FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL) EXECUTE FUNCTION test_note_soft_delete();`); err != nil {
		t.Fatal(err)
	}

	const rate, want = 50, 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var st TrafficStats
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- Traffic(ctx, conn, rate, &st) }()
	// stop ends Traffic's context and waits for it to return (its
	// transaction in flight is finished first, or given up after
	// txGrace).
	stop := func() (time.Duration, error) {
		cancel()
		select {
		case err := <-done:
			return time.Since(start), err
		case <-time.After(txGrace + time.Minute):
			t.Fatalf("Traffic did not return within %s after its context ended (%d transactions)", txGrace+time.Minute, st.Transactions.Load())
			return 0, nil
		}
	}
	deadline := time.After(3 * time.Minute)
	for st.Transactions.Load() < want {
		select {
		case err := <-done:
			t.Fatalf("Traffic returned early (%v) after %d transactions", err, st.Transactions.Load())
		case <-deadline:
			stop()
			t.Fatalf("%d transactions after 3 minutes, want %d", st.Transactions.Load(), want)
		case <-time.After(10 * time.Millisecond):
		}
	}
	elapsed, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	n := st.Transactions.Load()
	t.Logf("%d transactions in %s, %d inserts, %d updates, %d deletes",
		n, elapsed.Round(time.Millisecond), st.Inserts.Load(), st.Updates.Load(), st.Deletes.Load())
	// At most one transaction per tick of its ticker, rate a second, from
	// its start to its return: an upper bound that holds at any speed.
	if limit := int64(elapsed.Seconds()*rate) + 1; n > limit {
		t.Errorf("%d transactions in %s at rate %d: more than %d", n, elapsed, rate, limit)
	}
	if st.Inserts.Load() == 0 || st.Updates.Load() == 0 || st.Deletes.Load() == 0 {
		t.Error("some kind of change is missing")
	}

	// The connection is still usable, and the server saw the changes.
	after := tableStats(t, conn)
	changed := [3][]string{}
	for table, a := range after {
		for i := range a {
			if a[i] > before[table][i] {
				changed[i] = append(changed[i], table)
			}
		}
	}
	t.Logf("inserted into %v, updated %v, deleted from %v", changed[0], changed[1], changed[2])
	for i, want := range [3][]string{
		{"customers", "orders", "payments", "support_tickets", "events", "users"},
		{"customers", "orders", "support_tickets", "users"},
		{"events", "orders"},
	} {
		for _, table := range want {
			if !strings.Contains(" "+strings.Join(changed[i], " ")+" ", " "+table+" ") {
				t.Errorf("no %s on %s", [...]string{"inserts", "updates", "deletes"}[i], table)
			}
		}
	}
	if n := count(t, conn, "SELECT count(*) FROM test_soft_deletes"); n == 0 {
		t.Error("no customer soft-deleted by the traffic")
	}
	if _, err := SampleCustomerID(context.Background(), conn); err != nil {
		t.Error(err)
	}
}

func TestTrafficNeedsSeed(t *testing.T) {
	conn := newDB(t)
	err := Traffic(context.Background(), conn, 10, nil)
	if err == nil || !strings.Contains(err.Error(), "seeded") {
		t.Fatalf("Traffic on an empty database: %v", err)
	}
}

func TestSampleCustomerID(t *testing.T) {
	conn := newDB(t)
	ctx := context.Background()
	if _, err := SampleCustomerID(ctx, conn); err == nil {
		t.Error("a sample customer in an empty database")
	}
	seed(t, conn, Options{Scale: 1000, Seed: 3})
	id, err := SampleCustomerID(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if count(t, conn, `SELECT count(*) FROM customers WHERE id = $1 AND deleted_at IS NULL AND profile ? 'ssn'
  AND profile #> '{address,street}' IS NOT NULL AND phone IS NOT NULL AND notes IS NOT NULL`, id) != 1 {
		t.Errorf("customer %d is not a full, live profile", id)
	}
	// Without full profiles it still finds a live customer, skipping the
	// soft-deleted ones.
	if _, err := conn.Exec(ctx, `UPDATE customers SET profile = '{}'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE customers SET deleted_at = now() WHERE id = (SELECT min(id) FROM customers)`); err != nil {
		t.Fatal(err)
	}
	id, err = SampleCustomerID(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if count(t, conn, `SELECT count(*) FROM customers WHERE id = $1 AND deleted_at IS NULL`, id) != 1 {
		t.Errorf("customer %d is soft-deleted", id)
	}
	if _, err := conn.Exec(ctx, `UPDATE customers SET deleted_at = now() WHERE id = (SELECT max(id) FROM customers)`); err != nil {
		t.Fatal(err)
	}
	newest, err := NewestCustomerIDs(ctx, conn, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := count(t, conn, `SELECT max(id) FROM customers WHERE deleted_at IS NULL`); len(newest) != 3 || newest[0] != want || newest[1] >= newest[0] {
		t.Errorf("newest customers %v, want 3 from %d down", newest, want)
	}
}

// TestSeedSpeed seeds the default scale and logs the rate.
func TestSeedSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100000 rows")
	}
	conn := newDB(t)
	start := time.Now()
	rows := seed(t, conn, Options{Scale: 100000})
	d := time.Since(start)
	t.Logf("Seed at Scale 100000: %d rows in %s, %.0f rows/s", rows, d.Round(time.Millisecond), float64(rows)/d.Seconds())
}

func BenchmarkSeed(b *testing.B) {
	var rows int64
	var spent time.Duration
	for range b.N {
		b.StopTimer()
		conn := newDB(b)
		b.StartTimer()
		start := time.Now()
		rows += seed(b, conn, Options{Scale: 100000})
		spent += time.Since(start)
	}
	b.ReportMetric(float64(rows)/spent.Seconds(), "rows/s")
}

// TestTrafficActions runs each kind of transaction once, in the order of
// Traffic's first round, and checks that each changes rows by itself
// (rather than falling back to an event burst).
func TestTrafficActions(t *testing.T) {
	conn := newDB(t)
	seed(t, conn, Options{Scale: 2000, Seed: 1})
	ctx := context.Background()
	tr, err := newTraffic(ctx, conn, new(TrafficStats))
	if err != nil {
		t.Fatal(err)
	}
	// Some kinds need a row in some state, which earlier ones may have
	// used up in this small database.
	needs := map[string]string{
		"pay order":             "SELECT count(*) FROM orders WHERE status = 'pending'",
		"cancel order":          "SELECT count(*) FROM orders WHERE status = 'pending'",
		"ship order":            "SELECT count(*) FROM orders WHERE status = 'paid'",
		"deliver order":         "SELECT count(*) FROM orders WHERE status = 'shipped'",
		"refund order":          "SELECT count(*) FROM orders WHERE status = 'delivered'",
		"purge cancelled order": "SELECT count(*) FROM orders WHERE status = 'cancelled'",
		"restore customer":      "SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL",
		"close ticket":          "SELECT count(*) FROM support_tickets WHERE status <> 'closed'",
	}
	for seed := uint64(1); seed <= 3; seed++ {
		tr.g = newGen(seed)
		for _, a := range trafficActions {
			if q, ok := needs[a.name]; ok && count(t, conn, q) == 0 {
				t.Logf("generator seed %d: %s has nothing to work on", seed, a.name)
				continue
			}
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			x := &txn{Tx: tx}
			if err := a.run(tr, ctx, x); err != nil {
				t.Fatalf("%s: %v", a.name, err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("%s: %v", a.name, err)
			}
			if !x.changed() {
				t.Errorf("generator seed %d: %s changed nothing", seed, a.name)
			}
		}
	}
}
