package replicate

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A type's name is written schema-qualified (catalog.go), and in a type
// name the schema may not be a bare keyword of PostgreSQL's "column name"
// category (values, time, char, ...): "values.mood" is a syntax error where
// "values".mood is a type. Production's schema names are not pgveil's to
// choose, so an enum there must replicate like any other.
func TestReplicateEnumInKeywordSchema(t *testing.T) {
	e := newE2E(t, `
CREATE SCHEMA "values";
CREATE TYPE "values".mood AS ENUM ('sad', 'happy');
CREATE TABLE feelings (id int PRIMARY KEY, m "values".mood);
INSERT INTO feelings VALUES (1, 'sad');`,
		"  feelings:\n    columns: {id: keep, m: keep}\n")
	e.start()
	e.sync()
	e.exec(`INSERT INTO feelings VALUES (2, 'happy')`)
	e.sync()
	if got := e.replicaStrings(`SELECT m::text FROM public.feelings ORDER BY id`); len(got) != 2 || got[0] != "sad" || got[1] != "happy" {
		t.Errorf("replica: %q, want [sad happy]", got)
	}
}

// The connection that reads production's WAL end serves the lag figures
// alone: production refusing it (max_connections reached, the role's
// CONNECTION LIMIT) must not keep pgveil from streaming, as it did not
// before that connection existed. Here pgveil's role may open one client
// connection (the walsender aside): the one the stream needs.
func TestReplicateStreamsWithoutWALEndConnection(t *testing.T) {
	e := newE2E(t, `CREATE TABLE items (id int PRIMARY KEY, v text);
INSERT INTO items VALUES (1, 'a');`,
		"  items:\n    columns: {id: keep, v: keep}\n")
	dsn, role := leastPrivilege(e, "walend", "items", "pgveil_marker")
	e.srcDSN = dsn
	e.ownerRuns()
	// The role's client connections; PostgreSQL's CONNECTION LIMIT does
	// not count walsenders.
	conns := func() int {
		var n int
		if err := e.src.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'`, role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := conns() // the test's own
	e.start()
	e.sync()
	e.stop()
	e.exec(fmt.Sprintf(`ALTER ROLE %s CONNECTION LIMIT %d`, role, base+1))
	t.Cleanup(func() { e.exec(`ALTER ROLE ` + role + ` CONNECTION LIMIT -1`) })
	e.waitSlotInactive()
	e.eventually("pgveil's connections closed", func() (bool, string) {
		n := conns()
		return n == base, fmt.Sprintf("%d connections, the test's %d", n, base)
	})
	e.start()
	e.exec(`INSERT INTO items VALUES (2, 'b')`)
	deadline := time.Now().Add(time.Minute)
	for e.count("items") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("with one client connection, pgveil did not stream within a minute\nlog:\n%s", e.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(e.logs.String(), "cannot read the source's WAL position") {
		t.Errorf("the premise: the WAL-end connection was refused; log:\n%s", e.logs.String())
	}
}
