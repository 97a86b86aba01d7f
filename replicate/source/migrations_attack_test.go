package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/internal/pgtest"
)

// attackDB makes a database with the triggers installed on publication pv.
func attackDB(t *testing.T, schema string) (*pgx.Conn, string) {
	t.Helper()
	conn, dsn := shared.NewDBWith(t, schema)
	pgtest.MustExec(t, conn, MigrationTriggersSQL("pv"))
	return conn, dsn
}

func sqlState(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code + " " + pe.Message
	}
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return ""
}

// attackRole creates a cluster-wide login role with a unique name, dropped
// at the end of the test.
func attackRole(t *testing.T, conn *pgx.Conn, prefix string) string {
	t.Helper()
	role := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	pgtest.MustExec(t, conn, fmt.Sprintf(`CREATE ROLE %s LOGIN; GRANT CREATE, USAGE ON SCHEMA public TO %s`, role, role))
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = conn.Exec(ctx, fmt.Sprintf(`ALTER ROLE %s NOSUPERUSER`, role))
		_, _ = conn.Exec(ctx, fmt.Sprintf(`DROP OWNED BY %s`, role))
		_, _ = conn.Exec(ctx, fmt.Sprintf(`DROP ROLE %s`, role))
	})
	return role
}

// A savepoint rolled back after an aside (the ALTER done, then undone)
// and a caught failing ALTER leave the publication as it was at commit.
func TestAttackMigrationSavepoints(t *testing.T) {
	conn, _ := attackDB(t, `
CREATE TABLE people (id int PRIMARY KEY, email text, score int, secret text);
CREATE TABLE people_archive (id int PRIMARY KEY, email text, secret text);
CREATE PUBLICATION pv FOR TABLE ONLY people (id, email, score) WHERE (id > 0), ONLY people_archive (id, email);`)
	want := publishedTables(t, conn, "pv")
	// One statement at a time, as psql sends a migration file.
	for _, sql := range []string{`BEGIN`, `SAVEPOINT a`, `ALTER TABLE people DROP COLUMN email`, `ROLLBACK TO a`,
		`ALTER TABLE people ALTER COLUMN score TYPE bigint`, `SAVEPOINT b`} {
		if c := sqlState(t, conn, sql); c != "" {
			t.Fatalf("%s: %s", sql, c)
		}
	}
	if c := sqlState(t, conn, `ALTER TABLE people DROP COLUMN email, DROP COLUMN nosuch`); !strings.HasPrefix(c, "42703") {
		t.Fatalf("failing ALTER in a savepoint: %q", c)
	}
	pgtest.MustExec(t, conn, `ROLLBACK TO b`)
	pgtest.MustExec(t, conn, `COMMIT`)
	for _, sql := range []string{
		`DO $$ BEGIN BEGIN ALTER TABLE people DROP COLUMN email, DROP COLUMN nosuch; EXCEPTION WHEN undefined_column THEN NULL; END; END $$`,
		// people's name is a prefix of people_archive: only the named one moves.
		`ALTER TABLE people_archive DROP COLUMN secret`,
	} {
		if c := sqlState(t, conn, sql); c != "" {
			t.Fatalf("%s: %s", sql, c)
		}
	}
	got := publishedTables(t, conn, "pv")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("publication after savepoints: %v, want %v", got, want)
	}
	// The GUC does not survive the statement.
	var v string
	if err := conn.QueryRow(context.Background(), `SELECT coalesce(current_setting('pgveil.publication_aside', true), '')`).Scan(&v); err != nil || v != "" {
		t.Errorf("pgveil.publication_aside after the migrations: %q (%v)", v, err)
	}
}

