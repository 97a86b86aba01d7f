package source

import (
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"
)

// TestAttack18ViewsReadingDroppedColumn: every way a developer's view in
// production can read a column the rules drop (a subquery, a CTE, a
// LATERAL, WHERE, ORDER BY, SELECT * expanded, a CHECK OPTION view, a
// security_barrier view over it) records the column in pg_depend, and
// DecideViews keeps each out. A whole-row reference (row_to_json(c),
// c::text) records the table only: it is allowed, because the replica's
// table has no dropped column to show (TestReplicateViews covers what
// the replica then shows).
func TestAttack18ViewsReadingDroppedColumn(t *testing.T) {
	conn, _ := shared.NewDBWith(t, `
CREATE TABLE customer (id int PRIMARY KEY, name text, email text);
CREATE VIEW sub AS SELECT c.id, (SELECT c2.email FROM customer c2 WHERE c2.id = c.id) AS e FROM customer c;
CREATE VIEW cte AS WITH x AS (SELECT email FROM customer) SELECT count(*) AS n FROM x;
CREATE VIEW lat AS SELECT c.id, l.e FROM customer c, LATERAL (SELECT c.email AS e) l;
CREATE VIEW filt AS SELECT id FROM customer WHERE email LIKE '%@example.com';
CREATE VIEW ord AS SELECT id FROM customer ORDER BY email LIMIT 1;
CREATE VIEW star AS SELECT * FROM customer;
CREATE VIEW chk AS SELECT id, email FROM customer WITH CASCADED CHECK OPTION;
CREATE VIEW bar WITH (security_barrier) AS SELECT id FROM customer WHERE length(email) > 3;
CREATE VIEW agg AS SELECT string_agg(email, ',') AS all_emails FROM customer;
CREATE VIEW grp AS SELECT count(*) AS n FROM customer GROUP BY email;
CREATE MATERIALIZED VIEW mat AS SELECT max(email) AS m FROM customer;
CREATE VIEW whole AS SELECT row_to_json(c) AS j, c::text AS t FROM customer c;`)
	vs, err := ReadViews(pgtest.Context(t), conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	plan := transform.NewPlan([]*transform.TablePlan{
		{Table: &schema.Table{Schema: "public", Name: "customer"},
			Columns: []transform.ColumnPlan{{Column: schema.Column{Name: "id"}}, {Column: schema.Column{Name: "name"}}},
			Dropped: []string{"email"}},
	})
	seen := 0
	for _, d := range DecideViews(vs, plan) {
		seen++
		if d.View.Name.Name == "whole" {
			if d.KeptOut != "" {
				t.Errorf("whole-row view kept out: %s", d.KeptOut)
			}
			continue
		}
		if d.KeptOut == "" {
			t.Errorf("view %s reads the dropped column email and is not kept out (reads %+v)", d.View.Name.Name, d.View.Reads)
		}
	}
	if seen != 12 {
		t.Errorf("%d views decided, want 12", seen)
	}
}
