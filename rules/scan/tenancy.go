package scan

import (
	"pgveil/rules/refs"
	"pgveil/schema"
	"slices"
	"strconv"
	"strings"
)

// TenantHint is a proposed tenancy section: Column is named in several
// tables and, in those with a reference, references Ref's table, whose
// key is then that table's own tenant column.
type TenantHint struct {
	Column string
	Tables int          // how many tables have it
	Ref    *refs.Column // the referenced key, when the tables' references agree
}

// tenantWords are the last words of a tenant column's name, before "id":
// account_id, tenant_id, org_id, organization_id, workspace_id.
var tenantWords = []string{"account", "tenant", "org", "organization", "organisation", "workspace", "company", "customer_account"}

// ProposeTenancy looks for a multi-tenant schema: a column such as
// account_id or tenant_id in at least two tables. It returns the one in
// most tables (ties: the first in tenantWords' order), with the table its
// references (in m, the scan's reference model) point to when they all
// point to the same one.
func ProposeTenancy(tables []*Table, m *refs.Model) (TenantHint, bool) {
	count := map[string]int{}
	to := map[string][]refs.Column{}
	for _, t := range tables {
		for _, c := range t.Columns {
			if !tenantName(c.Name) {
				continue
			}
			count[c.Name]++
			if rs := m.From(colOf(t, c.Name)); len(rs) > 0 {
				to[c.Name] = append(to[c.Name], rs[0].To)
			}
		}
	}
	var best TenantHint
	for name, n := range count {
		if n < 2 || n < best.Tables || n == best.Tables && rank(name) >= rank(best.Column) {
			continue
		}
		best = TenantHint{Column: name, Tables: n}
		if rs := to[name]; len(rs) > 0 && !slices.ContainsFunc(rs, func(r refs.Column) bool { return r != rs[0] }) {
			r := rs[0]
			best.Ref = &r
		}
	}
	return best, best.Column != ""
}

// tenantName reports whether a column is named like a tenant key.
func tenantName(name string) bool {
	return rank(name) < len(tenantWords)
}

// rank is the place of name's tenant word in tenantWords (len when none).
func rank(name string) int {
	n := strings.ToLower(name)
	for i, w := range tenantWords {
		if n == w+"_id" || n == strings.ReplaceAll(w, "_", "")+"id" {
			return i
		}
	}
	return len(tenantWords)
}

// tenancyComment is the commented tenancy section Write puts after the
// secret: tenancy needs decisions (which tables are shared) and a role
// that may create roles, so the file works without it.
func tenancyComment(h TenantHint) string {
	var b strings.Builder
	b.WriteString("\n# This looks like a multi-tenant schema: " + schema.QuoteIdent(h.Column) + " is in " + strconv.Itoa(h.Tables) + " tables")
	if h.Ref != nil {
		b.WriteString(" and references " + h.Ref.Table.QualifiedName())
	}
	b.WriteString(".\n# To give each tenant a role that sees only its rows (README, \"Per-customer dashboards\"),\n")
	b.WriteString("# uncomment this, and mark tables every tenant may read with tenant: shared.\n")
	b.WriteString("# tenancy:\n#   column: " + yamlKey(schema.QuoteIdent(h.Column)) + "\n")
	return b.String()
}
