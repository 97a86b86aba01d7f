package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
)

// pgveil runs the command line in-process and returns exit code, stdout and stderr.
func pgveil(t *testing.T, envVars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return pgveilContext(context.Background(), envVars, args...)
}

// pgveilContext is pgveil until ctx ends (for run, which goes on until
// stopped).
func pgveilContext(ctx context.Context, envVars map[string]string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, lookupEnv: func(k string) (string, bool) {
		v, ok := envVars[k]
		return v, ok
	}}
	code := run(ctx, e, args)
	return code, out.String(), errOut.String()
}

var saasEnv = map[string]string{
	"PGVEIL_SECRET": pgtest.Secret,
	"SOURCE_DSN":    "postgres://pgveil:s3cr3t-pass@prod/app",
	"TARGET_DSN":    "host=analytics password=other-pass user=pgveil",
}

func TestHelpAndUsage(t *testing.T) {
	code, out, _ := pgveil(t, nil, "help")
	if code != exitOK {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "  "+c.name) {
			t.Errorf("help does not list %s:\n%s", c.name, out)
		}
	}
	for _, args := range [][]string{nil, {"frobnicate"}, {"help", "frobnicate"}} {
		code, _, errOut := pgveil(t, nil, args...)
		if code != exitUsage || !strings.Contains(errOut, "Usage: pgveil COMMAND") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	code, _, errOut := pgveil(t, nil, "validate", "--bogus")
	if code != exitUsage || !strings.Contains(errOut, "flag provided but not defined: -bogus") || !strings.Contains(errOut, "Usage: pgveil validate") {
		t.Errorf("unknown flag: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = pgveil(t, nil, "help", "try")
	if code != exitOK || !strings.Contains(errOut, "-secret-env") {
		t.Errorf("help try: exit %d, %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := pgveil(t, nil, "version")
	if code != exitOK || !strings.HasPrefix(out, "pgveil ") {
		t.Errorf("exit %d, %q", code, out)
	}
}

func TestValidateOfflineGood(t *testing.T) {
	code, out, errOut := pgveil(t, saasEnv, "validate", "-c", "../../examples/saas/pgveil.yaml", "--offline")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`OK \(offline\): 7 tables, \d+ columns \(drop 2, fake \d+, hash \d+, json 3, keep \d+`).MatchString(out) {
		t.Errorf("summary: %s", out)
	}
	// The table tenants cannot read is named, so a mistake shows.
	if !strings.Contains(out, "\ntenancy: 6 tenant tables, 0 shared, 1 hidden from tenants (public.payments)\n") {
		t.Errorf("tenancy summary: %s", out)
	}
	checkNoSecrets(t, out+errOut)
}

func TestValidateOfflineReportsEveryMistake(t *testing.T) {
	code, out, errOut := pgveil(t, saasEnv, "validate", "-c", "testdata/three_mistakes.yaml", "--offline")
	if code != exitProblems {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		`testdata/three_mistakes.yaml:3:3: unknown key "slots"`,
		`testdata/three_mistakes.yaml:11:21: public.customers.email: fake: kind: must be one of`,
		`testdata/three_mistakes.yaml:12:23: public.customers.zip: truncate: length: must be at least 1`,
		"3 problems",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	checkNoSecrets(t, out+errOut)
}

func TestValidateShortSecretAndMissingEnv(t *testing.T) {
	env := map[string]string{"PGVEIL_SECRET": "short-secret-value", "SOURCE_DSN": "x"}
	code, out, errOut := pgveil(t, env, "validate", "-c", "../../examples/saas/pgveil.yaml", "--offline")
	if code != exitProblems || !strings.Contains(errOut, "secret must be at least 32 bytes") || !strings.Contains(errOut, "TARGET_DSN is not set") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out+errOut, "short-secret-value") {
		t.Error("the secret was printed")
	}
	code, _, errOut = pgveil(t, env, "validate", "-c", "no/such/file.yaml", "--offline")
	if code != exitProblems || !strings.Contains(errOut, "no/such/file.yaml") {
		t.Errorf("missing file: exit %d, %s", code, errOut)
	}
	// Online, the rules are checked before connecting.
	code, _, errOut = pgveil(t, env, "validate", "-c", "../../examples/saas/pgveil.yaml")
	if code != exitProblems || !strings.Contains(errOut, "TARGET_DSN is not set") || strings.Contains(errOut, "short-secret-value") {
		t.Errorf("online: exit %d, %s", code, errOut)
	}
}

func TestTry(t *testing.T) {
	env := map[string]string{"S": pgtest.Secret, "OTHER": strings.Repeat("z", 40)}
	code, out, errOut := pgveil(t, env, "try", "--secret-env", "S", "{fake: email}", "alice@example.com", `\N`, "alice@example.com")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 3 || lines[0] != lines[2] || lines[1] != `\N` || !strings.Contains(lines[0], "@") || lines[0] == "alice@example.com" {
		t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
	}
	_, other, _ := pgveil(t, env, "try", "--secret-env", "OTHER", "{fake: email}", "alice@example.com")
	if strings.TrimSpace(other) == lines[0] {
		t.Error("another secret gives the same fake")
	}
	code, out, _ = pgveil(t, env, "try", "--secret-env", "S", "--type", "date", "{truncate: year}", "1984-07-12")
	if code != exitOK || out != "1984-01-01\n" {
		t.Errorf("truncate: exit %d, %q", code, out)
	}
	code, _, errOut = pgveil(t, env, "try", "--secret-env", "S", "--type", "integer", "hash", "12", "CANARY-not-a-number")
	if code != exitProblems || !strings.Contains(errOut, "value 2: not a valid integer") || strings.Contains(errOut, "CANARY") {
		t.Errorf("bad value: exit %d, %q", code, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"try", "{fake: email}", "x"}, "give --secret-env", exitUsage},
		{[]string{"try", "--secret-env", "NOPE", "hash", "x"}, "NOPE is not set", exitUsage},
		{[]string{"try", "--secret-env", "S", "{fake: emial}", "x"}, "must be one of", exitUsage},
		{[]string{"try", "--secret-env", "S", "--type", "integer", "{fake: email}", "1"}, "does not fit a integer column", exitProblems},
		{[]string{"try", "--secret-env", "S", "drop", "x"}, "no value to show", exitProblems},
		{[]string{"try", "--secret-env", "S", "--type", "numeric(2,5)", "hash", "1"}, "--type", exitUsage},
	} {
		code, _, errOut := pgveil(t, env, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	env["SHORT"] = "tiny-secret"
	_, _, errOut = pgveil(t, env, "try", "--secret-env", "SHORT", "hash", "x")
	if !strings.Contains(errOut, "at least 32 bytes") || strings.Contains(errOut, "tiny-secret") {
		t.Errorf("short secret: %q", errOut)
	}
}

func checkNoSecrets(t *testing.T, s string) {
	t.Helper()
	for _, v := range []string{pgtest.Secret, "s3cr3t-pass", "other-pass"} {
		if strings.Contains(s, v) {
			t.Errorf("output contains a secret: %q", v)
		}
	}
}

// README.md gives the same test command as .ci/run runs.
func TestReadmeTestCommandMatchesCI(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TEST_CMD="([^"]+)"$`).FindSubmatch(ci)
	if m == nil {
		t.Fatal(".ci/run has no TEST_CMD line")
	}
	if !bytes.Contains(readme, append(append([]byte("\n"), m[1]...), '\n')) {
		t.Errorf("README.md does not give the test command %q on a line of its own", m[1])
	}
}