// Two tables of the same name in two schemas: an ALTER of one (whose text
// names both by their bare name) leaves both published as before, and the
// unpublished column of the other stays unpublished.
func TestAttackMigrationSameNameTwoSchemas(t *testing.T) {
	conn, _ := attackDB(t, `
CREATE SCHEMA a; CREATE SCHEMA b;
CREATE TABLE a.t (id int PRIMARY KEY, x int, secret text);
CREATE TABLE b.t (id int PRIMARY KEY, y int, secret text);
CREATE PUBLICATION pv FOR TABLE ONLY a.t (id, x), ONLY b.t (id, y);`)
	if c := sqlState(t, conn, `ALTER TABLE a.t ALTER COLUMN x TYPE bigint`); c != "" {
		t.Fatal(c)
	}
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_publication_tables WHERE pubname = 'pv' AND 'secret' = ANY(attnames)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("secret published: %d (%v)", n, err)
	}
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_publication_tables WHERE pubname = 'pv'`).Scan(&n); err != nil || n != 2 {
		t.Errorf("published tables: %d (%v)", n, err)
	}
}

// A role with no privilege on the published table cannot change the
// publication through the triggers (its ALTER fails, the aside rolls back).
func TestAttackMigrationUnprivilegedAlter(t *testing.T) {
	conn, dsn := attackDB(t, `
CREATE TABLE people (id int PRIMARY KEY, email text, secret text);
CREATE PUBLICATION pv FOR TABLE ONLY people (id, email);`)
	role := attackRole(t, conn, "pgveil_atk_a")
	want := publishedTables(t, conn, "pv")
	ac := pgtest.ConnectAs(t, dsn, role)
	if c := sqlState(t, ac, `ALTER TABLE people DROP COLUMN email`); !strings.HasPrefix(c, "42501") {
		t.Errorf("unprivileged ALTER: %q, want 42501", c)
	}
	if got := publishedTables(t, conn, "pv"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("publication: %v, want %v", got, want)
	}
}

// The back trigger trusts pgveil.publication_aside, a placeholder setting
// every role may SET. A role with no privilege beyond creating a temporary
// table makes the SECURITY DEFINER function (owned by a superuser) publish
// an unpublished table with all its columns, and run SQL of its choosing.
func TestAttackMigrationForgedAsideSetting(t *testing.T) {
	conn, dsn := attackDB(t, `
CREATE TABLE people (id int PRIMARY KEY, email text, secret text);
CREATE TABLE secrets (id int PRIMARY KEY, secret text);
CREATE PUBLICATION pv FOR TABLE ONLY people (id, email);`)
	role := attackRole(t, conn, "pgveil_atk_b")
	var secretsOID uint32
	if err := conn.QueryRow(context.Background(), `SELECT 'secrets'::regclass::oid`).Scan(&secretsOID); err != nil {
		t.Fatal(err)
	}
	ac := pgtest.ConnectAs(t, dsn, role)
	// 1: publish a whole table that was never in the publication.
	forged := fmt.Sprintf(`[{"oid": %d, "attrs": null, "qual": null}]`, secretsOID)
	sqlState(t, ac, fmt.Sprintf(`SET pgveil.publication_aside = '%s'`, forged))
	sqlState(t, ac, `CREATE TEMP TABLE scratch (a int); ALTER TABLE scratch ADD COLUMN b int`)
	if got := publishedTables(t, conn, "pv"); got["secrets"] != "" {
		t.Errorf("BUG: an unprivileged role published table secrets (all columns) through the forged setting: %v", got)
	}
	// 2: SQL injection through "qual", run as the functions' owner.
	if publishedTables(t, conn, "pv")["secrets"] != "" {
		pgtest.MustExec(t, conn, `ALTER PUBLICATION pv DROP TABLE secrets`)
	}
	forged = fmt.Sprintf(`[{"oid": %d, "attrs": null, "qual": "true); ALTER ROLE %s SUPERUSER; SELECT (1"}]`, secretsOID, role)
	sqlState(t, ac, fmt.Sprintf(`SET pgveil.publication_aside = '%s'`, strings.ReplaceAll(forged, "'", "''")))
	c := sqlState(t, ac, `ALTER TABLE scratch ADD COLUMN c int`)
	var super bool
	if err := conn.QueryRow(context.Background(), `SELECT rolsuper FROM pg_roles WHERE rolname = $1`, role).Scan(&super); err != nil {
		t.Fatal(err)
	}
	if super {
		t.Errorf("BUG: an unprivileged role made itself superuser through the forged pgveil.publication_aside (ALTER: %q)", c)
	}
}

// The aside step saves the row filter as text and puts it back after the
// statement: a rename of the filter's column in a string (a migration
// file) that also drops something else fails, though it works without
// the triggers.
func TestAttackMigrationRenameFilteredColumn(t *testing.T) {
	conn, _ := shared.NewDBWith(t, `
