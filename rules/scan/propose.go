package scan

import (
	"regexp"
	"slices"
	"strings"

	"pgveil/rules/refs"
	"pgveil/schema"
)

// Propose proposes a rule for every column of every table, in steps that
// each look wider than the one before:
//
//  1. each column alone: primary keys are hashed where hash fits their
//     type; other columns are classified from their name, type and
//     sampled values (Classify);
//  2. tables about people: a table is about people when its name says so,
//     a column holds people's data, or it references such a table; there
//     a bare "name" is a person's name, ticket-shaped codes identify
//     people, titles and descriptions are personal free text (elsewhere
//     they are catalogue text, kept), and dates and times are coarsened;
//  3. neighbours: a second address line is masked like the first; a
//     timestamp in a table that references a table whose timestamps are
//     truncated is truncated as finely (the same chain of events: a
//     payment minutes after its rental); a derived column (a tsvector, a
//     column a trigger computes) is dropped when a column it is built
//     from is masked;
//  4. references (from m): every column
//     that references a key gets exactly the key's rule, chains followed,
//     so that joins still work on the replica. A key kept raw that a
//     personal-looking column references is raised to hash, so that both
//     sides are masked.
//
// m may be nil.
func Propose(tables []*Table, m *refs.Model) []Ruled {
	if m == nil {
		m = &refs.Model{}
	}
	p := &proposer{tables: tables, m: m, at: map[refs.Column][2]int{}}
	p.out = make([]Ruled, len(tables))
	ctx := make([]tableCtx, len(tables))
	for i, t := range tables {
		p.out[i] = Ruled{Table: t, Proposals: make([]Proposal, len(t.Columns))}
		for j, c := range t.Columns {
			p.at[colOf(t, c.Name)] = [2]int{i, j}
		}
		named := personTableName(t.Name)
		ctx[i] = tableCtx{people: named, related: named}
		p.classifyTable(i, ctx[i])
	}
	final := p.aboutPeople(ctx)
	for i := range tables {
		if final[i] != ctx[i] {
			p.classifyTable(i, final[i])
		}
	}
	related := make([]bool, len(tables))
	for i := range final {
		related[i] = final[i].related
	}
	p.secondLines()
	p.personTimes(related)
	p.eventChains()
	p.derived()
	p.references()
	p.declareInferred()
	return p.out
}

// declareInferred gives each table the inferred references between
// scanned tables, for Write to declare.
func (p *proposer) declareInferred() {
	if p.m == nil {
		return
	}
	for _, r := range p.m.Refs {
		if r.Origin != refs.Inferred {
			continue
		}
		from, okFrom := p.at[r.From]
		_, okTo := p.at[r.To]
		if okFrom && okTo && !slices.ContainsFunc(p.out[from[0]].NotJoins, func(n NotJoin) bool { return n.Column == r.From.Name }) {
			p.out[from[0]].References = append(p.out[from[0]].References, r)
		}
	}
}

type proposer struct {
	tables []*Table
	out    []Ruled
	m      *refs.Model
	at     map[refs.Column][2]int // column -> table index, column index
}

func colOf(t *Table, name string) refs.Column {
	return refs.Column{Table: schema.TableName{Schema: t.Schema, Name: t.Name}, Name: name}
}

func (p *proposer) proposal(c refs.Column) (*Proposal, *Column, bool) {
	ij, ok := p.at[c]
	if !ok {
		return nil, nil, false
	}
	return &p.out[ij[0]].Proposals[ij[1]], &p.tables[ij[0]].Columns[ij[1]], true
}

func (p *proposer) classifyTable(i int, ctx tableCtx) {
	t := p.tables[i]
	for j, c := range t.Columns {
		pr := &p.out[i].Proposals[j]
		switch {
		case c.PrimaryKey && hashable(c):
			*pr = Proposal{Rule: "hash", Reason: "primary key: a keyed pseudonym of the same type, still joins"}
		case c.PrimaryKey:
			*pr = Proposal{Rule: "keep", Reason: "primary key of type " + c.Type.String() + ", which hash does not fit: check it is not personal"}
		default:
			*pr = classify(t.Name, c, ctx)
		}
	}
}

// personal reports whether a category says the column is about a person.
func personal(c category) bool {
	switch c {
	case catEmail, catPhone, catFirstName, catLastName, catFullName, catBirth, catGovID, catStreet, catAddress, catUsername, catPlace:
		return true
	}
	return false
}

// aboutPeople completes what Propose knows of each table: about people
// when its name says so or it holds personal columns; related to people
// when it is, or references a table that is (chains followed).
func (p *proposer) aboutPeople(byName []tableCtx) []tableCtx {
	out := slices.Clone(byName)
	index := map[schema.TableName]int{}
	for i, t := range p.tables {
		index[schema.TableName{Schema: t.Schema, Name: t.Name}] = i
		for _, pr := range p.out[i].Proposals {
			if personal(pr.cat) {
				out[i].people = true
			}
		}
		out[i].related = out[i].related || out[i].people
	}
	for changed := true; changed; {
		changed = false
		for _, r := range p.m.Refs {
			from, ok1 := index[r.From.Table]
			to, ok2 := index[r.To.Table]
			if ok1 && ok2 && out[to].related && !out[from].related {
				out[from].related = true
				changed = true
			}
		}
	}
	return out
}

