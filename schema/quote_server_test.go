package schema_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// QuoteIdent leaves bare only what the server's own quote_ident leaves
// bare: every keyword that is not "unreserved" is quoted, so that a name
// pgveil writes is a name in every position (a column-name keyword such as
// values is refused as a type's schema). The server's keyword list is the
// reference: a newer server's new keywords fail this test.
func TestQuoteIdentAgreesWithServer(t *testing.T) {
	t.Parallel()
	conn, _ := shared.NewDBWith(t, "")
	ctx := pgtest.Context(t)
	rows, err := conn.Query(ctx, `SELECT word, pg_catalog.quote_ident(word) FROM pg_catalog.pg_get_keywords()`)
	if err != nil {
		t.Fatal(err)
	}
	var word, quoted string
	n := 0
	if _, err := pgx.ForEachRow(rows, []any{&word, &quoted}, func() error {
		n++
		if got := schema.QuoteIdent(word); got != quoted {
			t.Errorf("QuoteIdent(%q) = %s, the server's quote_ident %s", word, got, quoted)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the server lists no keyword")
	}
}
