package transform

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
)

// TestJSONAsDeepAsPostgreSQLAccepts asks a real PostgreSQL how deep a
// jsonb value it accepts (with max_stack_depth as high as the server's
// stack allows, which any superuser may set), stores the deepest one with
// an email at the bottom, reads it back as pgoutput would send it (text),
// and masks it: a value PostgreSQL accepts must never stop pgveil (issue
// 17, finding 6). Before, pgveil refused anything over 10000 levels while
// PostgreSQL 15 accepts 12000 with its defaults.
func TestJSONAsDeepAsPostgreSQLAccepts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := pgtest.New(t, pgtest.Options{})
	conn := pgtest.Connect(t, c.DSN("postgres"))
	// As high as this server allows: PostgreSQL refuses a setting within
	// ~512kB of the stack's rlimit.
	for _, v := range []string{"64MB", "32MB", "15MB", "7MB", "6MB", "3MB"} {
		if _, err := conn.Exec(ctx, "SET max_stack_depth = '"+v+"'"); err == nil {
			t.Logf("max_stack_depth = %s", v)
			break
		}
	}
	inner := `{"email": "alice@corp.com", "n": 5}`
	// accepts reports whether PostgreSQL accepts inner under depth
	// containers, and keeps the value as PostgreSQL prints it.
	var stored string
	accepts := func(depth int, open, close string) bool {
		err := conn.QueryRow(ctx, `SELECT (repeat($1, $3) || $4 || repeat($2, $3))::jsonb::text`, open, close, depth, inner).Scan(&stored)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "54001" { // stack_depth_limit_exceeded
			return false
		}
		if err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		return true
	}
	if !accepts(12000, "[", "]") {
		t.Fatal("PostgreSQL refuses 12000 levels: the premise of this test is wrong")
	}
	for _, shape := range []struct{ name, open, close string }{
		{"arrays", "[", "]"},
		{"objects", `{"k": `, "}"},
	} {
		// The deepest accepted, by bisection.
		lo, hi := 12000, 12000
		for accepts(hi, shape.open, shape.close) {
			lo, hi = hi, hi*2
			if hi > 4_000_000 {
				t.Fatalf("%s: PostgreSQL accepts over %d levels; raise the bound", shape.name, lo)
			}
		}
		for hi-lo > 1 {
			if mid := (lo + hi) / 2; accepts(mid, shape.open, shape.close) {
				lo = mid
			} else {
				hi = mid
			}
		}
		// At the edge, how much stack a query has left varies by a few
		// frames from one run of it to the next: step down to a depth
		// accepted now, keeping the value as PostgreSQL printed it.
		depth := lo
		for !accepts(depth, shape.open, shape.close) {
			if depth--; depth < lo-1000 {
				t.Fatalf("%s: PostgreSQL accepted %d levels once, then nothing within 1000 under it", shape.name, lo)
			}
		}
		t.Logf("%s: PostgreSQL accepts %d levels around the inner object, not %d", shape.name, depth, hi)
		k := testKeys(t, pgtest.Secret)
		tr := jsonOf(t, k, "jsonb", at("$..email", "fake", Args{"kind": "email"}), at("$..n", "drop", nil), at("$.zzz", "hash", nil))
		out, err := veilRun(tr, stored)
		if err != nil {
			t.Fatalf("%s: masking %d levels: %v", shape.name, depth, err)
		}
		masked := string(out.Text)
		fakeEmail := apply(t, build(t, k, "text", Rule{Name: "fake", Args: Args{"kind": "email"}}), "alice@corp.com")
		want := strings.Repeat(shape.open, depth) + `{"email": "` + fakeEmail + `"}` + strings.Repeat(shape.close, depth)
		if masked != want {
			t.Fatalf("%s: masked %d levels: output differs from the expected (%d bytes, want %d)", shape.name, depth, len(masked), len(want))
		}
		// And the replica accepts what pgveil writes.
		var same bool
		if err := conn.QueryRow(ctx, `SELECT $1::jsonb = $2::jsonb`, masked, want).Scan(&same); err != nil || !same {
			t.Fatalf("%s: PostgreSQL reads the masked value back: %v, %v", shape.name, same, err)
		}
	}
}
