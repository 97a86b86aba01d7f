package replicate

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"pgveil/replicate/target"
)

// A session the analytics server ended for idling (idle_session_timeout,
// idle_in_transaction_session_timeout) is retried on a new one, as pgx
// reports it and as the Applier passes it on.
func TestAttack20SessionTimeoutsTransient(t *testing.T) {
	for _, code := range []string{"57P05", "25P03"} {
		for _, err := range []error{
			&pgconn.PgError{Severity: "FATAL", Code: code},
			fmt.Errorf("target: %w", &target.ServerError{Severity: "FATAL", Code: code}),
		} {
			if !transient(err) {
				t.Errorf("%v: not transient", err)
			}
		}
	}
}
