package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// at is one json path rule.
func at(path, name string, args Args) PathRule {
	return PathRule{Path: path, Rule: Rule{Name: name, Args: args}}
}

func jsonOf(t testing.TB, k *Keys, typ string, paths ...PathRule) Transformer {
	t.Helper()
	return build(t, k, typ, Rule{Name: "json", Args: Args{"paths": paths}})
}

var redactX = Args{"value": "x"}

func TestJSONPaths(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		name  string
		paths []PathRule
		in    string
		want  string
	}{
		{"member", []PathRule{at("$.a.b", "redact", redactX)},
			`{"a": {"b": "s", "c": "t"}, "b": "u"}`, `{"a": {"b": "x", "c": "t"}, "b": "u"}`},
		{"quoted member", []PathRule{at(`$["a b"]`, "redact", redactX)},
			`{"a b": "s", "a": "t", "b": "u"}`, `{"a b": "x", "a": "t", "b": "u"}`},
		{"single-quoted member", []PathRule{at(`$['it\'s'].v`, "redact", redactX)},
			`{"it's": {"v": "s"}}`, `{"it's": {"v": "x"}}`},
		{"index", []PathRule{at("$[0]", "redact", redactX)},
			`["s", "t"]`, `["x", "t"]`},
		{"index in member", []PathRule{at("$.list[1].v", "redact", redactX)},
			`{"list": [{"v": "a"}, {"v": "b"}, {"v": "c"}]}`, `{"list": [{"v": "a"}, {"v": "x"}, {"v": "c"}]}`},
		{"index past the end", []PathRule{at("$[5]", "redact", redactX)},
			`["s", "t"]`, `["s", "t"]`},
		{"every element", []PathRule{at("$[*]", "redact", redactX)},
			`["s", "t", 1, null]`, `["x", "x", "x", null]`},
		{"every member", []PathRule{at("$.*", "redact", redactX)},
			`{"a": "s", "b": {"c": "t", "d": ["u"]}, "e": null}`, `{"a": "x", "b": {"c": "x", "d": ["x"]}, "e": null}`},
		{"every element's member", []PathRule{at("$.users[*].email", "redact", redactX)},
			`{"users": [{"email": "a", "n": "b"}, {"n": "c"}, {"email": "d"}]}`, `{"users": [{"email": "x", "n": "b"}, {"n": "c"}, {"email": "x"}]}`},
		{"at any depth", []PathRule{at("$..email", "redact", redactX)},
			`{"email": "a", "users": [{"email": "b", "name": "n"}, {"x": {"email": "c", "e": "d"}}], "emails": "e"}`,
			`{"email": "x", "users": [{"email": "x", "name": "n"}, {"x": {"email": "x", "e": "d"}}], "emails": "e"}`},
		{"at any depth, then a member", []PathRule{at("$..card.number", "redact", redactX)},
			`{"card": {"number": "1"}, "orders": [{"card": {"number": "2", "exp": "3"}}]}`,
			`{"card": {"number": "x"}, "orders": [{"card": {"number": "x", "exp": "3"}}]}`},
		{"deep path that does not exist", []PathRule{at("$.a.b.c.d.e", "redact", redactX)},
			`{"a": {"b": 1}}`, `{"a": {"b": 1}}`},
		{"member of an array", []PathRule{at("$.a", "redact", redactX)},
			`[{"a": "s"}]`, `[{"a": "s"}]`},
		{"index of an object", []PathRule{at("$[0]", "redact", redactX)},
			`{"0": "s"}`, `{"0": "s"}`},
		{"member of a scalar", []PathRule{at("$.a", "redact", redactX)},
			`"a"`, `"a"`},
		{"whole document", []PathRule{at("$", "redact", redactX)},
			`{"a": "s", "b": [1, "t"]}`, `{"a": "x", "b": ["x", "x"]}`},
		{"whole scalar document", []PathRule{at("$", "redact", redactX)},
			`"s"`, `"x"`},
		{"drop a member", []PathRule{at("$.ssn", "drop", nil)},
			`{"name": "n", "ssn": "123", "z": 1}`, `{"name": "n", "z": 1}`},
		{"drop a missing member", []PathRule{at("$.ssn", "drop", nil)},
			`{"name": "n"}`, `{"name": "n"}`},
		{"drop an array element", []PathRule{at("$[1]", "drop", nil)},
			`["a", "b", "c"]`, `["a", "c"]`},
		{"drop every element", []PathRule{at("$[*]", "drop", nil)},
			`["a", "b", "c"]`, `[]`},
		{"drop every member", []PathRule{at("$.*", "drop", nil)},
			`{"a": 1, "b": 2}`, `{}`},
		{"drop in every element", []PathRule{at("$.items[*].secret", "drop", nil)},
			`{"items": [{"secret": 1, "k": 2}, {"secret": 3}]}`, `{"items": [{"k": 2}, {}]}`},
		{"drop at any depth", []PathRule{at("$..secret", "drop", nil)},
			`{"secret": 1, "a": {"secret": 2, "b": [{"secret": 3}, {"secret": {"secret": 4}}]}}`, `{"a": {"b": [{}, {}]}}`},
		{"drop consecutive elements", []PathRule{at("$[*].drop", "drop", nil)},
			`[{"drop": 1}, {"drop": 2}, {"keep": 3}]`, `[{}, {}, {"keep": 3}]`},
		{"null", []PathRule{at("$.a", "null", nil)},
			`{"a": "s", "b": "t"}`, `{"a": null, "b": "t"}`},
		{"null on an object", []PathRule{at("$.a", "null", nil)},
			`{"a": {"b": "s", "c": 1}}`, `{"a": {"b": null, "c": null}}`},
		{"keep", []PathRule{at("$.a", "keep", nil)},
			`{"a": "s", "b": 1.50}`, `{"a": "s", "b": 1.50}`},
		{"truncate a date string to its year", []PathRule{at("$.dob", "truncate", Args{"unit": "year"})},
			`{"dob": "1990-05-17", "n": "a"}`, `{"dob": "1990-01-01", "n": "a"}`},
		{"truncate an ISO timestamp", []PathRule{at("$..at", "truncate", Args{"unit": "day"})},
			`{"at": "2024-03-15T10:20:30Z", "b": {"at": "2024-03-15T10:20:30.5+05:30"}}`,
			`{"at": "2024-03-15T00:00:00Z", "b": {"at": "2024-03-15T00:00:00+05:30"}}`},
		{"truncate text", []PathRule{at("$.zip", "truncate", Args{"length": int64(3)})},
			`{"zip": "75011"}`, `{"zip": "750"}`},
		{"truncate a number with length: a step", []PathRule{at("$.n", "truncate", Args{"length": int64(10)})},
			`{"n": 1234}`, `{"n": 1230}`},
		{"truncate a number with a step", []PathRule{at("$.n", "truncate", Args{"step": 100.0})},
			`{"n": 1234.5, "m": "1234.5"}`, `{"n": 1200.0, "m": "1234.5"}`},
		{"truncate a string holding a number", []PathRule{at("$.m", "truncate", Args{"step": 100.0})},
			`{"m": "1234.5"}`, `{"m": "1200.0"}`},
		{"partial", []PathRule{at("$.phone", "partial", Args{"keep_last": int64(2)})},
			`{"phone": "+33612345678"}`, `{"phone": "**********78"}`},
		{"partial on a number gives a string", []PathRule{at("$.phone", "partial", Args{"keep_last": int64(2)})},
			`{"phone": 33612345678}`, `{"phone": "*********78"}`},
		{"redact a number with a number", []PathRule{at("$.n", "redact", Args{"value": "0"})},
			`{"n": 42, "s": "t"}`, `{"n": 0, "s": "t"}`},
		{"redact keeps booleans and nulls as null", []PathRule{at("$.a", "redact", Args{"value": "0"})},
			`{"a": [null, "s"]}`, `{"a": [null, "0"]}`},
		{"string with escapes", []PathRule{at("$.b", "redact", Args{"value": "new \"v\"\n\\é"})},
			`{"a": "\u00e9\"", "b": "old"}`, `{"a": "\u00e9\"", "b": "new \"v\"\n\\é"}`},
		{"duplicate keys, all masked, order kept", []PathRule{at("$.a", "redact", redactX)},
			`{"a": "1", "b": "2", "a": "3"}`, `{"a": "x", "b": "2", "a": "x"}`},
		{"duplicate keys, other member", []PathRule{at("$.b", "redact", redactX)},
			`{"a": "1", "b": "2", "a": "3"}`, `{"a": "1", "b": "x", "a": "3"}`},
		{"duplicate keys, dropped", []PathRule{at("$.a", "drop", nil)},
			`{"a": "1", "b": "2", "a": "3"}`, `{"b": "2"}`},
		{"paths in order", []PathRule{at("$.a", "redact", Args{"value": "abcdef"}), at("$.a", "truncate", Args{"length": int64(2)})},
			`{"a": "s"}`, `{"a": "ab"}`},
		{"drop then mask nothing", []PathRule{at("$.a", "drop", nil), at("$.a", "redact", redactX)},
			`{"a": "s", "b": "t"}`, `{"b": "t"}`},
		{"whitespace", []PathRule{at("$.z", "drop", nil)},
			"{\n  \"a\":1,\n  \"b\":[1,2]\n}", `{"a": 1, "b": [1, 2]}`},
		{"empty containers", []PathRule{at("$..a", "redact", redactX)},
			`{"a": {}, "b": [], "c": {"a": []}}`, `{"a": {}, "b": [], "c": {"a": []}}`},
	}
	for _, tt := range tests {
		for _, typ := range []string{"jsonb", "json"} {
			tr := jsonOf(t, k, typ, tt.paths...)
			got := apply(t, tr, tt.in)
			if got != tt.want {
				t.Errorf("%s (%s): %s -> %s, want %s", tt.name, typ, tt.in, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("%s (%s): output %s is not valid JSON", tt.name, typ, got)
			}
		}
	}
}

