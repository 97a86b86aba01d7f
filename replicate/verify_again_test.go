package replicate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"

	"pgveil/schema"
	"pgveil/transform"
)

// scriptedLooks is a lookFunc that gives each table, look after look, the
// differences of a script, and records which tables each look read.
type scriptedLooks struct {
	script map[string][]TableDiff // by table: one diff per look
	looks  [][]string             // the tables each look read
	agains []bool
}

func (s *scriptedLooks) look(_ context.Context, checks []*tableCheck, again bool) (pglogrepl.LSN, error) {
	n := len(s.looks)
	var read []string
	for _, c := range checks {
		name := c.tp.Table.Name
		read = append(read, name)
		ds := s.script[name]
		if n >= len(ds) {
			return 0, errors.New("looked at " + name + " more often than scripted")
		}
		c.diff = ds[n]
	}
	s.looks = append(s.looks, read)
	s.agains = append(s.agains, again)
	return pglogrepl.LSN(100 * (n + 1)), nil
}

func checksOf(names ...string) []*tableCheck {
	out := make([]*tableCheck, len(names))
	for i, n := range names {
		out[i] = &tableCheck{tp: &transform.TablePlan{Table: &schema.Table{Schema: "public", Name: n}}}
	}
	return out
}

func keyed(src, tgt int64, keys map[string]DiffKind) TableDiff {
	d := TableDiff{Source: src, Target: tgt, Keys: keys}
	for _, k := range keys {
		switch k {
		case DiffMissing:
			d.Missing++
		case DiffExtra:
			d.Extra++
		default:
			d.Different++
		}
	}
	return d
}

// A table that matches is read once; one that differs is read again,
// up to VerifyLooks times, and keeps only the rows that differed at
// every look; the rest are Changed. Under traffic the counts of the last
// look do not add up (REPLICA is not SOURCE - MISSING + EXTRA): Changed
// says why.
func TestLookAgain(t *testing.T) {
	s := &scriptedLooks{script: map[string][]TableDiff{
		"calm": {keyed(10, 10, map[string]DiffKind{})},
		// Rows in flight each look, never the same ones: OK at the end.
		"busy": {
			keyed(100, 103, map[string]DiffKind{"a": DiffExtra, "b": DiffExtra, "c": DiffExtra}),
			keyed(101, 104, map[string]DiffKind{"d": DiffExtra, "e": DiffExtra, "f": DiffExtra}),
		},
		// One row wrong at every look, one in flight at each.
		"broken": {
			keyed(50, 50, map[string]DiffKind{"x": DiffDifferent, "y": DiffMissing}),
			keyed(50, 51, map[string]DiffKind{"x": DiffDifferent, "z": DiffExtra}),
			keyed(50, 50, map[string]DiffKind{"x": DiffDifferent, "w": DiffMissing}),
		},
	}}
	checks := checksOf("calm", "busy", "broken")
	var told []int
	lsn, err := lookAgain(context.Background(), checks, false, s.look, func(n int, _ pglogrepl.LSN) { told = append(told, n) })
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(flat(s.looks), " | "); got != "calm busy broken | busy broken | broken" {
		t.Errorf("looks read %s", got)
	}
	if lsn != 300 || len(told) != 2 || told[0] != 2 || told[1] != 1 {
		t.Errorf("last position %s, told %v", lsn, told)
	}
	calm, busy, broken := checks[0].diff, checks[1].diff, checks[2].diff
	if !calm.OK() || calm.Changed != 0 {
		t.Errorf("calm: %+v", calm)
	}
	if !busy.OK() || busy.Changed != 3 || busy.Target != 104 || busy.Source != 101 {
		t.Errorf("busy: %+v, want OK with 3 changed, the second look's counts", busy)
	}
	if broken.OK() || broken.Different != 1 || broken.Missing != 0 || broken.Changed != 1 {
		t.Errorf("broken: %+v, want 1 different, 1 changed", broken)
	}
}

// In sample mode the second look at the same rows is the one reported,
// and there is no third.
func TestLookAgainSample(t *testing.T) {
	s := &scriptedLooks{script: map[string][]TableDiff{
		"t": {{Source: 50, Missing: 2}, {Source: 49, Missing: 1}},
	}}
	checks := checksOf("t")
	if _, err := lookAgain(context.Background(), checks, true, s.look, nil); err != nil {
		t.Fatal(err)
	}
	if len(s.looks) != 2 || s.agains[0] || !s.agains[1] {
		t.Errorf("looks %v, again %v", s.looks, s.agains)
	}
	if d := checks[0].diff; d.Source != 49 || d.Missing != 1 || d.Changed != 0 {
		t.Errorf("sample: %+v", d)
	}
}

func TestLookAgainError(t *testing.T) {
	s := &scriptedLooks{script: map[string][]TableDiff{"t": {{Extra: 1}}}}
	if _, err := lookAgain(context.Background(), checksOf("t"), false, s.look, nil); err == nil {
		t.Error("a failed second look is no error")
	}
}

func flat(looks [][]string) []string {
	out := make([]string, len(looks))
	for i, l := range looks {
		out[i] = strings.Join(l, " ")
	}
	return out
}

func TestVerifySQL(t *testing.T) {
	tp := &transform.TablePlan{
		Table: &schema.Table{Schema: "public", Name: "Orders"},
		Where: "status <> 'draft'",
		Columns: []transform.ColumnPlan{
			{Column: schema.Column{Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true}},
			{Column: schema.Column{Name: "note", Type: schema.MustType("text")}},
		},
	}
	if got, want := lookupSQL(tp, []int{0}, tp.Where), `SELECT id, note FROM ONLY public."Orders" WHERE (id = $1) AND (status <> 'draft') LIMIT 1`; got != want {
		t.Errorf("lookupSQL:\n got %s\nwant %s", got, want)
	}
	noPK := &transform.TablePlan{
		Table: &schema.Table{Schema: "public", Name: "events"},
		Columns: []transform.ColumnPlan{
			{Column: schema.Column{Name: "at", Type: schema.MustType("timestamptz")}},
			{Column: schema.Column{Name: "doc", Type: schema.MustType("json")}},
		},
	}
	if got, want := lookupSQL(noPK, []int{0, 1}, ""), `SELECT at, doc FROM ONLY public.events WHERE (at IS NOT DISTINCT FROM $1 AND doc::text IS NOT DISTINCT FROM $2::text) LIMIT 1`; got != want {
		t.Errorf("lookupSQL without a key:\n got %s\nwant %s", got, want)
	}
	n := schema.TableName{Schema: "public", Name: "Orders"}
	cat := &schema.Catalog{Info: map[schema.TableName]*schema.TableInfo{n: {EstimatedRows: 100000}}}
	if got, want := sampleSQL(tp, 50, cat), `SELECT id, note FROM ONLY public."Orders" TABLESAMPLE SYSTEM (0.5) WHERE (status <> 'draft') ORDER BY random() LIMIT 50`; got != want {
		t.Errorf("sampleSQL:\n got %s\nwant %s", got, want)
	}
	cat.Info[n].EstimatedRows = 600
	if got := sampleSQL(tp, 50, cat); strings.Contains(got, "TABLESAMPLE") {
		t.Errorf("sampleSQL of a small table: %s", got)
	}
}
