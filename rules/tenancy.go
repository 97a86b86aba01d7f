package rules

import (
	"pgveil/schema"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Tenancy is the tenancy section: the replica isolates tenants with row
// level security. Each distinct value of a table's tenant column gets a
// role, RolePrefix followed by the value as the replica holds it
// ("tenant_42"), created as the value first appears and made a member of
// Group. A tenant role sees only the rows of its tenant in every tenant
// table, every row of the tables marked shared, and nothing else.
type Tenancy struct {
	Column        string   // the tenant column of every table that has a rule for it; "" for none
	RolePrefix    string   // default "tenant_"
	Group         string   // default "pgveil_tenants"
	Impersonators []string // NOINHERIT roles granted every tenant role, to SET ROLE to one
	Line, Col     int      // of the tenancy key
}

// Defaults of the tenancy section.
const (
	DefaultRolePrefix  = "tenant_"
	DefaultTenantGroup = "pgveil_tenants"
)

// TenantMode says how a table is split between tenants.
type TenantMode uint8

// The tenant modes.
const (
	// TenantDefault: tenancy.column is the tenant column, when the table
	// has a rule for it; otherwise tenants cannot read the table.
	TenantDefault TenantMode = iota
	// TenantColumn: TableTenant.Column is the tenant column.
	TenantColumn
	// TenantShared: every tenant reads every row.
	TenantShared
	// TenantNone: tenants cannot read the table.
	TenantNone
)

// TableTenant is a table's tenant key ("tenant: shared", "tenant: none",
// "tenant: {column: org_id}").
type TableTenant struct {
	Mode      TenantMode
	Column    string // TenantColumn
	Line, Col int    // of the tenant key; 0 when the table has none
}

// TenantOf returns how tenants read table t: through its tenant column
// (column), all of it (shared), or not at all (both zero). Without a
// tenancy section every result is zero.
func (c *Config) TenantOf(t *TableRule) (column string, shared bool) {
	if c.Tenancy == nil {
		return "", false
	}
	switch t.Tenant.Mode {
	case TenantColumn:
		return t.Tenant.Column, false
	case TenantShared:
		return "", true
	case TenantNone:
		return "", false
	}
	if c.Tenancy.Column != "" && t.column(c.Tenancy.Column) != nil {
		return c.Tenancy.Column, false
	}
	return "", false
}

// TenancySplit is how the tables of a rules file divide between tenants.
type TenancySplit struct {
	Tenant int      // tables tenants read through a tenant column
	Shared int      // tables every tenant reads whole
	Hidden []string // tables tenants cannot read, schema.name quoted as SQL needs
}

// Split divides the tables by how tenants read them (TenantOf).
func (c *Config) Split() TenancySplit {
	var s TenancySplit
	for _, t := range c.Tables {
		switch col, shared := c.TenantOf(t); {
		case col != "":
			s.Tenant++
		case shared:
			s.Shared++
		default:
			s.Hidden = append(s.Hidden, schema.Qualified(t.Schema, t.Name))
		}
	}
	return s
}

// column returns the rule of the column named name, or nil.
func (t *TableRule) column(name string) *ColumnRule {
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// rolePrefixRE is what pgveil accepts as a tenant role prefix: short
// enough to leave room for the tenant value in 63 bytes.
var rolePrefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,31}$`)

// reservedRoleNames are role names PostgreSQL refuses or treats
// specially; "pg_" starts every reserved one.
var reservedRoleNames = []string{"pg_", "public", "none", "current_user", "current_role", "session_user"}

// reservedPrefix returns the reserved name a tenant role with prefix could
// be, or "" when it cannot be one: a tenant value completes the prefix.
func reservedPrefix(prefix string) string {
	for _, r := range reservedRoleNames {
		if strings.HasPrefix(r, prefix) || strings.HasPrefix(prefix, r) && r == "pg_" {
			return r
		}
	}
	return ""
}

// tenancy reads the tenancy section.
func (p *parser) tenancy(e entry) *Tenancy {
	t := &Tenancy{RolePrefix: DefaultRolePrefix, Group: DefaultTenantGroup, Line: e.key.Line, Col: e.key.Column}
	n := p.deref(e.value, loc{})
	if isNull(n) || n.Kind != yaml.MappingNode {
		p.addf(n, loc{}, "tenancy must be a map with %s, not %s", tenancyKeys, kindName(n))
		return t
	}
	for _, f := range p.fields(n, tenancyKeys, loc{}) {
		switch f.name {
		case "column":
			if v, ok := p.tenantColumn(f, loc{}); ok && !f.dup {
				t.Column = v
			}
		case "role_prefix":
			s, ok := p.str(f.value, "tenancy.role_prefix", loc{})
			switch {
			case !ok:
			case !rolePrefixRE.MatchString(s.value):
				p.addf(f.key, loc{}, "tenancy.role_prefix %s is not valid: use lower-case letters, digits and _, not starting with a digit, at most 32 characters", show(s))
			case reservedPrefix(s.value) != "":
				p.addf(f.key, loc{}, "tenancy.role_prefix %s could make a tenant role named %s, which PostgreSQL reserves or treats specially: choose another, such as tenant_", show(s), reservedPrefix(s.value))
			case !f.dup:
				t.RolePrefix = s.value
			}
		case "group":
			if v, ok := p.pgName(f, "tenancy.group"); ok && !f.dup {
				if isNull(p.resolve(f.value)) {
					v = DefaultTenantGroup
				}
				t.Group = v
			}
		case "impersonators":
			if r := p.roles(f, "impersonator"); !f.dup {
				t.Impersonators = r
			}
		}
	}
	return t
}

// tenantColumn reads a tenant column name.
func (p *parser) tenantColumn(f entry, at loc) (string, bool) {
	s, ok := p.str(f.value, "a tenant column", at)
	if !ok {
		return "", false
	}
	if s.value == "" {
		p.addf(f.key, at, "the tenant column must not be empty")
		return "", false
	}
	name, err := parseColumnName(s.value)
	if err != nil {
		p.addf(s.n, at, "%v", err)
		return "", false
	}
	return name, true
}

// tableTenant reads a table's tenant key.
func (p *parser) tableTenant(f entry, at loc) (TableTenant, bool) {
	tt := TableTenant{Line: f.key.Line, Col: f.key.Column}
	n := p.deref(f.value, at)
	switch {
	case n != nil && n.Kind == yaml.ScalarNode && !isNull(n):
		switch n.Value {
		case "shared":
			tt.Mode = TenantShared
		case "none":
			tt.Mode = TenantNone
		default:
			p.addf(n, at, "tenant must be shared, none or {column: NAME}, not %q", n.Value)
			return tt, false
		}
		return tt, true
	case n != nil && n.Kind == yaml.MappingNode:
		fs := p.fields(n, tenantKeys, at)
		for _, g := range fs {
			if v, ok := p.tenantColumn(g, at); ok && !g.dup {
				tt.Mode, tt.Column = TenantColumn, v
			}
		}
		if tt.Mode != TenantColumn {
			if len(n.Content) == 0 {
				p.addf(n, at, "tenant must be shared, none or {column: NAME}")
			}
			return tt, false
		}
		return tt, true
	}
	p.addf(n, at, "tenant must be shared, none or {column: NAME}, not %s", kindName(n))
	return tt, false
}

// tenantRules are the rules a tenant column may have: each tenant must
// keep one value of its own in the replica, the same in every table.
var tenantRules = []string{"keep", "hash"}

// checkTenancy checks the tenancy section against the tables and roles.
func (p *parser) checkTenancy(cfg *Config) {
	tn := cfg.Tenancy
	if tn == nil {
		for _, t := range cfg.Tables {
			if t.Tenant.Line > 0 {
				p.addAt(t.Tenant.Line, t.Tenant.Col, loc{table: schema.Qualified(t.Schema, t.Name)}, "tenant needs a tenancy section at the top of the file")
			}
		}
		return
	}
	prefixed := func(role string) bool { return strings.HasPrefix(role, tn.RolePrefix) }
	if prefixed(tn.Group) {
		p.addAt(tn.Line, tn.Col, loc{}, "tenancy.group "+tn.Group+" starts with the tenant role prefix "+tn.RolePrefix+": it would be taken for a tenant")
	}
	for _, r := range cfg.Target.Readers {
		switch {
		case r == tn.Group:
			p.addAt(tn.Line, tn.Col, loc{}, "tenancy.group "+tn.Group+" is also a reader: readers see every row")
		case prefixed(r):
			p.addAt(tn.Line, tn.Col, loc{}, "reader "+r+" starts with the tenant role prefix "+tn.RolePrefix+": it would be taken for a tenant")
		}
	}
	for _, r := range tn.Impersonators {
		switch {
		case r == tn.Group:
			p.addAt(tn.Line, tn.Col, loc{}, "impersonator "+r+" is the tenant group")
		case prefixed(r):
			p.addAt(tn.Line, tn.Col, loc{}, "impersonator "+r+" starts with the tenant role prefix "+tn.RolePrefix)
		}
		for _, rd := range cfg.Target.Readers {
			if r == rd {
				p.addAt(tn.Line, tn.Col, loc{}, "impersonator "+r+" is also a reader: readers see every tenant's rows")
			}
		}
	}
	for _, t := range cfg.Tables {
		col, _ := cfg.TenantOf(t)
		if col == "" {
			if t.Tenant.Mode == TenantColumn {
				col = t.Tenant.Column
			} else {
				continue
			}
		}
		at := loc{table: schema.Qualified(t.Schema, t.Name), column: schema.QuoteIdent(col)}
		cr := t.column(col)
		if cr == nil {
			p.addAt(t.Tenant.Line, t.Tenant.Col, at, "the tenant column has no rule in this table's columns")
			continue
		}
		ok := false
		for _, r := range tenantRules {
			ok = ok || cr.Rule.Name == r
		}
		if !ok {
			p.addAt(cr.Rule.Line, cr.Rule.Col, at, "the tenant column must be kept or hashed (it is "+cr.Rule.Name+"): each tenant needs one value of its own in the replica; or mark the table tenant: none")
		}
	}
}

// tenantTypeProblems checks the tenant columns' types against the
// catalog: each must have a canonical text form (roles are named after
// it), and all one type, since one set of roles serves every tenant
// table (a text "01" must not name a role that reads the bigint 1).
func (c *Config) tenantTypeProblems(cat schema.Tables) Problems {
	if c.Tenancy == nil {
		return nil
	}
	var probs Problems
	var first, firstAt string
	for _, tr := range c.Tables {
		col, _ := c.TenantOf(tr)
		t := cat.Lookup(tr.Schema, tr.Name)
		cr := tr.column(col)
		if col == "" || t == nil || cr == nil || t.Column(col) == nil {
			continue
		}
		typ := t.Column(col).Type
		at := schema.Qualified(tr.Schema, tr.Name) + "." + schema.QuoteIdent(col)
		add := func(msg string) {
			probs = append(probs, Problem{File: c.File, Line: cr.Line, Col: cr.Col, Table: schema.Qualified(tr.Schema, tr.Name), Column: schema.QuoteIdent(col), Msg: msg})
		}
		switch {
		case !typ.CanonicalText():
			add("the tenant column has type " + typ.String() + ": it must be an integer, uuid or text column (tenant roles are named after its text, one per value)")
		case first == "":
			first, firstAt = typ.Name, at
		case typ.Name != first:
			add("the tenant column has type " + typ.Name + ", but " + firstAt + " has " + first + ": tenant columns must all have one type (the tenant key they hold)")
		}
	}
	return probs
}