func TestJSONHash(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	hashText := build(t, k, "text", Rule{Name: "hash"})
	hashNum := build(t, k, "numeric", Rule{Name: "hash"})
	hashInt := build(t, k, "bigint", Rule{Name: "hash"})
	tr := jsonOf(t, k, "jsonb", at("$.id", "hash", nil), at("$.email", "hash", nil), at("$.items[*].sku", "hash", nil))
	got := apply(t, tr, `{"id": 42, "email": "a@b.com", "items": [{"sku": 7, "q": 1}, {"sku": "X-1"}, {"sku": 1.5}], "n": 9}`)
	id := apply(t, hashNum, "42")
	if id != apply(t, hashInt, "42") {
		t.Fatalf("hash of 42 differs between numeric and bigint")
	}
	want := `{"id": ` + id + `, "email": "` + apply(t, hashText, "a@b.com") + `", "items": [{"sku": ` +
		apply(t, hashNum, "7") + `, "q": 1}, {"sku": "` + apply(t, hashText, "X-1") + `"}, {"sku": ` +
		apply(t, hashNum, "1.5") + `}], "n": 9}`
	if got != want {
		t.Errorf("json hash:\n got %s\nwant %s", got, want)
	}
	// Integers stay JSON integers, so joins with hashed integer keys work.
	var doc struct {
		ID json.Number `json:"id"`
	}
	dec := json.NewDecoder(strings.NewReader(got))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.ParseInt(string(doc.ID), 10, 64); err != nil || string(doc.ID) == "42" {
		t.Errorf("hashed id %q is not a new integer", doc.ID)
	}
	// Every string and number inside a selected object is masked; null stays.
	tr = jsonOf(t, k, "jsonb", at("$.profile", "hash", nil))
	got = apply(t, tr, `{"profile": {"name": "n", "age": 30, "tags": ["a", 1], "nil": null}, "keep": "k"}`)
	want = `{"profile": {"name": "` + apply(t, hashText, "n") + `", "age": ` + apply(t, hashNum, "30") +
		`, "tags": ["` + apply(t, hashText, "a") + `", ` + apply(t, hashNum, "1") + `], "nil": null}, "keep": "k"}`
	if got != want {
		t.Errorf("json hash of an object:\n got %s\nwant %s", got, want)
	}
}

