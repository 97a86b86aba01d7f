package transform

import (
	"testing"
	"time"
)

func TestTableFingerprint(t *testing.T) {
	k := testKeys(t, testSecret)
	fp := func(rules map[string]Rule, where string, keys *Keys) string {
		tp := testPlan(t, k)
		tp.Where = where
		for i := range tp.Columns {
			if r, ok := rules[tp.Columns[i].Column.Name]; ok {
				tp.Columns[i].Rule = r
			}
		}
		return tp.Fingerprint(keys.Fingerprint())
	}
	base := fp(nil, "", k)
	if again := fp(nil, "", testKeys(t, testSecret)); again != base {
		t.Error("same rules and secret, another fingerprint")
	}
	for name, other := range map[string]string{
		"another secret":    fp(nil, "", testKeys(t, "another secret of at least 32 bytes!!")),
		"a where":           fp(nil, "x > 1", k),
		"another rule":      fp(map[string]Rule{"email": {Name: "hash"}}, "", k),
		"another parameter": fp(map[string]Rule{"age": {Name: "truncate", Args: Args{"length": int64(9)}}}, "", k),
		"on_error":          fp(map[string]Rule{"id": {Name: "hash", OnError: "null"}}, "", k),
		"a json path":       fp(map[string]Rule{"email": {Name: "json", Args: Args{"paths": []PathRule{{Path: "$.a", Rule: Rule{Name: "drop"}}}}}}, "", k),
		"a duration":        fp(map[string]Rule{"email": {Name: "noise", Args: Args{"duration": time.Hour}}}, "", k),
	} {
		if other == base {
			t.Errorf("%s: same fingerprint", name)
		}
	}
	// Positions in the file do not matter.
	if moved := fp(map[string]Rule{"id": {Name: "hash", Line: 99, Col: 3}}, "", k); moved != base {
		t.Error("a rule's position changed the fingerprint")
	}
}
