package scan

import (
	"bytes"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/schema"
)

const canary = "CANARY-Zoë-Müller"

func fixture() []*Table {
	return []*Table{
		{Schema: "public", Name: "customers", Columns: []Column{
			{Name: "id", Type: schema.MustType("bigint"), PrimaryKey: true},
			{Name: "email", Type: schema.MustType("text"), Unique: true, Samples: []string{canary + "@mail.example"}},
			{Name: "full_name", Type: schema.MustType("text"), Samples: []string{canary}},
			{Name: "notes", Type: schema.MustType("text"), Samples: []string{canary}},
			{Name: "profile", Type: schema.MustType("jsonb"), Samples: []string{`{"ssn": "` + canary + `", "` + canary + `": {"email": "x@y.example"}}`}},
			{Name: "contact", Type: schema.MustType("text"), Samples: []string{canary + "@a.example"}},
			{Name: "created_at", Type: schema.MustType("timestamptz")},
			{Name: "Weird Name", Type: schema.MustType("text")},
			{Name: "on", Type: schema.MustType("boolean")},
		}},
		{Schema: "public", Name: "orders", Columns: []Column{
			{Name: "id", Type: schema.MustType("uuid"), PrimaryKey: true},
			{Name: "customer_id", Type: schema.MustType("bigint")},
			{Name: "total", Type: schema.MustType("numeric(12,2)")},
			{Name: "placed_on", Type: schema.MustType("date")},
		}},
		{Schema: "public", Name: "items", Columns: []Column{
			{Name: "order_id", Type: schema.MustType("uuid"), PrimaryKey: true},
			{Name: "line", Type: schema.MustType("smallint"), PrimaryKey: true},
			{Name: "sku", Type: schema.MustType("varchar(8)"), Unique: true},
		}},
		{Schema: "billing", Name: "Invoices", Columns: []Column{
			{Name: "code", Type: schema.MustType("varchar(8)"), PrimaryKey: true},
			{Name: "iban", Type: schema.MustType("text")},
		}},
	}
}

// fixtureRefs is fixture's reference model: orders.customer_id and the
// order_id of the table that references orders.
func fixtureRefs(tables []*Table) *refs.Model {
	m := &refs.Model{}
	for _, t := range tables {
		for _, c := range t.Columns {
			switch c.Name {
			case "customer_id":
				m.Add(refs.Ref{From: colOf(t, c.Name), To: refs.Column{Table: refs.Table("public", "customers"), Name: "id"}})
			case "order_id":
				m.Add(refs.Ref{From: colOf(t, c.Name), To: refs.Column{Table: refs.Table("public", "orders"), Name: "id"}})
			}
		}
	}
	return m
}

func catalogOf(tables []*Table) schema.Tables {
	cat := schema.Tables{}
	for _, t := range tables {
		ct := &schema.Table{Schema: t.Schema, Name: t.Name}
		for _, c := range t.Columns {
			ct.Columns = append(ct.Columns, schema.Column{Table: ct.QualifiedName(), Name: c.Name, Type: c.Type, PrimaryKey: c.PrimaryKey, Unique: c.Unique})
		}
		cat[schema.TableName{Schema: t.Schema, Name: t.Name}] = ct
	}
	return cat
}

var testEnv = map[string]string{
	"SOURCE_DSN": "host=prod", "TARGET_DSN": "host=analytics", "PGVEIL_SECRET": pgtest.Secret,
}

func lookup(k string) (string, bool) { v, ok := testEnv[k]; return v, ok }

func TestProposeWriteLoadsAndCompiles(t *testing.T) {
	tables := fixture()
	ruled := Propose(tables, fixtureRefs(tables))
	var buf bytes.Buffer
	if err := Write(&buf, Header{Comment: []string{"proposed by pgveil scan"}}, ruled); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)
	cfg, err := rules.Parse("scan.yaml", buf.Bytes(), lookup, nil)
	if err != nil {
		t.Fatalf("the output does not load: %v\n%s", err, out)
	}
	_, probs, err := cfg.Compile(catalogOf(tables), nil, nil)
	if err != nil || len(probs) > 0 {
		t.Fatalf("compile: %v %v\n%s", err, probs, out)
	}
	want := map[string]string{
		"customers.id": "hash", "orders.customer_id": "hash", "items.order_id": "hash", "items.line": "hash",
		"orders.id": "hash", "Invoices.code": "keep", "customers.notes": "drop", "orders.total": "keep",
		"customers.created_at": "{truncate: day}", "orders.placed_on": "{truncate: month}", "items.sku": "keep",
		"customers.email": "{fake: {kind: email, unique: true}}", "Invoices.iban": "{fake: iban}",
		"customers.profile": `{json: {"$..email": {fake: email}, "$..ssn": drop}}`,
	}
	for _, r := range ruled {
		for i, c := range r.Table.Columns {
			if w, ok := want[r.Table.Name+"."+c.Name]; ok && r.Proposals[i].Rule != w {
				t.Errorf("%s.%s: %s, want %s", r.Table.Name, c.Name, r.Proposals[i].Rule, w)
			}
		}
	}
	if !strings.Contains(out, "      email: {fake: {kind: email, unique: true}}") || !strings.Contains(out, "# ") {
		t.Errorf("output lacks the email rule or comments:\n%s", out)
	}
}

// TestNoSampledValueInOutput feeds a canary in every sampled value: no
// output (rules, comments, reasons) holds it.
func TestNoSampledValueInOutput(t *testing.T) {
	tables := fixture()
	ruled := Propose(tables, fixtureRefs(tables))
	var buf bytes.Buffer
	if err := Write(&buf, Header{}, ruled); err != nil {
		t.Fatal(err)
	}
	for _, r := range ruled {
		for _, p := range r.Proposals {
			if strings.Contains(p.Rule+p.Reason, "CANARY") {
				t.Errorf("a proposal holds the canary: %s # %s", p.Rule, p.Reason)
			}
		}
	}
	if strings.Contains(buf.String(), "CANARY") || strings.Contains(buf.String(), "Zoë") {
		t.Errorf("the output holds a sampled value:\n%s", buf.String())
	}
	for _, c := range []Column{
		{Name: "x", Type: schema.MustType("jsonb"), Samples: []string{`{"` + canary + `": "a@b.example", "k": "` + canary + `"}`}},
		{Name: "x", Type: schema.MustType("text"), Samples: []string{canary, canary + "@x.example"}},
	} {
		if p := Classify("t", c); strings.Contains(p.Rule+p.Reason, "CANARY") {
			t.Errorf("Classify leaks the canary: %s # %s", p.Rule, p.Reason)
		}
	}
}
