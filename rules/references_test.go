package rules

import (
	"path/filepath"
	"testing"
)

// The good file's references are read with their positions: the target
// in schema public when it has two parts, quoted names kept as written.
func TestReferencesParsed(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "good", "references.yaml"), testEnv(), testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var got []Reference
	for _, tr := range cfg.Tables {
		for _, r := range tr.References {
			got = append(got, *r)
		}
	}
	want := []Reference{
		{Column: "manager_staff_id", Schema: "public", Table: "staff", To: "staff_id", Line: 15, Col: 7, ValueLine: 15, ValueCol: 25},
		{Column: "legacy_id", None: true, Line: 16, Col: 7, ValueLine: 16, ValueCol: 18},
		{Column: "actor", Schema: "public", Table: "staff", To: "staff_id", Line: 23, Col: 7, ValueLine: 23, ValueCol: 14},
		{Column: "Store", Schema: "public", Table: "store", To: "store_id", Line: 24, Col: 7, ValueLine: 24, ValueCol: 18},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reference %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
