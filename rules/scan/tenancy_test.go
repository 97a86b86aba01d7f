package scan

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/schema"
)

// tenantFixture is a small multi-tenant schema: account_id in three
// tables, each referencing accounts.id; org_id in one table only.
func tenantFixture() []*Table {
	return []*Table{
		{Schema: "public", Name: "accounts", Columns: []Column{
			{Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true},
			{Name: "org_id", Type: schema.MustType("bigint")},
		}},
		{Schema: "public", Name: "users", Columns: []Column{
			{Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true},
			{Name: "account_id", Type: schema.MustType("bigint")},
		}},
		{Schema: "public", Name: "orders", Columns: []Column{
			{Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true},
			{Name: "account_id", Type: schema.MustType("bigint")},
		}},
		{Schema: "public", Name: "events", Columns: []Column{
			{Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true},
			{Name: "account_id", Type: schema.MustType("bigint")},
		}},
	}
}

// tenantRefs is tenantFixture's reference model: users.account_id and
// orders.account_id reference accounts.id.
func tenantRefs() *refs.Model {
	m := &refs.Model{}
	accounts := refs.Column{Table: refs.Table("public", "accounts"), Name: "id"}
	for _, tbl := range []string{"users", "orders"} {
		m.Add(refs.Ref{From: refs.Column{Table: refs.Table("public", tbl), Name: "account_id"}, To: accounts})
	}
	return m
}

func TestProposeTenancy(t *testing.T) {
	h, ok := ProposeTenancy(tenantFixture(), tenantRefs())
	if !ok || h.Column != "account_id" || h.Tables != 3 || h.Ref == nil || h.Ref.Table.Name != "accounts" || h.Ref.Name != "id" {
		t.Fatalf("ProposeTenancy = %+v, %v", h, ok)
	}
	// No reference model: the column, no table.
	if h, ok := ProposeTenancy(tenantFixture(), nil); !ok || h.Ref != nil {
		t.Errorf("without references: %+v, %v", h, ok)
	}
	// References that disagree give no table.
	m := tenantRefs()
	m.Refs[1].To = refs.Column{Table: refs.Table("public", "users"), Name: "id"}
	if h, _ := ProposeTenancy(tenantFixture(), m); h.Ref != nil {
		t.Errorf("disagreeing references: Ref = %+v", h.Ref)
	}
	// One table is no tenancy; neither is a name that only looks close.
	if h, ok := ProposeTenancy(tenantFixture()[:2], tenantRefs()); ok {
		t.Errorf("one table with account_id: %+v", h)
	}
	for _, name := range []string{"account_id", "tenantid", "organization_id", "workspace_id"} {
		if !tenantName(name) {
			t.Errorf("%s is not taken for a tenant column", name)
		}
	}
	for _, name := range []string{"account", "accounts_id", "account_name", "id", "user_id"} {
		if tenantName(name) {
			t.Errorf("%s is taken for a tenant column", name)
		}
	}
	if _, ok := ProposeTenancy(fixture(), nil); ok {
		t.Error("the single-tenant fixture got a tenancy proposal")
	}
}

// TestTenancyCommentUncommented: the proposal is commented out (the file
// works without it), and once uncommented it loads.
func TestTenancyCommentUncommented(t *testing.T) {
	tables := tenantFixture()
	h, _ := ProposeTenancy(tables, tenantRefs())
	var buf bytes.Buffer
	if err := Write(&buf, Header{Tenancy: &h}, Propose(tables, tenantRefs())); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)
	for _, want := range []string{"# This looks like a multi-tenant schema: account_id is in 3 tables and references public.accounts.",
		"# tenancy:\n#   column: account_id\n", "  accounts:\n    # tenant: {column: id}"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if cfg, err := rules.Parse("scan.yaml", buf.Bytes(), lookup, nil); err != nil || cfg.Tenancy != nil {
		t.Fatalf("as written: %v, tenancy %v", err, cfg)
	}
	on := regexp.MustCompile(`(?m)^# (tenancy:|  column: )`).ReplaceAllString(out, "$1")
	on = strings.Replace(on, "    # tenant: {column: id}", "    tenant: {column: id}", 1)
	cfg, err := rules.Parse("scan.yaml", []byte(on), lookup, nil)
	if err != nil {
		t.Fatalf("uncommented: %v\n%s", err, on)
	}
	if col, _ := cfg.TenantOf(cfg.Tables[0]); cfg.Tenancy == nil || cfg.Tenancy.Column != "account_id" || col != "id" {
		t.Errorf("uncommented: tenancy %+v, accounts' tenant column %q", cfg.Tenancy, col)
	}
}
