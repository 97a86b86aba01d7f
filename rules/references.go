package rules

import (
	"fmt"
	"pgveil/schema"

	"gopkg.in/yaml.v3"
)

// refNone is the value of a reference that says a column is not a join.
const refNone = "none"

// references reads a table's `references:`, a map from the table's
// columns to the key column each refers to (schema.table.column, or
// table.column in schema public) or none. Whether the columns exist is
// checked once every table is read (checkReferences).
func (p *parser) references(f entry, at loc) []*Reference {
	n := p.deref(f.value, at)
	if isNull(n) {
		p.addf(f.key, at, "references must map columns to the key they refer to (customer_id: public.customer.customer_id) or to none; leave it out when there is none")
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.addf(n, at, "references must be a map of column names to key columns (schema.table.column) or none, not %s", kindName(n))
		return nil
	}
	var out []*Reference
	for _, e := range p.entries(n, at) {
		name, err := parseColumnName(e.name)
		cat := at
		if err != nil {
			p.addf(e.key, at, "references: %v", err)
		} else {
			cat.column = schema.QuoteIdent(name)
		}
		r, ok := p.referenceTarget(e, cat)
		if err != nil || !ok || e.dup {
			continue
		}
		r.Column, r.Line, r.Col = name, e.key.Line, e.key.Column
		out = append(out, r)
	}
	return out
}

// referenceTarget reads the value of one reference: none or a key column.
func (p *parser) referenceTarget(e entry, at loc) (*Reference, bool) {
	s, ok := p.str(e.value, "a reference", at)
	if !ok {
		return nil, false
	}
	where := s.n
	if where == nil {
		where = e.key
	}
	r := &Reference{ValueLine: where.Line, ValueCol: where.Column}
	if isNull(s.n) || s.value == "" {
		p.addf(where, at, "a reference needs the key column it refers to (schema.table.column) or none (not a join: masked on its own)")
		return nil, false
	}
	if s.value == refNone {
		r.None = true
		return r, true
	}
	parts, err := parseName(s.value)
	if err == nil && (len(parts) < 2 || len(parts) > 3) {
		err = fmt.Errorf("write schema.table.column or table.column")
	}
	if err != nil {
		p.addf(where, at, "malformed key column %s: %v (or none: not a join)", show(s), err)
		return nil, false
	}
	if len(parts) == 2 {
		parts = append([]string{"public"}, parts...)
	}
	r.Schema, r.Table, r.To = parts[0], parts[1], parts[2]
	return r, true
}

// checkReferences checks every table's references against the rules: the
// referencing column is one of the table's columns, and the key column is
// a column of a table the rules replicate (a join to a table that is not
// replicated cannot be kept, so declaring it says nothing). Online, the
// rules' tables and columns are checked against the source, so the key
// then exists too.
func (p *parser) checkReferences(cfg *Config) {
	byName := make(map[[2]string]*TableRule, len(cfg.Tables))
	for _, t := range cfg.Tables {
		byName[[2]string{t.Schema, t.Name}] = t
	}
	for _, t := range cfg.Tables {
		at := loc{table: schema.Qualified(t.Schema, t.Name)}
		for _, r := range t.References {
			at.column = schema.QuoteIdent(r.Column)
			if !p.named[t][r.Column] {
				p.addAt(r.Line, r.Col, at, fmt.Sprintf("references names column %s, which is not in the table's columns: a reference is about a column the rules give a rule; add it to columns or fix the name", schema.QuoteIdent(r.Column)))
				continue
			}
			if r.None {
				continue
			}
			key := schema.TableName{Schema: r.Schema, Name: r.Table}.QualifiedName() + "." + schema.QuoteIdent(r.To)
			kt := byName[[2]string{r.Schema, r.Table}]
			switch {
			case kt == nil:
				p.addAt(r.ValueLine, r.ValueCol, at, fmt.Sprintf("the key %s is in a table these rules do not replicate: add the table under tables, or write none if this column is not a join", key))
			case !p.named[kt][r.To]:
				p.addAt(r.ValueLine, r.ValueCol, at, fmt.Sprintf("the key %s is not in the columns of %s: name a column the rules give a rule", key, schema.Qualified(kt.Schema, kt.Name)))
			case kt == t && r.To == r.Column:
				p.addAt(r.ValueLine, r.ValueCol, at, "a column cannot refer to itself: name the key column of another table (or another column of this one), or none")
			}
		}
	}
}
