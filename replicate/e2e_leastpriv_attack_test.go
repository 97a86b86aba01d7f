package replicate

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"pgveil/rules"
	"pgveil/schema"
)

// atkReload is e.p.Reload(cfg).
func atkReload(e *e2e, cfg *rules.Config) error {
	return e.p.Reload(context.Background(), cfg)
}

// Attacks on "a rule change pgveil's least-privilege role cannot carry out
// waits instead of stopping replication" (docs/operations.md, Changing the
// rules while it runs, step 3).

const atkPeopleSchema = `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL);
CREATE TABLE extra (id int PRIMARY KEY, label text);
INSERT INTO people SELECT g, 'RAWMAIL-' || g || '@example.com' FROM generate_series(1, 200) g;
INSERT INTO extra SELECT g, 'RAWLABEL-' || g FROM generate_series(1, 20) g;`

const atkPeopleRules = "  people:\n    columns: {id: keep, email: {hash: {}}}\n"

const atkExtraRule = "  extra:\n    columns: {id: keep, label: keep}\n"

// atkStart sets production up for pgveil's least-privilege role (SELECT
// on the given tables), has the owner run the first start's statements
// and starts pgveil.
func atkStart(e *e2e, tag string, tables ...string) (role string) {
	e.t.Helper()
	dsn, role := leastPrivilege(e, tag, tables...)
	e.srcDSN = dsn
	e.ownerRuns()
	e.start()
	e.sync()
	return role
}

// atkReloadPending reloads e's current rules and wants them to wait.
func atkReloadPending(e *e2e) *RulesPendingError {
	e.t.Helper()
	err := atkReload(e, e.config())
	var pe *RulesPendingError
	if !errors.As(err, &pe) {
		e.t.Fatalf("Reload: %v, want a RulesPendingError", err)
	}
	return pe
}

// atkNoRaw fails when s holds one of the seeded raw values.
func atkNoRaw(t *testing.T, where, s string) {
	t.Helper()
	for _, raw := range []string{"RAWMAIL-", "RAWLABEL-", "RAWSECRET-", "RAWNOTE-"} {
		if strings.Contains(s, raw) {
			t.Errorf("%s holds a raw value (%s...)", where, raw)
		}
	}
}

func (e *e2e) inReplica(table string) bool {
	e.t.Helper()
	var ok bool
	if err := e.dst.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil {
		e.t.Fatal(err)
	}
	return ok
}

func (e *e2e) terminateStream() {
	e.t.Helper()
	e.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, streamAppName("s1"))
}

