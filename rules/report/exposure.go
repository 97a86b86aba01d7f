package report

import (
	"strconv"
	"strings"
	"time"

	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/schema"
	"pgveil/transform"
)

// Noise hides a value only as long as the replica holds nothing closer to
// it. A column noised in one table ({noise: 0.05} on orders.total) is
// defeated when the raw values it hides are kept in a column it joins to
// (payments.amount: keep, joined on payments.order_id = orders.id): the
// kept column gives them back. The report finds such pairs in two steps.
// Candidates reads the rules alone: each noised column, and each kept
// column its row meets through a join the masking leaves intact. Measure
// then counts, in the replica, the joined rows whose kept value lies
// within the noise of the noised one; a kept column that does so for most
// rows, far more often than for an unrelated row, holds what the noise
// hides.

// Ref names a column of a replicated table, or one top-level key of a
// json or jsonb column (Key).
type Ref struct {
	Schema, Table, Column string
	// Key, when set, is a top-level key of the json column Column.
	Key string
}

// String is schema.table.column, quoted where SQL needs it, with ->'key'
// for a json key.
func (r Ref) String() string {
	s := schema.Qualified(r.Schema, r.Table) + "." + schema.QuoteIdent(r.Column)
	if r.Key != "" {
		s += "->" + schema.QuoteLiteral(r.Key)
	}
	return s
}

// column is r without its json key: the column that holds it.
func (r Ref) column() Ref { return Ref{Schema: r.Schema, Table: r.Table, Column: r.Column} }

// Pair is a noised column and a kept column (or kept json key) that a
// row of the noised column's table meets: in the same row, or in a row
// joined through a key whose two sides the rules mask alike.
type Pair struct {
	Noised Ref
	Noise  transform.Rule // the noised column's rule: ratio or duration
	Kept   Ref
	// KeptRule is the kept side's rule: keep, or json for a key that the
	// column's json rule leaves as it is.
	KeptRule string
	// NoisedOn = KeptOn joins the noised row to the kept one; both are
	// zero when the kept column is in the same row.
	NoisedOn, KeptOn Ref
	// KeptReferenced is true when NoisedOn refers to KeptOn (the kept
	// row is the parent), false when KeptOn refers to NoisedOn.
	KeptReferenced bool
}

// SameRow reports whether the kept column is in the noised column's row.
func (p Pair) SameRow() bool { return p.NoisedOn == (Ref{}) }

// Join says how the rows meet: "same row", or the join condition.
func (p Pair) Join() string {
	if p.SameRow() {
		return "same row"
	}
	if p.KeptReferenced {
		// The kept row is the parent: the child's key first.
		return p.NoisedOn.String() + " = " + p.KeptOn.String()
	}
	return p.KeptOn.String() + " = " + p.NoisedOn.String()
}

// Ratio is the noise's ratio for numbers, 0 for dates.
func (p Pair) Ratio() float64 { return p.Noise.Args.Number("ratio", 0) }

// Duration is the noise's largest shift for dates and timestamps, 0 for
// numbers.
func (p Pair) Duration() time.Duration { return p.Noise.Args.Duration("duration", 0) }

// NoiseLabel is the noise as the rules write it: "noise 0.05", "noise 2h".
func (p Pair) NoiseLabel() string {
	if d := p.Duration(); d > 0 {
		return "noise " + shortDuration(d)
	}
	return "noise " + strconv.FormatFloat(p.Ratio(), 'f', -1, 64)
}

// shortDuration writes d in the largest unit of the rules' durations
// (d, h, m, s) that divides it, as in {noise: 30d}.
func shortDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}

// Candidates lists, from the rules alone, every pair of a noised column
// (rule noise) and a kept column its row meets, its joins found by the
// naming convention (NamingModel): for when no catalog is at hand.
func Candidates(cfg *rules.Config) []Pair { return CandidatesFrom(cfg, NamingModel(cfg)) }

// CandidatesFrom lists every pair of a noised column (rule noise) and a
// kept column its row meets, in file order of the noised columns, the
// joins taken from the reference model m (declared, inferred or written
// in the rules):
//
//   - in the same row: every other column of the table kept raw;
//   - in a child table B whose column refers to a key of A, the noised
//     column's table, when both key columns have the same keep or hash
//     rule, so that the join works in the replica as in production:
//     every column of B kept raw;
//   - in a parent table B that a column of A refers to, under the same
//     condition: every column of B kept raw.
//
// A numeric noise (ratio) also meets, in each of those rows, a top-level
// json key named like the noised column (total) that the json column's
// rule leaves as it is; and in the tables with no reference to A, the
// same key of a json document whose own key <a>_id joins it to A.id (A.id
// kept raw, since the document holds the raw key). Keys (id, *_id, and
// every column of a reference) are never taken as the kept side: they
// are references, not measures. A reference of several columns (a
// composite foreign key) is not followed: one column does not join it.
// Types are not known here: Comparable checks them against the replica's
// catalog.
func CandidatesFrom(cfg *rules.Config, m *refs.Model) []Pair {
	return meetings(cfg, m, "noise")
}

