package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"pgveil/schema"
	"pgveil/transform"
)

// maxAliases bounds how many YAML aliases are followed in one file, so
// that aliases of aliases (or an alias inside its own anchor) cannot make
// the walk explode.
const maxAliases = 1000

// The keys allowed in each map of the file, as messages list them.
const (
	topKeys     = "source, target, secret, tenancy, tables"
	sourceKeys  = "dsn, slot, publication, publication_mode"
	targetKeys  = "dsn, readers, refresh_materialized_views"
	tableKeys   = "where, tenant, references, columns"
	tenancyKeys = "column, role_prefix, group, impersonators"
	tenantKeys  = "column"
)

// allowedKey reports whether name is one of the keys of list.
func allowedKey(list, name string) bool {
	return name != "" && !strings.Contains(name, ",") && strings.Contains(", "+list+", ", ", "+name+", ")
}

// nameRE is what pgveil accepts as a slot or publication name.
var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// parser walks the YAML node tree of one file and collects its problems.
type parser struct {
	file        string
	env         LookupEnv
	reg         *transform.Registry
	probs       Problems
	aliasesLeft int
	// named holds, per table, every column name its columns map gives,
	// rule valid or not, so that a reference to a column whose rule has
	// a mistake is not reported a second time.
	named map[*TableRule]map[string]bool
}

// loc is the table and column a problem is about ("" when none).
type loc struct{ table, column string }

func (p *parser) addAt(line, col int, at loc, msg string) {
	p.probs = append(p.probs, Problem{File: p.file, Line: line, Col: col, Table: at.table, Column: at.column, Msg: msg})
}

func (p *parser) addf(n *yaml.Node, at loc, format string, args ...any) {
	line, col := 0, 0
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.addAt(line, col, at, fmt.Sprintf(format, args...))
}

// parse decodes data and walks it. A YAML syntax error is the only
// problem reported.
func (p *parser) parse(data []byte) *Config {
	cfg := &Config{File: p.file, Source: Source{Slot: defaultName, Publication: defaultName, PublicationMode: MigrationSafe}}
	var doc yaml.Node
	if err := unmarshal(data, &doc); err != nil {
		p.syntaxError(err, data)
		return cfg
	}
	if bytes.Contains(data, []byte("---")) {
		p.extraDocuments(data)
	}
	if doc.Kind == 0 || doc.Kind == yaml.DocumentNode && len(doc.Content) == 0 {
		p.addAt(1, 1, loc{}, "the file is empty: it needs source, target, secret and tables")
		return cfg
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode {
		root = doc.Content[0]
	}
	p.config(cfg, root)
	return cfg
}

// unmarshal is yaml.Unmarshal, with a panic of the YAML library turned
// into an error.
func unmarshal(data []byte, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("yaml: the YAML parser failed on this file")
		}
	}()
	return yaml.Unmarshal(data, n)
}

var (
	yamlLineRE   = regexp.MustCompile(`^line (\d+): `)
	yamlAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// isYAMLParserProblem reports whether msg comes from the YAML library's
// parser (as opposed to its scanner). For those it names the line before
// the one meant: it counts them from 0.
func isYAMLParserProblem(msg string) bool {
	switch msg {
	case "did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"did not find expected '-' indicator",
		"did not find expected <document start>",
		"did not find expected <stream-start>",
		"did not find expected key",
		"did not find expected node content",
		"found duplicate %TAG directive",
		"found duplicate %YAML directive",
		"found incompatible YAML document",
		"found undefined tag handle":
		return true
	}
	return false
}

// syntaxError reports a YAML syntax error at the line the YAML library
// names (corrected for its parser's lines counted from 0), or line 1 when
// it names none, which it does for errors on the first line.
func (p *parser) syntaxError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	if isYAMLParserProblem(msg) {
		line++
	}
	if m := yamlAnchorRE.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line = 1 + bytes.Count(data[:i], []byte("\n"))
		}
	}
	p.addAt(max(line, 1), 0, loc{}, "YAML syntax error: "+msg)
}