// TestJSONMasksOnce checks that a value selected more than once by one
// path ($..a inside another a) is masked once.
func TestJSONMasksOnce(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	h := apply(t, build(t, k, "text", Rule{Name: "hash"}), "x")
	tests := []struct {
		path, in, want string
	}{
		{"$..a", `{"a": {"a": "x"}}`, `{"a": {"a": "` + h + `"}}`},
		{"$..a", `{"a": [{"a": {"a": "x"}}]}`, `{"a": [{"a": {"a": "` + h + `"}}]}`},
		{"$..a.b", `{"a": {"b": {"a": {"b": "x"}}}}`, `{"a": {"b": {"a": {"b": "` + h + `"}}}}`},
		{"$..a", `{"a": "x", "b": {"a": "x"}}`, `{"a": "` + h + `", "b": {"a": "` + h + `"}}`},
	}
	for _, tt := range tests {
		tr := jsonOf(t, k, "jsonb", at(tt.path, "hash", nil))
		if got := apply(t, tr, tt.in); got != tt.want {
			t.Errorf("%s on %s = %s, want %s", tt.path, tt.in, got, tt.want)
		}
	}
	// Noise stays within its ratio however deep the nesting.
	tr := jsonOf(t, k, "jsonb", at("$..p", "noise", Args{"ratio": 0.1}))
	in := `{"p": {"p": {"p": 1000}}}`
	for range 3 {
		got := apply(t, tr, in)
		v := strings.Trim(got, `{}"p: `)
		n, err := strconv.Atoi(v)
		if err != nil || n < 900 || n > 1100 {
			t.Fatalf("noise 0.1 of nested 1000: %s", got)
		}
		in = strings.Replace(in, "1000", "1001", 1)
	}
	// Two paths on the same value each apply once, in order.
	tr = jsonOf(t, k, "jsonb", at("$..a", "hash", nil), at("$.a", "truncate", Args{"length": int64(4)}))
	if got, want := apply(t, tr, `{"a": "x"}`), `{"a": "`+h[:4]+`"}`; got != want {
		t.Errorf("hash then truncate = %s, want %s", got, want)
	}
}