// meetings lists every pair of a column masked with the rule named rule
// and a kept column its row meets, as CandidatesFrom describes; json
// keys are followed for a numeric noise only.
func meetings(cfg *rules.Config, m *refs.Model, rule string) []Pair {
	es := edges(cfg, m)
	keys := map[Ref]bool{}
	for _, e := range es {
		for _, c := range e.fromCols {
			keys[ref(e.from, c)] = true
		}
		for _, c := range e.toCols {
			keys[ref(e.to, c)] = true
		}
	}
	var out []Pair
	for _, a := range cfg.Tables {
		if a == nil {
			continue
		}
		for _, n := range a.Columns {
			if n.Rule.Name != rule {
				continue
			}
			noised := Ref{Schema: a.Schema, Table: a.Name, Column: n.Name}
			ratio := rule == "noise" && n.Rule.Args.Has("ratio")
			add := func(p Pair) {
				p.Noised, p.Noise = noised, n.Rule
				out = append(out, p)
			}
			// The same row.
			for _, k := range keptIn(a, n.Name, n.Name, ratio, keys) {
				add(Pair{Kept: k.ref, KeptRule: k.rule})
			}
			aID := columnRule(a, "id")
			for _, b := range cfg.Tables {
				if b == nil || b == a {
					continue
				}
				// B is a child of A: B.from = A.to.
				child := false
				for _, e := range es {
					if e.from != b || e.to != a || !e.joins || len(e.fromCols) != 1 {
						continue
					}
					child = true
					for _, k := range keptIn(b, "", n.Name, ratio, keys) {
						add(Pair{Kept: k.ref, KeptRule: k.rule, NoisedOn: ref(a, e.toCols[0]), KeptOn: ref(b, e.fromCols[0])})
					}
				}
				if !child && ratio && aID != nil && aID.Rule.Name == "keep" {
					// No key column, but a json document may hold the
					// key and the value.
					for _, j := range b.Columns {
						fkKey := refs.Singular(a.Name) + "_id"
						if j.Rule.Name == "json" && keptKey(j.Rule, n.Name) && keptKey(j.Rule, fkKey) {
							on := ref(b, j.Name)
							on.Key = fkKey
							kept := ref(b, j.Name)
							kept.Key = n.Name
							add(Pair{Kept: kept, KeptRule: j.Rule.Name, NoisedOn: ref(a, "id"), KeptOn: on})
						}
					}
				}
				// B is A's parent: A.from = B.to.
				for _, e := range es {
					if e.from != a || e.to != b || !e.joins || len(e.fromCols) != 1 {
						continue
					}
					for _, k := range keptIn(b, "", n.Name, ratio, keys) {
						add(Pair{Kept: k.ref, KeptRule: k.rule, NoisedOn: ref(a, e.fromCols[0]), KeptOn: ref(b, e.toCols[0]), KeptReferenced: true})
					}
				}
			}
		}
	}
	return out
}

type keptRef struct {
	ref  Ref
	rule string
}

// keptIn lists what table t keeps raw, but its keys (named like keys, or
// in keys) and the column skip: its columns with rule keep and, when withJSON, the top-level key
// named key of each json column whose paths leave that key as it is.
func keptIn(t *rules.TableRule, skip, key string, withJSON bool, keys map[Ref]bool) []keptRef {
	var out []keptRef
	for _, c := range t.Columns {
		if c.Name == skip || isKey(c.Name) || keys[ref(t, c.Name)] {
			continue
		}
		if c.Rule.Name == "keep" {
			out = append(out, keptRef{ref(t, c.Name), "keep"})
		}
		if withJSON && c.Rule.Name == "json" && keptKey(c.Rule, key) {
			r := ref(t, c.Name)
			r.Key = key
			out = append(out, keptRef{r, c.Rule.Name})
		}
	}
	return out
}

// isKey reports whether a column name is a key: id, or a reference
// ending in _id.
func isKey(name string) bool { return name == "id" || strings.HasSuffix(name, "_id") }

