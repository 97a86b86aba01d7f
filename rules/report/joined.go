package report

import (
	"slices"
	"strings"

	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/rules/scan"
	"pgveil/schema"
	"pgveil/transform"
)

// Quasi-identifiers rarely sit in one table. A customer's row holds a
// birth date and an address_id; the address holds the postal code and a
// city_id; the city its name and a country_id. Measured table by table,
// each set looks safe (thousands of customers share a birth year) or
// meaningless (every city is its own group: one row per city), while
// whoever reads the replica joins them back: birth year, postal code,
// city and country together single people out. So the report follows the
// references of the model (refs.Model) from each table, many-to-one
// (From → To: each row meets at most one row of the referenced table),
// and measures the table's quasi-identifiers together with those of the
// rows it references, as one set joined in the replica.
//
// A table whose rows describe rows of other tables (visits, payments,
// rentals) and that has no quasi-identifier of its own is not measured
// across references: its groups would count events, not people (a
// patient with ten visits is a group of ten), and the people it
// references are measured in their own table.
//
// A table referenced by others that holds no person (country, city,
// language, category) is a lookup table: its rows are values, one row
// each, and its own k is 1 by construction. Its quasi-identifiers are
// measured only through the tables that reference it.

// JoinOptions bound the sets measured across references.
type JoinOptions struct {
	// MaxDepth is the most references followed from a table:
	// customer → address → city → country is 3. 0 means 3.
	MaxDepth int
	// MaxColumns is the most quasi-identifiers of referenced tables
	// added to a table's set, nearest first (a wide set makes every row
	// unique and says nothing more). 0 means 8.
	MaxColumns int
}

func (o JoinOptions) depth() int {
	if o.MaxDepth <= 0 {
		return 3
	}
	return o.MaxDepth
}

func (o JoinOptions) columns() int {
	if o.MaxColumns <= 0 {
		return 8
	}
	return o.MaxColumns
}

// Step is one many-to-one join of a set measured across references: the
// row of Table whose key columns To equal the columns From of the row of
// step Parent (-1: the set's own table).
type Step struct {
	Parent        int
	From          []string
	Schema, Table string
	To            []string
	// Label names the step's table in the report: its name, or
	// schema.name when two steps' tables have the same name.
	Label string
}

// JoinedColumn is a quasi-identifier of a referenced table in a set.
type JoinedColumn struct {
	Step   int // index in Set.Steps
	Column string
	Kind   string
}

// Path is how a set reaches its joined tables, each chain from the set's
// table to a table no other step continues from, separated by commas:
// "customer → address → city → country". "" for a set of one table.
func (s Set) Path() string {
	if len(s.Steps) == 0 {
		return ""
	}
	parent := make([]bool, len(s.Steps))
	for _, st := range s.Steps {
		if st.Parent >= 0 {
			parent[st.Parent] = true
		}
	}
	var chains []string
	for i := range s.Steps {
		if parent[i] {
			continue
		}
		var names []string
		for j := i; j >= 0; j = s.Steps[j].Parent {
			names = append(names, s.Steps[j].Label)
		}
		names = append(names, s.Table)
		slices.Reverse(names)
		chains = append(chains, strings.Join(names, " → "))
	}
	return strings.Join(chains, ", ")
}

// Labels names every column of the set: the table's own by name, a
// joined one as label.column ("city.city").
func (s Set) Labels() []string {
	out := slices.Clone(s.Columns)
	for _, j := range s.Joined {
		out = append(out, s.Steps[j.Step].Label+"."+j.Column)
	}
	return out
}

// Across reports whether the set joins referenced tables.
func (s Set) Across() bool { return len(s.Steps) > 0 }

// NamingModel is the reference model the rules' names give, for when no
// catalog is at hand (offline): a column <a>_id or <singular of a>_id
// refers to a.id (order_id and orders_id to orders.id), for every pair
// of tables of the rules.
func NamingModel(cfg *rules.Config) *refs.Model {
	m := &refs.Model{}
	for _, a := range cfg.Tables {
		if a == nil || columnRule(a, "id") == nil {
			continue
		}
		for _, b := range cfg.Tables {
			if b == nil || b == a {
				continue
			}
			for _, name := range []string{refs.Singular(a.Name) + "_id", a.Name + "_id"} {
				if columnRule(b, name) != nil {
					m.Add(refs.Ref{From: modelColumn(b, name), To: modelColumn(a, "id"), Origin: refs.Inferred,
						Why: "named after " + schema.Qualified(a.Schema, a.Name)})
					break
				}
			}
		}
	}
	return m
}