func TestJSONRulesOfOtherTypes(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	// fake on nested strings: the same fake as in a text column.
	fake := build(t, k, "text", Rule{Name: "fake", Args: Args{"kind": "email"}})
	tr := jsonOf(t, k, "jsonb", at("$.user.contact.email", "fake", Args{"kind": "email"}))
	want := `{"user": {"contact": {"email": "` + apply(t, fake, "a@b.com") + `"}}}`
	if got := apply(t, tr, `{"user": {"contact": {"email": "a@b.com"}}}`); got != want {
		t.Errorf("fake email at a path = %s, want %s", got, want)
	}
	// fake on a number: a string.
	tr = jsonOf(t, k, "jsonb", at("$.n", "fake", Args{"kind": "name"}))
	if got := apply(t, tr, `{"n": 12}`); !strings.HasPrefix(got, `{"n": "`) {
		t.Errorf("fake name on a number = %s", got)
	}
	// {noise: 0.1} on numbers keeps numbers within 10%.
	tr = jsonOf(t, k, "jsonb", at("$.price", "noise", Args{"ratio": 0.1}))
	num := build(t, k, "numeric", Rule{Name: "noise", Args: Args{"ratio": 0.1}})
	moved := 0
	for j := range 100 {
		// Spread over many of noise's buckets: within one bucket every
		// value moves by the same offset, which may round to nothing.
		i := int(1000 * math.Pow(1.05, float64(j)))
		in := strconv.Itoa(i)
		got := apply(t, tr, `{"price": `+in+`}`)
		want := `{"price": ` + apply(t, num, in) + `}`
		if got != want {
			t.Fatalf("noise on price %s = %s, want %s", in, got, want)
		}
		var doc struct{ Price float64 }
		if err := json.Unmarshal([]byte(got), &doc); err != nil || doc.Price < float64(i)*0.9-0.5 || doc.Price > float64(i)*1.1+0.5 {
			t.Fatalf("noise 0.1 on price %d = %s", i, got)
		}
		if doc.Price != float64(i) {
			moved++
		}
	}
	if moved < 80 {
		t.Errorf("noise moved %d of 100 prices", moved)
	}
	// {noise: 0.1} on a string that holds a number: a string.
	if got := apply(t, tr, `{"price": "100"}`); !strings.HasPrefix(got, `{"price": "`) {
		t.Errorf("noise on a numeric string = %s", got)
	}
	// {noise: 30d} on a date string stays a date within 30 days.
	tr = jsonOf(t, k, "jsonb", at("$.d", "noise", Args{"duration": 30 * 24 * time.Hour}))
	got := apply(t, tr, `{"d": "2024-03-15"}`)
	var doc struct{ D string }
	if err := json.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatal(err)
	}
	d, err := time.Parse(time.DateOnly, doc.D)
	if err != nil || d.Sub(time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC)).Abs() > 30*24*time.Hour {
		t.Errorf("noise 30d on a date string = %s", got)
	}
	// Date rules on strings that are not dates, or on numbers, fail the
	// value rather than pass it through, and say nothing of it.
	tr = jsonOf(t, k, "jsonb", at("$.d", "truncate", Args{"unit": "year"}))
	for _, in := range []string{`{"d": "` + veilCanary + `"}`, `{"d": 2024}`} {
		_, err := veilRun(tr, in)
		veilMaskError(t, err, in)
	}
	// Number rules on strings that are not numbers fail too.
	tr = jsonOf(t, k, "jsonb", at("$.p", "noise", Args{"ratio": 0.1}))
	_, err = veilRun(tr, `{"p": "`+veilCanary+`"}`)
	veilMaskError(t, err, veilCanary)
}

func TestJSONStringsRoundTrip(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	// keep at a path decodes and re-encodes the string: same value.
	tr := jsonOf(t, k, "jsonb", at("$..s", "keep", nil))
	for _, s := range []string{
		`"plain"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u0000\u0001\u001f"`, `"\u00e9\u65e5\ud83d\ude00"`,
		`"é日😀"`, `"e\u0301"`, `"<script>&amp;"`, `"\u2028\u2029"`, `""`,
	} {
		in := `{"s": ` + s + `, "o": [{"s": ` + s + `}]}`
		got := apply(t, tr, in)
		var a, b any
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(got), &b); err != nil {
			t.Fatalf("%s -> %s: %v", in, got, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s -> %s: value changed", in, got)
		}
	}
	// A masked value with control characters and quotes is escaped.
	tr = jsonOf(t, k, "jsonb", at("$.s", "redact", Args{"value": "a\"\\\x01\té"}))
	if got, want := apply(t, tr, `{"s": "x"}`), `{"s": "a\"\\\u0001\té"}`; got != want {
		t.Errorf("escaped output = %s, want %s", got, want)
	}
}

