package transform

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

func TestHashKeepsType(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	hashRule := Rule{Name: "hash"}
	for _, tc := range []struct {
		typ, in string
		check   func(out string) error
	}{
		{"smallint", "32767", intIn(math.MinInt16, math.MaxInt16)},
		{"smallint", "-32768", intIn(math.MinInt16, math.MaxInt16)},
		{"integer", "2147483647", intIn(math.MinInt32, math.MaxInt32)},
		{"integer", "1", intIn(0, math.MaxInt16)},
		{"bigint", "9223372036854775807", intIn(0, math.MaxInt64)},
		{"bigint", "-9223372036854775808", intIn(math.MinInt64, -1-math.MaxInt32)},
		{"numeric(5,2)", "123.45", decimalShape(3, 2)},
		{"numeric(5,2)", "-0.05", decimalShape(3, 2)},
		{"numeric(30,4)", "12345678901234567890.1234", decimalShape(26, 4)},
		{"numeric", "12.5", decimalShape(2, 1)},
		{"numeric(3,3)", "0.123", decimalShape(1, 3)},
		{"numeric(3,3)", "-0.500", decimalShape(1, 3)},
		{"numeric", "99999999999999999999999", decimalShape(23, 0)},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", isUUID},
		{"text", "alice@example.com", hexOf(32)},
		{"text", "", hexOf(32)},
		{"character varying(20)", "alice@example.com", hexOf(20)},
		{"character(40)", "abc                                     ", func(s string) error { return hexOf(32)(strings.TrimRight(s, " ")) }},
		{"bytea", `\x0102ff`, byteaOf(32)},
	} {
		t.Run(tc.typ+"/"+tc.in, func(t *testing.T) {
			out := apply(t, build(t, k, tc.typ, hashRule), tc.in)
			if out == tc.in {
				t.Errorf("hash returned its input")
			}
			if err := tc.check(out); err != nil {
				t.Errorf("%q: %v", out, err)
			}
		})
	}
}

func intIn(lo, hi int64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		if v < lo || v > hi {
			return fmt.Errorf("not in [%d, %d]", lo, hi)
		}
		return nil
	}
}

func decimalShape(intDigits, scale int) func(string) error {
	return func(s string) error {
		s = strings.TrimPrefix(s, "-")
		i, f, _ := strings.Cut(s, ".")
		if len(f) != scale || len(i) > intDigits {
			return fmt.Errorf("want at most %d integer digits and %d decimals", intDigits, scale)
		}
		return nil
	}
}

func isUUID(s string) error {
	var u [16]byte
	if len(s) != 36 || !parseUUID([]byte(s), &u) {
		return fmt.Errorf("not a canonical uuid")
	}
	return nil
}

func hexOf(n int) func(string) error {
	return func(s string) error {
		if len(s) != n {
			return fmt.Errorf("length %d, want %d", len(s), n)
		}
		for _, c := range s {
			if !strings.ContainsRune("0123456789abcdef", c) {
				return fmt.Errorf("not hex")
			}
		}
		return nil
	}
}

func byteaOf(n int) func(string) error {
	return func(s string) error {
		if !strings.HasPrefix(s, `\x`) {
			return fmt.Errorf("not hex bytea")
		}
		return hexOf(2 * n)(s[2:])
	}
}

// Joins survive: the same value hashes the same in every integer type and
// in an unconstrained numeric, and the same text in text and varchar.
func TestHashJoinsAcrossTypes(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	r := Rule{Name: "hash"}
	for _, in := range []string{"0", "7", "-7", "1000", "40000", "-40000"} {
		want := apply(t, build(t, k, "bigint", r), in)
		for _, typ := range []string{"smallint", "integer", "numeric"} {
			if v, _ := strconv.ParseInt(in, 10, 64); typ == "smallint" && (v > math.MaxInt16 || v < math.MinInt16) {
				continue
			}
			if got := apply(t, build(t, k, typ, r), in); got != want {
				t.Errorf("%s %s -> %s, bigint gives %s", typ, in, got, want)
			}
		}
	}
	text := apply(t, build(t, k, "text", r), "ACME-001")
	if got := apply(t, build(t, k, "varchar(64)", r), "ACME-001"); got != text {
		t.Errorf("varchar gives %s, text %s", got, text)
	}
	if got := apply(t, build(t, k, "char(40)", r), "ACME-001    "); strings.TrimRight(got, " ") != text {
		t.Errorf("char(12) gives %s, text %s", got, text)
	}
}

