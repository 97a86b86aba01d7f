package transform

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseJSONPath(t *testing.T) {
	key := func(k string) pathSeg { return pathSeg{kind: segKey, key: k} }
	idx := func(i int) pathSeg { return pathSeg{kind: segIndex, index: i} }
	all := pathSeg{kind: segAll}
	deep := func(k string) pathSeg { return pathSeg{kind: segDeep, key: k} }
	name := pathSeg{kind: segName}
	tests := []struct {
		in   string
		want jsonPath
	}{
		{"$", nil},
		{"$.a", jsonPath{key("a")}},
		{"$.a.b", jsonPath{key("a"), key("b")}},
		{"$.address.street", jsonPath{key("address"), key("street")}},
		{"$.first-name_2", jsonPath{key("first-name_2")}},
		{"$.é日本", jsonPath{key("é日本")}},
		{"$.$ref", jsonPath{key("$ref")}},
		{`$["a b"]`, jsonPath{key("a b")}},
		{`$['a b']`, jsonPath{key("a b")}},
		{`$["a.b"]`, jsonPath{key("a.b")}},
		{`$["a\"b"]`, jsonPath{key(`a"b`)}},
		{`$["a\\b"]`, jsonPath{key(`a\b`)}},
		{`$["\u00e9"]`, jsonPath{key("é")}},
		{`$["it's"]`, jsonPath{key("it's")}},
		{`$['it\'s']`, jsonPath{key("it's")}},
		{`$['say "hi"']`, jsonPath{key(`say "hi"`)}},
		{`$['a\\b']`, jsonPath{key(`a\b`)}},
		{`$["]"]`, jsonPath{key("]")}},
		{`$[""]`, jsonPath{key("")}},
		{"$[0]", jsonPath{idx(0)}},
		{"$[12]", jsonPath{idx(12)}},
		{"$[*]", jsonPath{all}},
		{"$.*", jsonPath{all}},
		{"$..email", jsonPath{deep("email")}},
		{"$..a.b", jsonPath{deep("a"), key("b")}},
		{"$.a..b", jsonPath{key("a"), deep("b")}},
		{"$.items[*].email", jsonPath{key("items"), all, key("email")}},
		{`$.a[0]["b c"][*].*..d`, jsonPath{key("a"), idx(0), key("b c"), all, all, deep("d")}},
		{"$[0][1]", jsonPath{idx(0), idx(1)}},
		// ~ ends a path: the names of the members it selects.
		{"$.contacts.*~", jsonPath{key("contacts"), all, name}},
		{"$.a~", jsonPath{key("a"), name}},
		{`$["a~"]~`, jsonPath{key("a~"), name}},
		{"$..email~", jsonPath{deep("email"), name}},
	}
	for _, tt := range tests {
		got, err := parseJSONPath(tt.in)
		if err != nil {
			t.Errorf("parseJSONPath(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseJSONPath(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseJSONPathErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "a JSON path starts with $"},
		{"a.b", "a JSON path starts with $"},
		{".a", "starts with $"},
		{"$a", `unexpected 'a' at offset 1`},
		{"$.", "a name must follow . at offset 2"},
		{"$.a.", "a name must follow . at offset 4"},
		{"$..", "a name must follow .. at offset 3"},
		{"$..*", "a name must follow .."},
		{"$...a", "a name must follow .."},
		{"$.a b", "unexpected ' ' at offset 3"},
		{"$[", "missing ] after offset 1"},
		{"$[0", "missing ]"},
		{"$[]", "[] is neither [*], an index nor a quoted name"},
		{"$[-1]", "[-1] is neither"},
		{"$[a]", "[a] is neither"},
		{"$[ 1 ]", "is neither"},
		{"$[1.5]", "is neither"},
		{"$[**]", "is neither"},
		{`$["a"`, "unterminated quoted name at offset 1"},
		{`$["a]`, "unterminated quoted name"},
		{`$["a"x]`, "unterminated quoted name"},
		{`$['a`, "unterminated quoted name"},
		{`$["a\`, "unterminated quoted name"},
		{`$["a\"]`, "unterminated quoted name"},
		{`$["\q"]`, "bad quoted name at offset 1"},
		{`$["\u12"]`, "bad quoted name"},
		{`$["a"]]`, "unexpected ']'"},
		{"$]", "unexpected ']'"},
		{"$*", "unexpected '*'"},
		{"$.a[0]b", "unexpected 'b'"},
		{"$~", "the document has no name"},
		{"$[3]~", "[N] selects an array element, which has no name"},
		{"$.a~b", "~ ends a path"},
		{"$.a~[0]", "~ ends a path"},
	}
	for _, tt := range tests {
		p, err := parseJSONPath(tt.in)
		if err == nil {
			t.Errorf("parseJSONPath(%q) = %+v, want an error", tt.in, p)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseJSONPath(%q): %q, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestSingleToDoubleQuoted(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`abc`, `abc`},
		{`it\'s`, `it's`},
		{`say "hi"`, `say \"hi\"`},
		{`a\\b`, `a\\b`},
		{`a\nb`, `a\nb`},
	} {
		if got := singleToDoubleQuoted(tt.in); got != tt.want {
			t.Errorf("singleToDoubleQuoted(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestJSONSpecCheckPositions checks that errors in nested rules carry the
// position of the path key or of its rule.
func TestJSONSpecCheckPositions(t *testing.T) {
	check := jsonSpec().Check
	tests := []struct {
		name      string
		rules     []PathRule
		line, col int
		want      string
	}{
		{"bad path", []PathRule{
			{Path: "$.ok", Rule: Rule{Name: "hash", Line: 3, Col: 20}, Line: 3, Col: 10},
			{Path: "$.a b", Rule: Rule{Name: "hash", Line: 4, Col: 20}, Line: 4, Col: 10},
		}, 4, 10, "unexpected ' '"},
		{"path without $", []PathRule{{Path: "a.b", Rule: Rule{Name: "hash", Line: 7, Col: 30}, Line: 7, Col: 12}}, 7, 12, "starts with $"},
		{"nested json", []PathRule{{Path: "$.a", Rule: Rule{Name: "json", Line: 9, Col: 17}, Line: 9, Col: 11}}, 9, 17, "json rules do not nest; write the full path instead"},
		{"drop the root", []PathRule{{Path: "$", Rule: Rule{Name: "drop", Line: 2, Col: 8}, Line: 2, Col: 3}}, 2, 8, "$ is the whole document: drop the column instead"},
	}
	for _, tt := range tests {
		err := check(Args{"paths": tt.rules})
		var pe *PosError
		if !errors.As(err, &pe) {
			t.Errorf("%s: error %v is not a *PosError", tt.name, err)
			continue
		}
		if pe.Line != tt.line || pe.Col != tt.col || !strings.Contains(pe.Error(), tt.want) {
			t.Errorf("%s: %d:%d %q, want %d:%d %q", tt.name, pe.Line, pe.Col, pe, tt.line, tt.col, tt.want)
		}
	}
	if err := check(Args{"paths": []PathRule{}}); err == nil || !strings.Contains(err.Error(), "give at least one path") {
		t.Errorf("no paths: %v", err)
	}
	if err := check(Args{}); err == nil || !strings.Contains(err.Error(), "give at least one path") {
		t.Errorf("missing paths: %v", err)
	}
	if err := check(Args{"paths": []PathRule{{Path: "$", Rule: Rule{Name: "hash"}}, {Path: "$..x", Rule: Rule{Name: "drop"}}}}); err != nil {
		t.Errorf("valid paths: %v", err)
	}
	// Through the registry the position survives the wrapping.
	err := Builtin().CheckArgs("json", Args{"paths": []PathRule{{Path: "$[x]", Rule: Rule{Name: "hash"}, Line: 5, Col: 6}}})
	var pe *PosError
	if !errors.As(err, &pe) || pe.Line != 5 || pe.Col != 6 || !strings.HasPrefix(err.Error(), "json: ") {
		t.Errorf("CheckArgs: %v", err)
	}
}