func modelColumn(t *rules.TableRule, name string) refs.Column {
	return refs.Column{Table: refs.Table(t.Schema, t.Name), Name: name}
}

// edge is one reference between two tables of the rules, all its column
// pairs together (a composite foreign key is one edge).
type edge struct {
	from, to *rules.TableRule
	fromCols []string
	toCols   []string
	// joins is true when every column pair is masked alike with keep or
	// hash: equal keys in production are equal in the replica, so the
	// replica's join finds the same rows.
	joins bool
}

// edges groups the model's references between tables of the rules into
// edges, in the model's order. A reference to a table or column the rules
// do not name is left out: the replica does not hold it.
func edges(cfg *rules.Config, m *refs.Model) []edge {
	if m == nil {
		return nil
	}
	byName := map[schema.TableName]*rules.TableRule{}
	for _, t := range cfg.Tables {
		if t != nil {
			byName[refs.Table(t.Schema, t.Name)] = t
		}
	}
	var out []edge
	index := map[string]int{} // constraint key → index in out
	for _, r := range m.Refs {
		from, to := byName[r.From.Table], byName[r.To.Table]
		if from == nil || to == nil {
			continue
		}
		fc, tc := columnRule(from, r.From.Name), columnRule(to, r.To.Name)
		if fc == nil || tc == nil {
			continue
		}
		joins := keyMasking(fc.Rule) && transform.SameMasking(fc.Rule, tc.Rule)
		if r.Constraint != "" {
			key := r.From.Table.QualifiedName() + "\x00" + r.To.Table.QualifiedName() + "\x00" + r.Constraint
			if i, ok := index[key]; ok {
				out[i].fromCols = append(out[i].fromCols, r.From.Name)
				out[i].toCols = append(out[i].toCols, r.To.Name)
				out[i].joins = out[i].joins && joins
				continue
			}
			index[key] = len(out)
		}
		out = append(out, edge{from: from, to: to, fromCols: []string{r.From.Name}, toCols: []string{r.To.Name}, joins: joins})
	}
	return out
}

// keyMasking reports whether a rule keeps keys joinable: keep, or hash
// (deterministic with the secret).
func keyMasking(r transform.Rule) bool { return r.Name == "keep" || r.Name == "hash" }

// personKinds are the quasi-identifiers only a person has: a table with
// one holds people, whatever its rule (a hashed birth date is still a
// person's).
var personKinds = map[string]bool{
	scan.QuasiBirthDate: true, scan.QuasiBirthplace: true, scan.QuasiAge: true, scan.QuasiDeathDate: true,
	scan.QuasiGender: true, scan.QuasiEthnicity: true, scan.QuasiMaritalStatus: true, scan.QuasiReligion: true,
	scan.QuasiNationality: true, scan.QuasiOccupation: true, scan.QuasiEducation: true,
}

// personFakes are the fake kinds that stand for a person.
var personFakes = []string{"name", "first_name", "last_name", "email", "username"}

// HoldsPerson reports whether the rows of tr are about people: a column
// holds a quasi-identifier only people have (a birth date, a gender), is
// faked as a person's name, email or user name, or is named so (scan's
// name classification, which reads the table's name for a bare "name":
// customers.name is a person, category.name is not).
func HoldsPerson(tr *rules.TableRule) bool {
	for _, c := range tr.Columns {
		if kind, ok := scan.QuasiIdentifier(c.Name); ok && personKinds[kind] {
			return true
		}
		if c.Rule.Name == "fake" && slices.Contains(personFakes, c.Rule.Args.String("kind", "")) {
			return true
		}
		p := scan.Classify(tr.Name, scan.Column{Name: c.Name, Type: schema.Type{Kind: schema.KindText}})
		for _, k := range personFakes {
			if strings.Contains(p.Rule, "fake: "+k+"}") || strings.Contains(p.Rule, "kind: "+k+",") {
				return true
			}
		}
	}
	return false
}

