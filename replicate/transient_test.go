package replicate

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/source"
	"pgveil/replicate/target"
	"pgveil/transform"
)

// TestTransient: a server going away is worth a retry however the error
// reached the pipeline, wrapped or passed on without its message; a bad
// value or a broken rule is not.
func TestTransient(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true},
		{fmt.Errorf("copy: %w", &pgconn.PgError{Code: "08006"}), true},
		{&target.ServerError{Code: "57P01"}, true},
		{fmt.Errorf("apply: %w", &target.ServerError{Code: "25006"}), true},
		{&source.FilterError{Table: "public.customers", Code: "57P01"}, true},
		{fmt.Errorf("row filter: %w", &source.FilterError{Code: "57P03"}), true},
		{&source.FilterError{Code: "22P02"}, false},
		{&target.ServerError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "42P01"}, false},
		{fmt.Errorf("planning the publication: %w", &pgconn.PgError{Code: "55P03"}), true},
		{errors.New("unexpected EOF"), true},
		{&transform.MaskError{Column: "public.t.d", Rule: "truncate", Reason: "not a valid date"}, false},
		{fmt.Errorf("copy: %w", (&transform.MaskError{Reason: "connection reset in the rule's words"}).At("in the initial copy")), false},
	} {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
