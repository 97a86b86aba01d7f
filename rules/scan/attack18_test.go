package scan

import (
	"bytes"
	"strings"
	"testing"

	"pgveil/rules/refs"
	"pgveil/schema"
)

// TestAttack18InferredRefToUnhashableKeyKeepsPersonalRaw: a personal
// column that references (by inference: same suffix, same type, every
// sampled value found) a key that cannot be hashed must not be lowered to
// the key's keep. A date dimension (calendar.date, a primary key of type
// date) and a citizens table keyed by a char(11) national id are
// ordinary; birth_date and ssn elsewhere would be kept raw.
func TestAttack18InferredRefToUnhashableKeyKeepsPersonalRaw(t *testing.T) {
	ty := schema.MustType
	tables := []*Table{
		{Schema: "public", Name: "calendar", Columns: []Column{
			{Name: "date", Type: ty("date"), PrimaryKey: true},
			{Name: "weekday", Type: ty("integer")},
		}},
		{Schema: "public", Name: "patients", Columns: []Column{
			{Name: "patient_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "full_name", Type: ty("text"), Samples: []string{"Maria Garcia", "John Smith"}},
			{Name: "birth_date", Type: ty("date"), Samples: []string{"1961-03-04", "1987-11-30"}},
			{Name: "ssn", Type: ty("character(11)"), Samples: []string{"123-45-6789", "987-65-4321"}},
		}},
		{Schema: "public", Name: "citizens", Columns: []Column{
			{Name: "ssn", Type: ty("character(11)"), PrimaryKey: true},
			{Name: "registered", Type: ty("boolean")},
		}},
	}
	m := &refs.Model{}
	col := func(tb, c string) refs.Column {
		return refs.Column{Table: schema.TableName{Schema: "public", Name: tb}, Name: c}
	}
	m.Add(refs.Ref{From: col("patients", "birth_date"), To: col("calendar", "date"), Origin: refs.Inferred, Why: "suffix _date names the key", Overlap: 1})
	m.Add(refs.Ref{From: col("patients", "ssn"), To: col("citizens", "ssn"), Origin: refs.Inferred, Why: "same name and type as the key", Overlap: 1})
	out := Propose(tables, m)
	var buf bytes.Buffer
	if err := Write(&buf, Header{}, out); err != nil {
		t.Fatal(err)
	}
	for j, c := range tables[1].Columns {
		if c.Name != "birth_date" && c.Name != "ssn" {
			continue
		}
		if p := out[1].Proposals[j]; p.Rule == "keep" {
			t.Errorf("patients.%s (personal) proposed keep because it references a key that cannot be hashed: %s\n%s", c.Name, p.Reason, buf.String())
		}
	}
	// The file validates: a personal column masked on its own is declared
	// not a join, rather than left as a reference whose sides differ.
	for _, c := range []string{"birth_date", "ssn"} {
		if !strings.Contains(buf.String(), "      "+c+": none") {
			t.Errorf("patients.%s is masked on its own but not declared `%s: none` under references:\n%s", c, c, buf.String())
		}
	}
	cfg := writeAndParse(t, out)
	if probs := refs.Check(cfg, m); len(probs) > 0 {
		t.Errorf("validate's join check refuses scan's own file: %v\n%s", probs, buf.String())
	}
}
