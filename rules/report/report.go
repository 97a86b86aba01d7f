// Package report builds pgveil's privacy report of a replica: per
// replicated table, the columns copied raw (rule keep), the
// quasi-identifiers whose meaning the rules leave in the replica (birth
// dates cut to the year, postal codes cut to three characters, cities
// kept), and the k-anonymity of sets of them measured in the replica.
//
// The k-anonymity of a set of columns is the size of the smallest group
// of rows sharing the same values of those columns: with k = 1 some row is
// the only one with its values, and whoever knows them about a person
// (from another source) finds that person's row.
//
// The report is in two parts. Analyze and NewSet work from the rules
// alone (no database): what is kept, what is a quasi-identifier, which
// sets to measure. Measure runs one GROUP BY query per set in a read-only
// transaction on the analytics database and reads back counts only: no
// value of the database ever reaches the report, its errors included.
package report

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"pgveil/rules"
	"pgveil/rules/scan"
	"pgveil/schema"
	"pgveil/transform"
)

// Table is what the rules of one replicated table leave in the replica.
type Table struct {
	Schema, Name string
	// KeptRaw are the columns whose rule is keep, in file order.
	KeptRaw []string
	// Quasi are the quasi-identifiers whose rule leaves their meaning in
	// the replica (see LeavesMeaning), in file order.
	Quasi []Quasi
	// Lookup is true for a table referenced by another table of the
	// rules that holds no person (see AnalyzeAcross): its own
	// quasi-identifiers are measured through the tables in Through, not
	// on their own (one row per value: k = 1 by construction). A lookup
	// table no set reaches (Through empty: too many references away) is
	// not measured; the report says so.
	Lookup  bool
	Through []string
	// Joined is the table's quasi-identifiers with those of the rows it
	// references, measured together (AnalyzeAcross); nil when the
	// references add none.
	Joined *Set
	// rule is the table's rules, for checking the columns of a set.
	rule *rules.TableRule
}

// Quasi is a quasi-identifier column and the rule that masks it.
type Quasi struct {
	Column string
	Kind   string // one of scan's Quasi kinds: birth_date, postal_code, ...
	Rule   string // the transformer's name: keep, truncate, ...
}

// QualifiedName is schema.name, each part quoted where SQL needs it.
func (t Table) QualifiedName() string { return schema.Qualified(t.Schema, t.Name) }

// Analyze lists, for every table of the rules in file order, its kept
// columns and its quasi-identifiers.
func Analyze(cfg *rules.Config) []Table {
	out := make([]Table, 0, len(cfg.Tables))
	for _, tr := range cfg.Tables {
		if tr == nil {
			continue
		}
		t := Table{Schema: tr.Schema, Name: tr.Name, rule: tr}
		for _, c := range tr.Columns {
			if c.Rule.Name == "keep" {
				t.KeptRaw = append(t.KeptRaw, c.Name)
			}
			if kind, ok := scan.QuasiIdentifier(c.Name); ok && LeavesMeaning(c.Rule) {
				t.Quasi = append(t.Quasi, Quasi{Column: c.Name, Kind: kind, Rule: c.Rule.Name})
			}
		}
		out = append(out, t)
	}
	return out
}

// LeavesMeaning reports whether a column masked by rule still carries
// its meaning in the replica, so that its values can be matched with what
// is known of a person elsewhere: keep copies it, truncate, partial and
// noise coarsen it, json keeps the document but the paths it names. A
// hashed or faked value is a pseudonym with no meaning of its own, null
// and redact write one value for every row, drop leaves the column out.
// A transformer the report does not know is taken to leave meaning.
func LeavesMeaning(rule transform.Rule) bool {
	switch rule.Name {
	case "hash", "fake", "null", "redact", "drop":
		return false
	}
	return true
}

// Set is a set of columns of one table whose k-anonymity is measured.
type Set struct {
	Schema, Table string
	Columns       []string
	// Default is true for the set the report chose (every
	// quasi-identifier of the table), false for one asked for.
	Default bool
	// Within, when set, is the table's tenant column: rows are grouped
	// within each tenant, as a tenant's role sees the table (its own rows
	// only), so k is the smallest group any tenant sees.
	Within string
	// Steps and Joined, for a set measured across references, are the
	// joins from the table and the quasi-identifiers of the joined
	// tables (see AnalyzeAcross); Columns are the table's own.
	Steps  []Step
	Joined []JoinedColumn
}

// QualifiedTable is the set's table as schema.name, quoted where SQL
// needs it.
func (s Set) QualifiedTable() string { return schema.Qualified(s.Schema, s.Table) }

