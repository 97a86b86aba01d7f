package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/transform"
)

// head is a valid start of a rules file; tables start on line 7.
const head = `source:
  dsn: postgres://app:pw@db/prod
target:
  dsn: postgres://w:pw@analytics/db
secret: ` + pgtest.Secret + `
tables:
`

func parseString(t *testing.T, src string) (*Config, Problems) {
	t.Helper()
	cfg, err := Parse("rules.yaml", []byte(src), testEnv(), testRegistry())
	ps := problemsOf(t, err)
	if err != nil && cfg != nil {
		t.Errorf("Parse returned a config along with errors")
	}
	if err == nil && cfg == nil {
		t.Fatalf("Parse returned neither config nor error")
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Line < ps[i-1].Line || ps[i].Line == ps[i-1].Line && ps[i].Col < ps[i-1].Col {
			t.Errorf("problems not sorted: %v before %v", ps[i-1], ps[i])
		}
	}
	for _, p := range ps {
		if p.File != "rules.yaml" {
			t.Errorf("problem without the file name: %#v", p)
		}
	}
	return cfg, ps
}

// TestParseProblems checks the position and message of every check that
// needs no catalog.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []want
	}{
		// The file as a whole.
		{"empty", "", []want{"1:1: the file is empty"}},
		{"comments only", "# nothing\n", []want{"1:1: the file is empty"}},
		{"root list", "- a\n- b\n", []want{"1:1: the file must be a map with source, target, secret and tables, not a list"}},
		{"root scalar", "hello\n", []want{"1:1: must be a map"}},
		{"syntax error", "source:\n  dsn: [a,\nsecret: x\n", []want{"2:0: YAML syntax error: did not find expected ',' or ']'"}},
		{"syntax error on line 1", "a: b: c\n", []want{"1:0: YAML syntax error: mapping values are not allowed"}},
		{"tab indent", "source:\n\tdsn: x\n", []want{"2:0: YAML syntax error"}},
		{"two documents", head + "  t:\n    columns: {id: keep}\n---\nsource: {}\n", []want{"10:1: one YAML document"}},
		{"all missing", "{}\n", []want{
			"1:1: source.dsn is required", "1:1: target.dsn is required",
			"1:1: secret is required", "1:1: tables is required"}},

		// Strict keys.
		{"unknown top-level key", head + "  t: {columns: {id: keep}}\nsecrets: x\n", []want{
			`8:1: unknown key "secrets"; allowed keys: source, target, secret, tenancy, tables`}},
		{"unknown source key", "source:\n  dsn: x\n  slots: a\n" + head[len("source:\n  dsn: postgres://app:pw@db/prod\n"):] + "  t: {columns: {id: keep}}\n", []want{
			`3:3: unknown key "slots"; allowed keys: dsn, slot, publication`}},
		{"unknown target key", "target:\n  dsn: x\n  reader: [a]\n" + strings.Replace(head, "target:\n  dsn: postgres://w:pw@analytics/db\n", "", 1) + "  t: {columns: {id: keep}}\n", []want{
			`3:3: unknown key "reader"; allowed keys: dsn, readers`}},
		{"bad refresh interval", "target:\n  dsn: x\n  refresh_materialized_views: hourly\n" + strings.Replace(head, "target:\n  dsn: postgres://w:pw@analytics/db\n", "", 1) + "  t: {columns: {id: keep}}\n", []want{
			`3:31: refresh_materialized_views "hourly" is not a duration of at least 1s`}},
		{"unknown table key", head + "  t:\n    colums: {id: keep}\n", []want{
			`7:3: public.t: columns is required`,
			`8:5: public.t: unknown key "colums"; allowed keys: where, tenant, references, columns`}},
		{"merge key", head + "  t:\n    <<: {where: x}\n    columns: {id: keep}\n", []want{"8:5: merge keys (<<) are not supported"}},

		// Duplicate keys.
		{"duplicate top-level key", head + "  t: {columns: {id: keep}}\nsecret: " + pgtest.Secret + "\n", []want{
			`8:1: duplicate key "secret" (first at line 5)`}},
		{"duplicate column key", head + "  t:\n    columns:\n      id: keep\n      id: hash\n", []want{
			`10:7: public.t: duplicate key "id" (first at line 9)`}},
		{"duplicate table key", head + "  t: {columns: {id: keep}}\n  t: {columns: {id: keep}}\n", []want{
			`8:3: duplicate key "t" (first at line 7)`}},
		{"duplicate table after resolution", head + "  customers: {columns: {id: keep}}\n  public.Customers: {columns: {id: keep}}\n", []want{
			`8:3: public.customers: duplicate table (first at line 7)`}},
		{"duplicate column after folding", head + "  t:\n    columns:\n      Email: keep\n      email: drop\n", []want{
			`10:7: public.t.email: duplicate column (first at line 9)`}},
		{"values of duplicates are checked", head + "  t: {columns: {id: keep}}\n  t: {columns: {id: hsh}}\n", []want{
			`8:3: duplicate key "t"`, `8:21: public.t.id: unknown transformer "hsh"`}},
		{"duplicate param", head + "  t:\n    columns:\n      id: {fake: {kind: email, kind: name}}\n", []want{
			`9:32: public.t.id: duplicate key "kind" (first at line 9)`}},

		// Wrong node kinds.
		{"source list", "source: [a]\ntarget: {dsn: x}\nsecret: " + pgtest.Secret + "\ntables: {t: {columns: {id: keep}}}\n", []want{
			"1:9: source must be a map with dsn, slot, publication, publication_mode, not a list"}},
		{"dsn map", "source: {dsn: {a: b}}\ntarget: {dsn: x}\nsecret: " + pgtest.Secret + "\ntables: {t: {columns: {id: keep}}}\n", []want{
			"1:15: source.dsn must be a single value, not a map"}},
		{"tables list", head + "  - t\n", []want{"7:3: tables must be a map of table names to their rules, not a list"}},
		{"table entry null", head + "  t:\n", []want{"7:3: public.t: a table entry must be a map with columns (and optionally where), not null"}},
		{"table entry list", head + "  t: [id]\n", []want{"7:6: public.t: a table entry must be a map"}},
		{"columns list", head + "  t:\n    columns: [id]\n", []want{"8:14: public.t: columns must be a map of column names to rules, not a list"}},
		{"where list", head + "  t:\n    where: [a]\n    columns: {id: keep}\n", []want{"8:12: public.t: where must be a single value, not a list"}},
		{"key not a scalar", head + "  t:\n    columns:\n      [a]: keep\n", []want{
			"9:7: public.t: a key must be a single value, not a list",
			"9:7: public.t: columns must list at least one column"}},
		{"unsupported tag", head + "  t:\n    where: !sql x > 1\n    columns: {id: keep}\n", []want{"8:12: public.t: unsupported YAML tag !sql"}},

		// Required values.
		{"source without dsn", "source:\n  slot: a\ntarget: {dsn: x}\nsecret: " + pgtest.Secret + "\ntables: {t: {columns: {id: keep}}}\n", []want{
			"1:1: source.dsn is required"}},
		{"source null", "source:\ntarget: {dsn: x}\nsecret: " + pgtest.Secret + "\ntables: {t: {columns: {id: keep}}}\n", []want{
			"1:1: source.dsn is required"}},
		{"empty dsn", "source: {dsn: ''}\ntarget: {dsn: '${EMPTY}'}\nsecret: " + pgtest.Secret + "\ntables: {t: {columns: {id: keep}}}\n", []want{
			"1:10: source.dsn is required", "2:10: target.dsn is required"}},
		{"secret missing", strings.Replace(head, "secret: "+pgtest.Secret+"\n", "", 1) + "  t: {columns: {id: keep}}\n", []want{
			"1:1: secret is required"}},
		{"secret empty", strings.Replace(head, "secret: "+pgtest.Secret, "secret: ''", 1) + "  t: {columns: {id: keep}}\n", []want{
			"5:1: secret is required"}},
		{"secret null", strings.Replace(head, "secret: "+pgtest.Secret, "secret:", 1) + "  t: {columns: {id: keep}}\n", []want{
			"5:1: secret is required"}},
		{"secret short", strings.Replace(head, pgtest.Secret, "0123456789", 1) + "  t: {columns: {id: keep}}\n", []want{
			"5:9: secret must be at least 32 bytes (it has 10)"}},
		{"secret short from env", strings.Replace(head, pgtest.Secret, "${SHORT_SECRET}", 1) + "  t: {columns: {id: keep}}\n", []want{
			"5:9: secret must be at least 32 bytes (it has 10)"}},
		{"secret list", strings.Replace(head, pgtest.Secret, "[a]", 1) + "  t: {columns: {id: keep}}\n", []want{
			"5:9: secret must be a single value, not a list"}},
		{"tables null", head, []want{"6:1: tables must list at least one table"}},
		{"tables empty", head + "  {}\n", []want{"7:3: tables must list at least one table"}},
		{"columns missing", head + "  t:\n    where: a > 1\n", []want{"7:3: public.t: columns is required"}},
		{"columns null", head + "  t:\n    columns:\n", []want{"8:5: public.t: columns must list at least one column"}},
		{"columns empty", head + "  t:\n    columns: {}\n", []want{"8:14: public.t: columns must list at least one column"}},
		{"where empty", head + "  t:\n    where: ''\n    columns: {id: keep}\n", []want{"8:5: public.t: where must not be empty"}},

		// Slot, publication and readers.
		{"bad slot", strings.Replace(head, "  dsn: postgres://app:pw@db/prod\n", "  dsn: x\n  slot: My-Slot\n  publication: 9pub\n", 1) + "  t: {columns: {id: keep}}\n", []want{
			`3:9: slot "My-Slot" is not a valid name`, `4:16: publication "9pub" is not a valid name`}},
		{"slot too long", strings.Replace(head, "  dsn: postgres://app:pw@db/prod\n", "  dsn: x\n  slot: "+strings.Repeat("s", 64)+"\n", 1) + "  t: {columns: {id: keep}}\n", []want{
			`3:9: slot "sss`}},
		{"bad slot from env", strings.Replace(head, "  dsn: postgres://app:pw@db/prod\n", "  dsn: x\n  slot: ${BAD_RULE}-x\n", 1) + "  t: {columns: {id: keep}}\n", []want{
			`3:9: slot (from the environment) is not a valid name`}},
		{"readers", strings.Replace(head, "  dsn: postgres://w:pw@analytics/db\n", "  dsn: x\n  readers:\n    - a\n    - ''\n    - a\n    - [b]\n    -\n", 1) + "  t: {columns: {id: keep}}\n", []want{
			`7:7: a reader role name must not be empty`,
			`8:7: duplicate reader "a" (first at line 6)`,
			`9:7: a reader must be a single value, not a list`,
			`10:6: a reader role name must not be empty`}},
		{"readers map", strings.Replace(head, "  dsn: postgres://w:pw@analytics/db\n", "  dsn: x\n  readers: {a: b}\n", 1) + "  t: {columns: {id: keep}}\n", []want{
			`5:12: readers must be a list of role names, not a map`}},

		// Environment variables.
		{"unset variable", strings.Replace(head, "postgres://app:pw@db/prod", "${NOPE}", 1) + "  t: {columns: {id: keep}}\n", []want{
			"2:8: environment variable NOPE is not set"}},
		{"two unset variables", head + "  t:\n    where: ${A} > ${B:-1} and ${C}\n    columns: {id: keep}\n", []want{
			"8:12: public.t: environment variable A is not set", "8:12: public.t: environment variable C is not set"}},
		{"malformed reference", head + "  t:\n    where: ${a-b}\n    columns: {id: keep}\n", []want{"8:12: public.t: malformed ${...}"}},
		{"unterminated reference", head + "  t:\n    where: x ${A\n    columns: {id: keep}\n", []want{"8:12: public.t: unterminated ${"}},
		{"unset variable in rule", head + "  t:\n    columns:\n      id: ${NOPE}\n      a: {truncate: \"${NOPE2}\"}\n", []want{
			"9:11: public.t.id: environment variable NOPE is not set",
			"10:21: public.t.a: environment variable NOPE2 is not set"}},

		// Table and column names.
		{"empty name part", head + "  a..b: {columns: {id: keep}}\n", []want{`7:3: malformed table name "a..b": empty name part`}},
		{"trailing dot", head + "  a.: {columns: {id: keep}}\n", []want{`7:3: malformed table name "a.": empty name part`}},
		{"three parts", head + "  a.b.c: {columns: {id: keep}}\n", []want{`7:3: malformed table name "a.b.c": write table or schema.table`}},
		{"unbalanced quote", head + "  '\"Sales.orders': {columns: {id: keep}}\n", []want{`7:3: malformed table name "\"Sales.orders": unbalanced double quote`}},
		{"quote inside", head + "  'sa\"les': {columns: {id: keep}}\n", []want{`7:3: malformed table name`}},
		{"text after quote", head + "  '\"a\"b': {columns: {id: keep}}\n", []want{`7:3: malformed table name "\"a\"b": a quoted name must be followed by a dot`}},
		{"empty quoted", head + "  '\"\"': {columns: {id: keep}}\n", []want{`7:3: malformed table name "\"\"": empty quoted name`}},
		{"bad character", head + "  order-items: {columns: {id: keep}}\n", []want{`7:3: malformed table name "order-items": an unquoted name holds only letters`}},
		{"leading digit", head + "  1t: {columns: {id: keep}}\n", []want{`7:3: malformed table name "1t"`}},
		{"too long", head + "  " + strings.Repeat("t", 64) + ": {columns: {id: keep}}\n", []want{`7:3: malformed table name "ttt`}},
		{"column with dot", head + "  t:\n    columns:\n      a.b: keep\n", []want{`9:7: public.t: malformed column name "a.b": a column name has no dot`}},
		{"column with space", head + "  t:\n    columns:\n      full name: keep\n", []want{`9:7: public.t: malformed column name "full name"`}},

		// Rules.
		{"unknown transformer", head + "  t:\n    columns:\n      id: hsh\n", []want{
			`9:11: public.t.id: unknown transformer "hsh"; did you mean hash? (known: drop, fake, hash, json, keep, kitchen, noise, null, partial, redact, truncate)`}},
		{"unknown transformer in map", head + "  t:\n    columns:\n      id: {fak: email}\n", []want{
			`9:12: public.t.id: unknown transformer "fak"; did you mean fake?`}},
		{"unknown transformer NULL", head + "  t:\n    columns:\n      id: NULL\n", []want{
			`9:11: public.t.id: unknown transformer "NULL"; did you mean null?`}},
		{"unknown transformer from env", head + "  t:\n    columns:\n      id: ${BAD_RULE}\n", []want{
			`9:11: public.t.id: unknown transformer (from the environment) (known: drop`}},
		{"missing rule", head + "  t:\n    columns:\n      id:\n", []want{`9:7: public.t.id: missing rule: write a transformer name (drop, fake`}},
		{"missing rule ~", head + "  t:\n    columns:\n      id: ~\n", []want{`9:7: public.t.id: missing rule`}},
		{"empty rule", head + "  t:\n    columns:\n      id: ''\n", []want{`9:7: public.t.id: missing rule`}},
		{"rule list", head + "  t:\n    columns:\n      id: [hash]\n", []want{`9:11: public.t.id: a rule is a transformer name or a one-key map such as {fake: email}, not a list`}},
		{"rule map of two", head + "  t:\n    columns:\n      id: {hash: , keep: }\n", []want{`9:11: public.t.id: a rule is a transformer name or a one-key map such as {fake: email}; this map has 2 keys`}},
		{"rule empty map", head + "  t:\n    columns:\n      id: {}\n", []want{`9:11: public.t.id: a rule is a transformer name or a one-key map`}},
		{"no shorthand", head + "  t:\n    columns:\n      id: {fake: 3}\n", []want{`9:18: public.t.id: fake takes no integer argument; write {fake: {param: value}} (parameters: kind, unique)`}},
		{"no arguments", head + "  t:\n    columns:\n      id: {hash: 3}\n", []want{`9:18: public.t.id: hash takes no integer argument: it has no parameters; write hash`}},
		{"argument list", head + "  t:\n    columns:\n      id: {hash: [3]}\n", []want{`9:18: public.t.id: hash takes one value or a map of parameters, not a list`}},
		{"unknown parameter", head + "  t:\n    columns:\n      id: {fake: {kinds: email}}\n", []want{`9:19: public.t.id: fake has no parameter "kinds" (parameters: kind, unique)`}},
		{"parameter of none", head + "  t:\n    columns:\n      id: {hash: {length: 3}}\n", []want{`9:19: public.t.id: hash has no parameter "length" (it takes none)`}},
		{"enum via CheckArgs", head + "  t:\n    columns:\n      id: {fake: bogus}\n", []want{`9:18: public.t.id: fake: kind: must be one of email, name, street, phone`}},
		{"spec Check via CheckArgs", head + "  t:\n    columns:\n      id: {fake: }\n", []want{`9:11: public.t.id: fake: kind is required`}},
		{"param Check via CheckArgs", head + "  t:\n    columns:\n      id: {truncate: 0}\n", []want{`9:22: public.t.id: truncate: length: must be at least 1`}},
		{"combination", head + "  t:\n    columns:\n      id:\n        truncate:\n          length: 2\n          unit: year\n", []want{`10:9: public.t.id: truncate: give exactly one of length, unit or step`}},
		{"char via CheckArgs", head + "  t:\n    columns:\n      id: {partial: {keep_last: 2, mask: ab}}\n", []want{`9:42: public.t.id: partial: mask: must be a single character`}},

		// Parameter values.
		{"explicit tag keeps a string", head + "  t:\n    columns:\n      id: {truncate: !!str \"${LEN}\"}\n", []want{`9:22: public.t.id: truncate: unit: must be one of year, month, day`}},
		{"int from fraction", head + "  t:\n    columns:\n      id: {kitchen: {n: 2.5}}\n", []want{`9:25: public.t.id: kitchen: n: must be an integer`}},
		{"int from string", head + "  t:\n    columns:\n      id: {kitchen: {n: '3'}}\n", []want{`9:25: kitchen: n: must be an integer`}},
		{"int from bool", head + "  t:\n    columns:\n      id: {kitchen: {n: true}}\n", []want{`9:25: kitchen: n: must be an integer`}},
		{"int overflow", head + "  t:\n    columns:\n      id: {kitchen: {n: 1e30}}\n", []want{`9:25: kitchen: n: must be an integer`}},
		{"int null", head + "  t:\n    columns:\n      id: {kitchen: {n: }}\n", []want{`9:22: kitchen: n needs a value`}},
		{"int list", head + "  t:\n    columns:\n      id: {kitchen: {n: [1]}}\n", []want{`9:25: kitchen: n must be an integer, not a list`}},
		{"number from string", head + "  t:\n    columns:\n      id: {kitchen: {x: abc}}\n", []want{`9:25: kitchen: x: must be a number`}},
		{"number infinite", head + "  t:\n    columns:\n      id: {kitchen: {x: .inf}}\n", []want{`9:25: kitchen: x: must be a finite number`}},
		{"bool from yes", head + "  t:\n    columns:\n      id: {kitchen: {b: yes}}\n", []want{`9:25: kitchen: b: must be true or false`}},
		{"bad duration", head + "  t:\n    columns:\n      id: {kitchen: {d: soon}}\n", []want{`9:25: kitchen: d: bad duration: use forms like 90s`}},
		{"string from map", head + "  t:\n    columns:\n      id: {kitchen: {s: {a: b}}}\n", []want{`9:25: kitchen: s must be a string, not a map`}},
		{"rules from scalar", head + "  t:\n    columns:\n      id: {kitchen: {r: drop}}\n", []want{`9:25: kitchen: r must be a map of JSON paths to rules`}},

		// JSON path rules.
		{"json path without $", head + "  t:\n    columns:\n      doc: {json: {a.b: drop}}\n", []want{`9:20: public.t.doc: JSON path "a.b" must start with $`}},
		{"json nested unknown", head + "  t:\n    columns:\n      doc: {json: {$.a: hsh}}\n", []want{`9:25: public.t.doc: unknown transformer "hsh"`}},
		{"json nested bad param", head + "  t:\n    columns:\n      doc: {json: {$.a: {truncate: 0}}}\n", []want{`9:36: public.t.doc: truncate: length: must be at least 1`}},
		{"json nested missing", head + "  t:\n    columns:\n      doc: {json: {$.a: }}\n", []want{`9:20: public.t.doc: missing rule`}},
		{"json PosError", head + "  t:\n    columns:\n      doc:\n        json:\n          $.a: drop\n          $..b: keep\n", []want{`12:11: public.t.doc: json: recursive descent is not supported here`}},
		{"json scalar", head + "  t:\n    columns:\n      doc: {json: drop}\n", []want{`9:19: public.t.doc: json takes a map of JSON paths to rules`}},
		{"json list", head + "  t:\n    columns:\n      doc: {json: [drop]}\n", []want{`9:19: public.t.doc: json takes one value or a map of parameters, not a list`}},
		{"json no paths", head + "  t:\n    columns:\n      doc: {json: {}}\n", []want{`9:12: public.t.doc: json: give at least one path`}},
		{"json null", head + "  t:\n    columns:\n      doc: {json: }\n", []want{`9:12: public.t.doc: json: give at least one path`}},

		// YAML aliases.
		{"alias cycle", head + "  t:\n    columns:\n      doc: &a {json: {$.x: *a}}\n", []want{
			"9:23: public.t.doc: missing rule", "9:28: too many YAML aliases"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := parseString(t, tt.src)
			checkProblems(t, ps, tt.want)
		})
	}
}

