package target

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		err      *pgconn.PgError
		columns  []string
		want     string
		withheld bool
		line     int64
		column   string
	}{
		{
			err:  &pgconn.PgError{Severity: "ERROR", Code: "22P02", Message: `invalid input syntax for type integer: "SECRET"`, Detail: "SECRET", Where: "SECRET"},
			want: "invalid text representation [server message withheld: it may quote a value] (SQLSTATE 22P02)", withheld: true,
		},
		{
			err:  &pgconn.PgError{Severity: "ERROR", Code: "23505", Message: `duplicate key value violates unique constraint "t_pkey"`, Detail: "Key (id)=(SECRET) already exists.", ConstraintName: "t_pkey", SchemaName: "app", TableName: "t"},
			want: `duplicate key value violates unique constraint "t_pkey" (table app.t, constraint t_pkey) (SQLSTATE 23505)`,
		},
		{
			err:  &pgconn.PgError{Severity: "ERROR", Code: "42P01", Message: `relation "app.x" does not exist`},
			want: `relation "app.x" does not exist (SQLSTATE 42P01)`,
		},
		{
			err:  &pgconn.PgError{Severity: "ERROR", Code: "XX000", Message: "SECRET"},
			want: "internal error [server message withheld: it may quote a value] (SQLSTATE XX000)", withheld: true,
		},
		{
			err:     &pgconn.PgError{Severity: "ERROR", Code: "22P02", Message: "SECRET", Where: `COPY t, line 12, column a b: "SECRET: x"`},
			columns: []string{"a", "a b"},
			want:    "invalid text representation (column a b, line 12) [server message withheld: it may quote a value] (SQLSTATE 22P02)", withheld: true,
			line: 12, column: "a b",
		},
		{
			err:     &pgconn.PgError{Severity: "ERROR", Code: "22P04", Message: "SECRET", Where: `COPY t, line 3: "SECRET"`},
			columns: []string{"a"},
			want:    "bad COPY file format (line 3) [server message withheld: it may quote a value] (SQLSTATE 22P04)", withheld: true,
			line: 3,
		},
	} {
		err := sanitizeCopy(fmt.Errorf("wrapped: %w", tc.err), tc.columns)
		var se *ServerError
		if !errors.As(err, &se) {
			t.Fatalf("%v: not a ServerError", tc.err)
		}
		if err.Error() != tc.want || se.Withheld != tc.withheld || se.Line != tc.line || se.Column != tc.column {
			t.Errorf("%s:\n got %q %+v\nwant %q", tc.err.Code, err, se, tc.want)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: leaks the value: %q", tc.err.Code, err)
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			t.Errorf("%s: the PgError (with its detail) is still reachable", tc.err.Code)
		}
	}
	plain := errors.New("connection reset")
	if sanitize(plain) != plain {
		t.Error("a network error was changed")
	}
}
