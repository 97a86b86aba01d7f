package replicate

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/replicate/source"
)

// gatedCopy starts pgveil with one copy worker on a schema whose table big
// is copied in several chunks, each held at an advisory-lock gate; it
// returns once the first chunk of big waits at the gate, with a function
// that opens the gate.
func gatedCopy(t *testing.T, extraRules string) (e *e2e, open func()) {
	t.Helper()
	e = newE2E(t, `
CREATE TABLE big (id int PRIMARY KEY, v text, n int);
INSERT INTO big SELECT g, repeat('b', 40) || g, g FROM generate_series(1, 20000) g;
DELETE FROM big WHERE id % 3 = 0;
-- Marked IMMUTABLE (a lie, for the test): a where must be deterministic.
CREATE FUNCTION gate(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared(4343); RETURN true; END $$;`,
		`  big:
    where: "public.gate(id) AND id > 0"
    columns: {id: keep, v: keep, n: keep}
`+extraRules)
	ctx := context.Background()
	gate := pgtest.Connect(t, e.srcDSN)
	if _, err := gate.Exec(ctx, `SELECT pg_advisory_lock(4343)`); err != nil {
		t.Fatal(err)
	}
	e.workers = 1
	e.start()
	e.eventually("the copy of big waiting at the gate", func() (bool, string) {
		var waiting int
		err := e.src.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND datname = current_database()`).Scan(&waiting)
		return err == nil && waiting > 0, fmt.Sprintf("waiting %d, err %v", waiting, err)
	})
	return e, func() {
		if _, err := gate.Exec(ctx, `SELECT pg_advisory_unlock(4343)`); err != nil {
			t.Fatal(err)
		}
	}
}

// ddlBetweenChunks runs ddl on production while the first chunk of big is
// held (it waits for that chunk's lock and runs before the next chunk),
// then lets the copy go on and returns ddl's error.
func ddlBetweenChunks(t *testing.T, e *e2e, open func(), ddl string) error {
	t.Helper()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, e.srcDSN)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `SET application_name = 'pgveil_attack_ddl'; SET lock_timeout = '120s'; `+ddl)
		done <- err
	}()
	e.eventually("the DDL waiting for the chunk under way", func() (bool, string) {
		var n int
		err := e.src.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgveil_attack_ddl' AND wait_event_type = 'Lock' AND wait_event = 'relation'`).Scan(&n)
		return err == nil && n > 0, "not waiting yet"
	})
	open()
	return <-done
}

// Rewrites and rewrite-free DDL between two chunks of big: the replica
// ends equal to the masked source and pgveil keeps running.
func TestAttackCopyDDLBetweenChunks(t *testing.T) {
	for _, c := range []struct{ name, ddl, after string }{
		{"truncate", `TRUNCATE big`, `INSERT INTO big SELECT g, 'after' || g, g FROM generate_series(1, 50) g`},
		{"truncate-refill", `BEGIN; TRUNCATE big; INSERT INTO big SELECT g, 'x' || g, -g FROM generate_series(1, 9000) g; COMMIT`, ``},
		{"cluster", `CLUSTER big USING big_pkey`, ``},
		{"alter-type", `ALTER TABLE big ALTER COLUMN n TYPE bigint`, `UPDATE big SET n = n * 10 WHERE id < 100`},
		{"volatile-default", `ALTER TABLE big ADD COLUMN r float8 DEFAULT random()`, ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, open := gatedCopy(t, "")
			if err := ddlBetweenChunks(t, e, open, c.ddl); err != nil {
				t.Fatalf("%s: %v", c.ddl, err)
			}
			if c.after != "" {
				e.exec(c.after)
			}
			e.sync()
			e.verify()
			if !strings.Contains(e.logs.String(), "production rewrote a table while it was being copied") {
				t.Errorf("the rewrite went unnoticed")
			}
		})
	}
}

// A ruled column dropped, and the table renamed, between two chunks:
// pgveil plans again and keeps running (the rules then name what no longer
// exists, which pgveil reports).
func TestAttackCopyDropColumnBetweenChunks(t *testing.T) {
	e, open := gatedCopy(t, "")
	if err := ddlBetweenChunks(t, e, open, `ALTER TABLE big DROP COLUMN v`); err != nil {
		t.Fatal(err)
	}
	e.rulesYML = "  big:\n    where: \"public.gate(id) AND id > 0\"\n    columns: {id: keep, n: keep}\n  pgveil_marker:\n    columns: {id: keep, n: keep}\n"
	// The rules follow production, as its team would after the migration.
	e.eventually("a reload with the new rules", func() (bool, string) {
		err := e.p.Reload(context.Background(), e.config())
		return err == nil, fmt.Sprint(err)
	})
	e.exec(`UPDATE big SET n = -n WHERE id < 50`)
	e.sync()
	e.verify()
}

// Under column_lists, with the triggers installed, migrations wrapped in
// savepoints that roll back, and a failing ALTER caught in a savepoint,
// run under traffic: the publication comes out as before and the replica
// ends equal to the masked source.
func TestAttackMigTriggersSavepointsUnderTraffic(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, score int, note text, secret text);
INSERT INTO people SELECT g, 'p' || g || '@example.com', g, 'n' || g, 'CANARY-' || g FROM generate_series(1, 2000) g;`,
		`  people:
    columns: {id: keep, email: {hash: {}}, score: keep, note: keep, secret: drop}
