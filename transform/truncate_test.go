package transform

import (
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

func TestTruncateText(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ  string
		n    int64
		in   string
		want string
	}{
		{"text", 5, "hello world", "hello"},
		{"text", 5, "hello", "hello"},
		{"text", 5, "hi", "hi"},
		{"text", 1, "", ""},
		{"text", 3, "abcdefghijklmnopqrst", "abc"},
		{"character varying(20)", 3, "Paris 75011", "Par"},
		{"varchar(10)", 10, "0123456789", "0123456789"},
		{"char(8)", 2, "ab      ", "ab      "},
		{"char(8)", 4, "ab      ", "ab      "},
		{"citext", 2, "ABC", "AB"},
		// Characters, not bytes.
		{"text", 2, "😀😃😄😁", "😀😃"},
		{"text", 3, "日本語テキスト", "日本語"},
		{"text", 4, "Zoë Åström", "Zoë "},
		// A combining accent is a character of its own, as length() counts it.
		{"text", 2, "e\u0301a\u0301", "e\u0301"},
		{"text", 3, "e\u0301a\u0301", "e\u0301a"},
		{"text", 1, "👍🏽x", "👍"},
		// Invalid UTF-8 counts byte by byte and never panics.
		{"text", 2, "\xff\xfeabc", "\xff\xfe"},
		{"text", 2, "a\xe6\x97", "a\xe6"},
	}
	for _, tt := range tests {
		tr := build(t, k, tt.typ, Rule{Name: "truncate", Args: Args{"length": tt.n}})
		if got := apply(t, tr, tt.in); got != tt.want {
			t.Errorf("truncate %d on %s of %q = %q, want %q", tt.n, tt.typ, tt.in, got, tt.want)
		}
	}
}

func TestTruncateTime(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ, unit, in, want string
	}{
		{"date", "year", "2024-03-15", "2024-01-01"},
		{"date", "month", "2024-03-15", "2024-03-01"},
		{"date", "day", "2024-03-15", "2024-03-15"},
		{"date", "year", "2024-02-29", "2024-01-01"},
		{"date", "month", "0044-03-15 BC", "0044-03-01 BC"},
		{"date", "year", "0001-12-31 BC", "0001-01-01 BC"},
		{"date", "year", "4714-11-24 BC", "4714-01-01 BC"},
		{"date", "month", "5874897-12-31", "5874897-12-01"},
		{"date", "year", "infinity", "infinity"},
		{"date", "month", "-infinity", "-infinity"},
		{"timestamp", "year", "2024-03-15 13:45:12.5", "2024-01-01 00:00:00"},
		{"timestamp", "month", "2024-03-15 13:45:12.5", "2024-03-01 00:00:00"},
		{"timestamp", "day", "2024-03-15 13:45:12.5", "2024-03-15 00:00:00"},
		{"timestamp", "hour", "2024-03-15 13:45:12.5", "2024-03-15 13:00:00"},
		{"timestamp", "minute", "2024-03-15 13:45:12.123456", "2024-03-15 13:45:00"},
		{"timestamp", "minute", "2024-03-15 13:45:00", "2024-03-15 13:45:00"},
		{"timestamp", "hour", "294276-12-31 23:59:59.999999", "294276-12-31 23:00:00"},
		{"timestamp", "day", "0044-03-15 12:00:00 BC", "0044-03-15 00:00:00 BC"},
		{"timestamp", "year", "4714-11-24 00:00:00 BC", "4714-01-01 00:00:00 BC"},
		{"timestamp", "day", "infinity", "infinity"},
		// PostgreSQL accepts 24:00:00 as the end of the day.
		{"timestamp", "minute", "2024-12-31 24:00:00", "2025-01-01 00:00:00"},
		// timestamptz keeps its offset, whatever it is.
		{"timestamptz", "day", "2024-03-15 13:45:12+00", "2024-03-15 00:00:00+00"},
		{"timestamptz", "hour", "2024-03-15 13:45:12.75+05:30", "2024-03-15 13:00:00+05:30"},
		{"timestamptz", "month", "1890-03-15 13:45:12+05:53:28", "1890-03-01 00:00:00+05:53:28"},
		{"timestamptz", "minute", "0044-03-15 12:00:00+05:53:28 BC", "0044-03-15 12:00:00+05:53:28 BC"},
		{"timestamptz", "year", "0044-03-15 12:00:00-03:30 BC", "0044-01-01 00:00:00-03:30 BC"},
		{"timestamptz", "year", "-infinity", "-infinity"},
		// ISO 8601 (as found in JSON) keeps its T and Z.
		{"timestamptz", "day", "2024-03-15T10:20:30Z", "2024-03-15T00:00:00Z"},
		{"timestamptz", "month", "2024-03-15T10:20:30.5+02:00", "2024-03-01T00:00:00+02:00"},
		// A date in a timestamp column stays a date.
		{"timestamp", "month", "2024-03-15", "2024-03-01"},
	}
	for _, tt := range tests {
		tr := build(t, k, tt.typ, Rule{Name: "truncate", Args: Args{"unit": tt.unit}})
		if got := apply(t, tr, tt.in); got != tt.want {
			t.Errorf("truncate %s on %s of %q = %q, want %q", tt.unit, tt.typ, tt.in, got, tt.want)
		}
	}
}

