package target

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
)

// BenchmarkTenantQuery measures what row level security costs a tenant's
// queries: the same question asked by a reader with the tenant's filter
// written out (the baseline) and by the tenant's login, whose rows the
// policy selects; each sent as a new query (planned every time) and as a
// prepared statement. 200,000 orders over 1,000 tenants (1,000 roles), an
// index on the tenant column. go test ./replicate/target -run '^$'
// -bench BenchmarkTenantQuery
func BenchmarkTenantQuery(b *testing.B) {
	d := newTenancyDB(b)
	pgtest.MustExec(b, d.owner, `INSERT INTO app.accounts SELECT g, 'a' || g FROM generate_series(3, 999) g;
INSERT INTO app.orders SELECT g, g % 1000, g % 97 FROM generate_series(100, 200099) g;
CREATE INDEX ON app.orders (account_id);
ANALYZE app.orders; ANALYZE app.accounts`)
	d.setup(b)
	// As autovacuum leaves them once 1,000 roles are in: the walk up
	// pg_auth_members then uses its index.
	pgtest.MustExec(b, d.admin, `ANALYZE pg_catalog.pg_auth_members; ANALYZE pg_catalog.pg_authid`)
	reader := pgtest.ConnectAs(b, d.dsn, d.reader)
	tenant := d.login(b, d.role("acme"), "7")
	for _, q := range []struct{ name, reader, tenant string }{
		{"count", `SELECT count(*), sum(total) FROM app.orders WHERE account_id = 7`, `SELECT count(*), sum(total) FROM app.orders`},
		{"join", `SELECT a.name, count(*) FROM app.orders o JOIN app.accounts a ON a.id = o.account_id WHERE o.account_id = 7 AND a.id = 7 GROUP BY 1`,
			`SELECT a.name, count(*) FROM app.orders o JOIN app.accounts a ON a.id = o.account_id GROUP BY 1`},
	} {
		want := query(b, reader, q.reader)
		equal(b, q.name+": tenant and filtered reader", query(b, tenant, q.tenant), want)
		b.Run(q.name+"/reader-filtered", func(b *testing.B) {
			for b.Loop() {
				query(b, reader, q.reader)
			}
		})
		b.Run(q.name+"/tenant-rls", func(b *testing.B) {
			for b.Loop() {
				query(b, tenant, q.tenant)
			}
		})
		// Prepared once, as drivers do for repeated questions: the policy's
		// subquery is no longer planned each time.
		for _, p := range []struct {
			name string
			conn *pgx.Conn
			sql  string
		}{{"reader-filtered-prepared", reader, q.reader}, {"tenant-rls-prepared", tenant, q.tenant}} {
			b.Run(q.name+"/"+p.name, func(b *testing.B) {
				for b.Loop() {
					rows, err := p.conn.Query(d.ctx, p.sql)
					if err != nil {
						b.Fatal(err)
					}
					rows.Close()
					if err := rows.Err(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
