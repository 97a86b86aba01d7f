package target

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Staging names stay valid UTF-8 within 63 bytes, and distinct, whatever
// the table's name: a cut inside a character stopped pgveil.
func TestStagingName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 40) // 80 bytes: byte 40 is the start of a character, byte 41 is not
	odd := "a" + long               // byte 40 falls inside a character
	names := []struct{ schema, name string }{
		{"public", "address"},
		{"public", long},
		{"public", odd},
		{"public", odd + "x"}, // the same kept prefix as odd
		{"other", odd},
		{"public", strings.Repeat("表", 21)}, // 63 bytes, the longest a name can be
		{"public", strings.Repeat("x", 63)},
	}
	seen := map[string]string{}
	for _, n := range names {
		got := stagingName(n.schema, n.name)
		if !utf8.ValidString(got) || len(got) > 63 {
			t.Errorf("%s.%s: staging name %q (%d bytes, valid UTF-8 %v)", n.schema, n.name, got, len(got), utf8.ValidString(got))
		}
		if !strings.HasPrefix(n.name, got[14:]) || len(n.name) > 40 && len(got[14:]) < 37 {
			t.Errorf("%s.%s: staging name %q keeps too little of the name", n.schema, n.name, got)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("%s.%s and %s have the same staging name %q", n.schema, n.name, prev, got)
		}
		seen[got] = n.schema + "." + n.name
	}
	if got := stagingName("public", "address"); got[14:] != "address" {
		t.Errorf("a short name is kept whole: %q", got)
	}
}