func TestTruncateInteger(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ  string
		args Args
		in   string
		want string
	}{
		{"integer", Args{"step": 1000.0}, "123456", "123000"},
		{"integer", Args{"step": 1000.0}, "999", "0"},
		{"integer", Args{"step": 1000.0}, "0", "0"},
		{"integer", Args{"step": 1000.0}, "-1", "-1000"},
		{"integer", Args{"step": 1000.0}, "-1000", "-1000"},
		{"integer", Args{"step": 1000.0}, "-1500", "-2000"},
		{"integer", Args{"step": 1000.0}, "+42000", "42000"},
		{"integer", Args{"length": int64(10)}, "1234", "1230"}, // length on a number is the step
		{"integer", Args{"step": int64(7)}, "50", "49"},
		{"integer", Args{"step": 1.0}, "-17", "-17"},
		{"smallint", Args{"step": 100.0}, "32767", "32700"},
		{"smallint", Args{"step": 100.0}, "-32700", "-32700"},
		// The multiple below is out of range: the lowest multiple in range.
		{"smallint", Args{"step": 1000.0}, "-32768", "-32000"},
		{"smallint", Args{"step": 1000.0}, "-32001", "-32000"},
		{"smallint", Args{"step": 1000.0}, "-31999", "-32000"},
		{"smallint", Args{"step": 100000.0}, "-5", "0"},
		{"smallint", Args{"step": 100000.0}, "32767", "0"},
		{"integer", Args{"step": 1000.0}, "2147483647", "2147483000"},
		{"integer", Args{"step": 1000.0}, "-2147483648", "-2147483000"},
		{"integer", Args{"step": 2.0}, "-2147483648", "-2147483648"},
		{"bigint", Args{"step": 1000.0}, "9223372036854775807", "9223372036854775000"},
		{"bigint", Args{"step": 1000.0}, "-9223372036854775808", "-9223372036854775000"},
		{"bigint", Args{"step": 1000.0}, "-9223372036854775000", "-9223372036854775000"},
		{"bigint", Args{"step": 1000.0}, "-9223372036854774001", "-9223372036854775000"},
		{"bigint", Args{"step": 1e18}, "-9223372036854775808", "-9000000000000000000"},
		{"int8", Args{"step": 16.0}, "-9223372036854775808", "-9223372036854775808"},
	}
	for _, tt := range tests {
		tr := build(t, k, tt.typ, Rule{Name: "truncate", Args: tt.args})
		if got := apply(t, tr, tt.in); got != tt.want {
			t.Errorf("truncate %v on %s of %s = %s, want %s", tt.args, tt.typ, tt.in, got, tt.want)
		}
	}
}

