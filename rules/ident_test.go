package rules

import (
	"strings"
	"testing"
)

func TestParseTableName(t *testing.T) {
	tests := []struct {
		in, schema, name, err string
	}{
		{in: "customers", schema: "public", name: "customers"},
		{in: "Customers", schema: "public", name: "customers"},
		{in: "sales.orders", schema: "sales", name: "orders"},
		{in: "Sales.ORDERS", schema: "sales", name: "orders"},
		{in: `"Sales"."Order Items"`, schema: "Sales", name: "Order Items"},
		{in: `sales."Order.Items"`, schema: "sales", name: "Order.Items"},
		{in: `"a""b".c`, schema: `a"b`, name: "c"},
		{in: `"""".c`, schema: `"`, name: "c"},
		{in: "_t$1", schema: "public", name: "_t$1"},
		{in: "ÉTÉ", schema: "public", name: "ÉtÉ"}, // only ASCII is folded
		{in: strings.Repeat("t", 63), schema: "public", name: strings.Repeat("t", 63)},
		{in: "", err: "empty name"},
		{in: ".t", err: "empty name part"},
		{in: "a..b", err: "empty name part"},
		{in: "a.", err: "empty name part"},
		{in: "a.b.c", err: "write table or schema.table"},
		{in: `"a`, err: "unbalanced double quote"},
		{in: `"a"".b`, err: "unbalanced double quote"},
		{in: `""`, err: "empty quoted name"},
		{in: `"a"b`, err: "must be followed by a dot"},
		{in: `a"b"`, err: "a double quote may only start a name part"},
		{in: "a b", err: "an unquoted name holds only"},
		{in: "1a", err: "an unquoted name holds only"},
		{in: "$a", err: "an unquoted name holds only"},
		{in: "a-b", err: "an unquoted name holds only"},
		{in: strings.Repeat("t", 64), err: "longer than 63 bytes"},
	}
	for _, tt := range tests {
		schema, name, err := parseTableName(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseTableName(%q) error = %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || schema != tt.schema || name != tt.name):
			t.Errorf("parseTableName(%q) = %q, %q, %v; want %q, %q", tt.in, schema, name, err, tt.schema, tt.name)
		}
	}
}

func TestParseColumnName(t *testing.T) {
	for in, want := range map[string]string{"email": "email", "Email": "email", `"Email"`: "Email", `"a.b"`: "a.b"} {
		if got, err := parseColumnName(in); err != nil || got != want {
			t.Errorf("parseColumnName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"a.b", `"a".b`, "", "a b"} {
		if _, err := parseColumnName(in); err == nil {
			t.Errorf("parseColumnName(%q) succeeded", in)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"email", "full_name", "Phone", "id"}
	for in, want := range map[string]string{
		"emial": "email", "EMAIL": "email", "phone": "Phone", "fullname": "full_name", "ids": "id",
		"address": "", "e": "id",
	} {
		if got := closest(in, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}