// extraDocuments reports a second YAML document, which would otherwise be
// ignored.
func (p *parser) extraDocuments(data []byte) {
	defer func() { _ = recover() }()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first, second yaml.Node
	if dec.Decode(&first) != nil {
		return
	}
	switch err := dec.Decode(&second); {
	case err == nil:
		line, col := second.Line, second.Column
		if len(second.Content) > 0 {
			line, col = second.Content[0].Line, second.Content[0].Column
		}
		p.addAt(line, col, loc{}, "a rules file holds one YAML document; remove the ---")
	case !errors.Is(err, io.EOF):
		p.syntaxError(err, data)
	}
}

// resolve follows aliases to the node they name, within maxAliases.
func (p *parser) resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		if p.aliasesLeft <= 0 {
			if p.aliasesLeft == 0 {
				p.addf(n, loc{}, "too many YAML aliases (more than %d uses)", maxAliases)
				p.aliasesLeft--
			}
			return nil
		}
		p.aliasesLeft--
		n = n.Alias
	}
	return n
}

// deref is resolve for values: it also rejects tags pgveil does not read.
func (p *parser) deref(n *yaml.Node, at loc) *yaml.Node {
	n = p.resolve(n)
	if n == nil {
		return nil
	}
	tag := n.ShortTag()
	ok := false
	switch n.Kind {
	case yaml.ScalarNode:
		switch tag {
		case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp":
			ok = true
		}
	case yaml.MappingNode:
		ok = tag == "!!map"
	case yaml.SequenceNode:
		ok = tag == "!!seq"
	default:
		ok = true
	}
	if !ok {
		p.addf(n, at, "unsupported YAML tag %s", tag)
	}
	return n
}

// isNull reports whether n is missing or a YAML null (~, null or nothing).
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName names the kind of a node for messages.
func kindName(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "null"
	case n.Kind == yaml.MappingNode:
		return "a map"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode:
		return "a single value"
	}
	return "a YAML document"
}

// entry is one key: value pair of a mapping.
type entry struct {
	key, value *yaml.Node // key is resolved; value is not
	name       string
	dup        bool // the key was already used in this mapping
}

// entries lists the pairs of mapping n, reporting keys that are not plain
// values, merge keys and duplicate keys. Duplicates are returned (marked)
// so that their values are checked too.
func (p *parser) entries(n *yaml.Node, at loc) []entry {
	out := make([]entry, 0, len(n.Content)/2)
	first := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := p.resolve(n.Content[i])
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.addf(k, at, "a key must be a single value, not %s", kindName(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			p.addf(k, at, "merge keys (<<) are not supported")
			continue
		}
		e := entry{key: k, value: n.Content[i+1], name: k.Value}
		if line, ok := first[e.name]; ok {
			p.addf(k, at, "duplicate key %q (first at line %d)", e.name, line)
			e.dup = true
		} else {
			first[e.name] = k.Line
		}
		out = append(out, e)
	}
	return out
}

// fields is entries for a mapping with a fixed set of keys: unknown keys
// are reported and left out.
func (p *parser) fields(n *yaml.Node, allowed string, at loc) []entry {
	es := p.entries(n, at)
	out := es[:0]
	for _, e := range es {
		if !allowedKey(allowed, e.name) {
			p.addf(e.key, at, "unknown key %q; allowed keys: %s", e.name, allowed)
			continue
		}
		out = append(out, e)
	}
	return out
}

// scalar is a scalar value after ${VAR} expansion.
type scalar struct {
	n       *yaml.Node // for its position
	value   string
	tag     string // YAML tag of the expanded value: !!str, !!int, ...
	fromEnv bool   // value holds a ${...} expansion: never show it
}

// scalar expands the ${VAR}s of scalar node n. It reports unset and
// malformed references and then returns false. A value holding a ${VAR},
// quoted or not, gets the YAML type of what it expands to, so that
// {truncate: "${LEN}"} is an integer when LEN is 3; an explicit tag
// (!!str "${LEN}") keeps its type.
func (p *parser) scalar(n *yaml.Node, at loc) (scalar, bool) {
	s := scalar{n: n, value: n.Value, tag: n.ShortTag()}
	v, used, errs := expand(n.Value, p.env)
	for _, msg := range errs {
		p.addf(n, at, "%s", msg)
	}
	if len(errs) > 0 {
		return s, false
	}
	s.value, s.fromEnv = v, used
	if used && n.Style&yaml.TaggedStyle == 0 {
		tmp := yaml.Node{Kind: yaml.ScalarNode, Value: v}
		s.tag = tmp.ShortTag()
	}
	return s, true
}

