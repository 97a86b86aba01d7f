package pgtest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLinksNoTestCode: the pgveil binary links neither "testing"
// nor this package (the demo starts its clusters with internal/cluster).
func TestBinaryLinksNoTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "pgveil/cmd/pgveil").Output()
	if err != nil {
		t.Fatalf("go list -deps pgveil/cmd/pgveil: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "testing", "pgveil/internal/pgtest":
			t.Errorf("the pgveil binary links %s: a package it imports must not import it", dep)
		}
	}
	if !strings.Contains(string(out), "pgveil/internal/cluster\n") {
		t.Errorf("the pgveil binary does not link pgveil/internal/cluster: is the demo still wired? (go list says:\n%s)", out)
	}
}
