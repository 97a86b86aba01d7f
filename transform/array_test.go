package transform

import (
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

func upper(v schema.Value) (schema.Value, error) {
	if v.State == schema.Null {
		return v, nil
	}
	return schema.Value{Text: []byte(strings.ToUpper(string(v.Text)))}, nil
}

func TestMapArray(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, `{}`},
		{`{a}`, `{A}`},
		{`{a,b,c}`, `{A,B,C}`},
		{`{"a b",NULL,"null",""}`, `{"A B",NULL,"NULL",""}`},
		{`{"x\"y","back\\slash"}`, `{"X\"Y","BACK\\SLASH"}`},
		{`{{a,b},{c,NULL}}`, `{{A,B},{C,NULL}}`},
		{`{{{a}}}`, `{{{A}}}`},
		{`[0:1]={a,b}`, `[0:1]={A,B}`},
		{`[1:1][1:2]={{a,b}}`, `[1:1][1:2]={{A,B}}`},
		{`{ a , b }`, `{A,B}`},
		{`{a\,b}`, `{"A,B"}`},
		{`{"{}"}`, `{"{}"}`},
		{`{héllo,日本}`, `{HÉLLO,日本}`},
	} {
		got, err := mapArray([]byte(tc.in), upper)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestMapArrayRejectsMalformed(t *testing.T) {
	for _, in := range []string{``, `a`, `{`, `}`, `{a`, `{a,}`, `{,a}`, `{"a}`, `{a}b`, `{a"b}`, `{{a}b}`, `[0:1]`, `{a\`, `{"a\`, `{a}}`} {
		if _, err := mapArray([]byte(in), upper); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// What mapArray writes, PostgreSQL's array input reads back: a round trip
// through the identity keeps every element.
func TestMapArrayRoundTrip(t *testing.T) {
	id := func(v schema.Value) (schema.Value, error) { return v, nil }
	var elems []string
	for _, e := range []string{"", " ", "NULL", "a,b", `q"q`, `b\s`, "{x}", "tab\there", "ü"} {
		elems = append(elems, string(appendArrayElem(nil, schema.Text(e))))
	}
	in := "{" + strings.Join(elems, ",") + "}"
	out, err := mapArray([]byte(in), id)
	if err != nil || string(out) != in {
		t.Fatalf("round trip: %s -> %s (%v)", in, out, err)
	}
	var got []string
	_, err = mapArray(out, func(v schema.Value) (schema.Value, error) { got = append(got, string(v.Text)); return v, nil })
	if err != nil || strings.Join(got, "|") != strings.Join([]string{"", " ", "NULL", "a,b", `q"q`, `b\s`, "{x}", "tab\there", "ü"}, "|") {
		t.Fatalf("elements: %q (%v)", got, err)
	}
}

func TestArrayColumnAppliesPerElement(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := build(t, k, "integer[]", Rule{Name: "hash"})
	one := apply(t, build(t, k, "integer", Rule{Name: "hash"}), "5")
	if got, want := apply(t, tr, "{{5,NULL},{5,5}}"), "{{"+one+",NULL},{"+one+","+one+"}}"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// keep and null take the whole array.
	if got := apply(t, build(t, k, "integer[]", Rule{Name: "keep"}), "{1,2}"); got != "{1,2}" {
		t.Errorf("keep: %s", got)
	}
	if out, _ := build(t, k, "integer[]", Rule{Name: "null"}).Transform(schema.Text("{1,2}")); out.State != schema.Null {
		t.Errorf("null: %v", out)
	}
	if !IsDrop(build(t, k, "integer[]", Rule{Name: "drop"})) {
		t.Error("drop on an array is not a drop")
	}
	if _, err := tr.Transform(schema.Text("{1,x}")); err == nil || strings.Contains(err.Error(), "x") && !strings.Contains(err.Error(), "valid") {
		t.Errorf("bad element: %v", err)
	}
}
