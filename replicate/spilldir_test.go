package replicate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpillDir: a private, locked directory per slot, emptied of what a
// killed process left.
func TestSpillDir(t *testing.T) {
	base := t.TempDir()
	a, err := openSpillDir(base, "one")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(a.path); err != nil || st.Mode().Perm() != 0o700 || !st.IsDir() {
		t.Fatalf("%s: %v, %v", a.path, st.Mode(), err)
	}
	// Another process (here: opener) with the same slot is refused.
	if _, err := openSpillDir(base, "one"); err == nil || !strings.Contains(err.Error(), "in use by another pgveil") {
		t.Fatalf("second open: %v", err)
	}
	// Another slot gets its own directory.
	b, err := openSpillDir(base, "two")
	if err != nil || b.path == a.path {
		t.Fatalf("other slot: %v, %s", err, b.path)
	}
	b.close()
	// What a killed run left is removed at the next open.
	left := filepath.Join(a.path, "xact-7.spill")
	if err := os.WriteFile(left, []byte("raw row"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.close()
	again, err := openSpillDir(base, "one")
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	if _, err := os.Stat(left); !os.IsNotExist(err) || again.removed != 1 {
		t.Errorf("left-over spill: %v, removed %d", err, again.removed)
	}
}
