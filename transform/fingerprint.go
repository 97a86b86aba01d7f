package transform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
)

// Fingerprint identifies what the keys do without revealing them: two
// Keys have the same fingerprint exactly when they come from the same
// secret.
func (k *Keys) Fingerprint() string {
	sum := k.hash.sum([]byte("pgveil/fingerprint"))
	return hex.EncodeToString(sum[:8])
}

// Fingerprint identifies how the table is masked: the published columns
// with their types and rules (parameters and on_error included), the
// dropped columns, the row filter, and the keys' fingerprint. A replica
// table copied under another fingerprint must be copied again.
func (t *TablePlan) Fingerprint(keys string) string {
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%s\x00%s\x00", keys, t.Table.QualifiedName(), t.Where)
	for _, c := range t.Columns {
		fmt.Fprintf(h, "col\x00%s\x00%s\x00%v\x00", c.Column.Name, c.Column.Type, c.Column.PrimaryKey)
		writeRule(h, c.Rule)
	}
	dropped := append([]string(nil), t.Dropped...)
	sort.Strings(dropped)
	for _, d := range dropped {
		fmt.Fprintf(h, "drop\x00%s\x00", d)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// writeRule writes a rule canonically: positions left out, arguments in
// key order (json.Marshal sorts map keys), nested json rules recursively.
func writeRule(h interface{ Write([]byte) (int, error) }, r Rule) {
	args := map[string]any{}
	for k, v := range r.Args {
		if paths, ok := v.([]PathRule); ok {
			var nested []any
			for _, p := range paths {
				nested = append(nested, []any{p.Path, ruleValue(p.Rule)})
			}
			args[k] = nested
			continue
		}
		args[k] = v
	}
	b, _ := json.Marshal(versioned([]any{r.Name, args, r.OnError}, r.Name))
	h.Write(b)
	h.Write([]byte{0})
}

func ruleValue(r Rule) any {
	args := map[string]any{}
	for k, v := range r.Args {
		args[k] = v
	}
	return versioned([]any{r.Name, args, r.OnError}, r.Name)
}

// outputVersion is the version of a transformer's outputs: it goes up
// when the same input, secret and parameters give other outputs than an
// earlier pgveil gave, so that the fingerprint of every table using it
// changes and an upgraded pgveil copies those tables again, instead of
// leaving old and new outputs side by side (joins across them would
// break). Version 1 is left out of the fingerprint, which keeps the
// fingerprints, and the replicas, of tables whose masking did not change.
//
//   - noise 2: keyed by its parameters and constant within a bucket of
//     values (it was reversible: issue 17, finding 3);
//   - fake 2: keyed by its kind and options (keep_domain gave the same
//     local part as a plain fake email: finding 9).
func outputVersion(name string) int {
	switch name {
	case "noise", "fake":
		return 2
	}
	return 1
}

func versioned(rule []any, name string) []any {
	if v := outputVersion(name); v > 1 {
		return append(rule, v)
	}
	return rule
}
