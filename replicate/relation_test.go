package replicate

import (
	"log/slog"
	"strings"
	"testing"

	"pgveil/internal/syncbuf"
	"pgveil/replicate/pgoutput"
	"pgveil/schema"
	"pgveil/transform"
)

// A Relation message comes again after every DDL, VACUUM FULL or CLUSTER
// of a table: what it shows unlike the plan is logged once per stream.
func TestColumnWarningsOnce(t *testing.T) {
	var buf syncbuf.Buffer
	w := &columnWarnings{log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 3 {
		w.warn("column not in the rules", "public.t", "nickname")
	}
	w.warn("column not in the rules", "public.t", "other")
	w.warn("column not in the rules", "public.u", "nickname")
	if n := strings.Count(buf.String(), "level=WARN"); n != 3 {
		t.Errorf("%d warnings, want 3 (one per table and column):\n%s", n, buf.String())
	}
}

// A column the rules name and a Relation message lacks is reported as
// what happened: a stream resuming behind the ADD COLUMN (the rules now
// name the new column) first sees Relation messages from before it,
// which is no drop; a column that a Relation message of the stream
// carried and a later one lacks was dropped.
func TestMissingColumnWarnings(t *testing.T) {
	var buf syncbuf.Buffer
	w := &columnWarnings{log: slog.New(slog.NewTextHandler(&buf, nil))}
	tp := &transform.TablePlan{Table: &schema.Table{Schema: "public", Name: "address"}}
	for _, name := range []string{"address_id", "phone2"} {
		tp.Columns = append(tp.Columns, transform.ColumnPlan{Column: schema.Column{Name: name, Type: schema.MustType("text")}})
	}
	lookup := func(string, string) *transform.TablePlan { return tp }
	rel := func(cols ...string) *pgoutput.Relation {
		m := &pgoutput.Relation{OID: 1, Namespace: "public", Name: "address", ReplicaIdentity: 'd'}
		for _, c := range cols {
			m.Columns = append(m.Columns, pgoutput.Column{Name: c})
		}
		return m
	}
	done := 0 // what logged has returned already
	logged := func() string { s := buf.String()[done:]; done += len(s); return s }

	// Changes made before production added phone2.
	if r := newRelation(rel("address_id"), lookup, nil, w); !r.missing[1] {
		t.Fatal("phone2 not marked missing")
	}
	if got := logged(); !strings.Contains(got, "not in the source's changes yet") || strings.Contains(got, "dropped") {
		t.Errorf("a column the changes predate is reported as:\n%s", got)
	}
	// Then the ADD COLUMN: nothing to report.
	newRelation(rel("address_id", "phone2"), lookup, nil, w)
	if got := logged(); got != "" {
		t.Errorf("a relation that matches the plan: %s", got)
	}
	// Then a DROP COLUMN.
	newRelation(rel("address_id"), lookup, nil, w)
	if got := logged(); !strings.Contains(got, "no longer sent by the source (dropped in production?)") {
		t.Errorf("a dropped column is reported as:\n%s", got)
	}
}
