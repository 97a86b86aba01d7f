package main

import (
	"pgveil/schema"
	"strings"
	"testing"
)

func TestPreview(t *testing.T) {
	s := newSite(t)
	// Flags after the table work too.
	code, out, errOut := s.cli("preview", "-c", s.config, "customers", "-n", "3")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("preview customers:\n%s%s", out, errOut)
	table, rest, _ := strings.Cut(out, "\n\n")
	lines := strings.Split(table, "\n")
	if len(lines) != 4 {
		t.Errorf("want a header and 3 rows, got %d lines:\n%s", len(lines), table)
	}
	header := strings.Fields(lines[0])
	if len(header) != 13 || header[0] != "id" || header[2] != "email" || strings.Contains(lines[0], "notes") {
		t.Errorf("header: %q", lines[0])
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, "@mail.example") { // keep_domain
			t.Errorf("row without a masked email: %q", l)
		}
		if !strings.Contains(l, "…") { // the JSON profile is longer than 40 characters
			t.Errorf("row without a cut value: %q", l)
		}
	}
	if strings.TrimSpace(rest) != "dropped: notes" {
		t.Errorf("after the table: %q", rest)
	}
	if !strings.Contains(errOut, "3 rows of public.customers, masked; nothing was written") {
		t.Errorf("stderr: %q", errOut)
	}

	// schema.name, the default of 5 rows, NULL shown as NULL.
	code, out, _ = s.cli("preview", "-c", s.config, "public.users")
	table, rest, _ = strings.Cut(out, "\n\n")
	if code != exitOK || len(strings.Split(table, "\n")) != 6 || strings.TrimSpace(rest) != "dropped: password_hash" || !strings.Contains(table, "NULL") {
		t.Errorf("users: exit %d\n%s", code, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"preview", "-c", s.config, "invoices"}, exitProblems, "table invoices is not in the rules"},
		{[]string{"preview", "-c", s.config}, exitUsage, "give the table"},
		{[]string{"preview", "-c", s.config, "customers", "orders"}, exitUsage, `unexpected argument "orders"`},
		{[]string{"preview", "-c", s.config, "--bogus", "customers"}, exitUsage, "flag provided but not defined: -bogus"},
		{[]string{"preview", "-c", s.rulesWith("\n  ghosts:\n    columns:\n      id: keep\n"), "ghosts"}, exitProblems, "table public.ghosts is in the rules but not in the source"},
	} {
		code, out, errOut := s.cli(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and %q", tc.args[3:], code, out, errOut, tc.code, tc.want)
		}
	}
}

func TestPreviewHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"short":                 "short",
		"":                      `""`,
		"tab\there\nand there":  "tab here and there",
		strings.Repeat("é", 41): strings.Repeat("é", 39) + "…",
		strings.Repeat("x", 40): strings.Repeat("x", 40),
	} {
		if got := previewCell(schema.Text(in)); got != want {
			t.Errorf("previewCell(%q) = %q, want %q", in, got, want)
		}
	}
	if got := previewCell(schema.SQLNull()); got != "NULL" {
		t.Errorf("NULL: %q", got)
	}
	for in, want := range map[string]string{
		"customers":           "customers",
		"Public.Customers":    "public.customers",
		`"Sales"."Orders"`:    "Sales.Orders",
		`sales."Odd""Name".x`: `sales.Odd"Name.x`,
		`"unterminated`:       "error",
		"a..b":                "error",
	} {
		parts, err := splitName(in)
		got := strings.Join(parts, ".")
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("splitName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewCommandsHelp(t *testing.T) {
	for _, c := range []string{"preview", "status", "verify", "validate"} {
		code, _, errOut := pgveil(t, nil, "help", c)
		if code != exitOK || !strings.Contains(errOut, "Usage: pgveil "+c+" -c FILE") || !strings.Contains(errOut, "-config") {
			t.Errorf("help %s: exit %d, %q", c, code, errOut)
		}
		code, _, errOut = pgveil(t, nil, c, "--bogus")
		if code != exitUsage || !strings.Contains(errOut, "flag provided but not defined: -bogus") {
			t.Errorf("%s --bogus: exit %d, %q", c, code, errOut)
		}
	}
}
