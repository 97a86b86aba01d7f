package transform

import (
	"pgveil/schema"
	"strings"
	"testing"
)

func TestCheckLiteralAccepts(t *testing.T) {
	tests := []struct {
		typ, in, want string
	}{
		{"smallint", "32767", "32767"},
		{"smallint", "-32768", "-32768"},
		{"integer", "2147483647", "2147483647"},
		{"integer", "+7", "+7"},
		{"bigint", "-9223372036854775808", "-9223372036854775808"},
		{"numeric", "0", "0"},
		{"numeric", "-12.50", "-12.50"},
		{"numeric", ".5", ".5"},
		{"numeric", "NaN", "NaN"},
		{"numeric", "Infinity", "Infinity"},
		{"numeric", "-Infinity", "-Infinity"},
		{"numeric(5,2)", "999.99", "999.99"},
		{"numeric(5,2)", "-999.99", "-999.99"},
		{"numeric(5,2)", "0.10", "0.10"},
		{"numeric(5,2)", "000.50", "000.50"},
		{"numeric(5,2)", "NaN", "NaN"},
		{"numeric(3,3)", "0.123", "0.123"},
		{"numeric(3,3)", "-.999", "-.999"},
		{"numeric(3,3)", "0", "0"},
		{"numeric(4,2)", "00.01", "00.01"},
		{"real", "1.5", "1.5"},
		{"real", "NaN", "NaN"},
		{"real", "-Infinity", "-Infinity"},
		{"real", "3.4028235e+38", "3.4028235e+38"},
		{"double precision", "1e+300", "1e+300"},
		{"double precision", "Infinity", "Infinity"},
		{"boolean", "t", "t"},
		{"boolean", "True", "t"},
		{"boolean", "on", "t"},
		{"boolean", "1", "t"},
		{"boolean", "YES", "t"},
		{"boolean", "f", "f"},
		{"boolean", "false", "f"},
		{"boolean", "No", "f"},
		{"date", "2024-02-29", "2024-02-29"},
		{"date", "0044-03-15 BC", "0044-03-15 BC"},
		{"date", "5874897-12-31", "5874897-12-31"},
		{"date", "-infinity", "-infinity"},
		{"timestamp", "2024-03-15 13:45:12.5", "2024-03-15 13:45:12.5"},
		{"timestamp", "2024-03-15", "2024-03-15"},
		{"timestamp", "294276-12-31 23:59:59.999999", "294276-12-31 23:59:59.999999"},
		{"timestamptz", "2024-03-15 13:45:12+05:30", "2024-03-15 13:45:12+05:30"},
		{"timestamptz", "0044-03-15 12:00:00+05:53:28 BC", "0044-03-15 12:00:00+05:53:28 BC"},
		{"timestamptz", "infinity", "infinity"},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"uuid", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"},
		{"bytea", `\xdeadBEEF`, `\xdeadBEEF`},
		{"json", `[1, "a", null]`, `[1, "a", null]`},
		{"jsonb", `"x"`, `"x"`},
		{"inet", "192.168.0.1", "192.168.0.1"},
		{"inet", "::1", "::1"},
		{"inet", "192.168.0.1/24", "192.168.0.1/24"},
		{"cidr", "192.168.0.0/24", "192.168.0.0/24"},
		{"cidr", "2001:db8::/32", "2001:db8::/32"},
		{"text", "", ""},
		{"varchar(3)", "abc", "abc"},
		{"varchar(3)", "😀😃😄", "😀😃😄"},
		{"char(1)", "x", "x"},
		{"text", strings.Repeat("x", 5000), strings.Repeat("x", 5000)},
		{"interval", "1 day", "1 day"},
		{"time", "12:00", "12:00"},
		{"mood", "happy", "happy"},
	}
	for _, tt := range tests {
		got, err := checkLiteral(schema.MustType(tt.typ), tt.in)
		if err != nil || got != tt.want {
			t.Errorf("checkLiteral(%s, %q) = %q, %v; want %q", tt.typ, tt.in, got, err, tt.want)
		}
	}
}

func TestCheckLiteralRejects(t *testing.T) {
	tests := []struct {
		typ, in, want string
	}{
		{"smallint", "32768", "not a valid smallint value"},
		{"integer", "", "not a valid integer value"},
		{"integer", " 1", "not a valid integer"},
		{"integer", "1.0", "not a valid integer"},
		{"bigint", "9223372036854775808", "not a valid bigint value"},
		{"numeric", "", "not a valid numeric value"},
		{"numeric", "1,5", "not a valid numeric"},
		{"numeric", "1e5", "not a valid numeric"},
		{"numeric", "nan", "not a valid numeric"},
		{"numeric(5,2)", "1000", "(too many digits)"},
		{"numeric(5,2)", "-1000.00", "(too many digits)"},
		{"numeric(5,2)", "1.234", "(too many digits)"},
		{"numeric(5,2)", "-Infinity", "cannot hold infinity"},
		{"numeric(3,3)", "1.000", "(too many digits)"},
		{"numeric(3,3)", "1", "(too many digits)"},
		{"numeric(4,2)", "100", "(too many digits)"},
		{"real", "", "not a valid real value"},
		{"real", "1e39", "not a valid real"},
		{"double precision", "one", "not a valid double precision value"},
		{"boolean", "", "not a valid boolean"},
		{"boolean", "2", "not a valid boolean"},
		{"date", "2023-02-29", "(write dates as YYYY-MM-DD)"},
		{"date", "today", "write dates as"},
		{"date", "2024-03-15T00:00:00", "write dates as"},
		{"timestamp", "2024-03-15T10:00:00Z", "(write timestamps as YYYY-MM-DD HH:MM:SS)"},
		{"timestamp", "2024-03-15 10:00", "write timestamps as"},
		{"timestamptz", "now", "write timestamps as"},
		{"uuid", "", "not a valid uuid"},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "not a valid uuid"},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-", "not a valid uuid"},
		{"uuid", "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "not a valid uuid"},
		{"bytea", "abc", `(write bytea as \x followed by hex digits)`},
		{"bytea", `\xg0`, "write bytea as"},
		{"json", "", "(not valid JSON)"},
		{"jsonb", "{a: 1}", "not valid JSON"},
		{"jsonb", `{"a": 1}}`, "not valid JSON"},
		{"inet", "", "not a valid inet"},
		{"inet", "1.2.3", "not a valid inet"},
		{"inet", "1.2.3.4/33", "not a valid inet"},
		{"cidr", "192.168.0.1/24", "no bits set to the right of its mask"},
		{"varchar(3)", "abcd", "value is longer than character varying(3) allows"},
		{"varchar(3)", "😀😃😄😁", "longer than character varying(3)"},
		{"char(1)", "ab", "longer than character(1)"},
	}
	for _, tt := range tests {
		_, err := checkLiteral(schema.MustType(tt.typ), tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("checkLiteral(%s, %q): error %v, want %q", tt.typ, tt.in, err, tt.want)
		}
	}
}

func TestSignificantIntDigits(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"0", 0}, {"0.123", 0}, {"000.5", 0}, {"1", 1}, {"-12.5", 2}, {"0012", 2}, {"100.00", 3}, {"1e3", 4}, {".5", 0},
	} {
		d, err := parseDecimal([]byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := d.intDigits(); got != tt.want {
			t.Errorf("intDigits(%s) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
