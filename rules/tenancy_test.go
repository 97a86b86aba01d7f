package rules

import (
	"slices"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
)

// tenancyHead is head with a tenancy section; tables start on line 9.
const tenancyHead = `source:
  dsn: postgres://app:pw@db/prod
target:
  dsn: postgres://w:pw@analytics/db
secret: ` + pgtest.Secret + `
tenancy:
  column: account_id
tables:
`

func TestTenancyParse(t *testing.T) {
	src := strings.Replace(tenancyHead, "  column: account_id\n", "  column: account_id\n  role_prefix: acct_\n  group: customers\n  impersonators: [metabase_tenants]\n", 1) +
		`  orders: {columns: {id: keep, account_id: hash}}
  accounts:
    tenant: {column: id}
    columns: {id: hash, name: keep}
  plans: {tenant: shared, columns: {id: keep}}
  audit: {tenant: none, columns: {id: keep, account_id: keep}}
  events: {columns: {id: keep}}
`
	cfg, ps := parseString(t, src)
	if len(ps) > 0 {
		t.Fatalf("problems: %v", ps)
	}
	tn := cfg.Tenancy
	if tn == nil || tn.Column != "account_id" || tn.RolePrefix != "acct_" || tn.Group != "customers" || !slices.Equal(tn.Impersonators, []string{"metabase_tenants"}) || tn.Line != 6 {
		t.Fatalf("tenancy = %+v", tn)
	}
	want := map[string]struct {
		col    string
		shared bool
	}{
		"orders":   {"account_id", false},
		"accounts": {"id", false},
		"plans":    {"", true},
		"audit":    {"", false}, // has the column, marked none
		"events":   {"", false}, // no tenant column: hidden from tenants
	}
	for _, tr := range cfg.Tables {
		col, shared := cfg.TenantOf(tr)
		if w := want[tr.Name]; col != w.col || shared != w.shared {
			t.Errorf("TenantOf(%s) = %q, %v; want %q, %v", tr.Name, col, shared, w.col, w.shared)
		}
	}
	if s := cfg.Split(); s.Tenant != 2 || s.Shared != 1 || !slices.Equal(s.Hidden, []string{"public.audit", "public.events"}) {
		t.Errorf("Split = %+v", s)
	}
}

func TestTenancyDefaults(t *testing.T) {
	cfg, ps := parseString(t, tenancyHead+"  orders: {columns: {id: keep, account_id: keep}}\n")
	if len(ps) > 0 {
		t.Fatalf("problems: %v", ps)
	}
	if cfg.Tenancy.RolePrefix != DefaultRolePrefix || cfg.Tenancy.Group != DefaultTenantGroup {
		t.Errorf("defaults = %+v", cfg.Tenancy)
	}
	// Without a tenancy section no table has a tenant.
	cfg, ps = parseString(t, head+"  orders: {columns: {id: keep, account_id: keep}}\n")
	if len(ps) > 0 || cfg.Tenancy != nil {
		t.Fatalf("tenancy %+v, problems %v", cfg.Tenancy, ps)
	}
	if col, shared := cfg.TenantOf(cfg.Tables[0]); col != "" || shared {
		t.Errorf("TenantOf without tenancy = %q, %v", col, shared)
	}
}

