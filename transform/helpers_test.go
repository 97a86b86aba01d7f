package transform

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"pgveil/schema"
)

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
	tr, err := Builtin().Build(rule, schema.Column{Table: "public.t", Name: "c", Type: schema.MustType(typ)}, k)
	if err != nil {
		t.Fatalf("build %s on %s: %v", rule.Name, typ, err)
	}
	return tr
}

// apply runs tr on s and fails the test on error.
func apply(t testing.TB, tr Transformer, s string) string {
	t.Helper()
	out, err := veilRun(tr, s)
	if err != nil {
		t.Fatalf("transform %q: %v", s, err)
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

const (
	veilSecretB = "fedcba9876543210fedcba9876543210-other"
	// veilCanary is a value that must never appear in an error message.
	veilCanary = "SECRET-CANARY-42"
)

// veilBuildErr builds rule for a column of type typ, as production does.
func veilBuildErr(k *Keys, typ string, rule Rule) (Transformer, error) {
	return Builtin().Build(rule, schema.Column{Table: "public.t", Name: "c", Type: schema.MustType(typ)}, k)
}

// veilRun transforms in, turning a panic into an error.
func veilRun(tr Transformer, in string) (out schema.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return tr.Transform(schema.Text(in))
}

// veilWantErr checks that err is set, contains want, and does not contain
// any of leak.
func veilWantErr(t testing.TB, err error, want string, leak ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	if strings.HasPrefix(err.Error(), "panic:") {
		t.Fatalf("panicked: %v", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	for _, l := range leak {
		if l != "" && strings.Contains(err.Error(), l) {
			t.Fatalf("error %q leaks %q", err, l)
		}
	}
}

// veilMaskError checks that a transform error is a MaskError that does
// not contain the input.
func veilMaskError(t testing.TB, err error, in string) {
	t.Helper()
	if err == nil {
		t.Fatalf("input %q: no error", in)
	}
	if strings.HasPrefix(err.Error(), "panic:") {
		t.Fatalf("input %q: %v", in, err)
	}
	var ve *MaskError
	if !errors.As(err, &ve) {
		t.Errorf("input %q: error %q (%T) is not a *MaskError", in, err, err)
	}
	if strings.Contains(err.Error(), veilCanary) || (len(in) > 3 && strings.Contains(err.Error(), in)) {
		t.Errorf("error %q leaks the input %q", err, in)
	}
}