// TestJSONDeepDocuments: PostgreSQL accepts jsonb as deep as its stack
// allows (12000 levels with the default max_stack_depth, more when raised),
// and a value pgveil cannot mask stops replication for good (issue 17,
// finding 6). Every way through the json transformer must take any depth:
// parts no rule reaches (copied), rules that stay live at every level
// ($..key), rules that select the deep part whole, drops inside and around
// it, keep, and rules outside it.
func TestJSONDeepDocuments(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	const depth = 200_000
	hashText := build(t, k, "text", Rule{Name: "hash"})
	hashNum := build(t, k, "numeric", Rule{Name: "hash"})
	hs, h5 := `"`+apply(t, hashText, "s")+`"`, apply(t, hashNum, "5")
	hTop := `"` + apply(t, hashText, "top") + `"`
	for _, shape := range []struct{ name, open, close string }{
		{"arrays", "[", "]"},
		{"objects", `{"k": `, "}"},
	} {
		deep := func(inner string) string {
			return strings.Repeat(shape.open, depth) + inner + strings.Repeat(shape.close, depth)
		}
		doc := func(x, inner string) string {
			return `{"x": ` + x + `, "deep": ` + deep(inner) + `, "y": [1]}`
		}
		in := doc(`"top"`, `{"a": "s", "n": 5}`)
		first, renamed := "[0]", in
		if shape.open != "[" {
			first = ".k"
			renamed = `{"x": "top", "deep": ` + strings.Repeat(`{"j": `, depth) + `{"a": "s", "n": 5}` + strings.Repeat("}", depth) + `, "y": [1]}`
		}
		for _, tt := range []struct {
			name  string
			paths []PathRule
			want  string
		}{
			{"no rule reaches it", []PathRule{at("$.zzz", "hash", nil)}, in},
			{"a rule outside it", []PathRule{at("$.x", "hash", nil)}, doc(hTop, `{"a": "s", "n": 5}`)},
			{"a rule live at every level", []PathRule{at("$..a", "redact", redactX)}, doc(`"top"`, `{"a": "x", "n": 5}`)},
			{"a drop live at every level", []PathRule{at("$..n", "drop", nil)}, doc(`"top"`, `{"a": "s"}`)},
			{"a rule on the whole deep part", []PathRule{at("$.deep", "hash", nil)}, doc(`"top"`, `{"a": `+hs+`, "n": `+h5+`}`)},
			{"a rule two levels in", []PathRule{at("$.deep"+first+first, "hash", nil)}, doc(`"top"`, `{"a": `+hs+`, "n": `+h5+`}`)},
			{"the whole document", []PathRule{at("$", "redact", redactX)}, `{"x": "x", "deep": ` + deep(`{"a": "x", "n": "x"}`) + `, "y": ["x"]}`},
			{"keep", []PathRule{at("$.deep", "keep", nil)}, in},
			{"drop", []PathRule{at("$.deep", "drop", nil), at("$..a", "hash", nil)}, `{"x": "top", "y": [1]}`},
			{"names at every level", []PathRule{at("$..k~", "redact", Args{"value": "j"})}, renamed},
			{"several", []PathRule{at("$.y", "drop", nil), at("$..a", "hash", nil), at("$.x", "redact", redactX)},
				`{"x": "x", "deep": ` + deep(`{"a": `+hs+`, "n": 5}`) + `}`},
		} {
			got, err := veilRun(jsonOf(t, k, "jsonb", tt.paths...), in)
			if err != nil {
				t.Errorf("%s, %s: %v", shape.name, tt.name, err)
				continue
			}
			if string(got.Text) != tt.want {
				t.Errorf("%s, %s: output differs (%d bytes, want %d)", shape.name, tt.name, len(got.Text), len(tt.want))
			}
		}
		// Malformed deep documents fail cleanly, naming no value.
		tr := jsonOf(t, k, "jsonb", at("$..a", "hash", nil), at("$.x", "drop", nil))
		for _, bad := range []string{
			deep(`{"a": "` + veilCanary + `"`)[:depth*len(shape.open)+20],
			doc(`"top"`, `{"a": "`+veilCanary+`" "n": 5}`),
			doc(`"top"`, `{"a": "s", "n": 5}`) + "]",
			strings.Repeat(shape.open, 1_000_000),
		} {
			_, err := veilRun(tr, bad)
			veilMaskError(t, err, veilCanary)
			veilWantErr(t, err, "not valid JSON")
		}
	}
	// jsonb[]: each element through the same transformer.
	arr := jsonOf(t, k, "jsonb[]", at("$..a", "redact", redactX))
	el := strings.Repeat("[", depth) + `{\"a\": 1}` + strings.Repeat("]", depth)
	want := strings.Repeat("[", depth) + `{\"a\": \"x\"}` + strings.Repeat("]", depth)
	if got := apply(t, arr, `{"`+el+`",NULL}`); got != `{"`+want+`",NULL}` {
		t.Errorf("jsonb[] of deep documents: output differs")
	}
}