func TestTenancyProblems(t *testing.T) {
	withTenancy := func(section string) string {
		return strings.Replace(tenancyHead, "  column: account_id\n", section, 1)
	}
	tests := []struct {
		name string
		src  string
		want []want
	}{
		{"tenant without tenancy", head + "  t: {tenant: shared, columns: {id: keep}}\n", []want{"7:7: public.t: tenant needs a tenancy section"}},
		{"tenancy not a map", strings.Replace(tenancyHead, "  column: account_id\n", "", 1)[:len(head)-len("tables:\n")] + "tenancy: yes\ntables:\n  t: {columns: {id: keep}}\n",
			[]want{"6:10: tenancy must be a map"}},
		{"unknown key", withTenancy("  column: a\n  colum: b\n") + "  t: {columns: {id: keep}}\n", []want{`8:3: unknown key "colum"; allowed keys: column, role_prefix, group, impersonators`}},
		{"bad prefix", withTenancy("  role_prefix: Tenant-\n") + "  t: {columns: {id: keep}}\n", []want{`7:3: tenancy.role_prefix "Tenant-" is not valid`}},
		{"reserved prefix pu", withTenancy("  role_prefix: pu\n") + "  t: {columns: {id: keep}}\n", []want{`7:3: tenancy.role_prefix "pu" could make a tenant role named public`}},
		{"reserved prefix pg_x", withTenancy("  role_prefix: pg_x\n") + "  t: {columns: {id: keep}}\n", []want{`7:3: tenancy.role_prefix "pg_x" could make a tenant role named pg_`}},
		{"reserved prefix current_", withTenancy("  role_prefix: current_\n") + "  t: {columns: {id: keep}}\n", []want{`7:3: tenancy.role_prefix "current_" could make a tenant role named current_user`}},
		{"bad group", withTenancy("  group: 9x\n") + "  t: {columns: {id: keep}}\n", []want{`7:10: tenancy.group "9x" is not a valid name`}},
		{"group with prefix", withTenancy("  group: tenant_all\n") + "  t: {columns: {id: keep}}\n", []want{"6:1: tenancy.group tenant_all starts with the tenant role prefix tenant_"}},
		{"reader with prefix", strings.Replace(withTenancy("  column: a\n"), "  dsn: postgres://w:pw@analytics/db\n", "  dsn: x\n  readers: [tenant_ro, pgveil_tenants]\n", 1) + "  t: {columns: {id: keep}}\n", []want{
			"7:1: reader tenant_ro starts with the tenant role prefix", "7:1: tenancy.group pgveil_tenants is also a reader"}},
		{"impersonator reader", strings.Replace(withTenancy("  impersonators: [mb, tenant_x, pgveil_tenants]\n"), "  dsn: postgres://w:pw@analytics/db\n", "  dsn: x\n  readers: [mb]\n", 1) + "  t: {columns: {id: keep}}\n", []want{
			"7:1: impersonator mb is also a reader", "7:1: impersonator tenant_x starts with the tenant role prefix", "7:1: impersonator pgveil_tenants is the tenant group"}},
		{"tenant bad scalar", tenancyHead + "  t: {tenant: org_id, columns: {id: keep}}\n", []want{`9:15: public.t: tenant must be shared, none or {column: NAME}, not "org_id"`}},
		{"tenant list", tenancyHead + "  t: {tenant: [a], columns: {id: keep}}\n", []want{`9:15: public.t: tenant must be shared, none or {column: NAME}, not a list`}},
		{"tenant map unknown key", tenancyHead + "  t: {tenant: {col: a}, columns: {id: keep}}\n", []want{`9:16: public.t: unknown key "col"; allowed keys: column`}},
		{"tenant column without rule", tenancyHead + "  t: {tenant: {column: org_id}, columns: {id: keep}}\n", []want{`9:7: public.t.org_id: the tenant column has no rule`}},
		{"default tenant column dropped", tenancyHead + "  t:\n    columns:\n      id: keep\n      account_id: drop\n", []want{`12:19: public.t.account_id: the tenant column must be kept or hashed (it is drop)`}},
		{"tenant column faked", tenancyHead + "  t:\n    tenant: {column: org}\n    columns:\n      org: {fake: name}\n", []want{`12:12: public.t.org: the tenant column must be kept or hashed (it is fake)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := parseString(t, tt.src)
			checkProblems(t, ps, tt.want)
		})
	}
}

func TestTenancyCompileTypes(t *testing.T) {
	cols := "customers: {tenant: {column: id}, columns: {id: keep, email: keep, full_name: keep, birth_date: keep, notes: keep, profile: keep, created_at: keep}}\n"
	orders := func(tenant string) string {
		return "  orders: {tenant: {column: " + tenant + "}, columns: {id: keep, customer_id: keep, total: keep, code: keep}}\n"
	}
	for _, c := range []struct {
		name, src string
		want      []want
	}{
		{"one type", tenancyHead + "  " + cols + orders("customer_id"), nil},
		{"numeric", tenancyHead + "  " + cols + orders("total"),
			[]want{"10:76: public.orders.total: the tenant column has type numeric(10,2): it must be an integer, uuid or text column"}},
		{"two types", tenancyHead + "  " + cols + orders("code"),
			[]want{"10:88: public.orders.code: the tenant column has type character varying, but public.customers.id has bigint: tenant columns must all have one type"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, errs := compileString(t, c.src)
			checkProblems(t, errs, c.want)
		})
	}
}
