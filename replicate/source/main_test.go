package source

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { pgtest.Main(m, &shared) }

// readAll reads the catalog of every table of the database.
func readAll(t *testing.T, conn *pgx.Conn) *schema.Catalog {
	t.Helper()
	ctx := pgtest.Context(t)
	names, err := schema.ListTables(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := schema.ReadCatalog(ctx, conn, names)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func readServer(t *testing.T, conn *pgx.Conn) *Server {
	t.Helper()
	srv, err := ReadServer(pgtest.Context(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}
