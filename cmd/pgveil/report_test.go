package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
)

// reportRules replicate three tables; the replica's tables are created
// by the test, as pgveil would have left them (notes dropped).
const reportRules = `source:
  dsn: host=prod.invalid
target:
  dsn: ${TARGET_DSN}
secret: ${PGVEIL_SECRET}
tables:
  patients:
    columns:
      id: hash
      full_name: {fake: name}
      email: {fake: email}
      sex: keep
      birth_date: {truncate: year}
      zip: {truncate: 3}
      city: keep
      country: hash
      notes: drop
      created_at: keep
  clinic.visits:
    columns:
      id: keep
      patient_id: hash
      department: keep
  empty_things:
    columns:
      id: keep
      country: keep
`

// reportReplica holds 20 patients: 10 and 9 share their sex, birth year,
// zip and city, one is alone with its own (k = 1); by sex alone the
// groups are 11 and 9. $C is the canary, in the unique row's city and in
// every name and email.
const reportReplica = `
CREATE TABLE patients (id bigint PRIMARY KEY, full_name text, email text, sex text, birth_date date, zip text, city text, country text, created_at timestamptz);
INSERT INTO patients SELECT g, '$C ' || g, 'p' || g || '.$C@mail.example', 'female', '1980-01-01', 'Q-ZIP-1', 'Berlin', 'DE', now() FROM generate_series(1, 10) g;
INSERT INTO patients SELECT g, '$C ' || g, 'p' || g || '.$C@mail.example', 'male', '1975-01-01', 'Q-ZIP-2', 'Hamburg', 'DE', now() FROM generate_series(11, 19) g;
INSERT INTO patients VALUES (20, '$C 20', 'p20.$C@mail.example', 'female', '1990-01-01', 'Q-ZIP-3', '$C', 'DE', now());
CREATE SCHEMA clinic;
CREATE TABLE clinic.visits (id bigint PRIMARY KEY, patient_id bigint, department text);
INSERT INTO clinic.visits SELECT g, g % 20, CASE WHEN g = 1 THEN '$C' ELSE 'cardiology' END FROM generate_series(1, 30) g;
CREATE TABLE empty_things (id bigint PRIMARY KEY, country text);`

// reportSite is a target database holding the replica above and a rules
// file naming it; run runs pgveil with its environment.
type reportSite struct {
	t      *testing.T
	dsn    string // the target database, as its superuser
	config string
	env    map[string]string
}

func newReportSite(t *testing.T, rulesText string) *reportSite {
	t.Helper()
	dsn := analytics.NewDB(t)
	if err := pgtest.Exec(context.Background(), dsn, strings.ReplaceAll(reportReplica, "$C", canary)); err != nil {
		t.Fatalf("creating the replica: %v", err)
	}
	// The test cluster trusts local connections: the password is only
	// there to be looked for.
	env := map[string]string{"TARGET_DSN": dsn + " password=other-pass", "PGVEIL_SECRET": testSecret}
	return &reportSite{t: t, dsn: dsn, config: writeRules(t, rulesText), env: env}
}

// reportWait bounds a report: its queries are on tiny tables, but a
// loaded machine may be slow, and a report that hangs (a statement
// timeout that does not work) must fail rather than wait forever.
const reportWait = 3 * time.Minute

// run runs pgveil report with args and checks that no value of the
// replica, secret or password is in its output.
func (s *reportSite) run(args ...string) (int, string, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), reportWait)
	defer cancel()
	code, out, errOut := pgveilContext(ctx, s.env, append([]string{"report", "-c", s.config}, args...)...)
	for _, v := range []string{canary, "CANARY", "mail.example", "Berlin", "Hamburg", "cardiology", "Q-ZIP"} {
		if strings.Contains(out+errOut, v) {
			s.t.Errorf("report %v prints the value %q:\n%s%s", args, v, out, errOut)
		}
	}
	checkNoSecrets(s.t, out+errOut)
	return code, out, errOut
}

