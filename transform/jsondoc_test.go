package transform

import (
	"encoding/json"
	"pgveil/schema"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestJSONDocRoundTrip(t *testing.T) {
	// Unmodified documents come back with jsonb's separators and every
	// scalar's original text.
	tests := []struct{ in, want string }{
		{`{}`, `{}`},
		{`[]`, `[]`},
		{` { } `, `{}`},
		{`null`, `null`},
		{`true`, `true`},
		{`-0`, `-0`},
		{`"x"`, `"x"`},
		{`{"a":1,"b":[1,2,{"c":null}],"d":"e"}`, `{"a": 1, "b": [1, 2, {"c": null}], "d": "e"}`},
		{"{\n\t\"a\" :\r\n 1.50 }", `{"a": 1.50}`},
		{`[1e3, 1E-7, -0.0, 12345678901234567890123]`, `[1e3, 1E-7, -0.0, 12345678901234567890123]`},
		// Values keep their text; keys are written from their decoded value.
		{`{"a": "\u00e9\n\"", "\u0041": "\/"}`, `{"a": "\u00e9\n\"", "A": "\/"}`},
		{`{"a": 1, "a": 2, "b": 3, "a": 4}`, `{"a": 1, "a": 2, "b": 3, "a": 4}`},
		{`["😀", "日本語", "e\u0301"]`, `["😀", "日本語", "e\u0301"]`},
		{`[[[[[]]]]]`, `[[[[[]]]]]`},
		{`{"": ""}`, `{"": ""}`},
	}
	for _, tt := range tests {
		got, err := copyJSON(t, tt.in)
		if err != nil {
			t.Errorf("copyJSON(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("copyJSON(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// copyJSON runs a document through the json transformer with no path, and
// checks that the reference gives the same.
func copyJSON(t *testing.T, in string) (string, error) {
	t.Helper()
	out, err := jsonT{}.Transform(schema.Text(in))
	ref, refErr := refJSON(nil, []byte(in))
	if (err == nil) != (refErr == nil) || string(out.Text) != string(ref) {
		t.Errorf("%.40q: transformer %q (%v), reference %q (%v)", in, out.Text, err, ref, refErr)
	}
	return string(out.Text), err
}

func TestJSONDocStrings(t *testing.T) {
	// Decoding: the value as encoding/json decodes it.
	for _, in := range []string{
		`""`, `"plain"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u0000\u001f"`, `"\u00e9\u65e5"`,
		`"\ud83d\ude00"`, `"\uD83D\uDE00 mixed case"`, `"é直接 😀"`, `"tab\tend"`,
	} {
		n, err := parseJSON([]byte(in))
		if err != nil {
			t.Errorf("parseJSON(%s): %v", in, err)
			continue
		}
		var want string
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if n.kind != '"' || string(n.text()) != want {
			t.Errorf("parseJSON(%s) = %q, want %q", in, n.text(), want)
		}
		// Re-encoding a decoded string gives the same value back.
		var back string
		enc := AppendJSONString(nil, n.text())
		if err := json.Unmarshal(enc, &back); err != nil || back != want {
			t.Errorf("AppendJSONString(%q) = %s, decodes to %q (%v)", n.text(), enc, back, err)
		}
	}
	// Lone surrogates become U+FFFD, as encoding/json decodes them.
	for _, in := range []string{`"\ud800"`, `"\udc00"`, `"\ud800x"`, `"\ud800\u0041"`, `"\udc00\ud800"`} {
		n, err := parseJSON([]byte(in))
		if err != nil {
			t.Errorf("parseJSON(%s): %v", in, err)
			continue
		}
		var want string
		_ = json.Unmarshal([]byte(in), &want)
		if string(n.text()) != want || !utf8.Valid(n.text()) {
			t.Errorf("parseJSON(%s) = %q, want %q", in, n.text(), want)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"é日😀", `"é日😀"`},
		{"/", `"/"`},
		{"<&>", `"<&>"`},
		{"bad\xffutf8", "\"bad\uFFFDutf8\""},
	}
	for _, tt := range tests {
		if got := string(AppendJSONString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if !json.Valid(AppendJSONString(nil, tt.in)) {
			t.Errorf("AppendJSONString(%q) is not valid JSON", tt.in)
		}
	}
}

func TestIsJSONNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-12", "1.5", "0.001", "1e5", "1E+5", "-1.5e-7", "12345678901234567890"} {
		if !isJSONNumber([]byte(s)) {
			t.Errorf("isJSONNumber(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-", "+1", "01", "-01", "1.", ".5", "1e", "1e+", "NaN", "Infinity", "-Infinity", "0x10", "1 ", " 1", "1.5.5", "1,5", "--1"} {
		if isJSONNumber([]byte(s)) {
			t.Errorf("isJSONNumber(%q) = true", s)
		}
	}
}

func TestParseJSONRejects(t *testing.T) {
	for _, in := range []string{
		``, ` `, `{`, `}`, `[`, `]`, `{"a":}`, `{"a" 1}`, `{"a":1,}`, `{,}`, `[1,]`, `[,1]`, `[1 2]`,
		`{1:2}`, `{a:1}`, `{'a':1}`, `nul`, `tru`, `falsey`, `nullx`, `"abc`, `"\x"`, `"\u12"`, `"\u12G4"`,
		"\"a\x01b\"", "\"a\nb\"", `{"a":1}x`, `{"a":1}}`, `01`, `1.`, `-`, `.5`, `+1`, `NaN`, `Infinity`,
		`[1e]`, `"\`, `"\"`, `{"a":1 "b":2}`, `[{]`, `[}`, `{"a":[}`, "\ufeff{}",
		`{"` + veilCanary + `": }`, `["` + veilCanary + `"`, veilCanary,
	} {
		out, err := copyJSON(t, in)
		if err == nil {
			t.Errorf("copyJSON(%q) = %s, want an error", in, out)
			continue
		}
		veilMaskError(t, err, in)
		if json.Valid([]byte(in)) {
			t.Errorf("encoding/json accepts %q: the test is wrong", in)
		}
	}
}

func TestParseJSONDepth(t *testing.T) {
	// Unclosed, deep: an error, not a crash.
	for _, in := range []string{strings.Repeat("[", 5000), strings.Repeat(`{"a":`, 5000), strings.Repeat("[", 300_000)} {
		if _, err := copyJSON(t, in); err == nil {
			t.Errorf("%d unclosed levels: no error", len(in))
		}
	}
	// Deep and valid: no limit but the input's size (PostgreSQL's is its
	// stack, which settings raise).
	for _, depth := range []int{5000, 10_001, 200_000} {
		for _, in := range []string{
			strings.Repeat("[", depth) + strings.Repeat("]", depth),
			strings.Repeat(`{"a": `, depth) + "1" + strings.Repeat("}", depth),
		} {
			got, err := copyJSON(t, in)
			if err != nil {
				t.Fatalf("%d levels: %v", depth, err)
			}
			if got != in {
				t.Errorf("%d levels do not round trip", depth)
			}
		}
	}
	// Many shallow arrays.
	in := "[" + strings.Repeat("[],", 30000) + "[]]"
	if _, err := copyJSON(t, in); err != nil {
		t.Errorf("many shallow arrays: %v", err)
	}
}

func TestJNodeStructure(t *testing.T) {
	n, err := parseJSON([]byte(`{"a": [1, "x", true, null], "b": {"c": false}}`))
	if err != nil {
		t.Fatal(err)
	}
	if n.kind != '{' || !reflect.DeepEqual(n.keys, [][]byte{[]byte("a"), []byte("b")}) || len(n.vals) != 2 {
		t.Fatalf("root: %+v", n)
	}
	arr := n.vals[0]
	kinds := ""
	for _, v := range arr.vals {
		kinds += string(v.kind)
	}
	if arr.kind != '[' || kinds != `n"bz` || string(arr.vals[0].raw) != "1" || string(arr.vals[1].text()) != "x" || string(arr.vals[1].raw) != `"x"` {
		t.Errorf("array: %q %+v", kinds, arr.vals)
	}
	arr.vals[1].dropped = true
	n.vals[1].dropped = true
	if got := string(appendJSON(nil, n)); got != `{"a": [1, true, null]}` {
		t.Errorf("after dropping: %s", got)
	}
}

// TestJSONMaskScalar checks what a masked scalar becomes: numbers stay
// numbers only when their rule gives a JSON number, SQL NULL becomes null.
func TestJSONMaskScalar(t *testing.T) {
	to := func(s string) Transformer {
		return Func(func(schema.Value) (schema.Value, error) { return schema.Text(s), nil })
	}
	null := Func(func(schema.Value) (schema.Value, error) { return schema.SQLNull(), nil })
	tests := []struct {
		rule jsonRule
		in   jscalar
		want string
	}{
		{jsonRule{str: to("s"), num: to("42")}, jscalar{kind: 'n', raw: []byte("1")}, `42`},
		{jsonRule{str: to("s"), num: to("4x2")}, jscalar{kind: 'n', raw: []byte("1")}, `"4x2"`},
		{jsonRule{str: to("42")}, jscalar{kind: 'n', raw: []byte("1")}, `"42"`},
		{jsonRule{str: null}, jscalar{kind: '"', raw: []byte(`"a"`)}, `null`},
		{jsonRule{str: to("x")}, jscalar{kind: 'b', raw: []byte("true")}, `"x"`},
		{jsonRule{str: to("x")}, jscalar{kind: 'z', raw: []byte("null")}, `null`},
		{jsonRule{str: to(`q"`)}, jscalar{kind: '"', raw: []byte(`"\u0041"`), esc: true}, `"q\""`},
	}
	for _, tt := range tests {
		v := tt.in
		if err := tt.rule.maskScalar(&v); err != nil {
			t.Fatal(err)
		}
		got := string(v.raw)
		if v.dirty {
			got = string(AppendJSONString(nil, v.str))
		}
		if got != tt.want {
			t.Errorf("%s masked = %s, want %s", tt.in.raw, got, tt.want)
		}
	}
}