func TestParseValid(t *testing.T) {
	src := `source:
  dsn: ${SOURCE_DSN}
  slot: ${SLOT}
target:
  dsn: ${TARGET_DSN}
  readers: [metabase_ro, "${READER:-x}_2", analyst]
secret: ${PGVEIL_SECRET}
tables:
  customers:
    where: price > $$5 AND name <> '$x' AND z = '${UNSET:-d}'
    columns:
      ID: hash
      '"Email"': {fake: email}
      nothing: null
      kept: {keep: }
      dropped: {drop: null}
      len: {truncate: "${LEN}"}
      ratio: {noise: '${RATIO}'}
      len_str: {noise: "${LEN}"}
      unit: {truncate: year}
      step: {truncate: 2.5}
      n: {truncate: 1_000}
      r: {redact: 0}
      rb: {redact: true}
      env_rule: ${RULE}
      p:
        partial:
          keep_last: 2
  '"Sales"."Order Items"':
    columns:
      k:
        kitchen:
          n: 3.0
          x: 2
          s: 0x10
          c: "*"
          b: false
          d: 30d
          r:
            "$.a": drop
            $.b: {fake: name}
  sales.orders:
    columns:
      doc: {json: {"$.address.street": {fake: street}, "$.ssn": drop}}
`
	cfg, ps := parseString(t, src)
	if len(ps) > 0 {
		t.Fatalf("problems:\n%v", ps)
	}
	if got, want := cfg.Source.DSN.Reveal(), testEnvMap()["SOURCE_DSN"]; got != want {
		t.Errorf("source DSN = %q, want %q", got, want)
	}
	if cfg.Source.Slot != "pgveil_slot" || cfg.Source.Publication != "pgveil" {
		t.Errorf("slot, publication = %q, %q", cfg.Source.Slot, cfg.Source.Publication)
	}
	if got, want := cfg.Target.Readers, []string{"metabase_ro", "metabase_ro_2", "analyst"}; !reflect.DeepEqual(got, want) {
		t.Errorf("readers = %q, want %q", got, want)
	}
	if cfg.Secret.Reveal() != testSecret {
		t.Errorf("secret not read from the environment")
	}
	if len(cfg.Tables) != 3 {
		t.Fatalf("%d tables, want 3", len(cfg.Tables))
	}
	c := cfg.Tables[0]
	if c.Schema != "public" || c.Name != "customers" || c.Line != 9 || c.Col != 3 {
		t.Errorf("table = %s.%s at %d:%d, want public.customers at 9:3", c.Schema, c.Name, c.Line, c.Col)
	}
	if want := `price > $5 AND name <> '$x' AND z = 'd'`; c.Where != want {
		t.Errorf("where = %q, want %q", c.Where, want)
	}
	type col struct {
		name      string
		rule      string
		args      transform.Args
		line, col int // of the key
		rl, rc    int // of the rule
	}
	wantCols := []col{
		{"id", "hash", nil, 12, 7, 12, 11},
		{"Email", "fake", transform.Args{"kind": "email"}, 13, 7, 13, 18},
		{"nothing", "null", nil, 14, 7, 14, 16},
		{"kept", "keep", nil, 15, 7, 15, 13},
		{"dropped", "drop", nil, 16, 7, 16, 16},
		{"len", "truncate", transform.Args{"length": int64(3)}, 17, 7, 17, 12},
		{"ratio", "noise", transform.Args{"ratio": 0.25}, 18, 7, 18, 14},
		{"len_str", "noise", transform.Args{"ratio": 3.0}, 19, 7, 19, 16},
		{"unit", "truncate", transform.Args{"unit": "year"}, 20, 7, 20, 13},
		{"step", "truncate", transform.Args{"step": 2.5}, 21, 7, 21, 13},
		{"n", "truncate", transform.Args{"length": int64(1000)}, 22, 7, 22, 10},
		{"r", "redact", transform.Args{"value": "0"}, 23, 7, 23, 10},
		{"rb", "redact", transform.Args{"value": "true"}, 24, 7, 24, 11},
		{"env_rule", "hash", nil, 25, 7, 25, 17},
		{"p", "partial", transform.Args{"keep_last": int64(2)}, 26, 7, 27, 9},
	}
	if len(c.Columns) != len(wantCols) {
		t.Fatalf("%d columns, want %d", len(c.Columns), len(wantCols))
	}
	for i, w := range wantCols {
		g := c.Columns[i]
		if g.Name != w.name || g.Rule.Name != w.rule || !reflect.DeepEqual(g.Rule.Args, w.args) ||
			g.Line != w.line || g.Col != w.col || g.Rule.Line != w.rl || g.Rule.Col != w.rc {
			t.Errorf("column %d = %s %s %#v at %d:%d (rule %d:%d), want %+v", i, g.Name, g.Rule.Name, g.Rule.Args, g.Line, g.Col, g.Rule.Line, g.Rule.Col, w)
		}
	}

	s := cfg.Tables[1]
	if s.Schema != "Sales" || s.Name != "Order Items" {
		t.Errorf("quoted table = %q.%q", s.Schema, s.Name)
	}
	k := s.Columns[0].Rule
	wantArgs := transform.Args{
		"n": int64(3), "x": 2.0, "s": "0x10", "c": "*", "b": false, "d": 30 * 24 * time.Hour,
		"r": []transform.PathRule{
			{Path: "$.a", Rule: transform.Rule{Name: "drop", Line: 40, Col: 20}, Line: 40, Col: 13},
			{Path: "$.b", Rule: transform.Rule{Name: "fake", Args: transform.Args{"kind": "name"}, Line: 41, Col: 18}, Line: 41, Col: 13},
		},
	}
	if !reflect.DeepEqual(k.Args, wantArgs) {
		t.Errorf("kitchen args = %#v\nwant %#v", k.Args, wantArgs)
	}
	o := cfg.Tables[2]
	if o.Schema != "sales" || o.Name != "orders" {
		t.Errorf("table = %q.%q", o.Schema, o.Name)
	}
	prs := o.Columns[0].Rule.Args["paths"].([]transform.PathRule)
	if len(prs) != 2 || prs[0].Path != "$.address.street" || prs[0].Rule.Name != "fake" || prs[1].Path != "$.ssn" || prs[1].Rule.Name != "drop" {
		t.Errorf("json paths = %+v", prs)
	}
}

