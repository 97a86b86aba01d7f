package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/rules/report"
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
	dsn := clusters.Target.NewDB(t)
	if err := pgtest.Exec(context.Background(), dsn, strings.ReplaceAll(reportReplica, "$C", canary)); err != nil {
		t.Fatalf("creating the replica: %v", err)
	}
	// The test cluster trusts local connections: the password is only
	// there to be looked for.
	env := map[string]string{"TARGET_DSN": dsn + " password=other-pass", "PGVEIL_SECRET": pgtest.Secret}
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
	conn := pgtest.Connect(t, s.dsn)
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
	env := map[string]string{"TARGET_DSN": "host=127.0.0.1 port=1 connect_timeout=2", "PGVEIL_SECRET": pgtest.Secret}
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
		{[]string{"--truncation-divisor", "0"}, "--truncation-divisor must be at least 1"},
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

// noiseRules noise orders.total (5%) and payments.paid_at (2 hours);
// payments.amount is the column under test (AMOUNT), and events keep
// order ids and totals in a json document whose rule masks emails only.
const noiseRules = `source:
  dsn: host=prod.invalid
target:
  dsn: ${TARGET_DSN}
secret: ${PGVEIL_SECRET}
tables:
  orders:
    columns:
      id: keep
      total: {noise: 0.05}
      created_at: keep
  payments:
    columns:
      id: keep
      order_id: keep
      amount: AMOUNT
      fee: keep
      paid_at: {noise: 2h}
  events:
    columns:
      id: keep
      properties: {json: {"$..email": {fake: email}}}
`

// noiseReplica holds 100 orders whose raw totals, r(g) = 10 + 37g mod 500
// + 0.37 (every one ending in .37, so that the output can be searched for
// them), are noised by 5% at the edges and middle of the noise
// (u = -1, -0.5, 0, 0.5, 1, rounded to cents as the noise rounds), and
// created a day apart. Each has one payment: its amount is AMOUNT (SQL of
// g and r), its fee 3% of r (unrelated: never within 5% of the total), and
// it was paid a minute after the order, noised by up to 0.9 × 2 hours.
// 35 events hold an order's id and raw total (30 as strings, 5 as numbers,
// as applications write them), and 5 hold what a reader cannot take for
// a number, with the canary.
const noiseReplica = `
CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(12,2), created_at timestamptz);
INSERT INTO orders SELECT g, round((10 + (g * 37) % 500 + 0.37) * (1 + 0.05 * ((g % 5) - 2) / 2.0), 2),
  timestamptz '2026-01-01 00:00:00+00' + g * interval '1 day' FROM generate_series(1, 100) g;
CREATE TABLE payments (id bigint PRIMARY KEY, order_id bigint, amount numeric(12,2), fee numeric(12,2), paid_at timestamptz);
INSERT INTO payments SELECT g, g, AMOUNT, round(0.03 * r, 2),
  timestamptz '2026-01-01 00:00:00+00' + g * interval '1 day' + interval '1 minute' + 0.9 * ((g % 5) - 2) / 2.0 * interval '2 hours'
  FROM (SELECT g, 10 + (g * 37) % 500 + 0.37 AS r FROM generate_series(1, 100) g) s;
CREATE TABLE events (id bigint PRIMARY KEY, properties jsonb);
INSERT INTO events SELECT g, jsonb_build_object('order_id', g, 'total', (10 + (g * 37) % 500 + 0.37)::text, 'email', '$C@mail.example') FROM generate_series(1, 30) g;
INSERT INTO events SELECT g, jsonb_build_object('order_id', g::text, 'total', 10 + (g * 37) % 500 + 0.37) FROM generate_series(31, 35) g;
INSERT INTO events VALUES (36, '{"order_id": 36, "total": {"nested": 1}}'), (37, '{"order_id": 37, "total": "1e999999"}'),
  (38, '{"order_id": 38, "total": null}'), (39, '{"order_id": "$C", "total": "$C"}'), (40, '{"total": 5}');`

// newNoiseSite is a report site whose replica also holds noiseReplica,
// payments.amount being amountSQL and its rule amountRule.
func newNoiseSite(t *testing.T, amountRule, amountSQL string) *reportSite {
	t.Helper()
	s := newReportSite(t, strings.Replace(noiseRules, "AMOUNT", amountRule, 1))
	sql := strings.ReplaceAll(strings.Replace(noiseReplica, "AMOUNT", amountSQL, 1), "$C", canary)
	if err := pgtest.Exec(context.Background(), s.dsn, sql); err != nil {
		t.Fatalf("creating the replica: %v", err)
	}
	return s
}