// AnalyzeAcross is Analyze with the references of m. A lookup table is
// referenced by another table of the rules, holds no person (HoldsPerson)
// and refers to no table that does (orders, which refer to customers,
// describe people; cities do not). Each table that is not a lookup table
// and holds a person or quasi-identifiers of its own gets, in Joined, its
// quasi-identifiers together with those of the rows it references (through references whose keys the
// rules mask alike, at most opt's depth away, at most opt's columns
// added, nearest first); each lookup table is marked, with the tables
// whose sets reach its quasi-identifiers. A nil m is NamingModel(cfg).
func AnalyzeAcross(cfg *rules.Config, m *refs.Model, opt JoinOptions) []Table {
	if m == nil {
		m = NamingModel(cfg)
	}
	tables := Analyze(cfg)
	byRule := map[*rules.TableRule]int{}
	for i := range tables {
		byRule[tables[i].rule] = i
	}
	es := edges(cfg, m)
	person := map[*rules.TableRule]bool{}
	for _, tr := range cfg.Tables {
		if tr != nil {
			person[tr] = HoldsPerson(tr)
		}
	}
	refersToPerson := map[*rules.TableRule]bool{}
	for _, e := range es {
		if e.from != e.to && person[e.to] {
			refersToPerson[e.from] = true
		}
	}
	for _, e := range es {
		if e.from != e.to && !person[e.to] && !refersToPerson[e.to] {
			tables[byRule[e.to]].Lookup = true
		}
	}
	for i := range tables {
		t := &tables[i]
		if t.Lookup || len(t.Quasi) == 0 && !person[t.rule] {
			continue
		}
		s, reached := joinedSet(t, tables, byRule, es, opt)
		if s == nil {
			continue
		}
		t.Joined = s
		for _, r := range reached {
			lt := &tables[byRule[r]]
			if lt.Lookup && !slices.Contains(lt.Through, t.QualifiedName()) {
				lt.Through = append(lt.Through, t.QualifiedName())
			}
		}
	}
	return tables
}

// joinedSet walks the joinable edges from t breadth first and collects the quasi-identifiers of the tables reached. It
// returns nil when no column is added, and the tables whose columns were.
// Each table is joined once, on the nearest path: a second path to the
// same table (the customer's store's address beside the customer's own
// address, references that loop back) is not followed, which keeps sets
// small and readable; the nearest rows are the ones that describe the
// row measured.
func joinedSet(t *Table, tables []Table, byRule map[*rules.TableRule]int, es []edge, opt JoinOptions) (*Set, []*rules.TableRule) {
	type node struct {
		rule  *rules.TableRule
		step  int // -1: t
		depth int
	}
	s := &Set{Schema: t.Schema, Table: t.Name, Default: true}
	for _, q := range t.Quasi {
		s.Columns = append(s.Columns, q.Column)
	}
	var steps []Step
	var joined []JoinedColumn
	var reached []*rules.TableRule
	queue := []node{{rule: t.rule, step: -1}}
	visited := []*rules.TableRule{t.rule}
	for len(queue) > 0 && len(joined) < opt.columns() {
		n := queue[0]
		queue = queue[1:]
		if n.depth >= opt.depth() {
			continue
		}
		for _, e := range es {
			if e.from != n.rule || !e.joins || slices.Contains(visited, e.to) {
				continue
			}
			visited = append(visited, e.to)
			i := len(steps)
			steps = append(steps, Step{Parent: n.step, From: e.fromCols, Schema: e.to.Schema, Table: e.to.Name, To: e.toCols})
			added := false
			for _, q := range tables[byRule[e.to]].Quasi {
				if len(joined) == opt.columns() {
					break
				}
				joined = append(joined, JoinedColumn{Step: i, Column: q.Column, Kind: q.Kind})
				added = true
			}
			if added && !slices.Contains(reached, e.to) {
				reached = append(reached, e.to)
			}
			queue = append(queue, node{rule: e.to, step: i, depth: n.depth + 1})
		}
	}
	if len(joined) == 0 {
		return nil, nil
	}
	s.Steps, s.Joined = pruneSteps(steps, joined)
	labelSteps(s)
	return s, reached
}

// pruneSteps keeps the steps that lead to a joined column, renumbered.
func pruneSteps(steps []Step, joined []JoinedColumn) ([]Step, []JoinedColumn) {
	need := make([]bool, len(steps))
	for _, j := range joined {
		for i := j.Step; i >= 0 && !need[i]; i = steps[i].Parent {
			need[i] = true
		}
	}
	renum := make([]int, len(steps))
	var out []Step
	for i, st := range steps {
		if !need[i] {
			continue
		}
		if st.Parent >= 0 {
			st.Parent = renum[st.Parent]
		}
		renum[i] = len(out)
		out = append(out, st)
	}
	js := slices.Clone(joined)
	for i := range js {
		js[i].Step = renum[js[i].Step]
	}
	return out, js
}

// labelSteps names each step by its table, or schema.table when two
// steps' tables have the same name.
func labelSteps(s *Set) {
	count := map[string]int{}
	for _, st := range s.Steps {
		count[st.Table]++
	}
	for i := range s.Steps {
		st := &s.Steps[i]
		st.Label = st.Table
		if count[st.Table] > 1 {
			st.Label = schema.Qualified(st.Schema, st.Table)
		}
	}
}
