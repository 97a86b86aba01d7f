package transform

import (
	"strings"
	"testing"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func testKeys(t testing.TB, secret string) *Keys {
	t.Helper()
	k, err := NewKeys([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// build makes a transformer of rule for a column of type typ.
func build(t testing.TB, k *Keys, typ string, rule Rule) Transformer {
	t.Helper()
	tr, err := Builtin().Build(rule, Column{Table: "public.t", Name: "c", Type: MustType(typ)}, k)
	if err != nil {
		t.Fatalf("build %s on %s: %v", rule.Name, typ, err)
	}
	return tr
}

// apply runs tr on s and fails the test on error.
func apply(t testing.TB, tr Transformer, s string) string {
	t.Helper()
	out, err := tr.Transform(Text(s))
	if err != nil {
		t.Fatalf("transform: %v", err)
	}
	return out.String()
}

func mustContain(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
