package replicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgveil/replicate/source"
)

// leastPrivilege makes production's tables belong to an owner role and
// returns the DSN of a role with only what setup-sql grants pgveil (LOGIN
// REPLICATION, SELECT on the given tables). Roles are the cluster's: the
// names carry the test's so that tests do not share them.
func leastPrivilege(e *e2e, tag string, tables ...string) (dsn, role string) {
	e.t.Helper()
	owner, role := "lp_owner_"+tag, "lp_pgveil_"+tag
	e.exec(fmt.Sprintf(`
DO $$ BEGIN CREATE ROLE %[1]s NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE %[2]s LOGIN REPLICATION; EXCEPTION WHEN duplicate_object THEN NULL; END $$;`, owner, role))
	rows, err := e.src.Query(context.Background(), `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		e.t.Fatal(err)
	}
	var all []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		all = append(all, n)
	}
	rows.Close()
	for _, n := range all {
		e.exec(fmt.Sprintf("ALTER TABLE %s OWNER TO %s", n, owner))
	}
	e.exec(fmt.Sprintf("GRANT SELECT ON %s TO %s", strings.Join(tables, ", "), role))
	return strings.Replace(e.srcDSN, "user=postgres", "user="+role, 1), role
}

// ownerRuns does what a superuser does with pgveil's printed statements:
// it asks, as pgveil's role, what the publication needs, and runs it.
func (e *e2e) ownerRuns() {
	e.t.Helper()
	ctx := context.Background()
	src, prep := e.prepare()
	_, err := source.CheckPublication(ctx, src, prep.Publication, prep.Catalog)
	var oe *source.OwnerNeededError
	if !errors.As(err, &oe) {
		e.t.Fatalf("CheckPublication as pgveil's role: %v, want the owner's statements", err)
	}
	for _, s := range oe.Statements {
		e.exec(s)
	}
}

// waitInForce waits until no rule change waits and the rules in force
// name table.
func (e *e2e) waitInForce(table string) {
	e.t.Helper()
	e.eventually("the change in force", func() (bool, string) {
		got := e.obs.rulesPending()
		inForce := slices.Contains(TableLabels(e.p.Config()), table)
		return len(got) == 0 && inForce, fmt.Sprintf("waiting for %q, %s in force %v", got, table, inForce)
	})
}

// A rule change that pgveil's least-privilege role cannot carry out (a new
// table: only its owner may add it to the publication, and pgveil has no
// SELECT on it) never stops replication: the rules in force keep
// streaming, the observer (metrics, /healthz) gets the statements, and the
// change is put in force on its own once a superuser has run them.
func TestReplicateRuleChangeUnderLeastPrivilege(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL);
CREATE TABLE extra (id int PRIMARY KEY, label text);
INSERT INTO people SELECT g, 'p' || g || '@example.com' FROM generate_series(1, 500) g;
INSERT INTO extra SELECT g, 'x' || g FROM generate_series(1, 50) g;`,
		`  people:
    columns: {id: keep, email: {hash: {}}}
`)
	dsn, role := leastPrivilege(e, "reload", "people", "pgveil_marker")
	e.srcDSN = dsn
	e.ownerRuns() // the first start's statements, as setup-sql tells
	e.start()
	e.sync()
	e.verify()

	// The new rules name extra: the publication must change and pgveil
	// may read extra only once granted.
	e.rulesYML += "  extra:\n    columns: {id: keep, label: keep}\n"
	err := e.p.Reload(context.Background(), e.config())
	var pe *RulesPendingError
	if !errors.As(err, &pe) {
		t.Fatalf("Reload: %v, want a RulesPendingError", err)
	}
	grant := "GRANT SELECT ON TABLE public.extra TO " + role + ";"
	lines := pe.Waiting.Lines()
	if !slices.Contains(lines, grant) || pe.Waiting.Publication == nil || !strings.Contains(strings.Join(lines, "\n"), "extra") {
		t.Fatalf("the change waits for %q, want the grant %q and the publication's statement for extra", lines, grant)
	}
	if got := e.obs.rulesPending(); !slices.Equal(got, lines) {
		t.Errorf("the observer was told %q, want %q", got, lines)
	}
	if strings.Contains(pe.Error(), "x1") {
		t.Errorf("the message holds a value: %s", pe.Error())
	}

	// Meanwhile the rules in force stream.
	e.exec(`UPDATE people SET email = 'new' || id || '@example.com' WHERE id <= 10; INSERT INTO extra VALUES (51, 'x51')`)
	e.sync()
	if n := e.count("people"); n != 500 {
		t.Errorf("people: %d rows, want 500", n)
	}
	var extraInReplica bool
	if err := e.dst.QueryRow(context.Background(), "SELECT to_regclass('public.extra') IS NOT NULL").Scan(&extraInReplica); err != nil || extraInReplica {
		t.Fatalf("extra is in the replica before its rule could be put in force (err %v)", err)
	}

	// The owner changes the publication: only the grant is missing now.
	e.ownerRuns()
	e.eventually("the change waiting for the grant alone", func() (bool, string) {
		got := e.obs.rulesPending()
		return slices.Equal(got, []string{grant}), fmt.Sprintf("%q", got)
	})
	e.exec(strings.TrimSuffix(grant, ";"))
	e.waitInForce("public.extra")
	if cfg, w := e.p.Pending(); cfg != nil || w != nil {
		t.Errorf("still pending after it was put in force: %v", w)
	}
	e.exec(`INSERT INTO extra VALUES (52, 'x52')`)
	e.sync()
	if n := e.count("extra"); n != 52 {
		t.Errorf("extra: %d rows, want 52", n)
	}
	e.verify()
}

// A restart of the process with an edited rules file that pgveil's role
// cannot carry out (the first start of those rules, so no earlier rules to
// go back to) does not stop pgveil once the replica exists: it says what
// it waits for, retries, and replicates as soon as the statements ran.
func TestReplicateRestartWithRulesItCannotCarryOut(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL);
CREATE TABLE extra (id int PRIMARY KEY, label text);
INSERT INTO people SELECT g, 'p' || g || '@example.com' FROM generate_series(1, 100) g;
INSERT INTO extra SELECT g, 'x' || g FROM generate_series(1, 20) g;`,
		`  people:
    columns: {id: keep, email: {hash: {}}}
`)
	dsn, role := leastPrivilege(e, "restart", "people", "pgveil_marker")
	e.srcDSN = dsn
	e.ownerRuns()
	e.start()
	e.sync()
	e.stop()

	e.rulesYML += "  extra:\n    columns: {id: keep, label: keep}\n"
	e.start()
	grant := "GRANT SELECT ON TABLE public.extra TO " + role + ";"
	e.eventually("the statements to run reported", func() (bool, string) {
		got := e.obs.rulesPending()
		return len(got) == 2 && got[0] == grant && strings.HasPrefix(got[1], "ALTER PUBLICATION"), fmt.Sprintf("%q", got)
	})
	e.exec(`INSERT INTO people VALUES (101, 'late@example.com')`)
	e.ownerRuns()
	e.exec(strings.TrimSuffix(grant, ";"))
	e.waitInForce("public.extra")
	e.sync()
	if n := e.count("extra"); n != 20 {
		t.Errorf("extra: %d rows, want 20", n)
	}
	e.verify()
}