// runNoise runs the report and checks that no raw total shows (each ends
// in .37).
func (s *reportSite) runNoise(args ...string) (int, string, string) {
	s.t.Helper()
	code, out, errOut := s.run(args...)
	if strings.Contains(out+errOut, ".37") {
		s.t.Errorf("report %v prints a raw total:\n%s%s", args, out, errOut)
	}
	return code, out, errOut
}

// TestReportNoiseExposed: payments.amount keeps 85 of the 100 raw order
// totals (and 15 unrelated amounts, three times the total): the report
// flags orders.total's noise as exposed by it, by the events' json
// totals, and payments.paid_at's by orders.created_at, in text and JSON;
// the fee, unrelated, is not flagged. Only counts are printed.
func TestReportNoiseExposed(t *testing.T) {
	s := newNoiseSite(t, "keep", "CASE WHEN g <= 85 THEN r ELSE 3 * r END")
	code, out, errOut := s.runNoise()
	t.Logf("%s%s", out, errOut)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, re := range []string{
		`(?m)^  NOISED +KEPT +JOIN +ROWS +WITHIN NOISE +BY CHANCE +RESULT$`,
		`(?m)^  public\.orders\.total \(noise 0\.05\) +public\.payments\.amount \(keep\) +public\.payments\.order_id = public\.orders\.id +100 +85 +\d +EXPOSED$`,
		`(?m)^  public\.orders\.total \(noise 0\.05\) +public\.payments\.fee \(keep\) +public\.payments\.order_id = public\.orders\.id +100 +0 +0 +OK$`,
		`(?m)^  public\.orders\.total \(noise 0\.05\) +public\.events\.properties->'total' \(json\) +public\.events\.properties->'order_id' = public\.orders\.id +35 +35 +\d +EXPOSED$`,
		`(?m)^  public\.payments\.paid_at \(noise 2h\) +public\.orders\.created_at \(keep\) +public\.payments\.order_id = public\.orders\.id +100 +100 +0 +EXPOSED$`,
		`(?m)^  public\.orders\.total \(noise 0\.05\) is exposed by public\.payments\.amount \(keep\) via public\.payments\.order_id = public\.orders\.id: 85 of 100 joined rows within the noise \(\d by chance\): the kept column gives away what the noise hides; mask public\.payments\.amount with the same noise rule \(\{noise: 0\.05\}\) or drop it$`,
		`(?m)^  public\.orders\.total \(noise 0\.05\) is exposed by public\.events\.properties->'total' \(json\) via .*: 35 of 35 joined rows within the noise \(\d by chance\): the kept column gives away what the noise hides; mask the key 'total' of public\.events\.properties in its json rule \(drop it, or \{noise: 0\.05\}\) or drop the column$`,
		`(?m)^  public\.payments\.paid_at \(noise 2h\) is exposed by public\.orders\.created_at \(keep\) via public\.payments\.order_id = public\.orders\.id: 100 of 100 joined rows`,
		`(?m)^report: 0 sets measured, 4 noised/kept pairs checked, 3 exposed$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s", re)
		}
	}
	if n := strings.Count(out, " EXPOSED\n"); n != 3 {
		t.Errorf("%d pairs EXPOSED, want 3", n)
	}

	// --fail-under: an exposed noise fails the report (there is no set
	// to measure: only the noise can).
	code, out, _ = s.runNoise("--fail-under")
	if code != exitProblems || !strings.HasSuffix(out, "report: 0 sets measured, 4 noised/kept pairs checked, 3 exposed (--fail-under: exit 1)\n") {
		t.Errorf("--fail-under: exit %d\n%s", code, out)
	}

	code, out, errOut = s.runNoise("--json")
	var r privacyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json does not parse: %v\n%s%s", err, out, errOut)
	}
	if code != exitOK || r.Exposed != 3 || r.Failed != 0 || !r.OK || len(r.Noise) != 4 {
		t.Fatalf("--json: exit %d, exposed %d, failed %d, ok %v, %d pairs", code, r.Exposed, r.Failed, r.OK, len(r.Noise))
	}
	want := []noiseResult{
		{Noised: "public.orders.total", Noise: "0.05", Kept: "public.payments.amount", KeptRule: "keep", Join: "public.payments.order_id = public.orders.id", Rows: 100, WithinNoise: 85, Verdict: "exposed", Exposed: true},
		{Noised: "public.orders.total", Noise: "0.05", Kept: "public.payments.fee", KeptRule: "keep", Join: "public.payments.order_id = public.orders.id", Rows: 100, Verdict: "ok"},
		{Noised: "public.orders.total", Noise: "0.05", Kept: "public.events.properties->'total'", KeptRule: "json", Join: "public.events.properties->'order_id' = public.orders.id", Rows: 35, WithinNoise: 35, Verdict: "exposed", Exposed: true},
		{Noised: "public.payments.paid_at", Noise: "2h", Kept: "public.orders.created_at", KeptRule: "keep", Join: "public.payments.order_id = public.orders.id", Rows: 100, WithinNoise: 100, Verdict: "exposed", Exposed: true},
	}
	for i, w := range want {
		got := r.Noise[i]
		if got.WithinByChance*2 > got.WithinNoise && got.Exposed {
			t.Errorf("pair %d: exposed with %d of %d by chance", i, got.WithinByChance, got.WithinNoise)
		}
		w.WithinByChance = got.WithinByChance // hash order: checked above
		w.keptColumn, w.keptKey = got.keptColumn, got.keptKey
		if got != w {
			t.Errorf("pair %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
	if !strings.Contains(out, `"noise_exposures": [`) || !strings.Contains(out, `"within_by_chance": `) {
		t.Errorf("--json lacks the documented names:\n%s", out)
	}
}

// With payments.amount unrelated to the totals (three times them), or
// noised as orders.total is, nothing flags payments.amount; the events'
// json totals and orders.created_at still expose what they expose.
func TestReportNoiseNotExposed(t *testing.T) {
	for _, tc := range []struct{ name, rule, amount, line string }{
		{"unrelated", "keep", "3 * r", `(?m)^  public\.orders\.total \(noise 0\.05\) +public\.payments\.amount \(keep\) +public\.payments\.order_id = public\.orders\.id +100 +0 +\d +OK$`},
		{"noised too", "{noise: 0.05}", "round(r * (1 + 0.05 * ((g % 7) - 3) / 3.0), 2)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newNoiseSite(t, tc.rule, tc.amount)
			code, out, errOut := s.runNoise("--fail-under")
			t.Logf("%s%s", out, errOut)
			if tc.line != "" && !regexp.MustCompile(tc.line).MatchString(out) {
				t.Errorf("stdout does not match %s", tc.line)
			}
			if tc.line == "" && strings.Contains(out, "payments.amount (keep)") {
				t.Errorf("a noised payments.amount is still set against orders.total")
			}
			if strings.Contains(out, "exposed by public.payments.amount") || strings.Count(out, " EXPOSED\n") != 2 {
				t.Errorf("want only the events' totals and created_at exposed")
			}
			// Noised, payments.amount is set against the events' json
			// amounts, which no payment_id joins: not listed.
			want := "report: 0 sets measured, 4 noised/kept pairs checked, 2 exposed (--fail-under: exit 1)\n"
			if tc.line == "" {
				want = "report: 0 sets measured, 5 noised/kept pairs checked (1 with no joined row, not listed), 2 exposed (--fail-under: exit 1)\n"
			}
			if code != exitProblems || !strings.HasSuffix(out, want) {
				t.Errorf("exit %d", code)
			}
		})
	}
}

// The JSON fields, the verdicts and the thresholds of the report are the
// ones docs/operations.md documents in its privacy report section.
func TestReportDocsMatchCode(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	start := strings.Index(sec, "\n## Privacy report\n")
	if start < 0 {
		t.Fatal("docs/operations.md has no Privacy report section")
	}
	sec = sec[start+1:]
	if end := strings.Index(sec, "\n## "); end >= 0 {
		sec = sec[:end]
	}
	tags := func(v any) []string {
		var out []string
		ty := reflect.TypeOf(v)
		for i := range ty.NumField() {
			if tag, _, _ := strings.Cut(ty.Field(i).Tag.Get("json"), ","); tag != "" {
				out = append(out, tag)
			}
		}
		return out
	}
	// Top-level fields are documented as `name` or `name[]...`.
	for _, tag := range tags(privacyReport{}) {
		if !strings.Contains(sec, "`"+tag+"`") && !strings.Contains(sec, "`"+tag+"[]") {
			t.Errorf("the report's field %s is not documented", tag)
		}
	}
	for _, v := range []any{privacyTable{}, quasiColumn{}, setResult{}, noiseResult{}, truncResult{}} {
		for _, tag := range tags(v) {
			if !strings.Contains(sec, "`"+tag+"`") && !strings.Contains(sec, "[]."+tag+"`") && !strings.Contains(sec, "[]."+tag+"[]`") {
				t.Errorf("the field %s of %T is not documented", tag, v)
			}
		}
	}
	for _, v := range []report.Verdict{report.Exposed, report.NotShown, report.FewRows, report.Undecided, report.Failed} {
		if !strings.Contains(sec, "`"+string(v)+"`") {
			t.Errorf("the verdict %s is not documented", v)
		}
	}
	if report.ChanceFactor != 2 {
		t.Fatalf("ChanceFactor is %d: say how many times in the docs, then here", report.ChanceFactor)
	}
	for _, want := range []string{
		fmt.Sprintf("EXPOSED when at least %d rows are joined, at least %d%% of them are within the\n  noise, and at least twice as many as by chance", report.MinRows, report.ExposedPercent),
		fmt.Sprintf("`FEW ROWS (< %d)`", report.MinRows),
		"`CANNOT TELL (as often by chance)`",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("the privacy report section lacks %q", want)
		}
	}
}