func TestReport(t *testing.T) {
	s := newReportSite(t, reportRules)

	// The default sets: each table's quasi-identifiers together. k is
	// below 5, but without --fail-under that is no failure.
	code, out, errOut := s.run()
	t.Logf("default sets:\n%s%s", out, errOut)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, re := range []string{
		`(?m)^  public\.patients +sex, city, created_at$`,
		`(?m)^  clinic\.visits +id, department$`,
		`(?m)^  public\.empty_things +id, country$`,
		`(?m)^  public\.patients +sex +gender +keep$`,
		`(?m)^  public\.patients +birth_date +birth_date +truncate$`,
		`(?m)^  public\.patients +zip +postal_code +truncate$`,
		`(?m)^  public\.patients +city +city +keep$`,
		`(?m)^  public\.empty_things +country +country +keep$`,
		`(?m)^  TABLE +SET +ROWS +GROUPS +K +GROUPS < 5 +ROWS IN THEM +RESULT$`,
		`(?m)^  public\.patients +sex, birth_date, zip, city \* +20 +3 +1 +1 +1 +K < 5$`,
		`(?m)^  public\.empty_things +country \* +0 +0 +- +0 +0 +EMPTY \(no k\)$`,
		`(?m)^report: 2 sets measured, 1 on an empty table \(no k\), 1 with k below 5; \* marks`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s", re)
		}
	}
	// Hashed and faked columns are not quasi-identifiers; a table with
	// none has no default set.
	for _, re := range []string{`(?m)^  public\.patients +(email|full_name|id|country) `, `(?m)^  clinic\.visits +\S+ +\S+ +\S+$`, `(?m)^  clinic\.visits .* (OK|K < 5|EMPTY)`} {
		if regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout matches %s", re)
		}
	}

	// --fail-under makes k below the threshold an exit 1.
	if code, out, _ := s.run("--fail-under"); code != exitProblems || !strings.Contains(out, "1 with k below 5 (--fail-under: exit 1)") {
		t.Errorf("--fail-under: exit %d\n%s", code, out)
	}

	// Sets asked for replace the table's default; by sex alone every
	// group has at least 5 rows (11 and 9). Unquoted names fold to lower
	// case, as in SQL.
	code, out, errOut = s.run("--qi", "patients=SEX", "--qi", "empty_things=id", "--fail-under")
	t.Logf("--qi:\n%s%s", out, errOut)
	if code != exitOK ||
		!regexp.MustCompile(`(?m)^  public\.patients +sex +20 +2 +9 +0 +0 +OK$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^  public\.empty_things +id +0 +0 +- +0 +0 +EMPTY \(no k\)$`).MatchString(out) ||
		!strings.Contains(out, "report: 2 sets measured, 1 on an empty table (no k), none with k below 5\n") ||
		strings.Contains(out, "sex, birth_date") || strings.Contains(out, " *") {
		t.Errorf("--qi: exit %d\n%s%s", code, out, errOut)
	}
	// A table without quasi-identifiers is measured when asked: one
	// visit is alone in its department. The other tables keep their
	// default sets.
	code, out, _ = s.run("--qi", "clinic.visits=department")
	if code != exitOK || !regexp.MustCompile(`(?m)^  clinic\.visits +department +30 +2 +1 +1 +1 +K < 5$`).MatchString(out) ||
		!strings.Contains(out, "sex, birth_date, zip, city *") {
		t.Errorf("--qi clinic.visits: exit %d\n%s", code, out)
	}
	// TABLE= measures nothing there: patients' k of 1 no longer fails.
	code, out, _ = s.run("--qi", "patients=", "--fail-under")
	if code != exitOK || strings.Contains(out, "sex, birth_date") || !strings.Contains(out, "report: 1 set measured, 1 on an empty table (no k)") {
		t.Errorf("--qi patients=: exit %d\n%s", code, out)
	}
}