// str reads a value that must be a single value, such as a DSN. It
// returns false (having reported why) when it is not one or cannot be
// expanded; null gives "".
func (p *parser) str(raw *yaml.Node, what string, at loc) (scalar, bool) {
	n := p.deref(raw, at)
	if isNull(n) {
		return scalar{n: n}, true
	}
	if n.Kind != yaml.ScalarNode {
		p.addf(n, at, "%s must be a single value, not %s", what, kindName(n))
		return scalar{n: n}, false
	}
	return p.scalar(n, at)
}

// show quotes a value for a message, unless it came from the environment.
func show(s scalar) string {
	if s.fromEnv {
		return "(from the environment)"
	}
	return strconv.Quote(s.value)
}

// config walks the root mapping into cfg.
func (p *parser) config(cfg *Config, root *yaml.Node) {
	root = p.deref(root, loc{})
	if root == nil || root.Kind != yaml.MappingNode {
		p.addf(root, loc{}, "the file must be a map with source, target, secret and tables, not %s", kindName(root))
		return
	}
	seen := map[string]bool{}
	for _, e := range p.fields(root, topKeys, loc{}) {
		switch e.name {
		case "source":
			if s := p.source(e); !e.dup {
				cfg.Source = s
			}
		case "target":
			if t := p.target(e); !e.dup {
				cfg.Target = t
			}
		case "secret":
			if s := p.secret(e); !e.dup {
				cfg.Secret = s
			}
		case "tenancy":
			if t := p.tenancy(e); !e.dup {
				cfg.Tenancy = t
			}
		case "tables":
			if ts := p.tables(e); !e.dup {
				cfg.Tables = ts
			}
		}
		seen[e.name] = true
	}
	for _, k := range []string{"source", "target"} {
		if !seen[k] {
			p.addf(root, loc{}, "%s.dsn is required", k)
		}
	}
	if !seen["secret"] {
		p.addf(root, loc{}, "secret is required")
	}
	if !seen["tables"] {
		p.addf(root, loc{}, "tables is required: list at least one table")
	}
	p.checkTenancy(cfg)
	p.checkReferences(cfg)
}

// section checks that a section (source, target) is a map and returns
// its fields, or nil when it is null.
func (p *parser) section(e entry, allowed string) ([]entry, bool) {
	n := p.deref(e.value, loc{})
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		p.addf(n, loc{}, "%s must be a map with %s, not %s", e.name, allowed, kindName(n))
		return nil, false
	}
	return p.fields(n, allowed, loc{}), true
}

func (p *parser) source(e entry) Source {
	s := Source{Slot: defaultName, Publication: defaultName, PublicationMode: MigrationSafe}
	fs, ok := p.section(e, sourceKeys)
	hasDSN := false
	for _, f := range fs {
		switch f.name {
		case "dsn":
			hasDSN = true
			if d, _ := p.dsn(f, "source.dsn"); !f.dup {
				s.DSN = d
			}
		case "slot":
			if v, ok := p.pgName(f, "slot"); ok && !f.dup {
				s.Slot = v
			}
		case "publication":
			if v, ok := p.pgName(f, "publication"); ok && !f.dup {
				s.Publication = v
			}
		case "publication_mode":
			if v, ok := p.str(f.value, "publication_mode", loc{}); ok && !f.dup && !isNull(v.n) {
				switch v.value {
				case MigrationSafe, ColumnLists:
					s.PublicationMode = v.value
				default:
					p.addf(v.n, loc{}, "publication_mode %s is not %s (the default: whole tables, every migration works) or %s (unpublished columns never leave production, but production cannot drop or retype a listed column)",
						show(v), MigrationSafe, ColumnLists)
				}
			}
		}
	}
	if ok && !hasDSN {
		p.addf(e.key, loc{}, "source.dsn is required")
	}
	return s
}