func TestHashDependsOnSecret(t *testing.T) {
	a, b := testKeys(t, pgtest.Secret), testKeys(t, strings.Repeat("x", 32))
	for _, tc := range [][2]string{{"bigint", "42"}, {"text", "alice"}, {"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, {"numeric(8,2)", "10.00"}} {
		r := Rule{Name: "hash"}
		if apply(t, build(t, a, tc[0], r), tc[1]) == apply(t, build(t, b, tc[0], r), tc[1]) {
			t.Errorf("%s %s: same hash under two secrets", tc[0], tc[1])
		}
		if apply(t, build(t, a, tc[0], r), tc[1]) != apply(t, build(t, testKeys(t, pgtest.Secret), tc[0], r), tc[1]) {
			t.Errorf("%s %s: two Keys from one secret disagree", tc[0], tc[1])
		}
	}
}

// Unconstrained numerics stay distinct as numbers: outputs of different
// inputs never compare equal (no "3.0" against "3").
func TestHashNumericUnique(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := build(t, k, "numeric", Rule{Name: "hash"})
	seen := map[string]string{}
	for i := 0; i < 3000; i++ {
		for _, in := range []string{strconv.Itoa(i), fmt.Sprintf("%d.%d", i/10, i%10), fmt.Sprintf("0.%03d", i)} {
			d, _ := parseDecimal([]byte(apply(t, tr, in)))
			d = d.normalize()
			key := fmt.Sprintf("%v%s/%d", d.neg, d.digits, d.scale)
			in0, _ := parseDecimal([]byte(in))
			in0 = in0.normalize()
			inKey := fmt.Sprintf("%s/%d", in0.digits, in0.scale)
			if prev, ok := seen[key]; ok && prev != inKey {
				t.Fatalf("%s and %s hash to the same number", prev, in)
			}
			seen[key] = inKey
		}
	}
}

func TestHashUniqueOnConstrainedNumeric(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := build(t, k, "numeric(3,1)", Rule{Name: "hash"})
	seen := map[string]bool{}
	for i := -999; i <= 999; i++ {
		in := fmt.Sprintf("%.1f", float64(i)/10)
		out := apply(t, tr, in)
		if err := decimalShape(2, 1)(out); err != nil {
			t.Fatalf("%s -> %s: %v", in, out, err)
		}
		v, _ := strconv.ParseFloat(out, 64)
		key := strconv.FormatFloat(v, 'f', 1, 64)
		if seen[key] {
			t.Fatalf("%s -> %s collides", in, out)
		}
		seen[key] = true
	}
}

func TestHashErrors(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	reg := Builtin()
	for _, tc := range []struct{ typ, want string }{
		{"boolean", "hash does not apply to boolean"},
		{"double precision", "use noise, truncate or redact"},
		{"date", "truncate, noise or fake: date_of_birth"},
		{"jsonb", "json (with hash"},
	} {
		_, err := reg.Build(Rule{Name: "hash"}, schema.Column{Name: "c", Type: schema.MustType(tc.typ)}, k)
		mustContain(t, err, tc.want)
	}
	_, err := reg.Build(Rule{Name: "hash"}, schema.Column{Name: "c", Type: schema.MustType("varchar(8)"), PrimaryKey: true}, k)
	mustContain(t, err, "too short for a unique hash")

	for _, tc := range []struct{ typ, in string }{
		{"integer", "12x"}, {"integer", "2147483648"}, {"smallint", ""}, {"bigint", "-"},
		{"numeric", "1.2.3"}, {"numeric(3,1)", "1234.5"}, {"uuid", "not-a-uuid"},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"}, {"bytea", "plain"}, {"bytea", `\x0`},
	} {
		tr := build(t, k, tc.typ, Rule{Name: "hash"})
		_, err := tr.Transform(schema.Text(tc.in))
		if err == nil {
			t.Errorf("%s %q: no error", tc.typ, tc.in)
			continue
		}
		if tc.in != "" && strings.Contains(err.Error(), tc.in) {
			t.Errorf("%s: error %q repeats the value", tc.typ, err)
		}
	}
}

func TestHashNaNAndInfinityPassThrough(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, in := range []string{"NaN", "Infinity", "-Infinity"} {
		if out := apply(t, build(t, k, "numeric", Rule{Name: "hash"}), in); out != in {
			t.Errorf("%s -> %s", in, out)
		}
	}
}

func TestHashUUIDAcceptsInputForms(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := build(t, k, "uuid", Rule{Name: "hash"})
	want := apply(t, tr, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
	for _, in := range []string{"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11"} {
		if got := apply(t, tr, in); got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
}

func TestHashTextOnArrays(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := build(t, k, "text[]", Rule{Name: "hash"})
	one := apply(t, build(t, k, "text", Rule{Name: "hash"}), "a b")
	out := apply(t, tr, `{"a b",NULL,"a b"}`)
	if want := "{" + one + ",NULL," + one + "}"; out != want {
		t.Errorf("got %s, want %s", out, want)
	}
	if !utf8.ValidString(out) {
		t.Error("invalid UTF-8")
	}
}

func BenchmarkHashText20(b *testing.B) {
	tr := build(b, testKeys(b, pgtest.Secret), "text", Rule{Name: "hash"})
	v := schema.Text("alice.smith@mail.com")
	b.ReportAllocs()
	for range b.N {
		if _, err := tr.Transform(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashBigint(b *testing.B) {
	tr := build(b, testKeys(b, pgtest.Secret), "bigint", Rule{Name: "hash"})
	v := schema.Text("1234567")
	b.ReportAllocs()
	for range b.N {
		if _, err := tr.Transform(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashUUID(b *testing.B) {
	tr := build(b, testKeys(b, pgtest.Secret), "uuid", Rule{Name: "hash"})
	v := schema.Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
	b.ReportAllocs()
	for range b.N {
		if _, err := tr.Transform(v); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHashConstrainedNumericOddScale: a negative numeric(p,s) value that
// rounds to zero at the column's scale once walked the permutation
// forever. The guard fails that hang with the value rather than leaving
// it to the test binary's timeout; it is a minute, not the microseconds a
// transform takes, so that a loaded machine never trips it.
func TestHashConstrainedNumericOddScale(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := build(t, k, "numeric(3,1)", Rule{Name: "hash"})
	for _, in := range []string{"-0.001", "-0.04", "0.04", "1.25"} {
		done := make(chan struct{})
		go func() { defer close(done); tr.Transform(schema.Text(in)) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("%s: hangs", in)
		}
	}
}

// A numeric value with more decimal places than the column's scale is cut
// toward zero before it is hashed; one smaller than the scale's unit is
// zero there, and once made hash panic (slice out of range).
func TestHashNumericBelowScale(t *testing.T) {
	tr := build(t, testKeys(t, "0123456789abcdef0123456789abcdef"), "numeric(12,2)", Rule{Name: "hash"})
	zero, err := tr.Transform(schema.Text("0"))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"1.5e-7", "0.001", "0.000000001"} {
		got, err := tr.Transform(schema.Text(in))
		if err != nil || string(got.Text) != string(zero.Text) {
			t.Errorf("hash(%s) in numeric(12,2) = %v, %v; want hash(0) = %s", in, got, err, zero)
		}
	}
}
