package replicate

import (
	"log/slog"
	"strings"
	"testing"

	"pgveil/internal/syncbuf"
)

// A Relation message comes again after every DDL, VACUUM FULL or CLUSTER
// of a table: what it shows unlike the plan is logged once per stream.
func TestColumnWarningsOnce(t *testing.T) {
	var buf syncbuf.Buffer
	w := &columnWarnings{log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 3 {
		w.warn("column not in the rules", "public.t", "nickname")
	}
	w.warn("column not in the rules", "public.t", "other")
	w.warn("column not in the rules", "public.u", "nickname")
	if n := strings.Count(buf.String(), "level=WARN"); n != 3 {
		t.Errorf("%d warnings, want 3 (one per table and column):\n%s", n, buf.String())
	}
}
