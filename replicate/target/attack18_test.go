package target

import (
	"strings"
	"testing"
	"time"

	"pgveil/transform"
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
	exec(t, d.owner, `INSERT INTO app.accounts VALUES (3, '`+canary+`')`)
	views := []View{
		{Name: transform.TableName{Schema: "app", Name: "acct_reg"}, Materialized: true,
			Definition: `SELECT accounts.name::regclass AS r FROM app.accounts WHERE accounts.id = 3`, Hash: "a"},
		{Name: transform.TableName{Schema: "app", Name: "acct_n"}, Materialized: true,
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