// secondLines masks a numbered address line (address2, address_line_2)
// like its first line, when the first line is masked.
func (p *proposer) secondLines() {
	for i, t := range p.tables {
		for j, c := range t.Columns {
			m := reSecondLine.FindStringSubmatch(newWords(c.Name).joined)
			if m == nil || m[2] == "1" || c.PrimaryKey {
				continue
			}
			stem := m[1]
			for k, f := range t.Columns {
				joined := newWords(f.Name).joined
				first := p.out[i].Proposals[k]
				if k == j || !(joined == stem || joined == stem+"1" || joined == "line1" && stem == "line") || !first.Masks() {
					continue
				}
				if !isText(c.Type) || !isText(f.Type) {
					break
				}
				p.out[i].Proposals[j] = Proposal{Rule: first.Rule, cat: first.cat,
					Reason: "second line of " + schema.QuoteIdent(f.Name) + ": masked like the first line"}
				break
			}
		}
	}
}

// personTimes coarsens the dates and times kept in tables about people:
// they are quasi-identifiers.
func (p *proposer) personTimes(person []bool) {
	for i, t := range p.tables {
		if !person[i] {
			continue
		}
		for j, c := range t.Columns {
			pr := &p.out[i].Proposals[j]
			if pr.Rule != "keep" || c.PrimaryKey || !isTime(c.Type) {
				continue
			}
			if c.Type.Kind == schema.KindDate {
				*pr = Proposal{Rule: "{truncate: month}", Reason: "date of a person's event: quasi-identifier, kept to the month"}
			} else {
				*pr = Proposal{Rule: "{truncate: day}", Reason: "time of a person's event: quasi-identifier, kept to the day"}
			}
		}
	}
}

var reTruncateUnit = regexp.MustCompile(`^\{truncate: (hour|day|month|year)\}$`)

var unitRank = map[string]int{"hour": 1, "day": 2, "month": 3, "year": 4}

// truncUnit is the unit a proposal truncates a time to, "" for none.
func truncUnit(rule string) string {
	if m := reTruncateUnit.FindStringSubmatch(rule); m != nil {
		return m[1]
	}
	return ""
}

// eventChains truncates the times of a table that references a table
// whose times are truncated, at least as coarsely as the finest of those:
// a payment_date minutes after a rental_date truncated to the day would
// give the rental's time back. Birth and death dates are not events of
// the chain. Dates and timestamps are compared with their own kind.
func (p *proposer) eventChains() {
	isDate := func(c *Column) bool { return c.Type.Kind == schema.KindDate }
	// finest truncation of table i's event times of each kind.
	finest := func(i int, date bool) (string, string) {
		unit, from := "", ""
		for j, c := range p.tables[i].Columns {
			pr := p.out[i].Proposals[j]
			u := truncUnit(pr.Rule)
			if u == "" || !isTime(c.Type) || isDate(&c) != date || pr.cat == catBirth || pr.cat == catDeath {
				continue
			}
			if unit == "" || unitRank[u] < unitRank[unit] || unitRank[u] == unitRank[unit] && housekeeping(from) && !housekeeping(c.Name) {
				unit, from = u, c.Name
			}
		}
		return unit, from
	}
	index := map[schema.TableName]int{}
	for i, t := range p.tables {
		index[schema.TableName{Schema: t.Schema, Name: t.Name}] = i
	}
	for changed := true; changed; {
		changed = false
		for _, r := range p.m.Refs {
			from, ok1 := index[r.From.Table]
			to, ok2 := index[r.To.Table]
			if !ok1 || !ok2 || from == to {
				continue
			}
			for j := range p.tables[from].Columns {
				c := &p.tables[from].Columns[j]
				pr := &p.out[from].Proposals[j]
				if !isTime(c.Type) || c.Type.IsArray() || pr.cat == catBirth || pr.cat == catDeath {
					continue
				}
				if c.PrimaryKey {
					// A key may only be kept or hashed, and hash does not fit
					// times: say so where the chain would truncate it.
					if unit, next := finest(to, isDate(c)); unit != "" && !housekeeping(next) && pr.Rule == "keep" && !strings.Contains(pr.Reason, "chain") {
						pr.Reason = "part of the primary key (only keep or hash apply, and hash does not fit " + c.Type.String() +
							"): kept raw, although it is in the same chain of events as " + r.To.Table.QualifiedName() + "." +
							schema.QuoteIdent(next) + ", truncated to the " + unit + "; review"
					}
					continue
				}
				own := truncUnit(pr.Rule)
				if pr.Rule != "keep" && own == "" {
					continue // masked otherwise (dropped, noised)
				}
				unit, next := finest(to, isDate(c))
				if unit == "" || unitRank[unit] <= unitRank[own] || isDate(c) && unitRank[unit] < unitRank["month"] {
					continue
				}
				*pr = Proposal{Rule: "{truncate: " + unit + "}", cat: pr.cat,
					Reason: "same chain of events as " + r.To.Table.QualifiedName() + "." + schema.QuoteIdent(next) + ", truncated to the " + unit + ": truncated alike"}
				changed = true
			}
		}
	}
}