// keptKey reports whether a json rule leaves the document's top-level key
// as it is: it does unless one of its paths, other than a keep, may
// select the key: the whole document ($), a wildcard, or a path naming
// the key at any step. The test reads the paths' text, so it errs
// towards "masked": a key it cannot be sure of is not measured.
func keptKey(r transform.Rule, key string) bool {
	paths, _ := r.Args["paths"].([]transform.PathRule)
	for _, pr := range paths {
		if pr.Rule.Name == "keep" {
			continue
		}
		if pr.Path == "$" || strings.Contains(pr.Path, "*") || mayName(pathNames(pr.Path), key) {
			return false
		}
	}
	return true
}

// pathNames lists the member names a JSON path names: after . or .., and
// in ["..."] or ['...'] (escapes left as written: a name with one does
// not match a plain key, so the path counts as masking it only when
// written plainly, and keptKey's other tests err towards masked).
func pathNames(path string) []string {
	var out []string
	for i := 0; i < len(path); {
		switch c := path[i]; {
		case c == '.':
			for i < len(path) && path[i] == '.' {
				i++
			}
			j := i
			for j < len(path) && path[j] != '.' && path[j] != '[' {
				j++
			}
			out = append(out, path[i:j])
			i = j
		case c == '[' && i+1 < len(path) && (path[i+1] == '"' || path[i+1] == '\''):
			q := path[i+1]
			j := i + 2
			for j < len(path) && path[j] != q {
				if path[j] == '\\' {
					j++
				}
				j++
			}
			if j > len(path) {
				j = len(path)
			}
			name := path[i+2 : j]
			out = append(out, name)
			if strings.Contains(name, `\`) {
				// An escaped name: take it as naming any key.
				out = append(out, "")
			}
			i = j + 1
		default:
			i++
		}
	}
	return out
}

// mayName reports whether names holds key or "" (a name pathNames
// could not read plainly).
func mayName(names []string, key string) bool {
	for _, n := range names {
		if n == key || n == "" {
			return true
		}
	}
	return false
}

func ref(t *rules.TableRule, column string) Ref {
	return Ref{Schema: t.Schema, Table: t.Name, Column: column}
}

// Kinds of replica column the pairs compare.
const (
	kindOther = iota
	kindInt
	kindNumeric
	kindFloat
	kindDate
	kindTimestamp // timestamp and timestamptz
	kindJSON
	kindJSONB
)

// Catalog holds the base type name (pg_type.typname, a domain's base
// type) of the replica's columns.
type Catalog map[Ref]string

func (c Catalog) kind(r Ref) (int, bool) {
	t, ok := c[r.column()]
	if !ok {
		return kindOther, false
	}
	switch t {
	case "int2", "int4", "int8":
		return kindInt, true
	case "numeric":
		return kindNumeric, true
	case "float4", "float8":
		return kindFloat, true
	case "date":
		return kindDate, true
	case "timestamp", "timestamptz":
		return kindTimestamp, true
	case "json":
		return kindJSON, true
	case "jsonb":
		return kindJSONB, true
	}
	return kindOther, true
}

func isNumber(k int) bool { return k == kindInt || k == kindNumeric || k == kindFloat }
func isTime(k int) bool   { return k == kindDate || k == kindTimestamp }
func isJSON(k int) bool   { return k == kindJSON || k == kindJSONB }

// Comparable reports whether the replica's catalog holds every column of
// p with types that can be compared: a number noised by a ratio with a
// kept number (or a json key, read as a number where it holds one), a
// date or timestamp noised by a duration with a kept date or timestamp;
// and the join's key columns.
func Comparable(p Pair, cat Catalog) bool {
	nk, ok1 := cat.kind(p.Noised)
	kk, ok2 := cat.kind(p.Kept)
	if !ok1 || !ok2 {
		return false
	}
	if !p.SameRow() {
		onN, ok3 := cat.kind(p.NoisedOn)
		onK, ok4 := cat.kind(p.KeptOn)
		if !ok3 || !ok4 || (p.KeptOn.Key != "" && !isJSON(onK)) || (p.KeptOn.Key == "" && isJSON(onK)) || isJSON(onN) {
			return false
		}
	}
	switch {
	case p.Kept.Key != "":
		return p.Ratio() > 0 && isNumber(nk) && isJSON(kk)
	case p.Ratio() > 0:
		return isNumber(nk) && isNumber(kk)
	case p.Duration() > 0:
		return isTime(nk) && isTime(kk)
	}
	return false
}

// tablesOf lists the tables the pairs name, once each.
func tablesOf(pairs []Pair) (schemas, names []string) {
	seen := map[[2]string]bool{}
	for _, p := range pairs {
		for _, r := range []Ref{p.Noised, p.Kept} {
			k := [2]string{r.Schema, r.Table}
			if !seen[k] {
				seen[k] = true
				schemas, names = append(schemas, r.Schema), append(names, r.Table)
			}
		}
	}
	return schemas, names
}
