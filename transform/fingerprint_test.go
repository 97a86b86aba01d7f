package transform

import (
	"testing"
	"time"

	"pgveil/internal/pgtest"
)

func TestTableFingerprint(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
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
	if again := fp(nil, "", testKeys(t, pgtest.Secret)); again != base {
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

// A transformer whose outputs changed changes the fingerprint of the
// tables that use it, directly or in a json path, so that an upgrade
// copies them again; the others keep theirs, so that it does not. The
// values are the fingerprints pgveil gave before noise and fake changed
// (commit 44c5d5d), under the tests' secret.
func TestFingerprintFollowsOutputVersions(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, c := range []struct {
		name   string
		rules  map[string]Rule
		before string
		same   bool
	}{
		{"hash, keep, truncate", map[string]Rule{"id": {Name: "hash"}, "email": {Name: "keep"}, "age": {Name: "truncate", Args: Args{"length": int64(10)}}}, "b2d23045f5563b545769c9af1511624e", true},
		{"noise", map[string]Rule{"id": {Name: "hash"}, "email": {Name: "keep"}, "age": {Name: "noise", Args: Args{"ratio": 0.05}}}, "3486ae1ec9971c81ff7fd7b5a7a16771", false},
		{"fake", map[string]Rule{"id": {Name: "hash"}, "email": {Name: "fake", Args: Args{"kind": "email"}}, "age": {Name: "keep"}}, "f64583a591048ff68fe69837ae3de3ad", false},
		{"noise in a json path", map[string]Rule{"id": {Name: "hash"}, "email": {Name: "json", Args: Args{"paths": []PathRule{{Path: "$.a", Rule: Rule{Name: "noise", Args: Args{"ratio": 0.05}}}}}}, "age": {Name: "keep"}}, "51ea004893ed3cc1d0a5e6a83458e7b0", false},
	} {
		tp := testPlan(t, k)
		for i := range tp.Columns {
			if r, ok := c.rules[tp.Columns[i].Column.Name]; ok {
				tp.Columns[i].Rule = r
			}
		}
		if got := tp.Fingerprint(k.Fingerprint()); (got == c.before) != c.same {
			t.Errorf("%s: fingerprint %s, before %s: want same=%v", c.name, got, c.before, c.same)
		}
	}
}
