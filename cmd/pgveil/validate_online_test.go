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
	"pgveil/rules/scan"
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
		at + "nickname: column has no rule; deny by default: add a rule (for example drop); suggested: {fake: username}\n",
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

// validate suggests the scanner's proposal when it builds for the
// column, and a rule that does otherwise.
func TestSuggestRule(t *testing.T) {
	for _, tc := range []struct {
		name, typ string
		pk        bool
		p         scan.Proposal
		want      string
	}{
		{"email", "text", false, scan.Proposal{Rule: "{fake: email}", Reason: "name suggests email addresses"}, "{fake: email}"},
		{"city", "text", false, scan.Proposal{Rule: "keep", Reason: "quasi-identifier (cities): kept for analytics; drop it for small populations"},
			"keep (quasi-identifier (cities): kept for analytics; drop it for small populations)"},
		{"updated_at", "timestamptz", false, scan.Proposal{Rule: "keep"}, "keep"},
		{"birth_year", "integer", false, scan.Proposal{Rule: "{truncate: year}"}, "drop"}, // does not build for an integer
		{"code", "text", true, scan.Proposal{Rule: "{fake: name}"}, "hash"},               // a key may only be keep or hash
	} {
		col := schema.Column{Name: tc.name, Type: mustParseType(t, tc.typ), PrimaryKey: tc.pk}
		if got := suggestRule(col, tc.p, transform.Builtin(), testKeys(t)); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.name, tc.typ, got, tc.want)
		}
	}
}

// validate and scan suggest the same rule for the same column (validate
// once had a guesser of its own that said {fake: city} where scan keeps).
func TestSuggestionsAgreeWithScan(t *testing.T) {
	s := newSite(t)
	cols := []string{
		"email text", "contact_email varchar(200)", "mobile text", "first_name text", "surname text",
		"display_name text", "street text", "postcode text", "city text", "dob date", "birth_year integer",
		"ip inet", "iban text", "card_number text", "password_hash text", "customer_id bigint",
		"updated_at timestamptz", "settings jsonb", "favourite_colour text", "nickname text", "notes text",
	}
	s.exec(`CREATE TABLE people_extra (id bigint PRIMARY KEY, ` + strings.Join(cols, ", ") + `)`)
	cfg := s.rulesWith("\n  people_extra:\n    columns:\n      id: hash\n")
	code, _, errOut := s.cli("validate", "-c", cfg)
	if code != exitProblems {
		t.Fatalf("validate: exit %d\n%s", code, errOut)
	}
	suggested := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)public\.people_extra\.(\w+): column has no rule; .*; suggested: (.*)$`).FindAllStringSubmatch(errOut, -1) {
		suggested[m[1]] = m[2]
	}
	code, out, serr := s.cli("scan", "--source", s.srcDSN, "--sample", "0", "--schema", "public")
	if code != exitOK {
		t.Fatalf("scan: exit %d\n%s", code, serr)
	}
	table := out[strings.Index(out, "\n  people_extra:\n"):]
	proposed := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^      (\w+): (.*?)(?: {3,}# (.*))?$`).FindAllStringSubmatch(table, len(cols)+1) {
		proposed[m[1]] = m[2]
		if m[2] == "keep" && m[3] != "" {
			proposed[m[1]] += " (" + m[3] + ")"
		}
	}
	t.Logf("validate:\n%s\nscan:\n%s", errOut, table)
	for _, c := range cols {
		name := strings.Fields(c)[0]
		if suggested[name] == "" || suggested[name] != proposed[name] {
			t.Errorf("%s: validate suggests %q, scan proposes %q", c, suggested[name], proposed[name])
		}
	}
}

func testKeys(t *testing.T) *transform.Keys {
	t.Helper()
	keys, err := transform.NewKeys([]byte(pgtest.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return keys
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
