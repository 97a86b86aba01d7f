package transform

import (
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

func TestBuiltinNames(t *testing.T) {
	got := strings.Join(Builtin().Names(), ",")
	if want := "drop,fake,hash,json,keep,noise,null,partial,redact,truncate"; got != want {
		t.Errorf("names %s, want %s", got, want)
	}
}

func TestBuildChecks(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	r := Builtin()
	pk := schema.Column{Table: "public.t", Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true}
	for _, tc := range []struct {
		rule Rule
		col  schema.Column
		want string
	}{
		{Rule{Name: "nope"}, pk, `unknown transformer "nope" (known: drop, fake`},
		{Rule{Name: "drop"}, pk, "primary key column is always published"},
		{Rule{Name: "null"}, pk, "null on a primary key column would not keep keys unique"},
		{Rule{Name: "fake", Args: Args{"kind": "name"}}, pk, "use hash"},
		{Rule{Name: "noise", Args: Args{"ratio": 0.1}}, pk, "use hash"},
		{Rule{Name: "hash", Args: Args{"salt": "x"}}, pk, `hash has no parameter "salt"`},
		{Rule{Name: "truncate", Args: Args{"length": "three"}}, schema.Column{Name: "c", Type: schema.MustType("text")}, "truncate: length: must be a integer"},
		{Rule{Name: "truncate", Args: Args{"length": int64(0)}}, schema.Column{Name: "c", Type: schema.MustType("text")}, "must be at least 1"},
		{Rule{Name: "truncate", Args: Args{"unit": "decade"}}, schema.Column{Name: "c", Type: schema.MustType("date")}, "must be one of year, month, day, hour, minute"},
		{Rule{Name: "partial", Args: Args{"keep_last": int64(2), "mask": "ab"}}, schema.Column{Name: "c", Type: schema.MustType("text")}, "must be a single character"},
	} {
		_, err := r.Build(tc.rule, tc.col, k)
		mustContain(t, err, tc.want)
	}
	for _, ok := range []Rule{{Name: "keep"}, {Name: "hash"}} {
		if _, err := r.Build(ok, pk, k); err != nil {
			t.Errorf("%s on a key: %v", ok.Name, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "36h": 36 * time.Hour, "30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1h30m": 90 * time.Minute} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "3x", "-1d", "1.5d", "99999999d", "106752d", "213504d", "15251w"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestNewKeysRejectsShortSecret(t *testing.T) {
	if _, err := NewKeys([]byte("too short")); err != ErrShortSecret {
		t.Errorf("got %v", err)
	}
}

func TestCharColumnsArePadded(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, tc := range []struct {
		typ  string
		rule Rule
		in   string
		want string
	}{
		{"char(5)", Rule{Name: "truncate", Args: Args{"length": int64(2)}}, "75011", "75   "},
		{"char(3)", Rule{Name: "partial", Args: Args{"keep_last": int64(1)}}, "ab ", "*b "},
		{"char(4)[]", Rule{Name: "truncate", Args: Args{"length": int64(1)}}, "{abcd,NULL}", `{"a   ",NULL}`},
		{"char(2)", Rule{Name: "keep"}, "x ", "x "},
	} {
		if got := apply(t, build(t, k, tc.typ, tc.rule), tc.in); got != tc.want {
			t.Errorf("%s %s(%q) = %q, want %q", tc.typ, tc.rule.Name, tc.in, got, tc.want)
		}
	}
	if got := apply(t, build(t, k, "char(40)", Rule{Name: "hash"}), "abc"); len(got) != 40 {
		t.Errorf("hash on char(40): %q", got)
	}
}

// Messages name a rule the way the rules file writes it, never its
// parameters (which may hold a constant a user wants kept out of logs).
func TestRuleShort(t *testing.T) {
	for _, tt := range []struct {
		r    Rule
		want string
	}{
		{Rule{Name: "hash"}, "hash"},
		{Rule{Name: "redact", Args: Args{"with": "secret-looking constant"}}, "{redact: ...}"},
	} {
		if got := tt.r.Short(); got != tt.want {
			t.Errorf("%+v.Short() = %q, want %q", tt.r, got, tt.want)
		}
	}
}
