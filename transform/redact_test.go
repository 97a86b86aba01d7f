package transform

import (
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

func TestRedact(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ   string
		value any // nil: bare redact
		want  string
	}{
		{"text", nil, "REDACTED"},
		{"varchar(8)", nil, "REDACTED"},
		{"char(10)", nil, "REDACTED  "},
		{"citext", nil, "REDACTED"},
		{"text", "n/a", "n/a"},
		{"text", "", ""},
		{"varchar(3)", "日本語", "日本語"},
		{"integer", "0", "0"},
		{"smallint", "-32768", "-32768"},
		{"bigint", "9223372036854775807", "9223372036854775807"},
		{"numeric", "0", "0"},
		{"numeric(5,2)", "1.50", "1.50"},
		{"numeric(5,2)", "NaN", "NaN"},
		{"numeric", "-Infinity", "-Infinity"},
		{"real", "0.5", "0.5"},
		{"double precision", "NaN", "NaN"},
		{"boolean", "yes", "t"},
		{"boolean", "TRUE", "t"},
		{"boolean", "off", "f"},
		{"boolean", "0", "f"},
		{"date", "1970-01-01", "1970-01-01"},
		{"date", "infinity", "infinity"},
		{"timestamp", "1970-01-01 00:00:00", "1970-01-01 00:00:00"},
		{"timestamptz", "1970-01-01 00:00:00+00", "1970-01-01 00:00:00+00"},
		{"timestamptz", "1970-01-01 00:00:00", "1970-01-01 00:00:00"},
		{"uuid", "00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
		{"uuid", "A0EEBC999C0B4EF8BB6D6BB9BD380A11", "A0EEBC999C0B4EF8BB6D6BB9BD380A11"},
		{"jsonb", `{}`, `{}`},
		{"json", `{"redacted": true}`, `{"redacted": true}`},
		{"bytea", `\x`, `\x`},
		{"inet", "0.0.0.0", "0.0.0.0"},
		{"inet", "10.1.2.3/8", "10.1.2.3/8"},
		{"cidr", "10.0.0.0/8", "10.0.0.0/8"},
		{"interval", "0", "0"},
		{"mood", "ok", "ok"}, // an enum: PostgreSQL checks it
	}
	for _, tt := range tests {
		args := Args{}
		if tt.value != nil {
			args["value"] = tt.value
		}
		tr := build(t, k, tt.typ, Rule{Name: "redact", Args: args})
		for _, in := range []string{"some value", "", veilCanary, "42"} {
			if got := apply(t, tr, in); got != tt.want {
				t.Errorf("redact %v on %s of %q = %q, want %q", tt.value, tt.typ, in, got, tt.want)
			}
		}
	}
}

func TestRedactArrays(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ   string
		value any
		in    string
		want  string
	}{
		{"text[]", nil, `{a,NULL,"b c"}`, `{REDACTED,NULL,REDACTED}`},
		{"text[]", "n/a", `{{a,b},{NULL,c}}`, `{{n/a,n/a},{NULL,n/a}}`},
		{"text[]", "a b", `{x}`, `{"a b"}`},
		{"integer[]", "0", `{{1,2},{3,NULL}}`, `{{0,0},{0,NULL}}`},
		{"boolean[]", "no", `{t,f,NULL}`, `{f,f,NULL}`},
		{"date[]", "1970-01-01", `{2024-03-15}`, `{1970-01-01}`},
		{"text[]", nil, `{}`, `{}`},
	}
	for _, tt := range tests {
		args := Args{}
		if tt.value != nil {
			args["value"] = tt.value
		}
		tr := build(t, k, tt.typ, Rule{Name: "redact", Args: args})
		if got := apply(t, tr, tt.in); got != tt.want {
			t.Errorf("redact %v on %s of %s = %s, want %s", tt.value, tt.typ, tt.in, got, tt.want)
		}
	}
}