// acrossRules replicate a customer → address → city → country schema
// whose keys are named table_id (no naming convention finds them), and a
// person whose income is noised while purchases keep the declared income,
// joined by purchases.buyer → person.pid.
const acrossRules = `source:
  dsn: ${SOURCE_DSN}
target:
  dsn: ${TARGET_DSN}
secret: ${PGVEIL_SECRET}
tables:
  customer:
    columns: {customer_id: keep, first_name: {fake: first_name}, birth_date: {truncate: year}, address_id: keep}
  address:
    columns: {address_id: keep, postal_code: {truncate: 2}, city_id: keep}
  city:
    columns: {city_id: keep, city: keep, country_id: keep}
  country:
    columns: {country_id: keep, country: keep}
  person:
    columns: {pid: keep, full_name: {fake: name}, income: {noise: 0.1}}
  purchase:
    columns: {id: keep, buyer: keep, declared_income: keep}
`

// acrossReplica: 40 customers, 20 born (truncated) in 1980 and 20 in
// 1990: alone, the customers' birth years make groups of 20. Every
// address, city and country is one row (k = 1 on their own, by
// construction). 39 customers live in Q-ZIP cities of one country; the
// 40th, born in 1990, alone in city $C of the other country; postal
// codes Q0 and Q1 are 20 addresses each. Joined,
// birth year, postal code, city and country single it out. The replica
// is written as pgveil would leave it (birth dates cut to the year,
// postal codes to 2 characters, incomes noised), and holds the foreign
// keys the report reads as the source's.
const acrossReplica = `
CREATE TABLE country (country_id int PRIMARY KEY, country text);
INSERT INTO country VALUES (1, 'Q-Land'), (2, '$C');
CREATE TABLE city (city_id int PRIMARY KEY, city text, country_id int REFERENCES country);
INSERT INTO city VALUES (1, 'Q-ZIP-Town', 1), (2, 'Q-ZIP-Ville', 1), (3, '$C', 2);
CREATE TABLE address (address_id int PRIMARY KEY, postal_code text, city_id int REFERENCES city);
INSERT INTO address SELECT g, 'Q' || (g % 2), CASE WHEN g = 40 THEN 3 ELSE 1 + g % 2 END FROM generate_series(1, 40) g;
CREATE TABLE customer (customer_id int PRIMARY KEY, first_name text, birth_date date, address_id int REFERENCES address);
INSERT INTO customer SELECT g, '$C', CASE WHEN g <= 20 THEN date '1980-01-01' ELSE date '1990-01-01' END, g FROM generate_series(1, 40) g;
CREATE TABLE person (pid bigint PRIMARY KEY, full_name text, income numeric(12,2));
INSERT INTO person SELECT g, '$C', round((1000 + g * 37 + 0.37) * (1 + 0.1 * ((g % 5) - 2) / 2.0), 2) FROM generate_series(1, 30) g;
CREATE TABLE purchase (id int PRIMARY KEY, buyer bigint REFERENCES person (pid), declared_income numeric(12,2));
INSERT INTO purchase SELECT g, g, 1000 + g * 37 + 0.37 FROM generate_series(1, 30) g;`