// DefaultSet is the set of all the quasi-identifiers of t; ok is false
// when t has none.
func DefaultSet(t Table) (s Set, ok bool) {
	if len(t.Quasi) == 0 {
		return Set{}, false
	}
	cols := make([]string, len(t.Quasi))
	for i, q := range t.Quasi {
		cols[i] = q.Column
	}
	return Set{Schema: t.Schema, Table: t.Name, Columns: cols, Default: true}, true
}

// NewSet checks a set of columns asked for on table tr: every column must
// be one the rules name and one the replica holds (not dropped), and
// none may be given twice. The error names the table and the columns.
func NewSet(tr *rules.TableRule, columns []string) (Set, error) {
	name := schema.Qualified(tr.Schema, tr.Name)
	if len(columns) == 0 {
		return Set{}, fmt.Errorf("%s: no column given: write TABLE=column,column", name)
	}
	var unknown, dropped, twice []string
	seen := map[string]bool{}
	for _, c := range columns {
		if seen[c] {
			twice = append(twice, c)
			continue
		}
		seen[c] = true
		switch r := columnRule(tr, c); {
		case r == nil:
			unknown = append(unknown, c)
		case r.Rule.Name == "drop":
			dropped = append(dropped, c)
		}
	}
	var probs []string
	if len(unknown) > 0 {
		probs = append(probs, fmt.Sprintf("%s has no column %s in the rules (columns: %s)", name, schema.QuoteIdents(unknown), strings.Join(replicated(tr), ", ")))
	}
	if len(dropped) > 0 {
		probs = append(probs, fmt.Sprintf("%s: column %s is dropped by the rules: not in the replica", name, schema.QuoteIdents(dropped)))
	}
	if len(twice) > 0 {
		probs = append(probs, fmt.Sprintf("%s: column %s given twice", name, schema.QuoteIdents(twice)))
	}
	if len(probs) > 0 {
		return Set{}, errors.New(strings.Join(probs, "; "))
	}
	return Set{Schema: tr.Schema, Table: tr.Name, Columns: slices.Clone(columns)}, nil
}

// Skip is the set asked for to measure nothing on table tr: its default
// set is then left out too.
func Skip(tr *rules.TableRule) Set { return Set{Schema: tr.Schema, Table: tr.Name} }

// Sets is what to measure: for each table in order, the sets asked for
// on it (once each, in the order given; the same columns in another order
// are the same set), or, when none was, its default set if it has one
// (but for a lookup table, measured through others) and then its set
// across references (Table.Joined). A Skip asked for a table stands for
// "nothing": it is not measured.
func Sets(tables []Table, asked []Set) []Set {
	var out []Set
	for _, t := range tables {
		var mine []Set
		seen := map[string]bool{}
		skipped := false
		for _, s := range asked {
			if s.Schema != t.Schema || s.Table != t.Name {
				continue
			}
			if len(s.Columns) == 0 {
				skipped = true
				continue
			}
			key := slices.Sorted(slices.Values(s.Columns))
			if k := strings.Join(key, "\x00"); !seen[k] {
				seen[k] = true
				mine = append(mine, s)
			}
		}
		if len(mine) == 0 && !skipped {
			if s, ok := DefaultSet(t); ok && !t.Lookup {
				mine = append(mine, s)
			}
			if t.Joined != nil {
				mine = append(mine, *t.Joined)
			}
		}
		out = append(out, mine...)
	}
	return out
}

// WithinTenants adds, after each set on a table that tenants read through
// a tenant column (cfg's tenancy section), the same set measured within
// each tenant (Set.Within). A tenant's dashboards see only its rows: a
// group of 50 rows in the replica may be one of 2 rows for the tenant
// that holds it. Without a tenancy section it returns sets as they are.
func WithinTenants(cfg *rules.Config, sets []Set) []Set {
	if cfg.Tenancy == nil {
		return sets
	}
	out := make([]Set, 0, 2*len(sets))
	for _, s := range sets {
		out = append(out, s)
		for _, tr := range cfg.Tables {
			if tr == nil || tr.Schema != s.Schema || tr.Name != s.Table {
				continue
			}
			if col, _ := cfg.TenantOf(tr); col != "" && !slices.Contains(s.Columns, col) {
				w := s
				w.Columns, w.Within = slices.Clone(s.Columns), col
				out = append(out, w)
			}
		}
	}
	return out
}

// columnRule is the rule of column name in tr, or nil.
func columnRule(tr *rules.TableRule, name string) *rules.ColumnRule {
	for _, c := range tr.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// replicated lists the columns of tr the replica holds.
func replicated(tr *rules.TableRule) []string {
	var out []string
	for _, c := range tr.Columns {
		if c.Rule.Name != "drop" {
			out = append(out, schema.QuoteIdent(c.Name))
		}
	}
	return out
}