func TestTruncateNumeric(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ  string
		step any
		in   string
		want string
	}{
		{"numeric", 10.0, "1234.567", "1230.000"},
		{"numeric", 0.05, "1.27", "1.25"},
		{"numeric", 0.05, "-1.27", "-1.30"},
		{"numeric", 0.5, "7", "7.0"},
		{"numeric", 1000.0, "-0.001", "-1000.000"},
		{"numeric", int64(100), "12345", "12300"},
		{"numeric", 1.0, "123456789012345678901234567890.99", "123456789012345678901234567890.00"},
		{"numeric", 1.0, "NaN", "NaN"},
		{"numeric", 1.0, "Infinity", "Infinity"},
		{"numeric", 1.0, "-Infinity", "-Infinity"},
		{"numeric", 1.0, "0", "0"},
		{"numeric(10,2)", 1.0, "12.34", "12.00"},
		{"numeric(10,2)", 0.5, "-12.34", "-12.50"},
		{"numeric(10,2)", 0.01, "-12.34", "-12.34"},
		{"numeric(10,2)", 1.0, "12.345", "12.00"}, // more decimals than the type: still exact
		{"numeric(10,2)", 1.0, "12", "12.00"},
		{"numeric(10,2)", 1.0, "NaN", "NaN"},
		{"numeric(5,2)", 100.0, "999.99", "900.00"},
		// The multiple below does not fit numeric(5,2): the one above does.
		{"numeric(5,2)", 100.0, "-999.99", "-900.00"},
		{"numeric(5,2)", 1000.0, "-999.99", "0.00"},
		{"numeric(5,2)", 1000.0, "-0.01", "0.00"},
		{"numeric(5,2)", 1.0, "-999.99", "-999.00"},
		{"numeric(5,2)", 0.01, "-999.99", "-999.99"},
		{"numeric(5,0)", 1000.0, "-99999", "-99000"},
	}
	for _, tt := range tests {
		args := Args{"step": tt.step}
		if _, ok := tt.step.(int64); ok {
			args = Args{"length": tt.step}
		}
		tr := build(t, k, tt.typ, Rule{Name: "truncate", Args: args})
		if got := apply(t, tr, tt.in); got != tt.want {
			t.Errorf("truncate step %v on %s of %s = %s, want %s", tt.step, tt.typ, tt.in, got, tt.want)
		}
	}
}

func TestTruncateFloat(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ  string
		step float64
		in   string
		want string
	}{
		{"double precision", 0.1, "0.3", "0.3"},
		{"double precision", 0.1, "0.7", "0.7"},
		{"double precision", 0.1, "0.75", "0.7"},
		{"double precision", 0.1, "-0.75", "-0.8"},
		{"double precision", 100, "1234.5", "1200"},
		{"double precision", 100, "-1234.5", "-1300"},
		{"double precision", 1, "1e+300", "1e+300"},
		{"double precision", 0.25, "1.2345678901234567", "1"},
		{"double precision", 1, "-0", "0"},
		{"double precision", 0.1, "1.7976931348623157e+308", "1.7976931348623157e+308"},
		{"double precision", 0.1, "-1.7976931348623157e+308", "-1.7976931348623157e+308"},
		{"double precision", 1e307, "-1.7976931348623157e+308", "-1.7e+308"},
		{"double precision", 0.1, "5e-324", "0"},
		{"double precision", 0.1, "-5e-324", "-0.1"},
		{"double precision", 1, "NaN", "NaN"},
		{"double precision", 1, "Infinity", "Infinity"},
		{"double precision", 1, "-Infinity", "-Infinity"},
		{"real", 0.1, "0.3", "0.3"},
		{"real", 0.5, "1.75", "1.5"},
		{"real", 0.1, "3.4028235e+38", "3.4028235e+38"},
		{"real", 1e37, "-3.4028235e+38", "-3.4e+38"},
		{"real", 0.1, "1.1754944e-38", "0"},
		{"float4", 1, "NaN", "NaN"},
		{"float8", 1, "-Infinity", "-Infinity"},
	}
	for _, tt := range tests {
		tr := build(t, k, tt.typ, Rule{Name: "truncate", Args: Args{"step": tt.step}})
		if got := apply(t, tr, tt.in); got != tt.want {
			t.Errorf("truncate step %v on %s of %s = %s, want %s", tt.step, tt.typ, tt.in, got, tt.want)
		}
	}
	// length on a float is the step too.
	tr := build(t, k, "real", Rule{Name: "truncate", Args: Args{"length": int64(10)}})
	if got := apply(t, tr, "1234.5"); got != "1230" {
		t.Errorf("truncate length 10 on real 1234.5 = %s, want 1230", got)
	}
}

// TestTruncateFloatNeverRises checks over many values that the output is a
// value of the type, not above the input and not a step or more below it.
func TestTruncateFloatNeverRises(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, step := range []float64{0.1, 0.01, 3, 1e-5} {
		tr := build(t, k, "double precision", Rule{Name: "truncate", Args: Args{"step": step}})
		for i := -500; i < 500; i++ {
			x := float64(i) * 0.0137
			in := string(appendFloat(nil, x, 64))
			got := apply(t, tr, in)
			y, err := parseFloat([]byte(got), 64)
			if err != nil || y > x || x-y >= step*(1+1e-9) {
				t.Fatalf("step %v: %s -> %s", step, in, got)
			}
		}
	}
}