func TestRedactBuildErrors(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ   string
		value any
		want  string
	}{
		{"integer", "abc", `"abc" is not a valid integer value`},
		{"integer", "1.5", "not a valid integer value"},
		{"smallint", "40000", "not a valid smallint value"},
		{"varchar(3)", "abcd", "value is longer than character varying(3) allows"},
		{"varchar(3)", nil, "value is longer than character varying(3) allows"},
		{"char(2)", "abc", "longer than character(2)"},
		{"uuid", "not-a-uuid", `"not-a-uuid" is not a valid uuid value`},
		{"uuid", "00000000-0000-0000-0000-00000000000", "not a valid uuid"},
		{"jsonb", "{", "is not a valid jsonb value (not valid JSON)"},
		{"json", "{'a': 1}", "not valid JSON"},
		{"date", "2024-02-30", "is not a valid date value (write dates as YYYY-MM-DD)"},
		{"date", "15/03/2024", "write dates as YYYY-MM-DD"},
		{"date", "2024-01-01 10:00:00", "write dates as YYYY-MM-DD"},
		{"timestamp", "2024-01-01 00:00:00+02", "write timestamps as YYYY-MM-DD HH:MM:SS"},
		{"timestamptz", "yesterday", "write timestamps as"},
		{"numeric(5,2)", "1234.5", "(too many digits)"},
		{"numeric(5,2)", "0.001", "(too many digits)"},
		{"numeric(5,2)", "Infinity", "cannot hold infinity"},
		{"numeric", "1e3", "not a valid numeric value"},
		{"numeric", "abc", "not a valid numeric value"},
		{"real", "abc", "not a valid real value"},
		{"boolean", "maybe", "not a valid boolean value"},
		{"bytea", "zz", `write bytea as \x followed by hex digits`},
		{"bytea", `\xabc`, "write bytea as"},
		{"inet", "300.1.1.1", "not a valid inet value"},
		{"inet", "fe80::1%eth0", "not a valid inet value"},
		{"cidr", "10.0.0.1/8", "no bits set to the right of its mask"},
		{"integer", nil, "redact on integer needs a value of that type, for example {redact: 0}"},
		{"date", nil, "for example {redact: 1970-01-01}"},
		{"timestamptz", nil, `for example {redact: "1970-01-01 00:00:00"}`},
		{"boolean", nil, "{redact: false}"},
		{"uuid", nil, "{redact: 00000000-0000-0000-0000-000000000000}"},
		{"jsonb", nil, `{redact: "{}"}`},
		{"inet", nil, "{redact: 0.0.0.0}"},
		{"integer[]", nil, "redact on integer needs a value"},
		{"integer[]", "x", "not a valid integer value"},
		{"text", int64(3), "value: must be a string"},
		{"text", true, "value: must be a string"},
	}
	for _, tt := range tests {
		args := Args{}
		if tt.value != nil {
			args["value"] = tt.value
		}
		_, err := veilBuildErr(k, tt.typ, Rule{Name: "redact", Args: args})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("redact %v on %s: error %v, want %q", tt.value, tt.typ, err, tt.want)
		}
	}
	if _, err := veilBuildErr(k, "text", Rule{Name: "redact", Args: Args{"with": "x"}}); err == nil || !strings.Contains(err.Error(), `redact has no parameter "with"`) {
		t.Errorf("unknown parameter: %v", err)
	}
}

// TestRedactOutputIsFresh checks that the output does not alias the input.
func TestRedactOutputIsFresh(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := build(t, k, "text", Rule{Name: "redact"})
	in := []byte("secret")
	out, err := tr.Transform(schema.Bytes(in))
	if err != nil {
		t.Fatal(err)
	}
	copy(in, "XXXXXX")
	if out.String() != "REDACTED" || out.State != schema.Present {
		t.Errorf("redact = %v (%v)", out, out.State)
	}
	// Outputs share one constant: appending to one must not change another.
	tr = build(t, k, "text", Rule{Name: "redact", Args: Args{"value": "n/a"}})
	a, _ := tr.Transform(schema.Text("x"))
	b, _ := tr.Transform(schema.Text("y"))
	_ = append(a.Text, "-a"...)
	c := append(b.Text, "-b"...)
	if a.String() != "n/a" || string(c) != "n/a-b" || apply(t, tr, "z") != "n/a" {
		t.Errorf("appending to outputs changed them: %q %q", a, c)
	}
	if cap(a.Text) != len(a.Text) {
		t.Errorf("redact output has spare capacity %d > %d: appends would share it", cap(a.Text), len(a.Text))
	}
}