`)
	e.mode = "column_lists"
	e.exec(source.MigrationTriggersSQL("p1"))
	e.start()
	e.sync()
	stopTraffic := e.loop(`UPDATE people SET score = score + 1, note = 'u' || $1::int WHERE id = $2`, func(i int) []any { return []any{i, 1 + i%2000} })
	conn := pgtest.Connect(t, e.srcDSN)
	run := func(sql string, wantErr bool) {
		t.Helper()
		_, err := conn.Exec(context.Background(), sql)
		if (err != nil) != wantErr {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	run(`BEGIN`, false)
	run(`SAVEPOINT a`, false)
	run(`ALTER TABLE people DROP COLUMN note`, false)
	run(`UPDATE people SET score = 0 WHERE id = 7`, false)
	run(`ROLLBACK TO a`, false)
	run(`ALTER TABLE people ALTER COLUMN score TYPE bigint`, false)
	run(`SAVEPOINT b`, false)
	run(`ALTER TABLE people DROP COLUMN note, DROP COLUMN nosuch`, true)
	run(`ROLLBACK TO b`, false)
	run(`UPDATE people SET score = score * 2 WHERE id <= 100`, false)
	run(`COMMIT`, false)
	if err := stopTraffic(); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.verify()
	var attnames string
	if err := e.src.QueryRow(context.Background(), `SELECT array_to_string(attnames, ',') FROM pg_publication_tables WHERE pubname = 'p1' AND tablename = 'people'`).Scan(&attnames); err != nil || strings.Contains(attnames, "secret") || !strings.Contains(attnames, "note") {
		t.Errorf("people's column list after the migration: %q (%v)", attnames, err)
	}
}

// Under column_lists, a role without any privilege on people forges the
// setting the back trigger trusts, and through its SQL injection (run as
// the functions' superuser owner) publishes people whole, secret included.
// The replica must never see the secret; production's publication must
// stay as pgveil made it.
func TestAttackMigTriggersForgedSettingPublishesSecret(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, secret text);
CREATE TABLE other (id int PRIMARY KEY, v text);
INSERT INTO people SELECT g, 'p' || g || '@example.com', 'CANARY-' || g FROM generate_series(1, 200) g;`,
		`  people:
    columns: {id: keep, email: {hash: {}}, secret: drop}
`)
	e.mode = "column_lists"
	e.exec(source.MigrationTriggersSQL("p1"))
	e.start()
	e.sync()
	role := fmt.Sprintf("pgveil_atk_e2e_%d", time.Now().UnixNano())
	e.exec(fmt.Sprintf(`CREATE ROLE %s LOGIN`, role))
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = e.src.Exec(ctx, fmt.Sprintf(`DROP OWNED BY %s`, role))
		_, _ = e.src.Exec(ctx, fmt.Sprintf(`DROP ROLE %s`, role))
	})
	var otherOID uint32
	if err := e.src.QueryRow(context.Background(), `SELECT 'other'::regclass::oid`).Scan(&otherOID); err != nil {
		t.Fatal(err)
	}
	ac := pgtest.ConnectAs(t, e.srcDSN, role)
	forged := fmt.Sprintf(`[{"oid": %d, "qual": "true); ALTER PUBLICATION p1 DROP TABLE public.other; ALTER PUBLICATION p1 SET TABLE public.people, public.pgveil_marker; SELECT (1"}]`, otherOID)
	_, err1 := ac.Exec(context.Background(), `SET pgveil.publication_aside = '`+strings.ReplaceAll(forged, "'", "''")+`'`)
	_, err2 := ac.Exec(context.Background(), `CREATE TEMP TABLE scratch (a int); ALTER TABLE scratch ADD COLUMN b int`)
	t.Logf("forging: %v, %v", err1, err2)
	columnList := func() string {
		var published string
		if err := e.src.QueryRow(context.Background(), `SELECT coalesce(array_to_string(attnames, ','), '') FROM pg_publication_tables WHERE pubname = 'p1' AND tablename = 'people'`).Scan(&published); err != nil {
			t.Fatal(err)
		}
		return published
	}
	// The injection itself is TestAttackMigrationForgedAsideSetting's
	// bug; here: what pgveil makes of it.
	t.Logf("people's column list right after the forged setting: %q", columnList())
	e.exec(`INSERT INTO people VALUES (9001, 'x@example.com', 'CANARY-after')`)
	e.sync()
	e.verify()
	var leaked int
	if err := e.dst.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns WHERE table_name = 'people' AND column_name = 'secret'`).Scan(&leaked); err != nil || leaked != 0 {
		t.Errorf("BUG: secret reached the replica (%d, %v)", leaked, err)
	}
	// BUG: pgveil never narrows the widened column list again: the secret
	// keeps flowing to pgveil over the replication connection.
	e.eventually("pgveil repairing its publication", func() (bool, string) {
		l := columnList()
		return !strings.Contains(l, "secret"), l
	})
}

// The table renamed between two chunks of its copy: pgveil plans again and
// keeps running; with the rules renamed too, the replica ends equal to the
// masked source.
func TestAttackCopyRenameBetweenChunks(t *testing.T) {
	e, open := gatedCopy(t, "")
	if err := ddlBetweenChunks(t, e, open, `ALTER TABLE big RENAME TO big2`); err != nil {
		t.Fatal(err)
	}
	e.rulesYML = "  big2:\n    where: \"public.gate(id) AND id > 0\"\n    columns: {id: keep, v: keep, n: keep}\n  pgveil_marker:\n    columns: {id: keep, n: keep}\n"
	e.eventually("a reload with the new rules", func() (bool, string) {
		err := e.p.Reload(context.Background(), e.config())
		return err == nil, fmt.Sprint(err)
	})
	e.exec(`UPDATE big2 SET n = -n WHERE id < 50`)
	e.sync()
	e.verify()
}
