package main

import (
	"regexp"
	"strings"
	"testing"
)

// pgveil demo, as a newcomer runs it, ends with verify reporting no
// difference.
func TestDemo(t *testing.T) {
	code, out, errOut := pgveil(t, nil, "demo", "--duration", "15s", "--scale", "5000", "--every", "5s", "--rate", "30")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"starting two PostgreSQL clusters", "Seeding production", "postgres://metabase_ro:",
		"Initial copy", "Live traffic", "replicated:", "production (raw)", "replica (masked)", "newest customer",
		"public.customers", "verify: the replica equals the masked source",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	if regexp.MustCompile(`(?m) DIFF$`).MatchString(out) {
		t.Errorf("differences:\n%s", out)
	}
}