func (p *parser) target(e entry) Target {
	t := Target{RefreshMaterializedViews: DefaultRefreshMaterializedViews}
	fs, ok := p.section(e, targetKeys)
	hasDSN := false
	for _, f := range fs {
		switch f.name {
		case "dsn":
			hasDSN = true
			if d, _ := p.dsn(f, "target.dsn"); !f.dup {
				t.DSN = d
			}
		case "readers":
			if r := p.roles(f, "reader"); !f.dup {
				t.Readers = r
			}
		case "refresh_materialized_views":
			if v, ok := p.str(f.value, "refresh_materialized_views", loc{}); ok && !f.dup && !isNull(v.n) {
				d, err := time.ParseDuration(v.value)
				if err != nil || d < time.Second {
					p.addf(v.n, loc{}, "refresh_materialized_views %s is not a duration of at least 1s: write it as 30m, 1h or 24h", show(v))
				} else {
					t.RefreshMaterializedViews = d
				}
			}
		}
	}
	if ok && !hasDSN {
		p.addf(e.key, loc{}, "target.dsn is required")
	}
	return t
}

// dsn reads a connection string. Its value never appears in a message.
func (p *parser) dsn(f entry, what string) (DSN, bool) {
	s, ok := p.str(f.value, what, loc{})
	if !ok {
		return "", false
	}
	if s.value == "" {
		p.addf(f.key, loc{}, "%s is required", what)
		return "", false
	}
	return DSN(s.value), true
}

// pgName reads a slot or publication name.
func (p *parser) pgName(f entry, what string) (string, bool) {
	s, ok := p.str(f.value, what, loc{})
	if !ok {
		return "", false
	}
	if isNull(s.n) {
		return defaultName, true
	}
	if !nameRE.MatchString(s.value) {
		p.addf(s.n, loc{}, "%s %s is not a valid name: use lower-case letters, digits and _, not starting with a digit, at most 63 characters", what, show(s))
		return "", false
	}
	return s.value, true
}

