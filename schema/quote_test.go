package schema_test

import (
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// QuoteIdent must print every name exactly as the server's quote_ident
// does: a name it left bare that the server would quote (a keyword of a
// category it does not know, say) could break or change a statement
// pgveil generates. Every keyword of the running server is checked, so a
// PostgreSQL release that adds one fails here.
func TestQuoteIdentAgreesWithServer(t *testing.T) {
	t.Parallel()
	conn := pgtest.Connect(t, shared.NewDB(t))
	ctx := pgtest.Context(t)
	rows, err := conn.Query(ctx, `SELECT word FROM pg_get_keywords()`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			t.Fatal(err)
		}
		names = append(names, w)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	names = append(names, "orders", "Orders", "order_2", "_x", "2x", "a$b", "ä", "with space", `quo"te`, "x-y", "")
	for _, n := range names {
		var want string
		if err := conn.QueryRow(ctx, `SELECT quote_ident($1)`, n).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := schema.QuoteIdent(n); got != want {
			t.Errorf("QuoteIdent(%q) = %s, the server's quote_ident: %s", n, got, want)
		}
	}
}

// QuoteLiteral's output must read back as the same string, with or
// without standard_conforming_strings.
func TestQuoteLiteralReadsBack(t *testing.T) {
	t.Parallel()
	conn := pgtest.Connect(t, shared.NewDB(t))
	ctx := pgtest.Context(t)
	for _, scs := range []string{"on", "off"} {
		if _, err := conn.Exec(ctx, "SET standard_conforming_strings = "+scs); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"", "plain", "it's", `back\slash`, `\'; DROP TABLE x; --`, `\\`, "ünï", "new\nline"} {
			var got string
			if err := conn.QueryRow(ctx, `SELECT `+schema.QuoteLiteral(s)).Scan(&got); err != nil {
				t.Fatalf("standard_conforming_strings=%s: %s: %v", scs, schema.QuoteLiteral(s), err)
			}
			if got != s {
				t.Errorf("standard_conforming_strings=%s: %s reads back as %q, want %q", scs, schema.QuoteLiteral(s), got, s)
			}
		}
	}
}
