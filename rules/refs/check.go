package refs

import (
	"fmt"
	"slices"
	"strconv"

	"pgveil/rules"
	"pgveil/schema"
	"pgveil/transform"
)

// WithRules returns a copy of m completed by the rules file's
// `references:`: each declared reference is added with Origin Rules (a
// pair the catalog already has keeps the catalog's origin), replacing the
// references inferred from the same column to another key (the rules say
// what the column refers to); and every reference from a column declared
// `none` is removed, whatever its origin: the column is masked on its own,
// on purpose. m is not changed. WithRules is idempotent.
func (m *Model) WithRules(cfg *rules.Config) *Model {
	out := &Model{Refs: slices.Clone(m.Refs), Unconfirmed: slices.Clone(m.Unconfirmed)}
	none := map[Column]bool{}
	declared := map[Column][]Column{}
	for _, t := range cfg.Tables {
		table := schema.TableName{Schema: t.Schema, Name: t.Name}
		for _, r := range t.References {
			from := Column{Table: table, Name: r.Column}
			if r.None {
				none[from] = true
				continue
			}
			to := Column{Table: schema.TableName{Schema: r.Schema, Name: r.Table}, Name: r.To}
			declared[from] = append(declared[from], to)
		}
	}
	out.Refs = slices.DeleteFunc(out.Refs, func(r Ref) bool {
		if none[r.From] {
			return true
		}
		tos, ok := declared[r.From]
		return ok && r.Origin == Inferred && !slices.Contains(tos, r.To)
	})
	for from, tos := range declared {
		if none[from] {
			continue
		}
		for _, to := range tos {
			out.Add(Ref{From: from, To: to, Origin: Rules})
		}
	}
	return out
}

// KindReference marks a Check problem: the two sides of a reference are
// masked differently.
const KindReference = "reference"

// Check returns a problem for every reference of m (completed by the
// rules' references, see WithRules) whose two tables the rules replicate
// and whose two columns are masked differently: a join on them finds
// nothing on the replica, and a raw id beside a masked key undoes the
// key's mask. The referencing column must have the same rule with the same
// parameters as the key, except when it is dropped or null (nothing is
// left to join or to identify). A key dropped or null while the
// referencing column is kept or masked is a problem too: a raw id whose
// key is gone still identifies. A reference whose referencing table the
// rules do not replicate is fine; one whose key table they do not
// replicate is not checked. Columns without a rule are Compile's problem,
// not Check's. One problem per pair, all at once, located at the
// referencing column, naming the key's position too.
func Check(cfg *rules.Config, m *Model) rules.Problems {
	if m == nil {
		m = &Model{}
	}
	m = m.WithRules(cfg)
	tables := make(map[schema.TableName]*rules.TableRule, len(cfg.Tables))
	for _, t := range cfg.Tables {
		tables[schema.TableName{Schema: t.Schema, Name: t.Name}] = t
	}
	var out rules.Problems
	for _, r := range m.Refs {
		fc, tc := columnRule(tables[r.From.Table], r.From.Name), columnRule(tables[r.To.Table], r.To.Name)
		if fc == nil || tc == nil || gone(fc.Rule) {
			continue
		}
		var msg string
		switch {
		case gone(tc.Rule):
			msg = fmt.Sprintf("masked with %s, but the key it references, %s (%s), is %s at %s: %s. Drop this column too, or give the key this column's rule; or, if the difference is deliberate, write references: {%s: none} under %s",
				fc.Rule.Short(), r.To, origin(cfg, r), tc.Rule.Short(), at(cfg, tc),
				goneConsequence(fc.Rule), schema.QuoteIdent(r.From.Name), r.From.Table.QualifiedName())
		case !transform.SameMasking(fc.Rule, tc.Rule):
			msg = fmt.Sprintf("masked with %s, but it references %s (%s), masked with %s at %s: %s. Use %s here; or, if the difference is deliberate, write references: {%s: none} under %s",
				fc.Rule.Short(), r.To, origin(cfg, r), tc.Rule.Short(), at(cfg, tc),
				differConsequence(r, fc.Rule), ruleToUse(cfg, tc), schema.QuoteIdent(r.From.Name), r.From.Table.QualifiedName())
		default:
			continue
		}
		out = append(out, rules.Problem{
			File: cfg.File, Line: fc.Line, Col: fc.Col,
			Table: r.From.Table.QualifiedName(), Column: schema.QuoteIdent(r.From.Name),
			Msg: msg, Kind: KindReference,
		})
	}
	slices.SortStableFunc(out, func(a, b rules.Problem) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return out
}

// columnRule finds a column's rule in a table's rules (nil for either).
func columnRule(t *rules.TableRule, name string) *rules.ColumnRule {
	if t == nil {
		return nil
	}
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// gone reports whether a rule leaves no value on the replica.
func gone(r transform.Rule) bool { return r.Name == "drop" || r.Name == "null" }

// ruleToUse says which rule the referencing column needs: the key's.
func ruleToUse(cfg *rules.Config, key *rules.ColumnRule) string {
	if len(key.Rule.Args) == 0 {
		return key.Rule.Name
	}
	return fmt.Sprintf("the key's rule (%s with the same parameters, copied from %s)", key.Rule.Name, at(cfg, key))
}

// at is FILE:LINE:COL of a column's key in the rules file.
func at(cfg *rules.Config, c *rules.ColumnRule) string {
	return cfg.File + ":" + strconv.Itoa(c.Line) + ":" + strconv.Itoa(c.Col)
}

// origin says where a reference comes from, for a message.
func origin(cfg *rules.Config, r Ref) string {
	fk := "foreign key"
	if r.Constraint != "" {
		fk += " " + schema.QuoteIdent(r.Constraint)
	}
	switch r.Origin {
	case Declared:
		return fk
	case Partition:
		return fk + " on the partitions"
	case Inferred:
		return "inferred: " + r.Why
	case Rules:
		for _, t := range cfg.Tables {
			if t.Schema != r.From.Table.Schema || t.Name != r.From.Table.Name {
				continue
			}
			for _, d := range t.References {
				if d.Column == r.From.Name {
					return fmt.Sprintf("declared in the rules at %s:%d:%d", cfg.File, d.Line, d.Col)
				}
			}
		}
		return "declared in the rules"
	}
	return r.Origin.String()
}

// differConsequence says what two different masks of a reference do.
func differConsequence(r Ref, from transform.Rule) string {
	s := fmt.Sprintf("joins from %s to %s find no rows on the replica", r.From.Table.QualifiedName(), r.To.Table.QualifiedName())
	if from.Name == "keep" {
		s += ", and the raw values here undo the key's mask"
	}
	return s
}

// goneConsequence says what a value whose key is gone still does.
func goneConsequence(from transform.Rule) string {
	if from.Name == "keep" {
		return "a raw id whose key is gone still identifies"
	}
	return "a masked id whose key is gone still links the rows that share it, with nothing to join"
}
