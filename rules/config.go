package rules

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"pgveil/transform"
)

// Config is a checked rules file.
type Config struct {
	File   string // path as given, used in every Problem
	Source Source
	Target Target
	Secret Secret
	// Tenancy, when not nil, makes the replica isolate tenants with row
	// level security (see Tenancy).
	Tenancy *Tenancy
	Tables  []*TableRule // in file order
}

// Source is the production database pgveil replicates from.
type Source struct {
	DSN         DSN
	Slot        string // default "pgveil"
	Publication string // default "pgveil"
	// PublicationMode is how the publication holds the rules' tables:
	// MigrationSafe (the default) or ColumnLists.
	PublicationMode string
}

// Publication modes (source.publication_mode).
const (
	// MigrationSafe publishes whole tables, with neither column lists nor
	// row filters: every migration production runs succeeds as it would
	// without pgveil (PostgreSQL refuses DROP COLUMN and ALTER COLUMN ...
	// TYPE on a column a publication's column list or row filter uses).
	// Columns no rule publishes, and rows a `where` excludes, reach pgveil
	// and are removed there before anything is written or logged.
	MigrationSafe = "migration_safe"
	// ColumnLists publishes each table with a column list (and a `where`
	// on replica identity columns as its row filter): dropped and unruled
	// columns never leave production, but production's DROP COLUMN and
	// ALTER COLUMN ... TYPE on a listed column fail while it is listed.
	ColumnLists = "column_lists"
)

// Target is the analytics database pgveil writes the masked copy to.
type Target struct {
	DSN     DSN
	Readers []string // roles granted read-only access
}

// TableRule is the rules of one table.
type TableRule struct {
	Schema, Name string        // resolved: "customers" is public.customers
	Where        string        // optional SQL row filter, kept verbatim
	Tenant       TableTenant   // the table's tenant key; zero: tenancy's column
	Columns      []*ColumnRule // in file order
	// References are the table's `references:`: joins the catalog does
	// not declare, and columns that are deliberately not a join (None).
	References []*Reference // in file order
	Line, Col  int          // of the table key
}

// Reference is one entry of a table's `references:`. Column refers to the
// key column Schema.Table.To, which the rules name too; or, with None, the
// column is not a join on purpose: it is masked on its own, and no
// reference (declared, on partitions or inferred) binds its rule.
type Reference struct {
	Column              string // the referencing column, one of the table's columns
	Schema, Table, To   string // the key column; empty with None
	None                bool
	Line, Col           int // of the column key
	ValueLine, ValueCol int // of the target (or none)
}

// ColumnRule is the rule of one column.
type ColumnRule struct {
	Name      string
	Rule      transform.Rule // Line and Col locate the rule value
	Line, Col int            // of the column key
}

// Default replication slot and publication name.
const defaultName = "pgveil"

// Load reads and parses the rules file at path (see Parse). Content
// problems are returned as Problems; a file that cannot be read gives a
// wrapped I/O error.
func Load(path string, env LookupEnv, reg *transform.Registry) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	return Parse(path, data, env, reg)
}

// Parse checks the rules in data, named file in problems. ${VAR}s are read
// from env (os.LookupEnv when nil) and transformers from reg
// (transform.Builtin() when nil). When anything is wrong it returns nil and
// Problems holding every problem in the file, sorted by position.
func Parse(file string, data []byte, env LookupEnv, reg *transform.Registry) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	if reg == nil {
		reg = transform.Builtin()
	}
	p := &parser{file: file, env: env, reg: reg, aliasesLeft: maxAliases}
	cfg := p.parse(data)
	if ps := p.probs.sorted(); len(ps.Errors()) > 0 {
		return nil, ps
	}
	return cfg, nil
}

// Keys derives the masking keys from the secret.
func (c *Config) Keys() (*transform.Keys, error) {
	k, err := transform.NewKeys([]byte(c.Secret.Reveal()))
	if err != nil {
		return nil, fmt.Errorf("deriving keys from the secret of %s: %w", c.File, err)
	}
	return k, nil
}

// ParseRule decodes one rule written as YAML ("hash", "{fake: email}",
// "{partial: {keep_last: 2}}"), as the try command takes it. Problems are
// reported against the file name "rule". ${VAR}s are not expanded.
func ParseRule(text string, reg *transform.Registry) (transform.Rule, error) {
	if reg == nil {
		reg = transform.Builtin()
	}
	p := &parser{file: "rule", env: func(string) (string, bool) { return "", false }, reg: reg, aliasesLeft: maxAliases}
	var doc yaml.Node
	if err := unmarshal([]byte(text), &doc); err != nil {
		p.syntaxError(err, []byte(text))
		return transform.Rule{}, p.probs.sorted()
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return transform.Rule{}, Problems{{File: "rule", Line: 1, Col: 1, Msg: "empty rule: write a transformer name or a one-key map such as {fake: email}"}}
	}
	r, ok := p.rule(doc.Content[0], doc.Content[0], loc{})
	if !ok || len(p.probs.Errors()) > 0 {
		return transform.Rule{}, p.probs.sorted()
	}
	return r, nil
}