func TestTruncateArrays(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ  string
		args Args
		in   string
		want string
	}{
		{"text[]", Args{"length": int64(2)}, `{hello,NULL,"a b c",日本語}`, `{he,NULL,"a ",日本}`},
		{"text[]", Args{"length": int64(3)}, `{}`, `{}`},
		{"varchar(10)[]", Args{"length": int64(1)}, `{{ab,cd},{NULL,ef}}`, `{{a,c},{NULL,e}}`},
		{"integer[]", Args{"step": 100.0}, `{{1234,-1},{NULL,99}}`, `{{1200,-100},{NULL,0}}`},
		{"smallint[]", Args{"step": 1000.0}, `{-32768,32767}`, `{-32000,32000}`},
		{"date[]", Args{"unit": "year"}, `{2024-03-15,infinity,NULL,"0044-03-15 BC"}`, `{2024-01-01,infinity,NULL,"0044-01-01 BC"}`},
		{"timestamptz[]", Args{"unit": "day"}, `{"2024-03-15 13:45:12+05:30"}`, `{"2024-03-15 00:00:00+05:30"}`},
		{"numeric(6,2)[]", Args{"step": 0.5}, `{1.26,-1.26}`, `{1.00,-1.50}`},
	}
	for _, tt := range tests {
		tr := build(t, k, tt.typ, Rule{Name: "truncate", Args: tt.args})
		if got := apply(t, tr, tt.in); got != tt.want {
			t.Errorf("truncate %v on %s of %s = %s, want %s", tt.args, tt.typ, tt.in, got, tt.want)
		}
	}
}

func TestTruncateBuildErrors(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ  string
		args Args
		want string
	}{
		{"text", Args{"unit": "year"}, "on text give a length in characters"},
		{"varchar(5)", Args{"step": 2.0}, "give a length"},
		{"date", Args{"length": int64(3)}, "on date give a unit"},
		{"timestamptz", Args{"step": 1.0}, "give a unit: year, month, day, hour or minute"},
		{"date", Args{"unit": "hour"}, "a date has no hour"},
		{"date", Args{"unit": "minute"}, "a date has no minute"},
		{"date[]", Args{"unit": "hour"}, "a date has no hour"},
		{"integer", Args{"step": 2.5}, "the step on integer must be a whole number"},
		{"bigint", Args{"step": 1e19}, "must be a whole number"},
		{"integer", Args{"unit": "year"}, "unit year applies to dates and timestamps, not to integer"},
		{"numeric", Args{"unit": "month"}, "applies to dates and timestamps"},
		{"numeric(10,0)", Args{"step": 0.5}, "step has more decimals than numeric(10,0) keeps"},
		{"numeric(10,2)", Args{"step": 0.001}, "more decimals"},
		{"boolean", Args{"length": int64(1)}, "truncate does not apply to boolean"},
		{"uuid", Args{"length": int64(8)}, "truncate does not apply to uuid"},
		{"jsonb", Args{"length": int64(8)}, "truncate does not apply"},
		// Checks that need no catalog.
		{"text", Args{"length": int64(3), "unit": "year"}, "give exactly one of length, unit or step"},
		{"integer", Args{"length": int64(3), "step": 2.0}, "give exactly one of length, unit or step"},
		{"date", Args{"unit": "year", "step": 2.0}, "exactly one"},
		{"text", Args{}, "exactly one"},
		{"text", Args{"length": int64(0)}, "length: must be at least 1"},
		{"integer", Args{"step": -1.0}, "step: must be greater than 0"},
		{"integer", Args{"step": 0.0}, "step: must be greater than 0"},
		{"date", Args{"unit": "week"}, "unit: must be one of year, month, day, hour, minute"},
		{"text", Args{"length": "3"}, "length: must be a integer"},
		{"text", Args{"size": int64(3)}, `truncate has no parameter "size"`},
	}
	for _, tt := range tests {
		_, err := veilBuildErr(k, tt.typ, Rule{Name: "truncate", Args: tt.args})
		if err == nil {
			t.Errorf("truncate %v on %s: no error, want %q", tt.args, tt.typ, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("truncate %v on %s: error %q, want it to contain %q", tt.args, tt.typ, err, tt.want)
		}
	}
	// CheckArgs alone, as the rules loader calls it.
	r := Builtin()
	if err := r.CheckArgs("truncate", Args{"length": int64(3), "unit": "year", "step": 1.0}); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("CheckArgs with three of length/unit/step: %v", err)
	}
	if err := r.CheckArgs("truncate", Args{"unit": "month"}); err != nil {
		t.Errorf("CheckArgs unit month: %v", err)
	}
}

