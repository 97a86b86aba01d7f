package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/internal/process"
	"pgveil/schema"
	"pgveil/transform"
)

// Helpers shared by the tests of the commands that connect to the
// databases (validate online, preview, status, verify).

// env is the environment the example rules read.
func (s *site) env() map[string]string {
	return map[string]string{"SOURCE_DSN": s.srcDSN, "TARGET_DSN": s.dstDSN, "PGVEIL_SECRET": pgtest.Secret}
}

// cli runs pgveil in-process against the site, checks that its output
// holds no seeded personal data, and returns exit code, stdout and stderr.
func (s *site) cli(args ...string) (int, string, string) {
	s.t.Helper()
	code, out, errOut := pgveil(s.t, s.env(), args...)
	s.noCanary("pgveil "+args[0]+"'s output", out+errOut)
	return code, out, errOut
}

// rulesWith writes a copy of the example rules with extra appended (more
// tables) into a temporary directory and returns its path.
func (s *site) rulesWith(extra string) string {
	s.t.Helper()
	data, err := os.ReadFile(s.config)
	if err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(s.t.TempDir(), "pgveil.yaml")
	if err := os.WriteFile(path, append(data, extra...), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// lineOf is the 1-based line of the first line of file holding text.
func lineOf(t *testing.T, file, text string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, text) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line with %q", file, text)
	return 0
}

func TestValidateOnline(t *testing.T) {
	s := newSite(t)
	code, out, errOut := s.cli("validate", "-c", s.config)
	if code != exitOK || !regexp.MustCompile(`pgveil\.yaml: OK: 7 tables, \d+ columns \(.*\) \(online: 7 tables checked against the source\)`).MatchString(out) {
		t.Fatalf("clean: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("clean:\n%s%s", out, errOut)
	if !strings.Contains(out, "\npublication pgveil: migration_safe: tables are published whole, so production can drop and retype any column;") {
		t.Errorf("the publication mode is not said:\n%s", out)
	}
	// The strict mode names the columns production could not drop or
	// retype: every published column, not the dropped notes.
	data, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	strict := filepath.Join(t.TempDir(), "strict.yaml")
	if err := os.WriteFile(strict, []byte(strings.Replace(string(data), "  publication: pgveil\n", "  publication: pgveil\n  publication_mode: column_lists\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = s.cli("validate", "-c", strict)
	t.Logf("column_lists:\n%s%s", out, errOut)
	if code != exitOK || !strings.Contains(out, "publication pgveil: column_lists: dropped and unruled columns never leave production; production's DROP COLUMN and ALTER COLUMN ... TYPE will fail on these columns") ||
		!regexp.MustCompile(`(?m)^  public\.customers: id, account_id, email, full_name, .*created_at, deleted_at$`).MatchString(out) || strings.Contains(out, "notes") {
		t.Errorf("column_lists: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// Production gains columns the rules do not name, and a table without
	// a primary key that the rules do name.
	s.exec(`ALTER TABLE customers ADD COLUMN nickname text, ADD COLUMN work_email text, ADD COLUMN recovery_token text, ADD COLUMN last_seen_ip inet`)
	s.exec(`CREATE TABLE audit_log (happened_at timestamptz NOT NULL DEFAULT now(), note text)`)
	cfg := s.rulesWith("\n  audit_log:\n    columns:\n      happened_at: keep\n      note: drop\n")
	code, out, errOut = s.cli("validate", "-c", cfg)
	if code != exitProblems {
		t.Fatalf("drift: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("drift:\n%s%s", out, errOut)
	at := cfg + ":" + itoa(lineOf(t, cfg, "  customers:")) + ":3: public.customers."
	for _, want := range []string{
		at + "nickname: column has no rule; deny by default: add a rule (for example drop); suggested: {fake: name}\n",
		at + "work_email: column has no rule; deny by default: add a rule (for example drop); suggested: {fake: email}\n",
		at + "recovery_token: column has no rule; deny by default: add a rule (for example drop); suggested: drop\n",
		at + "last_seen_ip: column has no rule; deny by default: add a rule (for example drop); suggested: {fake: ipv4}\n",
		cfg + ": public.audit_log: no primary key and REPLICA IDENTITY DEFAULT",
		"5 problems\n",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if out != "" {
		t.Errorf("stdout: %q", out)
	}

	// With rules for the new columns, the missing primary key remains: a
	// prerequisite problem, as FILE: table: message.
	s.exec(`ALTER TABLE customers DROP COLUMN nickname, DROP COLUMN work_email, DROP COLUMN recovery_token, DROP COLUMN last_seen_ip`)
	code, _, errOut = s.cli("validate", "-c", cfg)
	want := cfg + ": public.audit_log: no primary key and REPLICA IDENTITY DEFAULT: UPDATE and DELETE cannot be replicated"
	if code != exitProblems || !strings.Contains(errOut, want) || !strings.Contains(errOut, "1 problem\n") {
		t.Errorf("no primary key: exit %d, stderr:\n%s", code, errOut)
	}
	t.Logf("no primary key:\n%s", errOut)
}

func TestValidateOnlineConnectionFailure(t *testing.T) {
	env := map[string]string{"PGVEIL_SECRET": pgtest.Secret, "SOURCE_DSN": "postgres://pgveil:s3cr3t-pass@127.0.0.1:1/app?connect_timeout=5", "TARGET_DSN": "host=analytics password=other-pass user=pgveil"}
	code, out, errOut := pgveil(t, env, "validate", "-c", "../../examples/saas/pgveil.yaml")
	if code != exitProblems || !strings.Contains(errOut, "pgveil validate: connecting to the source: failed to connect to `user=pgveil database=app`") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	checkNoSecrets(t, out+errOut)
	// A password the server's message would quote is taken out too.
	err := scrubPassword(errString("password authentication failed: s3cr3t-pass"), env["SOURCE_DSN"])
	if strings.Contains(err.Error(), "s3cr3t-pass") {
		t.Errorf("scrubPassword: %v", err)
	}
}

func TestSuggestRule(t *testing.T) {
	for _, tc := range []struct{ name, typ, want string }{
		{"email", "text", "{fake: email}"},
		{"contact_email", "varchar(200)", "{fake: email}"},
		{"mobile", "text", "{partial: {keep_last: 2}}"},
		{"first_name", "text", "{fake: first_name}"},
		{"surname", "text", "{fake: last_name}"},
		{"display_name", "text", "{fake: name}"},
		{"street", "text", "{fake: street}"},
		{"postcode", "text", "{truncate: 3}"},
		{"dob", "date", "{truncate: year}"},
		{"birth_year", "integer", "drop"}, // {truncate: year} does not build for an integer
		{"ip", "inet", "{fake: ipv4}"},
		{"iban", "text", "drop"},
		{"card_number", "text", "drop"},
		{"password_hash", "text", "drop"},
		{"customer_id", "bigint", "hash"},
		{"updated_at", "timestamptz", "keep"},
		{"settings", "jsonb", `{json: {"$..email": {fake: email}}} (name the personal paths inside; or drop)`},
		{"favourite_colour", "text", "drop"},
	} {
		typ := mustParseType(t, tc.typ)
		if got := suggestFor(t, tc.name, typ); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.name, tc.typ, got, tc.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func itoa(n int) string { return strconv.Itoa(n) }

func mustParseType(t *testing.T, s string) schema.Type {
	t.Helper()
	typ, err := schema.ParseType(s)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

func suggestFor(t *testing.T, name string, typ schema.Type) string {
	t.Helper()
	keys, err := transform.NewKeys([]byte(pgtest.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return suggestRule(schema.Column{Name: name, Type: typ}, transform.Builtin(), keys)
}

// streaming waits until pgveil streams and has applied every earlier
// source commit. One sync is not enough right after the start: the first
// marker may be inside the initial copy's snapshot and show up in the
// replica before the other tables are copied; the second one comes through
// the stream, which starts after the copy.
func (s *site) streaming(p *process.Process) {
	s.t.Helper()
	s.sync(p)
	s.sync(p)
}