// Run reads p.cfg (for the lock watch) on a goroutine of its own without
// p.mu, while a successful Reload writes it under p.mu: a data race,
// reported by -race. The first successful reloads of the process (here:
// one by the pending retry, one by SIGHUP) get the reports.
func TestAttackLeastPrivReloadDataRace(t *testing.T) {
	e := newE2E(t, atkPeopleSchema, atkPeopleRules)
	dsn, role := leastPrivilege(e, "atk_datarace", "people", "pgveil_marker")
	e.srcDSN = dsn
	e.ownerRuns()
	e.start()
	base := e.rulesYML
	// At once, by SIGHUP: a change the publication needs nothing for.
	e.rulesYML = strings.Replace(base, "email: {hash: {}}", "email: {fake: email}", 1)
	if err := atkReload(e, e.config()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	e.sync()
	// Then one the pending retry puts in force.
	e.rulesYML += atkExtraRule
	atkReloadPending(e)
	e.ownerRuns()
	e.exec("GRANT SELECT ON extra TO " + role)
	e.waitInForce("public.extra")
	e.sync()
	e.verify()
}

// After the owner ran the publication's statement of a waiting change
// (the grant is still missing), pgveil's replication connection is cut
// (a network blip, a proxy failover). The rules in force must keep
// streaming: the restart finds the publication holding a table the rules
// in force do not name.
func TestAttackLeastPrivRestartAfterOwnerRanStatements(t *testing.T) {
	e := newE2E(t, atkPeopleSchema, atkPeopleRules)
	role := atkStart(e, "atk_restart", "people", "pgveil_marker")
	e.rulesYML += atkExtraRule
	atkReloadPending(e)
	e.ownerRuns()
	grant := "GRANT SELECT ON TABLE public.extra TO " + role + ";"
	e.eventually("the change waiting for the grant alone", func() (bool, string) {
		got := e.obs.rulesPending()
		return slices.Equal(got, []string{grant}), fmt.Sprintf("%q", got)
	})
	e.terminateStream()
	e.exec(`UPDATE people SET email = 'RAWMAIL-new' || id WHERE id <= 5`)
	e.sync() // fails at once if the pipeline stopped
	e.exec(strings.TrimSuffix(grant, ";"))
	e.waitInForce("public.extra")
	e.sync()
	e.verify()
}

// A change that removes a table (and adds one pgveil may not read yet):
// the owner runs the publication's statement, which takes the removed
// table out of the publication while the rules in force still name it.
// Replication must go on, and the change must be put in force once the
// grant is there, the removed table leaving the replica.
func TestAttackLeastPrivRemoveTableOwnerRunsFirst(t *testing.T) {
	e := newE2E(t, atkPeopleSchema+`
CREATE TABLE newt (id int PRIMARY KEY, v text);
INSERT INTO newt SELECT g, 'v' || g FROM generate_series(1, 10) g;`, atkPeopleRules+atkExtraRule)
	role := atkStart(e, "atk_remove", "people", "extra", "pgveil_marker")
	if !e.inReplica("public.extra") {
		t.Fatal("extra is not in the replica")
	}
	e.rulesYML = atkPeopleRules + "  newt:\n    columns: {id: keep, v: keep}\n  pgveil_marker:\n    columns: {id: keep, n: keep}\n"
	pe := atkReloadPending(e)
	if pe.Waiting.Publication == nil {
		t.Fatalf("waits for %q, want the publication's statement", pe.Waiting.Lines())
	}
	e.ownerRuns()
	grant := "GRANT SELECT ON TABLE public.newt TO " + role + ";"
	e.eventually("the change waiting for the grant alone", func() (bool, string) {
		got := e.obs.rulesPending()
		return slices.Equal(got, []string{grant}), fmt.Sprintf("%q", got)
	})
	// Let the monitor look at the publication a few times.
	e.waitMonitorRounds(3)
	e.exec(`UPDATE people SET email = 'RAWMAIL-x' || id WHERE id <= 5`)
	e.sync()
	e.exec(strings.TrimSuffix(grant, ";"))
	e.eventually("the change in force, extra gone from the replica", func() (bool, string) {
		inForce := slices.Contains(TableLabels(e.p.Config()), "public.newt")
		return inForce && !e.inReplica("public.extra") && len(e.obs.rulesPending()) == 0,
			fmt.Sprintf("in force %v, pending %q", inForce, e.obs.rulesPending())
	})
	e.sync()
	e.verify()
}

// The plain removal of a table under least privilege: the publication
// then holds a table the rules no longer name, which serves them (pgveil
// ignores its changes), so the change goes in force at once, the table
// leaves the replica, and the log says what the owner may run to take it
// out of the publication.
func TestAttackLeastPrivRemoveTable(t *testing.T) {
	e := newE2E(t, atkPeopleSchema, atkPeopleRules+atkExtraRule)
	atkStart(e, "atk_remove2", "people", "extra", "pgveil_marker")
	e.rulesYML = atkPeopleRules + "  pgveil_marker:\n    columns: {id: keep, n: keep}\n"
	if err := atkReload(e, e.config()); err != nil {
		t.Fatalf("Reload: %v, want nil (the publication serves the rules)", err)
	}
	e.eventually("the change in force, extra gone from the replica", func() (bool, string) {
		inForce := !slices.Contains(TableLabels(e.p.Config()), "public.extra")
		return inForce && !e.inReplica("public.extra") && len(e.obs.rulesPending()) == 0,
			fmt.Sprintf("in force %v, pending %q", inForce, e.obs.rulesPending())
	})
	e.exec(`UPDATE people SET email = 'RAWMAIL-y' || id WHERE id <= 5; UPDATE extra SET label = 'RAWLABEL-y'`)
	e.sync()
	e.verify()
	if e.inReplica("public.extra") {
		t.Error("extra came back to the replica")
	}
	if !strings.Contains(e.logs.String(), "holds more than the rules ask") {
		t.Error("the log does not say the publication holds a table the rules no longer name")
	}
	atkNoRaw(t, "the log", e.logs.String())
}

// A `where` (evaluated in pgveil's process under migration_safe) on a new
// table while pgveil's role has no TEMPORARY on the database: the docs
// promise the change waits, listing GRANT TEMPORARY.
func TestAttackLeastPrivWhereWithoutTemporary(t *testing.T) {
	e := newE2E(t, atkPeopleSchema, atkPeopleRules)
	var db string
	if err := e.src.QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	e.exec(fmt.Sprintf(`REVOKE TEMPORARY ON DATABASE %q FROM PUBLIC`, db))
	role := atkStart(e, "atk_temp", "people", "extra", "pgveil_marker")
	e.rulesYML += "  extra:\n    where: \"label <> 'RAWLABEL-3'\"\n    columns: {id: keep, label: keep}\n"
	err := atkReload(e, e.config())
	var pe *RulesPendingError
	if !errors.As(err, &pe) {
		t.Fatalf("Reload: %v, want a RulesPendingError naming GRANT TEMPORARY", err)
	}
	want := fmt.Sprintf("GRANT TEMPORARY ON DATABASE %s TO %s;", schema.QuoteIdent(db), role)
	if !slices.Contains(pe.Waiting.Lines(), want) {
		t.Fatalf("waits for %q, want %q among them", pe.Waiting.Lines(), want)
	}
	// The grant first: without it, nothing can even plan the where.
	e.exec(strings.TrimSuffix(want, ";"))
	e.eventually("the change waiting for the publication's statement", func() (bool, string) {
		got := e.obs.rulesPending()
		return len(got) > 0 && strings.HasPrefix(got[len(got)-1], "ALTER PUBLICATION"), fmt.Sprintf("%q", got)
	})
	e.ownerRuns()
	e.waitInForce("public.extra")
	e.sync()
	e.verify()
}

// Column-level SELECT on the replicated columns only, while the `where`
// uses a dropped column: the copy reads that column too (in its WHERE).
// What the change waits for (validate, status, the wait) must say so,
// instead of declaring nothing missing and failing at the copy.
func TestAttackLeastPrivColumnGrantMissesWhereColumn(t *testing.T) {
	e := newE2E(t, atkPeopleSchema+`
CREATE TABLE accounts (id int PRIMARY KEY, name text, deleted_at timestamptz);
INSERT INTO accounts SELECT g, 'RAWNOTE-' || g, CASE WHEN g % 4 = 0 THEN now() END FROM generate_series(1, 100) g;`, atkPeopleRules)
	role := atkStart(e, "atk_colwhere", "people", "pgveil_marker")
	e.exec(`GRANT SELECT (id, name) ON accounts TO ` + role)
	e.rulesYML += "  accounts:\n    where: \"deleted_at IS NULL\"\n    columns: {id: keep, name: {hash: {}}, deleted_at: drop}\n"
	e.ownerRuns() // the publication holds accounts: only privileges can be missing
	ctx := context.Background()
	src, prep := e.prepare()
	w, err := Prerequisites(ctx, src, prep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w == nil || len(w.Grants) == 0 {
		// Show what a reload then does, for the report.
		rerr := atkReload(e, e.config())
		e.eventually("a reaction to the copy's permission denied", func() (bool, string) {
			got := e.obs.rulesPending()
			return len(got) > 0, fmt.Sprintf("%q", got)
		})
		t.Errorf("Prerequisites (validate, status, Reload) found nothing missing, but the copy reads deleted_at (the where's column), which %s may not read; Reload said %v and then the wait shows %q",
			role, rerr, e.obs.rulesPending())
		return
	}
}

// Column-level SELECT on every column of a table large enough to be
// copied in ctid ranges: the copy's WHERE reads ctid.
func TestAttackLeastPrivColumnGrantChunkedCopy(t *testing.T) {
	e := newE2E(t, atkPeopleSchema+`
CREATE TABLE big (id int PRIMARY KEY, body text);
INSERT INTO big SELECT g, repeat('b', 200) || g FROM generate_series(1, 5000) g;`, atkPeopleRules)
	role := atkStart(e, "atk_colctid", "people", "pgveil_marker")
	e.exec(`GRANT SELECT (id, body) ON big TO ` + role)
	e.rulesYML += "  big:\n    columns: {id: keep, body: keep}\n"
	e.ownerRuns()
	ctx := context.Background()
	src, prep := e.prepare()
	w, err := Prerequisites(ctx, src, prep, nil)
	if err != nil {
		t.Fatal(err)
	}
	// What a chunk of the copy reads (snapshotter.copy: ctid ranges).
	_, qerr := src.Exec(ctx, SelectSQL(prep.Plan.Table("public", "big"), "", "ctid >= '(0,0)'::tid", "ctid < '(16,0)'::tid"))
	if w == nil && qerr != nil {
		t.Errorf("Prerequisites (validate, status, Reload) found nothing missing, but the copy's chunk query fails as %s: %v", role, qerr)
	}
	// Column grants are not enough: the change waits for table-level SELECT.
	grant := "GRANT SELECT ON TABLE public.big TO " + role + ";"
	err = atkReload(e, e.config())
	var pe *RulesPendingError
	if !errors.As(err, &pe) || !slices.Contains(pe.Waiting.Lines(), grant) {
		t.Fatalf("Reload: %v, want a wait for %q", err, grant)
	}
	e.exec(strings.TrimSuffix(grant, ";"))
	e.eventually("big in the replica", func() (bool, string) {
		got := e.obs.rulesPending()
		return len(got) == 0 && e.inReplica("public.big") && slices.Contains(TableLabels(e.p.Config()), "public.big"),
			fmt.Sprintf("pending %q", got)
	})
	e.sync()
	if n := e.count("public.big"); n != 5000 {
		t.Errorf("big: %d rows, want 5000", n)
	}
	e.verify()
}

// A new table in a schema pgveil's role has no USAGE on: the wait lists
// USAGE (then SELECT); once given, the change goes in force.
func TestAttackLeastPrivSchemaWithoutUsage(t *testing.T) {
	e := newE2E(t, atkPeopleSchema+`
CREATE SCHEMA hidden;
CREATE TABLE hidden.h (id int PRIMARY KEY, v text);
INSERT INTO hidden.h SELECT g, 'RAWNOTE-' || g FROM generate_series(1, 30) g;`, atkPeopleRules)
	role := atkStart(e, "atk_usage", "people", "pgveil_marker")
	e.exec(`ALTER SCHEMA hidden OWNER TO lp_owner_atk_usage; ALTER TABLE hidden.h OWNER TO lp_owner_atk_usage`)
	e.rulesYML += "  hidden.h:\n    columns: {id: keep, v: {hash: {}}}\n"
	pe := atkReloadPending(e)
	usage := "GRANT USAGE ON SCHEMA hidden TO " + role + ";"
	if !slices.Contains(pe.Waiting.Lines(), usage) {
		t.Fatalf("waits for %q, want %q", pe.Waiting.Lines(), usage)
	}
	atkNoRaw(t, "the pending error", pe.Error())
	e.ownerRuns()
	e.exec(strings.TrimSuffix(usage, ";"))
	sel := "GRANT SELECT ON TABLE hidden.h TO " + role + ";"
	e.eventually("the wait for SELECT alone", func() (bool, string) {
		got := e.obs.rulesPending()
		return slices.Equal(got, []string{sel}), fmt.Sprintf("%q", got)
	})
	e.exec(strings.TrimSuffix(sel, ";"))
	e.eventually("the change in force", func() (bool, string) {
		return len(e.obs.rulesPending()) == 0 && e.inReplica("hidden.h"), fmt.Sprintf("%q", e.obs.rulesPending())
	})
	e.sync()
	e.verify()
}

// Two reloads in a row: the second replaces the first, and going back to
// the rules in force clears the wait.
func TestAttackLeastPrivTwoReloadsThenRevert(t *testing.T) {
	e := newE2E(t, atkPeopleSchema+`CREATE TABLE other (id int PRIMARY KEY, w text);`, atkPeopleRules)
	atkStart(e, "atk_two", "people", "pgveil_marker")
	base := e.rulesYML
	inForce := e.p.Config()
	e.rulesYML = base + atkExtraRule
	first := atkReloadPending(e)
	e.rulesYML = base + "  other:\n    columns: {id: keep, w: keep}\n"
	second := atkReloadPending(e)
	if strings.Contains(strings.Join(second.Waiting.Lines(), "\n"), "extra") {
		t.Errorf("the second change still waits for the first's statements: %q", second.Waiting.Lines())
	}
	if got := e.obs.rulesPending(); !slices.Equal(got, second.Waiting.Lines()) || slices.Equal(got, first.Waiting.Lines()) {
		t.Errorf("the observer was told %q, want the second change's %q", got, second.Waiting.Lines())
	}
	if cfg, _ := e.p.Pending(); cfg == nil || !strings.Contains(strings.Join(TableLabels(cfg), ","), "public.other") {
		t.Errorf("the pending change is not the second one")
	}
	e.rulesYML = base
	if err := atkReload(e, e.config()); err != nil {
		t.Fatalf("reverting to the rules in force: %v", err)
	}
	if cfg, w := e.p.Pending(); cfg != nil || w != nil || len(e.obs.rulesPending()) != 0 {
		t.Errorf("still waiting after the revert: %v, observer %q", w, e.obs.rulesPending())
	}
	if !slices.Equal(TableLabels(e.p.Config()), TableLabels(inForce)) {
		t.Errorf("in force: %v, want %v", TableLabels(e.p.Config()), TableLabels(inForce))
	}
	e.sync()
	e.verify()
}

// goroutinesWaitingInReload counts the goroutines queued on a mutex
// inside Pipeline.Reload whose stack contains mark.
func goroutinesWaitingInReload(mark string) int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "SemacquireMutex") && strings.Contains(g, "(*Pipeline).reload") && strings.Contains(g, mark) {
			n++
		}
	}
	return n
}

