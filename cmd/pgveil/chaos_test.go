package main

import (
	"context"
	"errors"
	"flag"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/process"
	"pgveil/replicate"
	"pgveil/schema"
)

// chaosIterations is how many faults TestChaos injects; the short run is
// CI's, -chaos.iterations=200 the long one (RELIABILITY.md).
var chaosIterations = flag.Int("chaos.iterations", 10, "faults TestChaos injects while production changes")

// chaosFault is one kind of fault TestChaos injects.
type chaosFault string

const (
	faultKill            chaosFault = "kill -9 pgveil"
	faultRestartProd     chaosFault = "restart production"
	faultRestartAnalytic chaosFault = "restart analytics"
	faultReadOnly        chaosFault = "analytics refuses writes"
)

// TestChaos runs pgveil while production changes and, at random moments
// (during the initial copy, inside a batch, between a target commit and
// the acknowledgement), kills it with SIGKILL, restarts either server, or
// makes the analytics database refuse writes for a while; pgveil is
// started again after each kill. At the end the replica must equal the
// re-masked source, table by table: nothing missing, extra or different.
func TestChaos(t *testing.T) {
	s := newSite(t)
	ctx, stopTraffic := context.WithCancel(context.Background())
	traffic := make(chan error, 1)
	go func() { traffic <- s.trafficThroughFaults(ctx) }()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	injected := map[chaosFault]int{}
	var p *process.Process
	var logs strings.Builder // the output of every process killed
	for i := range *chaosIterations {
		if p == nil {
			p = s.start()
		}
		time.Sleep(time.Duration(200+rng.IntN(1800)) * time.Millisecond)
		select {
		case <-p.Done():
			t.Fatalf("iteration %d: pgveil exited on its own: %v\n%s", i, p.Err(), tail(p.Output(), 30))
		default:
		}
		fault := faultKill
		switch n := rng.IntN(10); {
		case n == 6:
			fault = faultRestartProd
		case n == 7:
			fault = faultRestartAnalytic
		case n == 8:
			fault = faultReadOnly
		}
		if i == 0 {
			fault = faultKill // the first falls in or near the initial copy
		}
		injected[fault]++
		switch fault {
		case faultKill:
			if err := p.Kill(); err != nil {
				t.Fatal(err)
			}
			<-p.Done()
			logs.WriteString(p.Output())
			p = nil
		case faultRestartProd:
			if err := clusters.Source.Get(t).Restart(ctx); err != nil {
				t.Fatalf("restarting production: %v", err)
			}
		case faultRestartAnalytic:
			if err := clusters.Target.Get(t).Restart(ctx); err != nil {
				t.Fatalf("restarting analytics: %v", err)
			}
		case faultReadOnly:
			s.refuseWrites(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
		}
		t.Logf("iteration %d: %s", i, fault)
	}
	stopTraffic()
	if err := <-traffic; err != nil {
		t.Fatal(err)
	}
	if p == nil {
		p = s.start()
	}
	s.reconnect()
	s.sync(p)
	s.verify()
	logs.WriteString(p.Output())
	s.noCanary("the logs", logs.String())
	t.Logf("faults injected: %v; big transactions applied as they streamed: %d, at their commit instead: %d", injected,
		strings.Count(logs.String(), "a big transaction applied as it streamed"),
		strings.Count(logs.String(), "is applied at its commit instead of as it arrives"))
}

// reconnect opens the test's own connections again after a restart.
func (s *site) reconnect() {
	s.t.Helper()
	ctx := context.Background()
	var err error
	if s.src.Ping(ctx) != nil {
		s.src.Close(ctx)
		if s.src, err = pgx.Connect(ctx, s.srcDSN); err != nil {
			s.t.Fatal(err)
		}
	}
	if s.dst.Ping(ctx) != nil {
		s.dst.Close(ctx)
		if s.dst, err = replicate.ConnectTarget(ctx, s.dstDSN); err != nil {
			s.t.Fatal(err)
		}
	}
}

// refuseWrites makes the analytics database read-only for d: new
// transactions there are read-only and pgveil's sessions are ended, so
// that its next writes fail until the setting is lifted.
func (s *site) refuseWrites(d time.Duration) {
	s.t.Helper()
	s.reconnect()
	ctx := context.Background()
	var db string
	if err := s.dst.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		s.t.Fatal(err)
	}
	ident := schema.QuoteIdent(db)
	for _, q := range []string{
		"ALTER DATABASE " + ident + " SET default_transaction_read_only = on",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
	} {
		if _, err := s.dst.Exec(ctx, q); err != nil {
			s.t.Fatalf("analytics: %v", err)
		}
	}
	time.Sleep(d)
	if _, err := s.dst.Exec(ctx, "ALTER DATABASE "+ident+" RESET default_transaction_read_only"); err != nil {
		s.t.Fatalf("analytics: %v", err)
	}
}

// trafficThroughFaults is traffic that reconnects when production
// restarts; a statement cut by a restart may or may not have committed,
// which is the point: the replica must follow what production holds.
func (s *site) trafficThroughFaults(ctx context.Context) error {
	for ctx.Err() == nil {
		err := s.traffic(ctx)
		if err == nil {
			return nil
		}
		if !connectionLost(err) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// connectionLost: the error is production going away or not yet back.
func connectionLost(err error) bool {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		code := pe.SQLState()
		return strings.HasPrefix(code, "57P") || strings.HasPrefix(code, "08") // admin shutdown, cannot connect now; connection exceptions
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "unexpected EOF", "connection reset", "broken pipe", "no such file", "closed", "shutting down", "failed to connect"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// tail is the last n lines of a log.
func tail(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