func TestReportThresholdAndJSON(t *testing.T) {
	s := newReportSite(t, reportRules)

	// With k 10, the group of 9 men is under the threshold.
	code, out, errOut := s.run("--qi", "public.patients=sex", "--k", "10", "--fail-under")
	if code != exitProblems || !regexp.MustCompile(`(?m)^  public\.patients +sex +20 +2 +9 +1 +9 +K < 10$`).MatchString(out) {
		t.Errorf("--k 10: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = s.run("--json", "--fail-under")
	t.Logf("--json:\n%s", out)
	var r privacyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json does not parse: %v\n%s%s", err, out, errOut)
	}
	if code != exitProblems || r.OK || r.K != 5 || r.Measured != 2 || r.Empty != 1 || r.BelowK != 1 || r.Failed != 0 || len(r.Tables) != 3 {
		t.Fatalf("--json: exit %d, %+v", code, r)
	}
	p, visits, empty := r.Tables[0], r.Tables[1], r.Tables[2]
	if p.Table != "public.patients" || strings.Join(p.KeptRaw, ",") != "sex,city,created_at" || len(p.Quasi) != 4 ||
		p.Quasi[1] != (quasiColumn{Column: "birth_date", Kind: "birth_date", Rule: "truncate"}) || len(p.Sets) != 1 {
		t.Errorf("patients: %+v", p)
	}
	if set := p.Sets[0]; !set.Default || set.K == nil || *set.K != 1 || set.Rows != 20 || set.Groups != 3 || set.GroupsBelowK != 1 || set.RowsBelowK != 1 || !set.BelowK {
		t.Errorf("patients' set: %+v", set)
	}
	if visits.Quasi == nil || len(visits.Quasi) != 0 || visits.Sets == nil || len(visits.Sets) != 0 {
		t.Errorf("visits: want empty lists, not null: %+v", visits)
	}
	if len(empty.Sets) != 1 || empty.Sets[0].K != nil || empty.Sets[0].BelowK || !strings.Contains(out, `"k": null`) {
		t.Errorf("empty_things: %+v", empty)
	}
}

// TestReportWithinTenants: under tenancy a tenant sees its own rows only,
// so each set on a tenant table is measured within each tenant too. In
// the whole table every group has 6 rows or more; within account 2 one
// woman of Paris is alone.
func TestReportWithinTenants(t *testing.T) {
	s := newReportSite(t, `source:
  dsn: host=prod.invalid
target:
  dsn: ${TARGET_DSN}
secret: ${PGVEIL_SECRET}
tenancy: {column: account_id}
tables:
  members:
    columns: {id: keep, account_id: keep, sex: keep, city: keep}
`)
	if err := pgtest.Exec(context.Background(), s.dsn, `CREATE TABLE members (id int PRIMARY KEY, account_id bigint, sex text, city text);
INSERT INTO members SELECT g, 1, 'female', 'Paris' FROM generate_series(1, 5) g;
INSERT INTO members SELECT g, 1, 'male', 'Rome' FROM generate_series(6, 11) g;
INSERT INTO members VALUES (12, 2, 'female', 'Paris');
INSERT INTO members SELECT g, 2, 'male', 'Rome' FROM generate_series(13, 17) g;`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := s.run("--fail-under")
	t.Logf("%s%s", out, errOut)
	for _, re := range []string{
		`(?m)^  public\.members +sex, city \* +17 +2 +6 +0 +0 +OK$`,
		`(?m)^  public\.members +sex, city \* \(per account_id\) +17 +4 +1 +1 +1 +K < 5$`,
		`\(per COLUMN\): within each tenant`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s", re)
		}
	}
	if code != exitProblems {
		t.Errorf("--fail-under with a tenant's k of 1: exit %d, want %d", code, exitProblems)
	}
	_, out, _ = s.run("--json")
	var r privacyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Tables) != 1 || len(r.Tables[0].Sets) != 2 || r.Tables[0].Sets[1].WithinTenant != "account_id" || r.Tables[0].Sets[0].WithinTenant != "" {
		t.Errorf("--json: %v %+v", err, r)
	}
}