func retryInReload() bool {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "(*Pipeline).reload") && strings.Contains(g, "(*Pipeline).retryPending") {
			return true
		}
	}
	return false
}

// A SIGHUP reload (here: back to the rules in force) that runs while the
// pending retry is about to try the waiting change: the retry must not
// bring the replaced change back. The reload's work is stretched by
// holding reloadMu, as a slow production (catalog reads, lock waits)
// does, so that the retry's tick falls inside it.
func TestAttackLeastPrivRetryRacesNewerReload(t *testing.T) {
	e := newE2E(t, atkPeopleSchema, atkPeopleRules)
	atkStart(e, "atk_race", "people", "pgveil_marker")
	base := e.rulesYML
	e.rulesYML = base + atkExtraRule
	atkReloadPending(e)
	e.rulesYML = base
	revert := e.config()

	e.p.reloadMu.Lock()
	locked := true
	defer func() {
		if locked {
			e.p.reloadMu.Unlock()
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- atkReload(e, revert) }()
	e.eventually("the operator's reload queued", func() (bool, string) {
		n := goroutinesWaitingInReload("TestAttackLeastPrivRetryRacesNewerReload.func")
		return n == 1, fmt.Sprint(n)
	})
	e.eventually("the retry queued behind it", func() (bool, string) {
		n := goroutinesWaitingInReload("retryPending")
		return n == 1, fmt.Sprint(n)
	})
	e.p.reloadMu.Unlock()
	locked = false
	if err := <-errc; err != nil {
		t.Fatalf("reverting: %v", err)
	}
	e.eventually("the retry done", func() (bool, string) { return !retryInReload(), "" })
	if cfg, w := e.p.Pending(); cfg != nil || w != nil {
		t.Errorf("after reverting to the rules in force, a change waits again (%q): the retry brought back the change the reload replaced", w.Lines())
	}
	if got := e.obs.rulesPending(); len(got) != 0 {
		t.Errorf("the observer says a change waits: %q", got)
	}
	e.sync()
}

// SELECT revoked on a table already replicated (streaming needs none),
// then the rules in force are reloaded unchanged: nothing must be copied,
// so nothing waits.
func TestAttackLeastPrivRevokedSelectReloadSameRules(t *testing.T) {
	e := newE2E(t, atkPeopleSchema, atkPeopleRules)
	role := atkStart(e, "atk_revoke", "people", "pgveil_marker")
	e.exec(`REVOKE SELECT ON people FROM ` + role)
	e.exec(`UPDATE people SET email = 'RAWMAIL-r' || id WHERE id <= 5`)
	e.sync() // streaming goes on without SELECT
	err := atkReload(e, e.config())
	if err != nil {
		t.Errorf("reloading the rules in force unchanged: %v (nothing must be copied)", err)
	}
	e.sync()
}

// publication_mode column_lists, a column changed from keep to drop under
// least privilege: the change waits for the owner's statement; once run,
// the column leaves the replica. Meanwhile nothing stops.
func TestAttackLeastPrivColumnListsKeepToDrop(t *testing.T) {
	e := newE2E(t, `
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, secret text);
CREATE TABLE newt (id int PRIMARY KEY, v text);
INSERT INTO people SELECT g, 'RAWMAIL-' || g || '@example.com', 'RAWSECRET-' || g FROM generate_series(1, 200) g;`,
		"  people:\n    columns: {id: keep, email: {hash: {}}, secret: keep}\n")
	e.mode = "column_lists"
	role := atkStart(e, "atk_cl", "people", "pgveil_marker")
	// The change drops secret and adds newt (not granted yet), so that it
	// still waits once the owner has run the publication's statement.
	e.rulesYML = "  people:\n    columns: {id: keep, email: {hash: {}}, secret: drop}\n  newt:\n    columns: {id: keep, v: keep}\n  pgveil_marker:\n    columns: {id: keep, n: keep}\n"
	pe := atkReloadPending(e)
	if pe.Waiting.Publication == nil {
		t.Fatalf("waits for %q, want the publication's statement", pe.Waiting.Lines())
	}
	atkNoRaw(t, "the pending error", pe.Error())
	e.ownerRuns() // the publication no longer sends secret
	grant := "GRANT SELECT ON TABLE public.newt TO " + role + ";"
	e.eventually("the change waiting for the grant alone", func() (bool, string) {
		got := e.obs.rulesPending()
		return slices.Equal(got, []string{grant}), fmt.Sprintf("%q", got)
	})
	e.exec(`UPDATE people SET email = 'RAWMAIL-z' || id, secret = 'RAWSECRET-z' || id WHERE id <= 5`)
	e.sync()
	e.exec(strings.TrimSuffix(grant, ";"))
	e.waitInForce("public.newt")
	e.sync()
	var has bool
	if err := e.dst.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'people' AND column_name = 'secret')`).Scan(&has); err != nil {
		t.Fatal(err)
	}
	if has {
		t.Error("secret (now drop) is still in the replica")
	}
	e.verify()
	atkNoRaw(t, "the log", e.logs.String())
}
