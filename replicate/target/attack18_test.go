package target

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// TestAttack18MatviewRefreshErrorQuotesNoValue: a materialized view is
// production's SQL run by pgveil on the replica at every refresh. A
// developer's definition that casts a kept value to regclass fails with
// `relation "<the value>" does not exist`, SQLSTATE class 42, which
// sanitize lets through as an object name. The refresh's error (logged
// by the view watch) must carry no value: only the SQLSTATE.
func TestAttack18MatviewRefreshErrorQuotesNoValue(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	const canary = "Canary7Qx-Springfield"
	pgtest.MustExec(t, d.owner, `INSERT INTO app.accounts VALUES (3, '`+canary+`')`)
	views := []View{
		{Name: schema.TableName{Schema: "app", Name: "acct_reg"}, Materialized: true,
			Definition: `SELECT accounts.name::regclass AS r FROM app.accounts WHERE accounts.id = 3`, Hash: "a"},
		{Name: schema.TableName{Schema: "app", Name: "acct_n"}, Materialized: true,
			Definition: `SELECT count(*) AS n FROM app.accounts`, Hash: "b"},
	}
	res, err := SyncViews(d.ctx, d.owner, views, []string{d.reader}, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Present) != 2 {
		t.Fatalf("views present %v, kept out %v", res.Present, res.KeptOut)
	}
	done, err := RefreshViews(d.ctx, d.owner, time.Hour)
	if err == nil {
		t.Fatal("refreshing a materialized view whose query fails: no error")
	}
	// (regclass folds the unquoted value to lower case: compared so.)
	if msg := strings.ToLower(err.Error()); strings.Contains(msg, "canary7qx") || strings.Contains(msg, "springfield") {
		t.Errorf("the refresh's error quotes a value of the replica: %v", err)
	}
	if !strings.Contains(err.Error(), "42P01") {
		t.Errorf("the refresh's error does not say its SQLSTATE: %v", err)
	}
	// One production view that always fails must not starve the others
	// of their refresh, round after round.
	if len(done) != 1 || done[0] != "app.acct_n" {
		t.Errorf("refreshed %v, want app.acct_n despite app.acct_reg failing", done)
	}
	if got := query(t, d.owner, `SELECT n FROM app.acct_n`); len(got) != 1 || got[0] != "3" {
		t.Errorf("app.acct_n after the round: %v", got)
	}
}

// TestAttack18ViewsImpersonatorAndTenants: the views pgveil creates, read
// as the impersonator before and after SET ROLE (a statement prepared
// before it, as Metabase reuses one), as a tenant login, and through a
// materialized view, which row level security does not cover. A tenant
// sees only its rows through a Tenants view, nothing of a materialized
// view or of a view over a table hidden from tenants, and the
// impersonator nothing before SET ROLE.
func TestAttack18ViewsImpersonatorAndTenants(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	d.setup(t)
	name := func(n string) schema.TableName { return schema.TableName{Schema: "app", Name: n} }
	views := []View{
		{Name: name("order_list"), Definition: `SELECT o.id, o.total FROM app.orders o`, Hash: "1", Tenants: true},
		{Name: name("audit_list"), Definition: `SELECT a.id FROM app.audit a`, Hash: "2"},
		{Name: name("order_mat"), Materialized: true, Definition: `SELECT o.id, o.total FROM app.orders o`, Hash: "3"},
	}
	if _, err := SyncViews(d.ctx, d.owner, views, []string{d.reader}, d.group, false); err != nil {
		t.Fatal(err)
	}
	if _, err := RefreshViews(d.ctx, d.owner, time.Hour); err != nil {
		t.Fatal(err)
	}
	one := d.login(t, d.role("acme"), "1")
	if got := query(t, one, `SELECT id FROM app.order_list ORDER BY id`); strings.Join(got, ",") != "10,11,12" {
		t.Errorf("tenant 1 through order_list: %v, want its orders 10,11,12", got)
	}
	denied(t, one, "tenant 1", `SELECT * FROM app.order_mat`)
	denied(t, one, "tenant 1", `SELECT * FROM app.audit_list`)

	imp := pgtest.ConnectAs(t, d.dsn, d.imp)
	for _, q := range []string{`SELECT * FROM app.order_list`, `SELECT * FROM app.order_mat`, `SELECT * FROM app.audit_list`} {
		denied(t, imp, "impersonator before SET ROLE", q)
	}
	if _, err := imp.Prepare(d.ctx, "ol", `SELECT count(*) FROM app.orders`); err != nil {
		t.Fatal(err)
	}
	count := func(who string) string {
		var n int64
		if err := imp.QueryRow(d.ctx, "ol").Scan(&n); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		return strconv.FormatInt(n, 10)
	}
	if n := count("before SET ROLE"); n != "0" {
		t.Errorf("impersonator before SET ROLE counts %s orders, want 0", n)
	}
	pgtest.MustExec(t, imp, `SET ROLE `+pgx.Identifier{d.tenant("2")}.Sanitize())
	if n := count("as tenant 2"); n != "2" {
		t.Errorf("impersonator as tenant 2 counts %s orders, want 2", n)
	}
	if got := query(t, imp, `SELECT id FROM app.order_list ORDER BY id`); strings.Join(got, ",") != "20,21" {
		t.Errorf("impersonator as tenant 2 through order_list: %v", got)
	}
	denied(t, imp, "impersonator as tenant 2", `SELECT * FROM app.order_mat`)
	pgtest.MustExec(t, imp, `SET ROLE NONE`)
	if n := count("after SET ROLE NONE"); n != "0" {
		t.Errorf("impersonator after SET ROLE NONE counts %s orders, want 0", n)
	}
}

// TestAttack18MatviewRefreshIsBounded: a production developer's
// materialized view whose query never ends (an immutable generate_series
// of two billion rows: no volatile call keeps it out) must not hold its
// locks, which re-copies wait for, for ever: the refresh is cancelled at
// the refresh interval, said so, and the other views are still refreshed.
func TestAttack18MatviewRefreshIsBounded(t *testing.T) {
	t.Parallel()
	d := newTenancyDB(t)
	views := []View{
		{Name: schema.TableName{Schema: "app", Name: "forever"}, Materialized: true,
			Definition: `SELECT count(*) AS n FROM generate_series(1, 2000000000) g, app.accounts`, Hash: "a"},
		{Name: schema.TableName{Schema: "app", Name: "quick"}, Materialized: true,
			Definition: `SELECT count(*) AS n FROM app.accounts`, Hash: "b"},
	}
	if _, err := SyncViews(d.ctx, d.owner, views, []string{d.reader}, "", false); err != nil {
		t.Fatal(err)
	}
	done, err := RefreshViews(d.ctx, d.owner, time.Second)
	if err == nil || !strings.Contains(err.Error(), "took longer than 1s") {
		t.Fatalf("refreshing a view whose query never ends: %v", err)
	}
	if len(done) != 1 || done[0] != "app.quick" {
		t.Errorf("refreshed %v, want app.quick despite app.forever", done)
	}
}
