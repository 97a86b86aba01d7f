package source

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/internal/rulestest"
)

// problemWith returns the problem of table whose message holds every one
// of parts, failing the test when there is none.
func problemWith(t *testing.T, ps []Problem, table string, parts ...string) {
	t.Helper()
	for _, p := range ps {
		if p.Table != table {
			continue
		}
		ok := true
		for _, s := range parts {
			ok = ok && strings.Contains(p.Msg, s)
		}
		if ok {
			return
		}
	}
	t.Errorf("no problem of %q holding %q in:\n%s", table, parts, problemLines(ps))
}

func noProblemWith(t *testing.T, ps []Problem, part string) {
	t.Helper()
	for _, p := range ps {
		if strings.Contains(p.Msg, part) {
			t.Errorf("unexpected problem: %s", p)
		}
	}
}

func TestCheckTablesAndRole(t *testing.T) {
	t.Parallel()
	c := shared.Get(t)
	admin := pgtest.Connect(t, c.DSN("postgres"))
	const role = "pgveil_check_app"
	pgtest.MustExec(t, admin, "CREATE ROLE "+role+" LOGIN NOSUPERUSER NOREPLICATION")
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })

	conn, dsn := shared.NewDBWith(t, `
CREATE TABLE public.events (at timestamptz, payload text);
CREATE TABLE public.quiet (id int PRIMARY KEY, v text);
ALTER TABLE public.quiet REPLICA IDENTITY NOTHING;
CREATE TABLE public.fine (id int PRIMARY KEY, v text);
CREATE TABLE public.gone (id int PRIMARY KEY);
CREATE TABLE public.mine (id int PRIMARY KEY);
ALTER TABLE public.mine OWNER TO `+role+`;
CREATE TABLE public.full_events (at timestamptz, payload text);
ALTER TABLE public.full_events REPLICA IDENTITY FULL;
ALTER TABLE public.full_events OWNER TO `+role+`;
`)
	plan := rulestest.Compile(t, readAll(t, conn), `
  events: {columns: {at: keep, payload: drop}}
  quiet: {columns: {id: keep, v: keep}}
  fine: {columns: {id: keep, v: keep}}
  gone: {columns: {id: keep}}
  mine: {columns: {id: keep}}
  full_events: {columns: {at: keep, payload: keep}}
`)
	pgtest.MustExec(t, conn, "DROP TABLE public.gone")

	appConn := pgtest.ConnectAs(t, dsn, role)
	srv := readServer(t, appConn)
	if srv.User != role || srv.IsSuperuser || srv.HasReplication || srv.WalLevel != "logical" || srv.Version < 150000 || srv.Database == "" {
		t.Errorf("server = %+v", srv)
	}
	cat := readAll(t, appConn)
	ps := Check(srv, cat, plan, false)
	problemWith(t, ps, "", `role pgveil_check_app has no REPLICATION attribute: ALTER ROLE pgveil_check_app REPLICATION`)
	problemWith(t, ps, "public.events", "no primary key and REPLICA IDENTITY DEFAULT", "UPDATE and DELETE cannot be replicated", "ALTER TABLE public.events REPLICA IDENTITY FULL")
	problemWith(t, ps, "public.quiet", "REPLICA IDENTITY NOTHING", "would fail in production")
	problemWith(t, ps, "public.gone", "table not found in the source database")
	// Owning the tables is not a prerequisite: EnsurePublication asks the
	// owner to run its statements when it cannot (TestPublicationByOwner).
	noProblemWith(t, ps, "own")
	for _, p := range ps {
		if p.Table == "public.fine" || p.Table == "public.mine" || p.Table == "public.full_events" {
			t.Errorf("unexpected problem: %s", p)
		}
	}
	noProblemWith(t, ps, "wal_level")
	noProblemWith(t, ps, "replication slot")
	noProblemWith(t, ps, "max_wal_senders")

	// As the superuser, the same catalog has no role or ownership problems.
	ps = Check(readServer(t, conn), readAll(t, conn), plan, false)
	noProblemWith(t, ps, "REPLICATION attribute")
	noProblemWith(t, ps, "does not own")
	problemWith(t, ps, "public.events", "no primary key")
	if len(ps) != 3 {
		t.Errorf("superuser: %d problems, want 3 (events, quiet, gone):\n%s", len(ps), problemLines(ps))
	}
}

// A second cluster, without logical WAL, wal senders or free slots.
func TestCheckServerSettings(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t, pgtest.Options{Settings: map[string]string{
		"wal_level":             "replica",
		"max_replication_slots": "1",
		"max_wal_senders":       "0",
	}})
	conn := pgtest.Connect(t, c.DSN("postgres"))
	pgtest.MustExec(t, conn, "SELECT pg_create_physical_replication_slot('taken')")
	srv := readServer(t, conn)
	if srv.WalLevel != "replica" || srv.MaxReplicationSlots != 1 || srv.UsedSlots != 1 || srv.MaxWalSenders != 0 || !srv.IsSuperuser || !srv.HasReplication {
		t.Fatalf("server = %+v", srv)
	}
	ps := Check(srv, nil, nil, false)
	problemWith(t, ps, "", `wal_level is "replica": set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL`)
	problemWith(t, ps, "", "no free replication slot (max_replication_slots = 1, 1 used)", "SELECT slot_name FROM pg_replication_slots WHERE NOT active")
	problemWith(t, ps, "", "max_wal_senders = 0", "restart")
	if len(ps) != 3 {
		t.Errorf("%d problems, want 3:\n%s", len(ps), problemLines(ps))
	}
	// pgveil's own slot already exists: no slot is needed.
	ps = Check(srv, nil, nil, true)
	noProblemWith(t, ps, "replication slot")
	if len(ps) != 2 {
		t.Errorf("%d problems, want 2:\n%s", len(ps), problemLines(ps))
	}
}

func TestCheckOldServer(t *testing.T) {
	srv := &Server{Version: 90624, WalLevel: "logical", MaxReplicationSlots: 10, MaxWalSenders: 10, IsSuperuser: true, User: "postgres"}
	ps := Check(srv, nil, nil, false)
	if len(ps) != 1 {
		t.Fatalf("problems:\n%s", problemLines(ps))
	}
	problemWith(t, ps, "", "PostgreSQL 9.6.24 is older than 10: logical replication is not supported")
	srv.Version = 150004
	if ps := Check(srv, nil, nil, false); len(ps) != 0 {
		t.Errorf("problems:\n%s", problemLines(ps))
	}
	if s := (&Server{Version: 150004}).VersionString(); s != "15.4" {
		t.Errorf("VersionString = %s", s)
	}
	if s := fmt.Sprint(Problem{Table: "public.t", Msg: "m"}); s != "public.t: m" {
		t.Errorf("Problem = %s", s)
	}
}