// roles reads a list of role names (readers, impersonators); one names
// an item in messages ("reader").
func (p *parser) roles(f entry, one string) []string {
	n := p.deref(f.value, loc{})
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.addf(n, loc{}, "%s must be a list of role names, not %s", f.name, kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	first := map[string]int{}
	for _, item := range n.Content {
		s, ok := p.str(item, "a "+one, loc{})
		if !ok {
			continue
		}
		if s.value == "" {
			at := s.n
			if at == nil {
				at = p.resolve(item)
			}
			p.addf(at, loc{}, "a %s role name must not be empty", one)
			continue
		}
		if line, dup := first[s.value]; dup {
			p.addf(s.n, loc{}, "duplicate %s %s (first at line %d)", one, show(s), line)
			continue
		}
		first[s.value] = s.n.Line
		out = append(out, s.value)
	}
	return out
}

// secret reads the secret. Its value never appears in a message.
func (p *parser) secret(e entry) Secret {
	s, ok := p.str(e.value, "secret", loc{})
	if !ok {
		return ""
	}
	switch n := len(s.value); {
	case n == 0:
		p.addf(e.key, loc{}, "secret is required")
		return ""
	case n < transform.MinSecretLen:
		p.addf(s.n, loc{}, "secret must be at least %d bytes (it has %d)", transform.MinSecretLen, n)
	}
	return Secret(s.value)
}

func (p *parser) tables(e entry) []*TableRule {
	n := p.deref(e.value, loc{})
	if isNull(n) {
		p.addf(e.key, loc{}, "tables must list at least one table")
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.addf(n, loc{}, "tables must be a map of table names to their rules, not %s", kindName(n))
		return nil
	}
	es := p.entries(n, loc{})
	if len(es) == 0 {
		p.addf(n, loc{}, "tables must list at least one table")
		return nil
	}
	out := make([]*TableRule, 0, len(es))
	first := make(map[[2]string]int, len(es))
	for _, te := range es {
		schemaName, name, err := parseTableName(te.name)
		var at loc
		if err != nil {
			p.addf(te.key, at, "%v", err)
		} else {
			at.table = schema.Qualified(schemaName, name)
		}
		tr := p.table(te, at)
		if err != nil || te.dup {
			continue
		}
		id := [2]string{schemaName, name}
		if line, ok := first[id]; ok {
			p.addf(te.key, at, "duplicate table (first at line %d)", line)
			continue
		}
		first[id] = te.key.Line
		tr.Schema, tr.Name, tr.Line, tr.Col = schemaName, name, te.key.Line, te.key.Column
		out = append(out, tr)
	}
	return out
}

func (p *parser) table(te entry, at loc) *TableRule {
	tr := &TableRule{}
	n := p.deref(te.value, at)
	if isNull(n) || n.Kind != yaml.MappingNode {
		where := n
		if isNull(n) {
			where = te.key
		}
		p.addf(where, at, "a table entry must be a map with columns (and optionally where), not %s", kindName(n))
		return tr
	}
	hasColumns := false
	for _, f := range p.fields(n, tableKeys, at) {
		switch f.name {
		case "where":
			s, ok := p.str(f.value, "where", at)
			if ok && s.value == "" {
				p.addf(f.key, at, "where must not be empty (leave it out to replicate every row)")
			}
			if !f.dup {
				tr.Where = s.value
			}
		case "tenant":
			if tt, ok := p.tableTenant(f, at); ok && !f.dup {
				tr.Tenant = tt
			}
		case "references":
			if rs := p.references(f, at); !f.dup {
				tr.References = rs
			}
		case "columns":
			hasColumns = true
			if cs, names := p.columns(f, at); !f.dup {
				tr.Columns = cs
				if p.named == nil {
					p.named = map[*TableRule]map[string]bool{}
				}
				p.named[tr] = names
			}
		}
	}
	if !hasColumns {
		p.addf(te.key, at, "columns is required: give every column a rule")
	}
	return tr
}

// columns reads a table's columns map: the columns whose rules are valid,
// and the names of all of them.
func (p *parser) columns(f entry, at loc) ([]*ColumnRule, map[string]bool) {
	names := map[string]bool{}
	n := p.deref(f.value, at)
	if isNull(n) {
		p.addf(f.key, at, "columns must list at least one column")
		return nil, names
	}
	if n.Kind != yaml.MappingNode {
		p.addf(n, at, "columns must be a map of column names to rules, not %s", kindName(n))
		return nil, names
	}
	es := p.entries(n, at)
	if len(es) == 0 {
		p.addf(n, at, "columns must list at least one column")
		return nil, names
	}
	out := make([]*ColumnRule, 0, len(es))
	first := make(map[string]int, len(es))
	for _, ce := range es {
		name, err := parseColumnName(ce.name)
		cat := at
		if err != nil {
			p.addf(ce.key, at, "%v", err)
		} else {
			cat.column = schema.QuoteIdent(name)
		}
		value, onError, eok := p.onError(ce.value, cat)
		rule, ok := p.rule(value, ce.key, cat)
		ok = ok && eok
		rule.OnError = onError
		if err != nil || ce.dup {
			continue
		}
		if line, dup := first[name]; dup {
			p.addf(ce.key, cat, "duplicate column (first at line %d)", line)
			continue
		}
		first[name] = ce.key.Line
		names[name] = true
		if ok {
			out = append(out, &ColumnRule{Name: name, Rule: rule, Line: ce.key.Line, Col: ce.key.Column})
		}
	}
	return out, names
}

// onErrorValues are the accepted values of a column's on_error.
const onErrorValues = "stop, null"

// onError takes the optional on_error key out of a column's rule map
// ({noise: 0.05, on_error: null}) and returns the rest of the map, the
// policy ("" for the default, stop) and whether it was valid.
func (p *parser) onError(raw *yaml.Node, at loc) (*yaml.Node, string, bool) {
	n := p.resolve(raw)
	if n == nil || n.Kind != yaml.MappingNode || len(n.Content) < 4 {
		return raw, "", true
	}
	rest := *n
	rest.Content = nil
	policy, ok := "", true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := p.resolve(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode || k.Value != "on_error" {
			rest.Content = append(rest.Content, n.Content[i], n.Content[i+1])
			continue
		}
		v := p.resolve(n.Content[i+1])
		switch {
		case v != nil && v.Kind == yaml.ScalarNode && (v.Value == "stop" || v.Value == "null" || v.Value == "~" && v.Tag == "!!null" || v.Tag == "!!null"):
			policy = "null"
			if v.Value == "stop" {
				policy = ""
			}
		default:
			p.addf(n.Content[i+1], at, "on_error must be one of %s", onErrorValues)
			ok = false
		}
	}
	return &rest, policy, ok
}
