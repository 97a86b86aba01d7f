package transform

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// fuzzRules are the rule shapes the cross-transformer tests exercise.
func fuzzRules() []Rule {
	return []Rule{
		{Name: "keep"}, {Name: "null"}, {Name: "hash"},
		{Name: "fake", Args: Args{"kind": "email"}},
		{Name: "fake", Args: Args{"kind": "name"}},
		{Name: "fake", Args: Args{"kind": "email", "keep_domain": true, "unique": true}},
		{Name: "fake", Args: Args{"kind": "date_of_birth"}},
		{Name: "fake", Args: Args{"kind": "ipv4"}},
		{Name: "truncate", Args: Args{"length": int64(3)}},
		{Name: "truncate", Args: Args{"unit": "month"}},
		{Name: "truncate", Args: Args{"step": 2.5}},
		{Name: "redact"}, {Name: "redact", Args: Args{"value": "0"}},
		{Name: "partial", Args: Args{"keep_first": int64(1), "keep_last": int64(2)}},
		{Name: "noise", Args: Args{"ratio": 0.1}},
		{Name: "noise", Args: Args{"duration": 30 * 24 * time.Hour}},
		{Name: "json", Args: Args{"paths": []PathRule{
			{Path: "$.email", Rule: Rule{Name: "fake", Args: Args{"kind": "email"}}},
			{Path: "$..id", Rule: Rule{Name: "hash"}},
			{Path: "$.items[*].secret", Rule: Rule{Name: "drop"}},
			{Path: "$.born", Rule: Rule{Name: "truncate", Args: Args{"unit": "year"}}},
		}}},
	}
}

var fuzzTypes = []string{"text", "varchar(5)", "char(4)", "smallint", "integer", "bigint", "numeric",
	"numeric(6,2)", "real", "double precision", "date", "timestamp", "timestamptz", "uuid", "bytea",
	"jsonb", "json", "inet", "boolean", "text[]", "integer[]", "numeric(6,2)[]", "date[]", "jsonb[]"}

type built struct {
	name  string
	t     Transformer
	kind  schema.Kind
	array bool
}

// allBuilt builds every rule for every type where it applies.
func allBuilt(t testing.TB, k *Keys) []built {
	var out []built
	r := Builtin()
	for _, typ := range fuzzTypes {
		for _, rule := range fuzzRules() {
			tr, err := r.Build(rule, schema.Column{Table: "public.t", Name: "c", Type: schema.MustType(typ)}, k)
			if err != nil || IsDrop(tr) {
				continue
			}
			ct := schema.MustType(typ)
			out = append(out, built{name: rule.Name + " on " + typ, t: tr, kind: ct.Kind, array: ct.IsArray()})
		}
	}
	if len(out) < 60 {
		t.Fatalf("only %d rule/type pairs build", len(out))
	}
	return out
}

var fuzzSeeds = []string{"", "a", "alice@example.com", "Ünïcödé 日本語 🙂", "0", "-1", "32767", "-32768",
	"2147483647", "9223372036854775807", "-9223372036854775808", "99999999999999999999", "12.34",
	"-0.005", "NaN", "Infinity", "-Infinity", "1e+300", "2024-03-15", "2024-03-15 13:45:12.5",
	"2024-03-15 13:45:12.123456+05:30", "0044-03-15 BC", "infinity", "-infinity",
	"294276-12-31 23:59:59.999999", "5874897-12-31", "4713-11-24 00:00:00 BC",
	"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `\x`, `\x00ff`, `{}`, `{"email":"a@b.c","id":5,"items":[{"secret":1,"id":"x"}],"born":"1984-07-12"}`,
	`[1,[2,[3]]]`, `"str"`, `null`, `{1,NULL,3}`, `{{"a b",NULL},{"",c}}`, `{2024-01-01,NULL}`,
	`[0:1]={1,2}`, `{"{\"id\": 1}",NULL}`, "192.168.0.1/24", "::1", "t", "\x00\xff\xfe", strings.Repeat("x", 5000)}

// Every transformer, on every input: no panic, the same output twice,
// valid UTF-8 out for valid UTF-8 in, and errors that never hold the input.
func FuzzTransformers(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(uint16(i*7), s)
	}
	k := testKeys(f, pgtest.Secret)
	all := allBuilt(f, k)
	f.Fuzz(func(t *testing.T, pick uint16, in string) {
		b := all[int(pick)%len(all)]
		checkTransform(t, b, in)
	})
}

func checkTransform(t *testing.T, b built, in string) {
	out, err := b.t.Transform(schema.Text(in))
	if err != nil {
		if len(in) >= 16 && strings.Contains(err.Error(), in) {
			t.Fatalf("%s: error repeats the input: %v", b.name, err)
		}
		var ve *MaskError
		if !asMaskError(err, &ve) {
			t.Fatalf("%s: error is not a MaskError: %T %v", b.name, err, err)
		}
		return
	}
	again, err := b.t.Transform(schema.Text(in))
	if err != nil || again.String() != out.String() || again.State != out.State {
		t.Fatalf("%s: not deterministic", b.name)
	}
	if utf8.ValidString(in) && !utf8.Valid(out.Text) {
		t.Fatalf("%s: invalid UTF-8 output", b.name)
	}
	// hash and fake never hand back a non-trivial text input unchanged.
	if (strings.HasPrefix(b.name, "hash on ") || strings.HasPrefix(b.name, "fake on ")) && b.kind == schema.KindText && !b.array &&
		strings.TrimSpace(in) != "" && out.String() == in {
		t.Fatalf("%s: returned its input", b.name)
	}
}

func asMaskError(err error, target **MaskError) bool {
	for err != nil {
		if ve, ok := err.(*MaskError); ok {
			*target = ve
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// The seeds run as a plain test too, on every rule/type pair.
func TestTransformersOnSeeds(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, b := range allBuilt(t, k) {
		for _, in := range fuzzSeeds {
			checkTransform(t, b, in)
		}
	}
}

// Two plans built separately from the same secret agree; another secret
// changes every hash and fake output.
func TestDeterminismAcrossBuilds(t *testing.T) {
	a, b := allBuilt(t, testKeys(t, pgtest.Secret)), allBuilt(t, testKeys(t, pgtest.Secret))
	c := allBuilt(t, testKeys(t, "another secret, also 32 bytes long"))
	for i := range a {
		for _, in := range fuzzSeeds {
			x, errA := a[i].t.Transform(schema.Text(in))
			y, errB := b[i].t.Transform(schema.Text(in))
			if (errA == nil) != (errB == nil) || x.String() != y.String() {
				t.Fatalf("%s on %q: two builds disagree", a[i].name, in)
			}
			z, errC := c[i].t.Transform(schema.Text(in))
			name := a[i].name
			keyed := (strings.HasPrefix(name, "hash on text") || strings.HasPrefix(name, "fake on text") || strings.HasPrefix(name, "hash on bigint")) && !strings.HasSuffix(name, "[]")
			if keyed && errA == nil && errC == nil && in != "" && x.String() == z.String() {
				t.Errorf("%s on %q: same output under another secret", name, in)
			}
		}
	}
}
