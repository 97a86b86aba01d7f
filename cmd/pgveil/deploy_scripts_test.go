package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/replicate"
)

// TestComposeInitScripts does what docker compose up does to the
// databases, without Docker: the init scripts of examples/deploy run on
// two clusters of their own (their roles, pgveil and metabase_ro, belong
// to the cluster) as the postgres image runs them, as the superuser over
// psql with POSTGRES_DB; then pgveil runs as the roles they made, with the
// stack's rules (examples/saas/pgveil.yaml), and the reader and one tenant
// read the replica.
func TestComposeInitScripts(t *testing.T) {
	ctx := context.Background()
	prodC, anC := pgtest.New(t, pgtest.Options{}), pgtest.New(t, pgtest.Options{})
	bin, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	// Each script runs after what comes before it in the image's
	// /docker-entrypoint-initdb.d (pre, in the database).
	initScript := func(c *pgtest.Cluster, db, pre, script string, env ...string) {
		t.Helper()
		if err := pgtest.Exec(ctx, c.DSN("postgres"), `CREATE DATABASE `+db); err != nil {
			t.Fatal(err)
		}
		if pre != "" {
			if err := pgtest.Exec(ctx, c.DSN(db), pre); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("bash", script)
		cmd.Env = append(os.Environ(), append(env, "PATH="+bin+":"+os.Getenv("PATH"), "PGHOST=127.0.0.1",
			"PGPORT="+strconv.Itoa(c.Port), "POSTGRES_USER=postgres", "POSTGRES_DB="+db)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	schema, err := os.ReadFile("../../examples/saas/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	// 10-schema.sql (and some rows), then 20-pgveil-role.sh, as the compose
	// file mounts them.
	initScript(prodC, "app", string(schema)+`
INSERT INTO accounts (name, plan, country) SELECT 'Tenant ' || g, 'team', 'DE' FROM generate_series(1, 5) g;
INSERT INTO customers (account_id, email, full_name) SELECT 1 + g % 5, 'c' || g || '@mail.example', 'Person ' || g FROM generate_series(1, 50) g;`,
		"../../examples/deploy/production-init.sh", "PGVEIL_SOURCE_PASSWORD=src-pw")
	initScript(anC, "analytics", "", "../../examples/deploy/analytics-init.sh", "PGVEIL_TARGET_PASSWORD=w-pw", "METABASE_RO_PASSWORD=r-pw")

	abs, err := filepath.Abs("../../examples/saas/pgveil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, dir: t.TempDir(), srcDSN: asRole(prodC.DSN("app"), "pgveil"), dstDSN: asRole(anC.DSN("analytics"), "pgveil"), config: abs}
	if s.src, err = pgx.Connect(ctx, prodC.DSN("app")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.src.Close(context.Background()) })
	if s.dst, err = replicate.ConnectTarget(ctx, anC.DSN("analytics")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.dst.Close(context.Background()) })
	p := s.start()
	s.sync(p)
	s.verify()
	s.exec(`INSERT INTO accounts (name, plan, country) VALUES ('Late', 'free', 'FR')`)
	s.sync(p)

	rd := pgtest.Connect(t, asRole(anC.DSN("analytics"), "metabase_ro"))
	var customers int
	if err := rd.QueryRow(ctx, `SELECT count(*) FROM public.customers`).Scan(&customers); err != nil || customers != 50 {
		t.Errorf("metabase_ro: %d customers (%v), want 50", customers, err)
	}
	// pgveil created a role per account, the late one too, each reading
	// its own customers.
	var roles, accounts, mine int
	if err := s.dst.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_roles WHERE starts_with(rolname, 'tenant_')), (SELECT count(*) FROM public.accounts)`).Scan(&roles, &accounts); err != nil || roles != accounts || accounts < 6 {
		t.Errorf("tenant roles: %d for %d accounts (%v)", roles, accounts, err)
	}
	err = pgx.BeginFunc(ctx, s.dst, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL ROLE tenant_2`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM public.customers`).Scan(&mine)
	})
	if err != nil || mine != 10 {
		t.Errorf("as tenant_2: %d customers (%v), want 10", mine, err)
	}
	if out := p.Output(); strings.Contains(out, `"level":"ERROR"`) {
		t.Errorf("pgveil logged errors:\n%s", out)
	}
}