func TestJSONInvalidInput(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := jsonOf(t, k, "jsonb", at("$.a", "hash", nil))
	for _, in := range []string{
		"", "{", `{"a": }`, `{"a": "` + veilCanary + `"`, `{"a": "` + veilCanary + `"}}`, `[1,]`, `{'a': 1}`,
		veilCanary, `{"` + veilCanary + `": tru}`, "{\"a\": \"\x01" + veilCanary + "\"}",
	} {
		_, err := veilRun(tr, in)
		veilMaskError(t, err, in)
	}
	// Errors from the rule at a path say nothing of the value either.
	tr = jsonOf(t, k, "jsonb", at("$.id", "hash", nil))
	_, err := veilRun(build(t, k, "jsonb", Rule{Name: "json", Args: Args{"paths": []PathRule{at("$.d", "truncate", Args{"unit": "month"})}}}), `{"d": "2024-02-30 `+veilCanary+`"}`)
	veilMaskError(t, err, veilCanary)
	if out := apply(t, tr, `{"id": "`+veilCanary+`"}`); strings.Contains(out, veilCanary) {
		t.Errorf("hash left the value: %s", out)
	}
}

func TestJSONArrayColumn(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := jsonOf(t, k, "jsonb[]", at("$.a", "redact", redactX))
	in := `{"{\"a\": \"s\", \"b\": 1}",NULL,"{\"a\": [\"t\"]}"}`
	want := `{"{\"a\": \"x\", \"b\": 1}",NULL,"{\"a\": [\"x\"]}"}`
	if got := apply(t, tr, in); got != want {
		t.Errorf("json on jsonb[] = %s, want %s", got, want)
	}
}

func TestJSONBuildErrors(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ       string
		paths     []PathRule
		want      string
		line, col int // of a PosError; 0 when none is expected
	}{
		{"text", []PathRule{at("$.a", "hash", nil)}, "json applies to json and jsonb columns, not to text", 0, 0},
		{"varchar(100)", []PathRule{at("$.a", "hash", nil)}, "not to character varying(100)", 0, 0},
		{"integer", []PathRule{at("$.a", "hash", nil)}, "json applies to json and jsonb columns", 0, 0},
		{"jsonb", nil, "give at least one path", 0, 0},
		{"jsonb", []PathRule{{Path: "$.a b", Rule: Rule{Name: "hash", Line: 4, Col: 22}, Line: 4, Col: 9}}, "unexpected ' '", 4, 9},
		{"jsonb", []PathRule{{Path: "$.a", Rule: Rule{Name: "json", Line: 5, Col: 14}, Line: 5, Col: 8}}, "json rules do not nest", 5, 14},
		{"jsonb", []PathRule{{Path: "$", Rule: Rule{Name: "drop", Line: 6, Col: 10}, Line: 6, Col: 5}}, "$ is the whole document", 6, 10},
		{"jsonb", []PathRule{{Path: "$.a", Rule: Rule{Name: "nope", Line: 7, Col: 12}, Line: 7, Col: 6}}, `at $.a: unknown transformer "nope"`, 7, 12},
		{"jsonb", []PathRule{{Path: "$.a", Rule: Rule{Name: "noise", Args: Args{"ratio": 0.1, "duration": time.Hour}, Line: 8, Col: 12}, Line: 8, Col: 6}},
			"at $.a: noise: give exactly one of ratio", 8, 12},
		{"jsonb", []PathRule{{Path: "$.a", Rule: Rule{Name: "truncate", Args: Args{"length": int64(0)}, Line: 9, Col: 3}}}, "length: must be at least 1", 9, 3},
		{"jsonb", []PathRule{{Path: "$.a", Rule: Rule{Name: "fake", Args: Args{"kind": "name", "keep_domain": true}, Line: 10, Col: 3}}}, "keep_domain applies to kind email only", 10, 3},
	}
	for _, tt := range tests {
		args := Args{}
		if tt.paths != nil {
			args["paths"] = tt.paths
		}
		_, err := veilBuildErr(k, tt.typ, Rule{Name: "json", Args: args})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("json %v on %s: error %v, want %q", tt.paths, tt.typ, err, tt.want)
			continue
		}
		var pe *PosError
		if got := errors.As(err, &pe); got != (tt.line != 0) {
			t.Errorf("json %v on %s: %v: PosError %v, want %v", tt.paths, tt.typ, err, got, tt.line != 0)
		} else if got && (pe.Line != tt.line || pe.Col != tt.col) {
			t.Errorf("json %v on %s: %v at %d:%d, want %d:%d", tt.paths, tt.typ, err, pe.Line, pe.Col, tt.line, tt.col)
		}
	}
	// A rule that fits text, numbers or dates is accepted at a path.
	for _, rule := range []Rule{
		{Name: "hash"}, {Name: "keep"}, {Name: "null"}, {Name: "drop"}, {Name: "redact"},
		{Name: "fake", Args: Args{"kind": "date_of_birth"}}, {Name: "truncate", Args: Args{"unit": "minute"}},
		{Name: "truncate", Args: Args{"step": 0.5}}, {Name: "noise", Args: Args{"duration": 12 * time.Hour}},
		{Name: "partial", Args: Args{"keep_first": int64(1)}},
	} {
		if _, err := veilBuildErr(k, "json", Rule{Name: "json", Args: Args{"paths": []PathRule{{Path: "$.a", Rule: rule}}}}); err != nil {
			t.Errorf("json with %s %v: %v", rule.Name, rule.Args, err)
		}
	}
}

