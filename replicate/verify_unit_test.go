package replicate

import "testing"

func TestTableDiffWithin(t *testing.T) {
	first := TableDiff{Table: "t", Missing: 1, Extra: 2, Different: 1,
		Keys: map[string]DiffKind{"a": DiffMissing, "b": DiffExtra, "c": DiffExtra, "d": DiffDifferent}}
	// The second look: b and d differ again (d now missing), a and c were
	// changes in flight, e is new in flight.
	second := TableDiff{Table: "t", Source: 10, Target: 11, Missing: 1, Extra: 2,
		Keys: map[string]DiffKind{"b": DiffExtra, "d": DiffMissing, "e": DiffExtra}}
	got := second.Within(first)
	if got.Missing != 1 || got.Extra != 1 || got.Different != 0 || len(got.Keys) != 2 || got.Source != 10 || got.Target != 11 {
		t.Errorf("Within = %+v", got)
	}
	if got.Changed != 1 {
		t.Errorf("Within: %d changed, want 1 (e, in flight)", got.Changed)
	}
	if got.OK() {
		t.Error("persistent differences reported OK")
	}
	if calm := (TableDiff{Keys: map[string]DiffKind{"e": DiffExtra}, Extra: 1}).Within(first); !calm.OK() {
		t.Errorf("differences in flight only: %+v", calm)
	}
	// Without keys (too many differences), nothing is dropped.
	if lost := (TableDiff{Extra: 5}).Within(first); lost.Extra != 5 {
		t.Errorf("keyless Within = %+v", lost)
	}
}
