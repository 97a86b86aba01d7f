package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// checkNoSecrets fails when s holds a value that must never be printed.
func checkNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range []string{testSecret, "Short-Pw-1", testSourcePass, testTargetPass, "literal-Pw-77", "literal-secret-xyz"} {
		if strings.Contains(s, sec) {
			t.Errorf("%s holds %q:\n%s", what, sec, s)
		}
	}
}

// TestNothingLeaks checks that the secret and DSN passwords, from the
// environment or written in the file, appear neither in problems nor in
// any printed form of the configuration.
func TestNothingLeaks(t *testing.T) {
	fromEnv := readFile(t, "testdata/good/design.yaml")
	literal := []byte(`source:
  dsn: postgres://app:literal-Pw-77@db/shop?password=literal-Pw-77
target:
  dsn: "host=x password='literal-Pw-77' user=y"
secret: literal-secret-xyz-literal-secret-xyz
tables:
  t: {columns: {id: keep}}
`)
	for name, data := range map[string][]byte{"env": fromEnv, "literal": literal} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse("f.yaml", data, testEnv(), testRegistry())
			if err != nil {
				t.Fatal(err)
			}
			all := cfg.Secret.Reveal() + cfg.Source.DSN.Reveal() + cfg.Target.DSN.Reveal()
			if name == "env" && !strings.Contains(all, testSecret) || name == "literal" && !strings.Contains(all, "literal-Pw-77") {
				t.Fatal("the values under test were not read")
			}
			var printed []string
			for _, v := range []any{cfg, *cfg, cfg.Source, cfg.Target, cfg.Secret, cfg.Source.DSN} {
				printed = append(printed, fmt.Sprintf("%v %+v %s %#v %q %x", v, v, v, v, v, v))
			}
			j, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			printed = append(printed, string(j))
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("loaded", "config", cfg, "source", cfg.Source, "secret", cfg.Secret, "dsn", cfg.Target.DSN)
			slog.New(slog.NewTextHandler(&buf, nil)).Info("loaded", "config", cfg, "source", cfg.Source, "secret", cfg.Secret, "dsn", cfg.Target.DSN)
			printed = append(printed, buf.String())
			for _, s := range printed {
				checkNoSecrets(t, "printed config", s)
			}
			if !strings.Contains(buf.String(), "[redacted]") || !strings.Contains(buf.String(), "xxxxx") {
				t.Errorf("slog output shows no redaction:\n%s", buf.String())
			}
		})
	}

	// Problems: make the file wrong everywhere the values are used.
	for name, src := range map[string]string{
		"short secret from env": strings.Replace(string(fromEnv), "${PGVEIL_SECRET}", "${SHORT_SECRET}", 1),
		"dsn as secret":         "secret: postgres://a:literal-Pw-77@h/d\n",
		"short literal secret":  "secret: literal-Pw-77\nsource: {dsn: 'literal-Pw-77'}\n",
		"dsn everywhere": `source: {dsn: "${SOURCE_DSN}", slot: "${SOURCE_DSN}", publication: "${TARGET_DSN}"}
target: {dsn: [postgres://a:literal-Pw-77@h/d], readers: ["${PGVEIL_SECRET}", "${PGVEIL_SECRET}", {a: literal-Pw-77}]}
secret: {literal-Pw-77: 1}
tables:
  t:
    where: ["${PGVEIL_SECRET}"]
    columns:
      a: ${PGVEIL_SECRET}
      b: {fake: "${PGVEIL_SECRET}"}
      c: {truncate: "${SOURCE_DSN}"}
      d: {kitchen: {n: "${TARGET_DSN}", x: "${TARGET_DSN}", b: "${TARGET_DSN}", d: "${TARGET_DSN}", c: "${TARGET_DSN}"}}
      e: {noise: "${SOURCE_DSN}"}
`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(src), testEnv(), testRegistry())
			if err == nil {
				t.Fatal("no problems")
			}
			checkNoSecrets(t, "problems", err.Error())
			checkNoSecrets(t, "problems", fmt.Sprintf("%#v", err))
		})
	}
}