func BenchmarkJSON(b *testing.B) {
	k := testKeys(b, pgtest.Secret)
	tr := jsonOf(b, k, "jsonb",
		at("$.email", "fake", Args{"kind": "email"}),
		at("$.address.street", "redact", Args{"value": "street"}),
		at("$.orders[*].card", "partial", Args{"keep_last": int64(4)}))
	in := schema.Text(`{"id": 1234, "email": "alice.martin@example.com", "name": "Alice Martin", "address": {"street": "12 rue de la Paix", "city": "Paris", "zip": "75002"}, ` +
		`"orders": [{"id": 1, "card": "4111111111111111", "total": 12.5}, {"id": 2, "card": "5500000000000004", "total": 99.99}], "tags": ["vip", "newsletter"], "active": true}`)
	if n := len(in.Text); n < 280 || n > 340 {
		b.Fatalf("document is %d bytes", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Transform(in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestJSONNames covers member names (issue 17, finding 4): a path never
// changes them, so {"$.contacts": {fake: email}} on {"contacts":
// {"alice@corp.com": "friend"}} kept alice's address; a path ending in ~
// masks the names of the members it selects.
func TestJSONNames(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	hashText := build(t, k, "text", Rule{Name: "hash"})
	h := func(s string) string { return apply(t, hashText, s) }
	in := `{"contacts": {"alice@corp.com": "friend", "bob@corp.com": {"since": 2020}}, "n": 1}`
	for _, tt := range []struct {
		name  string
		paths []PathRule
		want  string
	}{
		// The default, documented: names are structure and stay.
		{"a rule on an object keeps its names", []PathRule{at("$.contacts", "redact", redactX)},
			`{"contacts": {"alice@corp.com": "x", "bob@corp.com": {"since": "x"}}, "n": 1}`},
		{"names of every member", []PathRule{at("$.contacts.*~", "hash", nil)},
			`{"contacts": {"` + h("alice@corp.com") + `": "friend", "` + h("bob@corp.com") + `": {"since": 2020}}, "n": 1}`},
		{"names and values", []PathRule{at("$.contacts.*~", "hash", nil), at("$.contacts.*", "redact", redactX)},
			`{"contacts": {"` + h("alice@corp.com") + `": "x", "` + h("bob@corp.com") + `": {"since": "x"}}, "n": 1}`},
		{"one name", []PathRule{at(`$.contacts["bob@corp.com"]~`, "hash", nil)},
			`{"contacts": {"alice@corp.com": "friend", "` + h("bob@corp.com") + `": {"since": 2020}}, "n": 1}`},
		{"names at any depth", []PathRule{at("$..since~", "redact", Args{"value": "year"})},
			`{"contacts": {"alice@corp.com": "friend", "bob@corp.com": {"year": 2020}}, "n": 1}`},
		{"names, then the values by the names they arrived with", []PathRule{at("$.*~", "redact", Args{"value": "k"}), at("$.n", "redact", redactX)},
			""}, // "contacts" and "n" both become "k": a collision
		{"a dropped member is no collision", []PathRule{at("$.*~", "redact", Args{"value": "k"}), at("$.n", "drop", nil)},
			`{"k": {"alice@corp.com": "friend", "bob@corp.com": {"since": 2020}}}`},
		{"names do not reach inside", []PathRule{at("$.*~", "hash", nil)},
			`{"` + h("contacts") + `": {"alice@corp.com": "friend", "bob@corp.com": {"since": 2020}}, "` + h("n") + `": 1}`},
		{"two rules, in order", []PathRule{at("$.contacts.*~", "hash", nil), at("$.contacts.*~", "truncate", Args{"length": int64(6)})},
			`{"contacts": {"` + h("alice@corp.com")[:6] + `": "friend", "` + h("bob@corp.com")[:6] + `": {"since": 2020}}, "n": 1}`},
	} {
		tr := jsonOf(t, k, "jsonb", tt.paths...)
		got, err := veilRun(tr, in)
		if tt.want == "" {
			veilWantErr(t, err, "masked member names collide", "alice", "contacts")
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
		} else if string(got.Text) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got.Text, tt.want)
		}
	}
	// Deterministic, and the same as the text hash of the same value in
	// a column, so names join with the columns they come from.
	tr := jsonOf(t, k, "jsonb", at("$.*~", "hash", nil))
	if got, want := apply(t, tr, `{"alice@corp.com": 1}`), `{"`+h("alice@corp.com")+`": 1}`; got != want {
		t.Errorf("hashed name = %s, want %s", got, want)
	}
	// Unique fakes keep names apart; collisions fail, saying nothing of
	// the names, whether both names were masked or one was kept.
	uniq := jsonOf(t, k, "jsonb", at("$.*~", "fake", Args{"kind": "email", "unique": true}))
	var b strings.Builder
	b.WriteString("{")
	for i := range 500 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `"user%d@corp.com": %d`, i, i)
	}
	b.WriteString("}")
	out, err := veilRun(uniq, b.String())
	if err != nil || strings.Contains(string(out.Text), "@corp.com") {
		t.Errorf("unique fake names: %v", err)
	}
	for _, tt := range []struct {
		paths []PathRule
		in    string
	}{
		{[]PathRule{at("$.*~", "truncate", Args{"length": int64(3)})}, `{"` + veilCanary + `a": 1, "` + veilCanary + `b": 2}`},
		{[]PathRule{at(`$["`+veilCanary+`"]~`, "redact", Args{"value": "other"})}, `{"` + veilCanary + `": 1, "other": 2}`},
		{[]PathRule{at("$.a.*~", "redact", Args{"value": veilCanary[:3]})}, `{"a": {"` + veilCanary + `": 1, "x": [{"` + veilCanary + `": 2}], "y": 3}}`},
	} {
		_, err := veilRun(jsonOf(t, k, "jsonb", tt.paths...), tt.in)
		veilWantErr(t, err, "masked member names collide", veilCanary)
	}
	// Equal names in the input (json keeps duplicates) are not a collision.
	dup := jsonOf(t, k, "json", at("$.*~", "hash", nil))
	if got, want := apply(t, dup, `{"a": 1, "a": 2}`), `{"`+h("a")+`": 1, "`+h("a")+`": 2}`; got != want {
		t.Errorf("duplicate names = %s, want %s", got, want)
	}
	// Array elements have no names.
	if got := apply(t, jsonOf(t, k, "jsonb", at("$.l.*~", "hash", nil)), `{"l": ["a", {"b": 1}]}`); got != `{"l": ["a", {"b": 1}]}` {
		t.Errorf("names of array elements = %s", got)
	}
	// Names in separate objects may be equal.
	if got := apply(t, jsonOf(t, k, "jsonb", at("$.*.*~", "redact", Args{"value": "k"})), `{"a": {"x": 1}, "b": {"y": 2}}`); got != `{"a": {"k": 1}, "b": {"k": 2}}` {
		t.Errorf("names in two objects = %s", got)
	}
}

