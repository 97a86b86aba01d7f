package replicate

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/source"
	"pgveil/rules"
)

// A rule change whose attempt fails on a privilege goes back to the rules
// that streamed before, and waits; a first start, or a failure of
// another kind, is not turned into a wait.
func TestFallBackToTheRulesThatStreamed(t *testing.T) {
	denied := fmt.Errorf("re-copying tables: %w", &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: "permission denied for table extra"})
	owner := &FatalError{Err: &source.OwnerNeededError{Publication: "p", Role: "pgveil", Tables: []string{"public.extra"},
		Statements: []string{"ALTER PUBLICATION p SET TABLE public.people, public.extra"}}}
	served := &FatalError{Err: &source.OwnerNeededError{Serves: true}}
	other := &FatalError{Err: &pgconn.PgError{Code: "42P01", Message: "relation does not exist"}}
	for _, tc := range []struct {
		name      string
		err       error
		good      bool
		wantBack  bool
		wantLines []string
	}{
		{"permission denied after a change", denied, true, true, []string{"-- ERROR: permission denied for table extra (SQLSTATE 42501)"}},
		{"owner statements after a change", owner, true, true, []string{"ALTER PUBLICATION p SET TABLE public.people, public.extra;"}},
		{"permission denied on a first start", denied, false, false, nil},
		{"a publication that serves", served, true, false, nil},
		{"another failure", other, true, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			obs := &roundCounter{}
			oldCfg, newCfg := &rules.Config{File: "old.yaml"}, &rules.Config{File: "new.yaml"}
			p := New(Options{Config: newCfg, Observer: obs, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if tc.good {
				p.good = oldCfg
			}
			back := p.fallBack(context.Background(), tc.err, newCfg)
			if back != tc.wantBack {
				t.Fatalf("fallBack = %v, want %v", back, tc.wantBack)
			}
			pending, w := p.Pending()
			if !tc.wantBack {
				if p.Config() != newCfg || pending != nil || w != nil {
					t.Errorf("rules changed without a fall-back: in force %s, pending %v", p.Config().File, pending)
				}
				return
			}
			if p.Config() != oldCfg || pending != newCfg {
				t.Errorf("in force %s, pending %v: want old.yaml in force and new.yaml pending", p.Config().File, pending)
			}
			if got := obs.rulesPending(); !slices.Equal(got, tc.wantLines) {
				t.Errorf("observer told %q, want %q", got, tc.wantLines)
			}
			if !strings.Contains(log.String(), "back in force") {
				t.Errorf("log says nothing of the fall-back:\n%s", log.String())
			}
			// Reporting the same wait again changes nothing and says nothing.
			log.Reset()
			p.setPending(newCfg, w)
			if log.Len() != 0 {
				t.Errorf("the same wait was logged again:\n%s", log.String())
			}
		})
	}
}
