package rules

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"pgveil/schema"
	"pgveil/transform"
)

// Compile checks the rules against the source catalog and builds the
// masking plan: every table must exist, every ruled column must exist,
// every column of a ruled table must have a rule (deny by default), and
// every rule must build for its column's type. keys nil derives them from
// the secret; reg nil is transform.Builtin(). It returns the plan and the
// warnings; when there are errors, the plan is nil and the error is
// Problems holding every error and warning, sorted by position.
func (c *Config) Compile(cat schema.Tables, keys *transform.Keys, reg *transform.Registry) (*transform.Plan, Problems, error) {
	return c.compile(cat, keys, reg, false)
}

// CompileAllowingUnruled is Compile for a running pipeline, which must
// survive schema changes in production: a column no rule names (added
// since the rules were written) is a warning, and the plan leaves it out,
// so it is neither published nor replicated until a rule names it; a
// column or table the rules name that the source no longer has (dropped
// or renamed) is a warning too, and the plan goes on without it.
func (c *Config) CompileAllowingUnruled(cat schema.Tables, keys *transform.Keys, reg *transform.Registry) (*transform.Plan, Problems, error) {
	return c.compile(cat, keys, reg, true)
}

func (c *Config) compile(cat schema.Tables, keys *transform.Keys, reg *transform.Registry, allowUnruled bool) (*transform.Plan, Problems, error) {
	if reg == nil {
		reg = transform.Builtin()
	}
	if keys == nil {
		k, err := c.Keys()
		if err != nil {
			return nil, nil, fmt.Errorf("compiling %s: %w", c.File, err)
		}
		keys = k
	}
	var probs Problems
	add := func(line, col int, table, column, msg string, warning bool) {
		probs = append(probs, Problem{File: c.File, Line: line, Col: col, Table: table, Column: column, Msg: msg, Warning: warning})
	}
	tables := make([]*transform.TablePlan, 0, len(c.Tables))
	for _, tr := range c.Tables {
		if tr == nil {
			continue
		}
		tname := schema.Qualified(tr.Schema, tr.Name)
		t := cat.Lookup(tr.Schema, tr.Name)
		if t == nil {
			msg := "table not found in the source database"
			if near := closestTable(cat, tr.Schema, tr.Name); near != "" {
				msg += "; did you mean " + near + "?"
			}
			if allowUnruled {
				msg += " (dropped or renamed in production?): not replicated; remove or rename its rules"
			}
			add(tr.Line, tr.Col, tname, "", msg, allowUnruled)
			probs[len(probs)-1].Kind = KindMissing
			continue
		}
		ruled := make(map[string]*ColumnRule, len(tr.Columns))
		for _, cr := range tr.Columns {
			if cr != nil && t.Column(cr.Name) != nil {
				ruled[cr.Name] = cr
			}
		}
		for _, cr := range tr.Columns {
			if cr == nil || ruled[cr.Name] != nil {
				continue
			}
			msg := "column not found"
			if near := closestColumn(t, cr.Name, ruled); near != "" {
				msg += "; did you mean " + near + "?"
			}
			if slices.Contains(t.Generated, cr.Name) {
				msg = "generated column: PostgreSQL does not publish generated columns, so the replica cannot have it; remove its rule (a view on the replica can compute it)"
			}
			if allowUnruled {
				msg += " (dropped or renamed in production?): the replica goes on without it; remove or rename its rule"
			}
			add(cr.Line, cr.Col, tname, schema.QuoteIdent(cr.Name), msg, allowUnruled)
			probs[len(probs)-1].Kind = KindMissing
		}
		tp := &transform.TablePlan{Table: t, Where: tr.Where}
		for _, col := range t.Columns {
			cname := schema.QuoteIdent(col.Name)
			cr := ruled[col.Name]
			if cr == nil {
				msg := "column has no rule; deny by default: add a rule (for example drop)"
				if allowUnruled {
					msg = "column has no rule: not replicated until a rule names it"
				}
				add(tr.Line, tr.Col, tname, cname, msg, allowUnruled)
				probs[len(probs)-1].Kind = KindUnruled
				continue
			}
			if w := reg.Warning(cr.Rule, col); w != "" {
				add(cr.Rule.Line, cr.Rule.Col, tname, cname, w, true)
			}
			tf, err := reg.Build(cr.Rule, col, keys)
			if err != nil {
				line, col := cr.Rule.Line, cr.Rule.Col
				if pe := (*transform.PosError)(nil); errors.As(err, &pe) && pe.Line > 0 {
					line, col = pe.Line, pe.Col
				}
				add(line, col, tname, cname, err.Error(), false)
				continue
			}
			if transform.IsDrop(tf) {
				tp.Dropped = append(tp.Dropped, col.Name)
			} else {
				tp.Columns = append(tp.Columns, transform.ColumnPlan{Column: col, Rule: cr.Rule, Transformer: tf})
			}
		}
		tables = append(tables, tp)
	}
	probs = append(probs, c.tenantTypeProblems(cat)...)
	probs = probs.sorted()
	if len(probs.Errors()) > 0 {
		return nil, probs.warnings(), probs
	}
	return transform.NewPlan(tables), probs.warnings(), nil
}

// closestColumn suggests a column of t, not already ruled, whose name is
// within edit distance 2 of name, ignoring case.
func closestColumn(t *schema.Table, name string, ruled map[string]*ColumnRule) string {
	names := make([]string, 0, len(t.Columns))
	for _, c := range t.Columns {
		if ruled[c.Name] == nil {
			names = append(names, c.Name)
		}
	}
	if near := closest(name, names); near != "" {
		return schema.QuoteIdent(near)
	}
	return ""
}

// closestTable suggests a catalog table with the same name in another
// schema, or one within edit distance 2 of schema.name, ignoring case.
func closestTable(cat schema.Tables, schemaName, name string) string {
	keys := make([]string, 0, len(cat))
	byKey := make(map[string]*schema.Table, len(cat))
	for k, t := range cat {
		key := k.Schema + "." + k.Name
		keys = append(keys, key)
		byKey[key] = t
	}
	sort.Strings(keys)
	for _, k := range keys {
		if t := byKey[k]; strings.EqualFold(t.Name, name) {
			return schema.Qualified(t.Schema, t.Name)
		}
	}
	if near := closest(schemaName+"."+name, keys); near != "" {
		t := byKey[near]
		return schema.Qualified(t.Schema, t.Name)
	}
	return ""
}

// closest returns the candidate nearest to s by edit distance, ignoring
// case, when it is at most 2 away; the first one wins a tie.
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	ls := []rune(strings.ToLower(s))
	for _, c := range candidates {
		if d := editDistance(ls, []rune(strings.ToLower(c)), bestDist); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, or limit when it
// is at least limit.
func editDistance(a, b []rune, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

// Names reports whether c has rules for the table (and, when p names one,
// the column) a problem is about. A running pipeline uses it to tell a
// name that went missing in production, which the old rules named too,
// from a new rule that names something that is not there (a typo).
func (c *Config) Names(p Problem) bool {
	for _, tr := range c.Tables {
		if tr == nil || schema.Qualified(tr.Schema, tr.Name) != p.Table {
			continue
		}
		if p.Column == "" {
			return true
		}
		for _, cr := range tr.Columns {
			if cr != nil && schema.QuoteIdent(cr.Name) == p.Column {
				return true
			}
		}
	}
	return false
}