func TestJSONNameRulesChecked(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, tt := range []struct {
		path string
		rule Rule
		want string
	}{
		{"$.a~", Rule{Name: "drop"}, "$.a~ selects names, which cannot be dropped alone; to remove the members, drop $.a"},
		{"$.a.*~", Rule{Name: "null"}, "selects names, which cannot be null"},
		{"$~", Rule{Name: "hash"}, "the document has no name; $.*~ selects the names of its members"},
		{"$.a[0]~", Rule{Name: "hash"}, "[N] selects an array element, which has no name"},
		{"$.a~.b", Rule{Name: "hash"}, "~ ends a path"},
		{"$.a~~", Rule{Name: "hash"}, "~ ends a path"},
	} {
		_, err := veilBuildErr(k, "jsonb", Rule{Name: "json", Args: Args{"paths": []PathRule{{Path: tt.path, Rule: tt.rule}}}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v: error %v, want %q", tt.path, tt.rule.Name, err, tt.want)
		}
	}
	// fake on names warns (names may collide); hash and unique fake do not.
	r := Builtin()
	col := schema.Column{Table: "public.t", Name: "doc", Type: schema.MustType("jsonb")}
	warn := func(rule Rule) string {
		return r.Warning(Rule{Name: "json", Args: Args{"paths": []PathRule{{Path: "$.c.*~", Rule: rule}}}}, col)
	}
	if w := warn(Rule{Name: "fake", Args: Args{"kind": "email"}}); !strings.Contains(w, "fake names may collide") {
		t.Errorf("fake on names: warning %q", w)
	}
	for _, rule := range []Rule{{Name: "hash"}, {Name: "fake", Args: Args{"kind": "email", "unique": true}}} {
		if w := warn(rule); w != "" {
			t.Errorf("%s on names: warning %q", rule.Name, w)
		}
	}
}
