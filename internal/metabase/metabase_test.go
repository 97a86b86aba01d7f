package metabase

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { pgtest.Main(m, &shared) }

// TestSyncQueriesSeeKeysWithReferences: Metabase's describe-fields marks
// primary keys only for a role holding a privilege other than SELECT on
// the table (information_schema.table_constraints); REFERENCES is enough.
// describe-fks reads pg_constraint, which every role sees.
func TestSyncQueriesSeeKeysWithReferences(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, dsn := shared.NewDBWith(t, "")
	var db string
	if err := admin.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	reader := "mbq_" + db
	if _, err := admin.Exec(ctx, `CREATE SCHEMA app;
CREATE TABLE app.accounts (id bigint PRIMARY KEY, name text);
CREATE TABLE app.orders (id int PRIMARY KEY, account_id bigint REFERENCES app.accounts, total numeric);
CREATE MATERIALIZED VIEW app.totals AS SELECT account_id, sum(total) FROM app.orders GROUP BY 1;
CREATE TABLE app.hidden (id int PRIMARY KEY);
CREATE ROLE `+reader+` LOGIN;
GRANT USAGE ON SCHEMA app TO `+reader+`;
GRANT SELECT ON app.accounts, app.orders, app.totals TO `+reader); err != nil {
		t.Fatal(err)
	}
	rd := pgtest.ConnectAs(t, dsn, reader)

	tables, err := Tables(ctx, rd, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name+":"+tb.Type)
	}
	if got := strings.Join(names, ","); got != "totals:MATERIALIZED VIEW,accounts:TABLE,orders:TABLE" {
		t.Errorf("tables: %s", got)
	}
	pks := func() string {
		t.Helper()
		fields, err := Fields(ctx, rd, []string{"app"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range fields {
			if f.PK {
				out = append(out, f.Table+"."+f.Name)
			}
		}
		return strings.Join(out, ",")
	}
	if got := pks(); got != "" {
		t.Errorf("primary keys with SELECT only: %q, want none (PostgreSQL hides the constraints)", got)
	}
	if _, err := admin.Exec(ctx, `GRANT REFERENCES ON app.accounts, app.orders TO `+reader); err != nil {
		t.Fatal(err)
	}
	if got := pks(); got != "accounts.id,orders.id" {
		t.Errorf("primary keys with REFERENCES: %q", got)
	}
	fks, err := ForeignKeys(ctx, rd, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fks) != 1 || fks[0] != (ForeignKey{"app", "orders", "account_id", "app", "accounts", "id"}) {
		t.Errorf("foreign keys: %+v", fks)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			admin.Exec(context.Background(), `DROP OWNED BY `+reader+`; DROP ROLE `+reader)
			admin.Close(context.Background())
		}
	})
}