func TestTruncateRejectsBadInput(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ  string
		args Args
		ins  []string
	}{
		{"date", Args{"unit": "year"}, []string{veilCanary, "", "2024-02-30", "2024-13-01", "2024-03-15 " + veilCanary, veilCanary + " BC", "Infinity"}},
		{"timestamp", Args{"unit": "hour"}, []string{veilCanary, "2024-03-15 25:00:00", "2024-03-15 12:00:00." + veilCanary}},
		{"timestamptz", Args{"unit": "day"}, []string{veilCanary, "2024-03-15 12:00:00+" + veilCanary}},
		{"integer", Args{"step": 10.0}, []string{veilCanary, "", "-", "1.5", "2147483648", "-2147483649", "12" + veilCanary}},
		{"smallint", Args{"step": 10.0}, []string{"32768", "-32769", veilCanary}},
		{"bigint", Args{"step": 10.0}, []string{"9223372036854775808", "99999999999999999999999", veilCanary}},
		{"numeric", Args{"step": 1.0}, []string{veilCanary, "", "1.2.3", "1e", "--1", "nan"}},
		{"numeric(10,2)", Args{"step": 1.0}, []string{veilCanary}},
		{"real", Args{"step": 1.0}, []string{veilCanary, "", "1,5", "1e99"}},
		{"double precision", Args{"step": 1.0}, []string{veilCanary, "1e999"}},
		{"integer[]", Args{"step": 10.0}, []string{"{1," + veilCanary + "}", "{1,2", veilCanary}},
	}
	for _, tt := range tests {
		tr := build(t, k, tt.typ, Rule{Name: "truncate", Args: tt.args})
		for _, in := range tt.ins {
			_, err := veilRun(tr, in)
			veilMaskError(t, err, in)
		}
	}
}

func BenchmarkTruncateText(b *testing.B) {
	k := testKeys(b, pgtest.Secret)
	tr := build(b, k, "text", Rule{Name: "truncate", Args: Args{"length": int64(5)}})
	in := schema.Text("abcdefghijklmnopqrst") // 20 bytes
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Transform(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTruncateDate(b *testing.B) {
	k := testKeys(b, pgtest.Secret)
	tr := build(b, k, "timestamp", Rule{Name: "truncate", Args: Args{"unit": "month"}})
	in := schema.Text("2024-03-15 13:45:12.123456")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Transform(in); err != nil {
			b.Fatal(err)
		}
	}
}

// The fast path and the general one agree on every input either accepts.
func TestTruncateTimeFastPathAgrees(t *testing.T) {
	var inputs []string
	for _, d := range []string{"2024-02-29", "2023-02-28", "0001-01-01", "9999-12-31", "2024-13-01", "2024-00-10", "2023-02-29", "2024-04-31", "0000-01-01", "2024-1-01"} {
		inputs = append(inputs, d, d+" BC")
		for _, tm := range []string{" 00:00:00", " 23:59:59", " 13:45:12.5", " 13:45:12.123456", " 13:45:12.1234567", " 24:00:00", " 23:60:00", " 12:00:60", "T12:00:00", " 12:00", " 12:00:00."} {
			for _, off := range []string{"", "+00", "-05", "+05:30", "+05:53:28", "Z", "+5", "+05:3", "+05:30:1", "x"} {
				inputs = append(inputs, d+tm+off, d+tm+off+" BC")
			}
		}
	}
	fastCount := 0
	for _, unit := range []string{"year", "month", "day", "hour", "minute"} {
		tr := truncateTime{unit: unit}
		for _, in := range inputs {
			fast, ok := tr.fast([]byte(in))
			if !ok {
				continue
			}
			p, err := parsePGTime([]byte(in))
			if err != nil {
				t.Errorf("%s: fast path accepts what the parser rejects", in)
				continue
			}
			fastCount++
			p = p.truncated(unit)
			if want := string(appendPGTime(nil, p)); string(fast) != want {
				t.Errorf("%s to %s: fast %q, general %q", in, unit, fast, want)
			}
		}
	}
	if fastCount < 500 {
		t.Errorf("only %d inputs took the fast path", fastCount)
	}
}