func TestParseAliases(t *testing.T) {
	src := head + `  a:
    columns:
      email: &fake_email {fake: email}
      id: &h hash
  b:
    columns:
      email: *fake_email
      id: *h
`
	cfg, ps := parseString(t, src)
	if len(ps) > 0 {
		t.Fatalf("problems:\n%v", ps)
	}
	for _, tr := range cfg.Tables {
		if tr.Columns[0].Rule.Name != "fake" || tr.Columns[0].Rule.Args.String("kind", "") != "email" || tr.Columns[1].Rule.Name != "hash" {
			t.Errorf("%s: rules %+v %+v", tr.Name, tr.Columns[0].Rule, tr.Columns[1].Rule)
		}
	}
}

func TestParsePublicationMode(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"", MigrationSafe},
		{"  publication_mode: migration_safe\n", MigrationSafe},
		{"  publication_mode: column_lists\n", ColumnLists},
		{"  publication_mode:\n", MigrationSafe},
		{"  publication_mode: ${MODE:-column_lists}\n", ColumnLists},
	} {
		src := "source:\n  dsn: x\n" + tc.yaml + "target: {dsn: y}\nsecret: ${PGVEIL_SECRET}\ntables:\n  t: {columns: {id: keep}}\n"
		cfg, ps := parseString(t, src)
		if len(ps) > 0 {
			t.Errorf("%q: problems:\n%v", tc.yaml, ps)
			continue
		}
		if cfg.Source.PublicationMode != tc.want {
			t.Errorf("%q: mode %q, want %q", tc.yaml, cfg.Source.PublicationMode, tc.want)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, ps := parseString(t, head+"  t: {columns: {id: keep}}\n")
	if len(ps) > 0 {
		t.Fatalf("problems:\n%v", ps)
	}
	if cfg.Source.Slot != "pgveil" || cfg.Source.Publication != "pgveil" || cfg.Source.PublicationMode != MigrationSafe || cfg.File != "rules.yaml" {
		t.Errorf("defaults: %+v", cfg.Source)
	}
	if cfg.Tables[0].Where != "" || cfg.Target.Readers != nil {
		t.Errorf("where %q, readers %q", cfg.Tables[0].Where, cfg.Target.Readers)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join("testdata", "good", "design.yaml")
	cfg, err := Load(path, testEnv(), testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != path {
		t.Errorf("File = %q, want %q", cfg.File, path)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"), testEnv(), testRegistry())
	if err == nil || !os.IsNotExist(errorsUnwrapAll(err)) {
		t.Errorf("Load of a missing file: %v, want a wrapped not-exist error", err)
	}
	var ps Problems
	if errorsAs(err, &ps) {
		t.Errorf("an I/O error is not Problems")
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("secret: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad, testEnv(), testRegistry())
	if ps := problemsOf(t, err); len(ps) == 0 || ps[0].File != bad {
		t.Errorf("Load problems = %v", err)
	}
}

func TestKeys(t *testing.T) {
	c := &Config{Secret: Secret(testSecret)}
	if _, err := c.Keys(); err != nil {
		t.Fatal(err)
	}
	c.Secret = "short"
	if _, err := c.Keys(); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") || strings.Contains(err.Error(), "short") {
		t.Errorf("Keys with a short secret: %v", err)
	}
}

func TestParseNilRegistryAndEnv(t *testing.T) {
	t.Setenv("PGVEIL_RULES_TEST_SECRET", testSecret)
	src := strings.Replace(head, pgtest.Secret, "${PGVEIL_RULES_TEST_SECRET}", 1) + "  t: {columns: {id: hash, b: keep, c: drop, d: null}}\n"
	cfg, err := Parse("rules.yaml", []byte(src), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Secret.Reveal() != testSecret {
		t.Errorf("secret not read from the process environment")
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "good", "design.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	env, reg := testEnv(), testRegistry()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("design.yaml", data, env, reg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseRule(t *testing.T) {
	reg := transform.Builtin()
	for in, want := range map[string]string{
		"hash":                      "hash map[]",
		"{fake: email}":             "fake map[kind:email]",
		"{partial: {keep_last: 2}}": "partial map[keep_last:2]",
		`{json: {"$.a": drop}}`:     "json",
		"{truncate: year}":          "truncate map[unit:year]",
		"{noise: 0.05}":             "noise map[ratio:0.05]",
	} {
		r, err := ParseRule(in, reg)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := fmt.Sprintf("%s %v", r.Name, r.Args); !strings.HasPrefix(got, want) {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"":                        "empty rule",
		"nope":                    `unknown transformer "nope"`,
		"{fake: email, a: b}":     "one-key map",
		"{truncate: {length: 0}}": "must be at least 1",
		"{fake: [":                "YAML",
	} {
		_, err := ParseRule(in, reg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

func TestOnError(t *testing.T) {
	head := "source: {dsn: x}\ntarget: {dsn: y}\nsecret: " + pgtest.Secret + "\ntables:\n  t:\n    columns:\n"
	cfg, err := Parse("f.yaml", []byte(head+"      a: {noise: 0.05, on_error: null}\n      b: {hash: , on_error: stop}\n      c: hash\n"), nil, transform.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	cols := cfg.Tables[0].Columns
	if cols[0].Rule.Name != "noise" || cols[0].Rule.OnError != "null" || cols[1].Rule.OnError != "" || cols[2].Rule.OnError != "" {
		t.Errorf("got %+v %+v %+v", cols[0].Rule, cols[1].Rule, cols[2].Rule)
	}
	_, err = Parse("f.yaml", []byte(head+"      a: {noise: 0.05, on_error: skip}\n"), nil, transform.Builtin())
	if err == nil || !strings.Contains(err.Error(), "f.yaml:7:34: public.t.a: on_error must be one of stop, null") {
		t.Errorf("got %v", err)
	}
}
