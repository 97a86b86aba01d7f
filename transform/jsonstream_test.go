package transform

import (
	"encoding/json"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// jsonFuzzPaths and jsonFuzzRules are what the differential fuzzer builds
// json rules from.
var jsonFuzzPaths = []string{
	"$", "$.a", "$.a.b", "$.b", "$[0]", "$[1]", "$[*]", "$.*", "$..a", "$..b", "$..a.b", "$.a[*]",
	"$..a[0]", `$["a b"]`, "$[0][0]", "$.*.a", "$[*].a", "$..c", "$.a[1].b", `$["é"]`,
	"$.*~", "$..a~", "$.a.*~", "$[*].*~", "$..b~",
}

var jsonFuzzRules = []Rule{
	{Name: "hash"}, {Name: "drop"}, {Name: "null"}, {Name: "keep"},
	{Name: "redact", Args: Args{"value": "x"}},
	{Name: "truncate", Args: Args{"length": int64(2)}},
	{Name: "truncate", Args: Args{"unit": "month"}}, // fails on what is not a date
	{Name: "noise", Args: Args{"ratio": 0.1}},       // fails on strings that are not numbers
	{Name: "fake", Args: Args{"kind": "email"}},
	{Name: "partial", Args: Args{"keep_last": int64(1)}},
}

var jsonFuzzDocs = []string{
	`{"a": {"b": "s", "c": "t"}, "b": "u"}`,
	`[["x", 1], {"a": [1, "2", {"b": null}]}, true, -1.5e3]`,
	`{"a": 1, "a": {"a": {"b": "x"}}, "c": [{"a": "y"}, {"c": "z"}]}`,
	`{"a b": "s", "\u00e9": "t", "a\u0020b": 3, "\"": "q"}`,
	`{"d": "2024-03-15", "n": 12.5, "a": ["2024-01-31 10:00:00+00", 7, false]}`,
	`[{"a": [["deep", ["deeper", {"b": 1}]]]}, [], {}]`,
	"{\n\t\"a\" :\r\n 1.50 , \"b\":[ ] }",
	`{"a": "\ud83d\ude00 \n \/ \\"}`,
	`{"a": [1, 2, 3], "b": [{"a": 1}, {"a": 2}]}`,
	`[1, 2`, `{"a": }`, `"lone"`, `null`, `{"a": 1} x`,
}

// jsonFuzzRule builds the json transformer that pick describes: each byte
// is one path with one rule.
func jsonFuzzRule(t testing.TB, k *Keys, pick []byte) (jsonT, bool) {
	var paths []PathRule
	for _, b := range pick {
		path := jsonFuzzPaths[int(b)%len(jsonFuzzPaths)]
		rule := jsonFuzzRules[int(b>>4)%len(jsonFuzzRules)]
		if path == "$" && rule.Name == "drop" || strings.HasSuffix(path, "~") && (rule.Name == "drop" || rule.Name == "null") {
			continue // refused by Check
		}
		paths = append(paths, PathRule{Path: path, Rule: rule})
	}
	if len(paths) == 0 {
		return jsonT{}, false
	}
	tr, err := Builtin().Build(Rule{Name: "json", Args: Args{"paths": paths}},
		schema.Column{Table: "public.t", Name: "c", Type: schema.MustType("jsonb")}, k)
	if err != nil {
		t.Fatalf("building %v: %v", paths, err)
	}
	return tr.(jsonT), true
}

// checkJSONAgainstReference runs the one-pass transformer and the
// reference tree on the same document and rules.
func checkJSONAgainstReference(t *testing.T, j jsonT, doc string) {
	got, err := j.Transform(schema.Text(doc))
	want, refErr := refJSON(j.paths, []byte(doc))
	if (err == nil) != (refErr == nil) {
		t.Fatalf("%q: transformer error %v, reference error %v", doc, err, refErr)
	}
	if err != nil {
		return
	}
	if string(got.Text) != string(want) {
		t.Fatalf("%q with %d paths:\n got %s\nwant %s", doc, len(j.paths), got.Text, want)
	}
	if !json.Valid(got.Text) {
		t.Fatalf("%q: invalid output %s", doc, got.Text)
	}
}

// FuzzJSONAgainstReference checks the one-pass json transformer against
// the tree it replaced, on any document and any mix of paths and rules.
func FuzzJSONAgainstReference(f *testing.F) {
	for i, d := range jsonFuzzDocs {
		f.Add([]byte{byte(i), byte(i*37 + 5), byte(i * 101)}, d)
	}
	k := testKeys(f, pgtest.Secret)
	f.Fuzz(func(t *testing.T, pick []byte, doc string) {
		if len(pick) > 8 {
			pick = pick[:8]
		}
		j, ok := jsonFuzzRule(t, k, pick)
		if !ok {
			return
		}
		checkJSONAgainstReference(t, j, doc)
	})
}

// TestJSONAgainstReference runs every seed document with every path and
// rule alone, and with pairs of them.
func TestJSONAgainstReference(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, doc := range jsonFuzzDocs {
		for a := range 256 {
			picks := [][]byte{{byte(a)}, {byte(a), byte(255 - a)}, {byte(a), byte(a * 7), byte(a * 13)}}
			for _, pick := range picks {
				if j, ok := jsonFuzzRule(t, k, pick); ok {
					checkJSONAgainstReference(t, j, doc)
				}
			}
		}
	}
}

// TestJSONDropKeepsIndices: paths select in the document as it arrived.
func TestJSONDropKeepsIndices(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := jsonOf(t, k, "jsonb", at("$[0]", "drop", nil), at("$[1]", "redact", redactX))
	if got, want := apply(t, tr, `["a", "b", "c"]`), `["x", "c"]`; got != want {
		t.Errorf("drop $[0], redact $[1] = %s, want %s", got, want)
	}
	// A dropped value is not masked, so a rule that cannot mask it does
	// not fail.
	tr = jsonOf(t, k, "jsonb", at("$.d", "truncate", Args{"unit": "month"}), at("$.d", "drop", nil))
	if got, want := apply(t, tr, `{"d": "not a date", "e": 1}`), `{"e": 1}`; got != want {
		t.Errorf("truncate then drop = %s, want %s", got, want)
	}
}

// TestJSONPathLength: paths longer than the walk can track are refused.
func TestJSONPathLength(t *testing.T) {
	long := "$"
	for range maxPathSteps {
		long += ".a"
	}
	if _, err := parseJSONPath(long); err != nil {
		t.Errorf("%d steps: %v", maxPathSteps, err)
	}
	// The longest path selects at its full depth.
	k := testKeys(t, pgtest.Secret)
	tr := jsonOf(t, k, "jsonb", at(long, "redact", redactX))
	doc := strings.Repeat(`{"a": `, maxPathSteps) + `"s"` + strings.Repeat("}", maxPathSteps)
	if got, want := apply(t, tr, doc), strings.Replace(doc, `"s"`, `"x"`, 1); got != want {
		t.Errorf("%d steps deep: %s", maxPathSteps, got)
	}
	_, err := parseJSONPath(long + ".a")
	veilWantErr(t, err, "more than 62 steps")
}