// Sets the server cannot measure fail one by one, with the SQLSTATE and
// no server detail, and the others are still measured: a table the rules
// name but the replica lacks, a query longer than --timeout (a view that
// sleeps for an hour: only the statement timeout can end it, with SQLSTATE
// 57014, before the test's own deadline), and one that tries to write (a
// view calling a function that inserts: the report's transaction is
// read-only). --timeout is 5s, so that the other sets' queries, on tiny
// tables, finish within it however loaded the machine.
func TestReportServerErrors(t *testing.T) {
	s := newReportSite(t, reportRules+`  absent:
    columns:
      id: keep
      age: keep
  slow:
    columns:
      id: keep
      age: keep
  writes:
    columns:
      id: keep
      country: keep
`)
	if err := pgtest.Exec(context.Background(), s.dsn, `
CREATE VIEW slow AS SELECT 1 AS id, 30 AS age FROM pg_sleep(3600);
CREATE TABLE scribbles (n int);
CREATE FUNCTION scribble() RETURNS int LANGUAGE sql VOLATILE AS 'INSERT INTO scribbles VALUES (1) RETURNING 1';
CREATE VIEW writes AS SELECT scribble() AS id, 'XX' AS country;`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := s.run("--json", "--timeout", "5s")
	var r privacyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json does not parse: %v\n%s", err, out)
	}
	t.Logf("stderr:\n%s", errOut)
	if code != exitProblems || r.OK || r.Failed != 3 || r.Measured != 2 {
		t.Errorf("exit %d, %+v\nstderr: %s", code, r, errOut)
	}
	for _, want := range []string{
		"pgveil report: set (age): public.absent: the table is not in the replica (has pgveil copied it?)",
		"(SQLSTATE 42P01)",
		"pgveil report: set (age): public.slow: the query was canceled: it ran longer than the statement timeout (--timeout) (SQLSTATE 57014)",
		"pgveil report: set (country): public.writes: the query tried to write in the report's read-only transaction (SQLSTATE 25006)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if set := r.Tables[3].Sets[0]; set.K != nil || !strings.Contains(set.Error, "SQLSTATE 42P01") {
		t.Errorf("absent's set: %+v", set)
	}
	var n int
	conn, err := pgx.Connect(context.Background(), s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM scribbles`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the report wrote %d rows (%v)", n, err)
	}
	code, out, _ = s.run("--timeout", "5s")
	if code != exitProblems || !regexp.MustCompile(`(?m)^  public\.absent +age \* +- +- +- +- +- +ERROR$`).MatchString(out) ||
		!strings.Contains(out, "2 sets measured, 1 on an empty table (no k), 1 with k below 5, 3 could not be measured") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
}

// Bad flags and --qi are usage errors (exit 2), found before connecting.
func TestReportUsage(t *testing.T) {
	file := writeRules(t, reportRules)
	env := map[string]string{"TARGET_DSN": "host=127.0.0.1 port=1 connect_timeout=2", "PGVEIL_SECRET": testSecret}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--qi", "nosuch=a"}, "--qi nosuch=a: table nosuch is not in the rules"},
		{[]string{"--qi", "patients=bogus,city"}, "public.patients has no column bogus in the rules (columns: id, full_name, email, sex, birth_date, zip, city, country, created_at)"},
		{[]string{"--qi", "patients=notes"}, "column notes is dropped by the rules: not in the replica"},
		{[]string{"--qi", "patients"}, "--qi patients: write TABLE=column,column"},
		{[]string{"--qi", "patients=a.b"}, `column "a.b": write a column name`},
		{[]string{"--k", "0"}, "--k must be at least 1"},
		{[]string{"--timeout", "-1s"}, "--timeout cannot be negative"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		code, out, errOut := pgveil(t, env, append([]string{"report", "-c", file}, tc.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
	// Every bad --qi is reported at once.
	_, _, errOut := pgveil(t, env, "report", "-c", file, "--qi", "nosuch=a", "--qi", "patients=notes")
	if !strings.Contains(errOut, "nosuch") || !strings.Contains(errOut, "notes") {
		t.Errorf("two bad --qi: %q", errOut)
	}
	// An unreachable target is a failure (exit 1), its password unshown.
	env["TARGET_DSN"] += " password=other-pass"
	code, _, errOut := pgveil(t, env, "report", "-c", file)
	if code != exitProblems || !strings.Contains(errOut, "connecting to the target") {
		t.Errorf("unreachable target: exit %d, %q", code, errOut)
	}
	checkNoSecrets(t, errOut)
	// The rules are loaded as by the other commands.
	if code, _, errOut := pgveil(t, map[string]string{}, "report", "-c", file); code != exitProblems || !strings.Contains(errOut, "TARGET_DSN is not set") {
		t.Errorf("unset variable: exit %d, %q", code, errOut)
	}
	if code, _, errOut := pgveil(t, nil, "help", "report"); code != exitOK || !strings.Contains(errOut, "-fail-under") || !strings.Contains(errOut, "TABLE=col1,col2") {
		t.Errorf("help report: exit %d, %q", code, errOut)
	}
}