// housekeeping reports whether a time column records the row's own
// bookkeeping (last_update, created_at) rather than an event.
func housekeeping(name string) bool {
	w := newWords(name)
	return w.has("update", "updated", "modified", "created", "inserted", "changed", "synced") || w.contains("lastupdate", "lastmodified")
}

// derived drops a derived column (a tsvector, a column a trigger computes
// from others) when a column it is built from is masked: it carries its
// inputs' words or values. A tsvector whose inputs are unknown is built
// from any text column of its table.
func (p *proposer) derived() {
	for i, t := range p.tables {
		for j, c := range t.Columns {
			inputs := c.DerivedFrom
			if len(inputs) == 0 && c.Type.Name == "tsvector" {
				for _, f := range t.Columns {
					if isText(f.Type) {
						inputs = append(inputs, f.Name)
					}
				}
			}
			pr := &p.out[i].Proposals[j]
			if len(inputs) == 0 || pr.Rule == "drop" || c.PrimaryKey {
				continue
			}
			var masked []string
			for _, in := range inputs {
				if ip, _, ok := p.proposal(colOf(t, in)); ok && ip.Masks() && in != c.Name {
					masked = append(masked, schema.QuoteIdent(in))
				}
			}
			if len(masked) == 0 {
				continue
			}
			how := "derived"
			if c.DerivedHow != "" {
				how = c.DerivedHow
			}
			*pr = Proposal{Rule: "drop", cat: catFreeText,
				Reason: how + " from " + strings.Join(masked, ", ") + ", masked: it carries their values, so it is dropped"}
		}
	}
}

// references gives every column that references a key the key's rule,
// following chains to the final key.
func (p *proposer) references() {
	// root follows references from c to the key at the end of the chain.
	root := func(c refs.Column) (refs.Column, bool) {
		seen := map[refs.Column]bool{c: true}
		cur, moved := c, false
		for {
			next, found := refs.Column{}, false
			for _, r := range p.m.From(cur) {
				if _, _, ok := p.proposal(r.To); ok && !seen[r.To] {
					next, found = r.To, true
					break
				}
			}
			if !found {
				return cur, moved
			}
			seen[next] = true
			cur, moved = next, true
		}
	}
	members := map[refs.Column][]refs.Column{}
	var keys []refs.Column
	for _, r := range p.m.Refs {
		if _, _, ok := p.proposal(r.From); !ok {
			continue
		}
		k, ok := root(r.From)
		if !ok {
			continue
		}
		if _, seen := members[k]; !seen {
			keys = append(keys, k)
		}
		if !slices.Contains(members[k], r.From) {
			members[k] = append(members[k], r.From)
		}
	}
	for _, k := range keys {
		kp, kc, _ := p.proposal(k)
		if kp.Rule == "keep" {
			for _, f := range members[k] {
				fp, _, _ := p.proposal(f)
				if fp.cat != catNone && fp.Masks() {
					if hashable(*kc) {
						*kp = Proposal{Rule: "hash", cat: fp.cat, Reason: "kept raw it would show what " + f.String() +
							", which references it, holds (" + what[fp.cat] + "): hashed, and every reference with it"}
					}
					break
				}
			}
		}
		for _, f := range members[k] {
			fp, _, _ := p.proposal(f)
			if kp.Rule == "keep" && fp.cat != catNone && fp.Masks() {
				// The key could not be raised (its type does not fit hash):
				// lowering this column to keep would put its personal values
				// on the replica raw. It keeps its own rule, and the file
				// says the join is given up (references: none) so that
				// validate accepts the difference.
				why := "references " + k.String() + ", kept raw (its type does not fit hash): masked on its own, so this join is not kept"
				fp.Reason = why + "; " + fp.Reason
				ij := p.at[f]
				p.out[ij[0]].NotJoins = append(p.out[ij[0]].NotJoins, NotJoin{Column: f.Name, Why: why})
				continue
			}
			reason := "references " + k.String() + ": the same rule, so that joins still work"
			if kp.Rule == "keep" {
				reason = "references " + k.String() + ", which is kept: the same rule, so that joins still work"
			}
			*fp = Proposal{Rule: kp.Rule, Reason: reason, cat: kp.cat}
		}
	}
}
