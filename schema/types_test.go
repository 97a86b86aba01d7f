package schema

import (
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Type
		str  string
	}{
		{"integer", Type{Name: "integer", Kind: KindInt, Bits: 32}, "integer"},
		{"int8", Type{Name: "bigint", Kind: KindInt, Bits: 64}, "bigint"},
		{"smallint[]", Type{Name: "smallint", Kind: KindInt, Bits: 16, ArrayDims: 1}, "smallint[]"},
		{"character varying(20)", Type{Name: "character varying", Kind: KindText, Length: 20}, "character varying(20)"},
		{"varchar(20)[][]", Type{Name: "character varying", Kind: KindText, Length: 20, ArrayDims: 2}, "character varying(20)[][]"},
		{"character", Type{Name: "character", Kind: KindText, Length: 1}, "character(1)"},
		{"numeric(10,2)", Type{Name: "numeric", Kind: KindNumeric, Precision: 10, Scale: 2}, "numeric(10,2)"},
		{"numeric(7)", Type{Name: "numeric", Kind: KindNumeric, Precision: 7}, "numeric(7,0)"},
		{"NUMERIC", Type{Name: "numeric", Kind: KindNumeric}, "numeric"},
		{"timestamp(3) with time zone", Type{Name: "timestamp with time zone", Kind: KindTimestampTZ, Mod: "(3)"}, "timestamp(3) with time zone"},
		{"time(0) without time zone", Type{Name: "time without time zone", Kind: KindTime, Mod: "(0)"}, "time(0) without time zone"},
		{"interval(2)", Type{Name: "interval", Kind: KindInterval, Mod: "(2)"}, "interval(2)"},
		{"bit(4)", Type{Name: "bit(4)", Kind: KindOther}, "bit(4)"},
		{"public.geometry(Point,4326)", Type{Name: "public.geometry(Point,4326)", Kind: KindOther}, "public.geometry(Point,4326)"},
		{`"Sales"."Status"[]`, Type{Name: `"Sales"."Status"`, Kind: KindOther, ArrayDims: 1}, `"Sales"."Status"[]`},
		{"timestamptz", Type{Name: "timestamp with time zone", Kind: KindTimestampTZ}, "timestamp with time zone"},
		{"double precision", Type{Name: "double precision", Kind: KindFloat, Bits: 64}, "double precision"},
		{"jsonb", Type{Name: "jsonb", Kind: KindJSONB}, "jsonb"},
		{"public.mood", Type{Name: "public.mood", Kind: KindOther}, "public.mood"},
	} {
		got, err := ParseType(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.str {
			t.Errorf("%s: String() = %s, want %s", tc.in, got.String(), tc.str)
		}
	}
	for _, bad := range []string{"", "numeric(2,5)", "varchar(0)", "numeric(1,2,3)", "varchar(x)", "numeric(10"} {
		if _, err := ParseType(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{
		"customers": "customers", "Customers": `"Customers"`, "order": `"order"`,
		"a b": `"a b"`, `x"y`: `"x""y"`, "_x1$": `"_x1$"`, "_x1": "_x1", "time": `"time"`, "1x": `"1x"`, "": `""`, "café": `"café"`,
	} {
		if got := QuoteIdent(in); got != want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}

// A body holding the default tag (a name from production's catalog may)
// gets another tag: nothing in it can end the quote.
func TestQuoteDollar(t *testing.T) {
	for _, body := range []string{"BEGIN END", "name $pgveil$ inside", "$pgveil$ and $pgveil0$"} {
		q := QuoteDollar(body)
		tag := q[:strings.Index(q[1:], "$")+2]
		if !strings.HasPrefix(q, tag) || !strings.HasSuffix(q, tag) || q[len(tag):len(q)-len(tag)] != body || strings.Contains(body, tag) {
			t.Errorf("QuoteDollar(%q) = %q: tag %q", body, q, tag)
		}
	}
}