// TestReportAcrossReferences: with the source's foreign keys, the report
// measures customer's birth year with its address's postal code, city
// and country (k = 1: the customer alone in its city), lists address,
// city and country as lookup tables measured through customer (never
// k = 1 on their own), and flags person.income's noise as exposed by
// purchase.declared_income through purchase.buyer → person.pid. With
// column names only, none of that is found.
func TestReportAcrossReferences(t *testing.T) {
	s := newReportSite(t, acrossRules)
	if err := pgtest.Exec(context.Background(), s.dsn, strings.ReplaceAll(acrossReplica, "$C", canary)); err != nil {
		t.Fatalf("creating the replica: %v", err)
	}
	s.env["SOURCE_DSN"] = s.dsn // the replica holds the source's foreign keys

	code, out, errOut := s.runNoise("--fail-under")
	t.Logf("%s%s", out, errOut)
	if code != exitProblems || errOut != "" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	for _, re := range []string{
		`(?m)^  public\.customer +birth_date \* +40 +2 +20 +0 +0 +OK$`,
		`(?m)^k-anonymity across references \(references from source;`,
		`(?m)^  JOIN +SET +ROWS +GROUPS +K +GROUPS < 5 +ROWS IN THEM +RESULT$`,
		`(?m)^  customer → address → city → country +birth_date, address\.postal_code, city\.city, country\.country \* +40 +\d +1 +1 +1 +K < 5$`,
		`(?m)^  public\.address +public\.customer$`,
		`(?m)^  public\.city +public\.customer$`,
		`(?m)^  public\.country +public\.customer$`,
		`(?m)^  public\.person\.income \(noise 0\.1\) +public\.purchase\.declared_income \(keep\) +public\.purchase\.buyer = public\.person\.pid +30 +30 +\d +EXPOSED$`,
		`(?m)^report: 2 sets measured, 1 with k below 5, 1 noised/kept pair checked, 1 exposed \(--fail-under: exit 1\)`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s", re)
		}
	}
	// No lookup table is measured on its own.
	if regexp.MustCompile(`(?m)^  public\.(address|city|country) +\S.* (OK|K < 5)$`).MatchString(out) {
		t.Errorf("a lookup table is measured on its own")
	}

	_, out, _ = s.runNoise("--json")
	var r privacyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json does not parse: %v\n%s", err, out)
	}
	if r.References.From != "source" || r.References.Count != 4 || r.Measured != 2 || r.BelowK != 1 || r.Exposed != 1 {
		t.Errorf("--json: %+v", r)
	}
	for _, tb := range r.Tables {
		switch tb.Table {
		case "public.customer":
			if tb.Lookup || len(tb.Sets) != 2 || tb.Sets[1].Across != "customer → address → city → country" ||
				strings.Join(tb.Sets[1].Columns, ",") != "birth_date,address.postal_code,city.city,country.country" ||
				tb.Sets[1].K == nil || *tb.Sets[1].K != 1 || !tb.Sets[1].BelowK {
				t.Errorf("customer: %+v", tb)
			}
		case "public.address", "public.city", "public.country":
			if !tb.Lookup || len(tb.Sets) != 0 || strings.Join(tb.MeasuredThrough, ",") != "public.customer" {
				t.Errorf("%s: %+v", tb.Table, tb)
			}
		}
	}

	// Column names alone find no join here: each table is measured on
	// its own (every city its own group), the noise is not paired, and
	// the report says why.
	_, out, _ = s.runNoise("--json", "--references", "names")
	r = privacyReport{}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json does not parse: %v\n%s", err, out)
	}
	if r.References.From != "names" || r.References.Count != 0 || r.Exposed != 0 {
		t.Errorf("--references names: %+v", r)
	}
	for _, n := range r.Noise {
		if strings.Contains(n.Kept, "purchase") {
			t.Errorf("--references names pairs %s with %s", n.Noised, n.Kept)
		}
	}
	for _, tb := range r.Tables {
		if tb.Lookup || tb.Table == "public.address" && (len(tb.Sets) != 1 || *tb.Sets[0].K != 20) {
			t.Errorf("--references names: %+v", tb)
		}
	}
	// The source unreachable: auto falls back on names, with a note;
	// --references source fails.
	s.env["SOURCE_DSN"] = "host=127.0.0.1 port=1 connect_timeout=2 password=other-pass"
	code, out, _ = s.runNoise()
	if code != exitOK || !strings.Contains(out, "\nreferences: joins found by column names only (<table>_id → table.id): the source could not be reached: ") {
		t.Errorf("auto without a source: exit %d\n%s", code, out)
	}
	code, _, errOut = s.runNoise("--references", "source")
	if code != exitProblems || !strings.Contains(errOut, "pgveil report: reading references from the source (source.dsn): ") {
		t.Errorf("--references source without a source: exit %d, stderr %q", code, errOut)
	}
}
