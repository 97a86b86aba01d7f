package transform

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

func TestPartial(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ         string
		first, last int64
		mask        string
		in, want    string
	}{
		{"text", 0, 2, "", "+33612345678", "**********78"},
		{"text", 2, 2, "", "abcdefgh", "ab****gh"},
		{"text", 3, 0, "", "abcdefgh", "abc*****"},
		{"text", 0, 4, "#", "4111111111111111", "############1111"},
		{"text", 1, 1, "•", "secret", "s••••t"},
		{"text", 0, 1, "x", "ab", "xb"},
		// Values no longer than what would be kept are masked entirely.
		{"text", 0, 2, "", "ab", "**"},
		{"text", 0, 2, "", "a", "*"},
		{"text", 1, 2, "", "abc", "***"},
		{"text", 1, 2, "", "abcd", "a*cd"},
		{"text", 5, 5, "", "0123456789", "**********"},
		{"text", 5, 5, "", "0123456789X", "01234*6789X"},
		{"text", 2, 0, "", "", ""},
		// Huge keeps never overflow into revealing the value.
		{"text", math.MaxInt64, 1, "", "secret", "******"},
		{"text", 1, math.MaxInt64, "", "secret", "******"},
		{"text", math.MaxInt64, math.MaxInt64, "", "secret", "******"},
		// Characters, not bytes.
		{"text", 1, 1, "", "😀😃😄😁", "😀**😁"},
		{"text", 0, 2, "", "日本語テキスト", "*****スト"},
		{"text", 1, 0, "", "e\u0301a\u0301", "e***"},
		{"text", 1, 1, "", "Zoë Åström", "Z********m"},
		{"text", 0, 3, "·", "👍🏽👍🏽", "·🏽👍🏽"}, // a modifier is a character
		// Invalid UTF-8 counts byte by byte.
		{"text", 1, 0, "", "\xff\xfeab", "\xff***"},
		// varchar, citext: as text.
		{"varchar(12)", 0, 2, "", "+33612345678", "**********78"},
		{"citext", 1, 0, "", "Alice", "A****"},
		// char(n): trailing blanks are padding, not characters.
		{"char(10)", 0, 1, "", "abc       ", "**c       "},
		{"char(10)", 2, 0, "", "abcd      ", "ab**      "},
		{"char(3)", 0, 1, "", "abc", "**c"},
		{"char(5)", 0, 1, "", "     ", "     "},
		// In text, blanks are characters.
		{"text", 0, 1, "", "abc  ", "**** "},
	}
	for _, tt := range tests {
		args := Args{}
		if tt.first != 0 {
			args["keep_first"] = tt.first
		}
		if tt.last != 0 {
			args["keep_last"] = tt.last
		}
		if tt.mask != "" {
			args["mask"] = tt.mask
		}
		tr := build(t, k, tt.typ, Rule{Name: "partial", Args: args})
		got := apply(t, tr, tt.in)
		if got != tt.want {
			t.Errorf("partial %v on %s of %q = %q, want %q", args, tt.typ, tt.in, got, tt.want)
		}
	}
}

// TestPartialKeepsLength checks on many values that the output has as many
// characters as the input and shows only the kept ones.
func TestPartialKeepsLength(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := build(t, k, "text", Rule{Name: "partial", Args: Args{"keep_first": int64(1), "keep_last": int64(2), "mask": "é"}})
	var b strings.Builder
	for i := 0; i < 60; i++ {
		b.WriteRune([]rune("aé日😀")[i%4])
		in := b.String()
		got := apply(t, tr, in)
		n := utf8.RuneCountInString(in)
		if utf8.RuneCountInString(got) != n {
			t.Fatalf("partial of %q = %q: length changed", in, got)
		}
		rin, rout := []rune(in), []rune(got)
		for j := range rout {
			kept := n > 3 && (j < 1 || j >= n-2)
			if kept && rout[j] != rin[j] || !kept && rout[j] != 'é' {
				t.Fatalf("partial of %q = %q: wrong character at %d", in, got, j)
			}
		}
	}
}

func TestPartialArrays(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ, in, want string
	}{
		{"text[]", `{+33612345678,NULL,ab,""}`, `{**********78,NULL,**,""}`},
		{"varchar(20)[]", `{{"a b c d",wxyz},{NULL,"12,34"}}`, `{{"***** d",**yz},{NULL,***34}}`},
		{"text[]", `{"NULL",null}`, `{**LL,NULL}`},
	}
	for _, tt := range tests {
		tr := build(t, k, tt.typ, Rule{Name: "partial", Args: Args{"keep_last": int64(2)}})
		if got := apply(t, tr, tt.in); got != tt.want {
			t.Errorf("partial on %s of %s = %s, want %s", tt.typ, tt.in, got, tt.want)
		}
	}
}

func TestPartialBuildErrors(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ  string
		args Args
		want string
	}{
		{"integer", Args{"keep_last": int64(2)}, "partial applies to text columns, not to integer; use keep, redact, null or drop"},
		{"date", Args{"keep_last": int64(2)}, "partial applies to text columns, not to date; use truncate, noise or fake: date_of_birth"},
		{"uuid", Args{"keep_first": int64(4)}, "partial applies to text columns"},
		{"integer[]", Args{"keep_last": int64(2)}, "not to integer"},
		{"jsonb", Args{"keep_last": int64(2)}, "use json"},
		{"text", Args{"keep_first": int64(0), "keep_last": int64(0)}, "set keep_first or keep_last (to hide everything, use redact)"},
		{"text", Args{}, "set keep_first or keep_last"},
		{"text", Args{"mask": "#"}, "set keep_first or keep_last"},
		{"text", Args{"keep_first": int64(-1), "keep_last": int64(2)}, "keep_first: must not be negative"},
		{"text", Args{"keep_last": int64(-3)}, "keep_last: must not be negative"},
		{"text", Args{"keep_last": int64(2), "mask": "ab"}, "mask: must be a single character"},
		{"text", Args{"keep_last": int64(2), "mask": ""}, "mask: must be a single character"},
		{"text", Args{"keep_last": 2.0}, "keep_last: must be a integer"},
		{"text", Args{"keep_last": int64(2), "keep_middle": int64(1)}, `partial has no parameter "keep_middle"`},
	}
	for _, tt := range tests {
		_, err := veilBuildErr(k, tt.typ, Rule{Name: "partial", Args: tt.args})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("partial %v on %s: error %v, want %q", tt.args, tt.typ, err, tt.want)
		}
	}
	if err := Builtin().CheckArgs("partial", Args{"keep_first": int64(0), "keep_last": int64(0)}); err == nil {
		t.Error("CheckArgs accepts keep_first 0 and keep_last 0")
	}
}

func TestPartialNeverFails(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := build(t, k, "text", Rule{Name: "partial", Args: Args{"keep_last": int64(2)}})
	for _, in := range []string{veilCanary, "", "\x00", "\xff", strings.Repeat("x", 10000)} {
		got := apply(t, tr, in)
		if len(in) > 2 && strings.Contains(got, in) {
			t.Errorf("partial left %q as it was", in)
		}
	}
}

func BenchmarkPartial(b *testing.B) {
	k := testKeys(b, pgtest.Secret)
	tr := build(b, k, "text", Rule{Name: "partial", Args: Args{"keep_last": int64(2)}})
	in := schema.Text("+33612345678")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Transform(in); err != nil {
			b.Fatal(err)
		}
	}
}