CREATE TABLE people (id int PRIMARY KEY, email text, secret text);
CREATE TABLE other (id int PRIMARY KEY, junk text);
CREATE PUBLICATION pv FOR TABLE ONLY people (id, email) WHERE (id > 0);`)
	migration := `ALTER TABLE people RENAME COLUMN id TO person_id; ALTER TABLE other DROP COLUMN junk;`
	// Control: without the triggers PostgreSQL runs it.
	if c := sqlState(t, conn, `BEGIN; `+migration+` ROLLBACK;`); c != "" {
		t.Fatalf("without the triggers: %s", c)
	}
	pgtest.MustExec(t, conn, `ROLLBACK`)
	pgtest.MustExec(t, conn, MigrationTriggersSQL("pv"))
	if c := sqlState(t, conn, migration); c != "" {
		t.Errorf("BUG: a migration PostgreSQL runs fails with the triggers installed: %s", c)
	}
}

// Table names that begin or end with a character that is not a word
// character are never matched: the aside does nothing (the migration
// fails as without the triggers). Names with non-ASCII letters make the
// regular expression invalid.
func TestAttackMigrationOddTableNames(t *testing.T) {
	conn, _ := attackDB(t, `
CREATE TABLE people (id int PRIMARY KEY, email text, secret text);
CREATE TABLE "straße" (id int PRIMARY KEY, v text, secret text);
CREATE PUBLICATION pv FOR TABLE ONLY people (id, email), ONLY "straße" (id, v);`)
	// Any ALTER ... DROP in the database, on any table.
	pgtest.MustExec(t, conn, `CREATE TABLE unrelated (id int, junk text)`)
	if c := sqlState(t, conn, `ALTER TABLE unrelated DROP COLUMN junk`); c != "" {
		t.Errorf("BUG: an ALTER TABLE on a table outside the publication fails because a published table is named \"straße\": %s", c)
	}
	if c := sqlState(t, conn, `ALTER TABLE people DROP COLUMN email`); c != "" {
		t.Errorf("BUG: ALTER TABLE people DROP COLUMN email fails: %s", c)
	}
}

// Dropping a listed column of a partitioned table whose publication lists
// the root (publish_via_partition_root) or whose leaves are listed.
func TestAttackMigrationPartitioned(t *testing.T) {
	conn, _ := attackDB(t, `
CREATE TABLE ev (id int, at date, payload text, secret text) PARTITION BY RANGE (at);
CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE PUBLICATION pv FOR TABLE ev (id, at, payload) WITH (publish_via_partition_root = true);`)
	want := publishedTables(t, conn, "pv")
	if c := sqlState(t, conn, `ALTER TABLE ev ALTER COLUMN id TYPE bigint`); c != "" {
		t.Errorf("ALTER TYPE on the partitioned root: %s", c)
	}
	if c := sqlState(t, conn, `ALTER TABLE ev DROP COLUMN payload`); c != "" {
		t.Errorf("DROP COLUMN on the partitioned root: %s", c)
	}
	got := publishedTables(t, conn, "pv")
	if got["ev"] != "id,at | " || len(got) != len(want) {
		t.Errorf("publication after the migrations: %v (before %v)", got, want)
	}
}

// The aside step's lock is taken before PostgreSQL checks that the role
// may alter the table: a role without privileges cannot hold it past its
// statement.
func TestAttackMigrationUnprivilegedLock(t *testing.T) {
	conn, dsn := attackDB(t, `
CREATE TABLE people (id int PRIMARY KEY, email text, secret text);
CREATE PUBLICATION pv FOR TABLE ONLY people (id, email);`)
	role := attackRole(t, conn, "pgveil_atk_c")
	ac := pgtest.ConnectAs(t, dsn, role)
	sqlState(t, ac, `BEGIN`)
	sqlState(t, ac, `SAVEPOINT s`)
	sqlState(t, ac, `ALTER TABLE people DROP COLUMN email`)
	sqlState(t, ac, `ROLLBACK TO s`)
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.usename = $1 AND l.relation = 'people'::regclass`, role).Scan(&n); err != nil || n != 0 {
		t.Errorf("the unprivileged role holds %d locks on people (%v)", n, err)
	}
	sqlState(t, ac, `ROLLBACK`)
}
