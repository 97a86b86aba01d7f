package report

import (
	"slices"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/rules/refs"
)

// acrossRules: customers reference an address, addresses a city, cities a
// country, a Pagila-like schema with unconventional key names. store
// references an address too; rentals reference customers; country has a
// language; a hashed key on one side breaks the reference to region.
const acrossRules = `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: ` + pgtest.Secret + `
tables:
  customer:
    columns:
      customer_id: keep
      first_name: {fake: first_name}
      birth_date: {truncate: year}
      address_id: keep
      store_id: keep
  address:
    columns:
      address_id: keep
      postal_code: {truncate: 3}
      city_id: keep
      region_id: hash
  city:
    columns:
      city_id: keep
      city: keep
      country_id: keep
  country:
    columns:
      country_id: keep
      country: keep
      language_id: keep
  language:
    columns:
      language_id: keep
      language: keep
  region:
    columns:
      region_id: keep
      region: keep
  store:
    columns:
      store_id: keep
      address_id: keep
  rental:
    columns:
      rental_id: keep
      customer_id: keep
  staff:
    columns:
      staff_id: keep
      email: {fake: email}
      manager_id: keep
`

func acrossModel() *refs.Model {
	m := &refs.Model{}
	col := func(t, c string) refs.Column { return refs.Column{Table: refs.Table("public", t), Name: c} }
	for _, r := range [][4]string{
		{"customer", "address_id", "address", "address_id"},
		{"customer", "store_id", "store", "store_id"},
		{"address", "city_id", "city", "city_id"},
		{"address", "region_id", "region", "region_id"},
		{"city", "country_id", "country", "country_id"},
		{"country", "language_id", "language", "language_id"},
		{"store", "address_id", "address", "address_id"},
		{"rental", "customer_id", "customer", "customer_id"},
		{"staff", "manager_id", "staff", "staff_id"},
		{"customer", "address_id", "nowhere", "id"}, // not in the rules
	} {
		m.Add(refs.Ref{From: col(r[0], r[1]), To: col(r[2], r[3]), Constraint: r[0] + "_" + r[1] + "_fkey"})
	}
	return m
}

func tableNamed(ts []Table, name string) Table {
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	return Table{}
}

func TestAnalyzeAcross(t *testing.T) {
	cfg := parseRules(t, acrossRules)
	ts := AnalyzeAcross(cfg, acrossModel(), JoinOptions{})

	// Lookup tables: referenced, no person. customer is referenced by
	// rental but holds a person; staff refers to itself only.
	var lookups []string
	for _, tb := range ts {
		if tb.Lookup {
			lookups = append(lookups, tb.Name)
		}
	}
	if want := []string{"address", "city", "country", "language", "region", "store"}; !slices.Equal(lookups, want) {
		t.Errorf("lookup tables %v, want %v", lookups, want)
	}

	c := tableNamed(ts, "customer")
	if c.Joined == nil {
		t.Fatal("customer has no set across references")
	}
	s := *c.Joined
	// The store's address is not joined a second time (each table once,
	// nearest first); store, with no quasi-identifier, is pruned.
	if got, want := s.Path(), "customer → address → city → country"; got != want {
		t.Errorf("Path:\n got %s\nwant %s", got, want)
	}
	// Depth 3: language is 4 references away from customer and is not
	// joined; the region's key is hashed on one side only: not joined.
	if got, want := strings.Join(s.Labels(), ", "), "birth_date, address.postal_code, city.city, country.country"; got != want {
		t.Errorf("Labels:\n got %s\nwant %s", got, want)
	}
	if !s.Default || s.Schema != "public" || s.Table != "customer" {
		t.Errorf("set %+v", s)
	}

	// rental has no quasi-identifier and holds no person: its groups
	// would count rentals, not people. It is not measured across.
	if r := tableNamed(ts, "rental"); r.Joined != nil {
		t.Errorf("rental: %+v", r.Joined)
	}

	// Each lookup is measured through the tables whose sets hold its
	// columns; language, too far, is reached by nobody but country,
	// which is itself a lookup: not measured at all (not k = 1).
	for name, want := range map[string][]string{
		"city": {"public.customer"}, "country": {"public.customer"},
		"address": {"public.customer"}, "language": nil, "region": nil,
	} {
		if got := tableNamed(ts, name).Through; !slices.Equal(got, want) {
			t.Errorf("%s measured through %v, want %v", name, got, want)
		}
	}

	// What Sets measures: customer's own set and its set across
	// references, never a lookup table's own.
	var got []string
	for _, s := range Sets(ts, nil) {
		l := s.Table + ":" + strings.Join(s.Labels(), ",")
		if s.Across() {
			l += " across"
		}
		got = append(got, l)
	}
	want := []string{
		"customer:birth_date",
		"customer:birth_date,address.postal_code,city.city,country.country across",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Sets:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// MaxDepth and MaxColumns bound the sets.
func TestAnalyzeAcrossBounds(t *testing.T) {
	cfg := parseRules(t, acrossRules)
	ts := AnalyzeAcross(cfg, acrossModel(), JoinOptions{MaxDepth: 1})
	if got := tableNamed(ts, "customer").Joined.Path(); got != "customer → address" {
		t.Errorf("depth 1: %s", got)
	}
	// Only the nearest column is added; the steps beyond it are pruned.
	ts = AnalyzeAcross(cfg, acrossModel(), JoinOptions{MaxColumns: 1})
	s := tableNamed(ts, "customer").Joined
	if got := strings.Join(s.Labels(), ", "); got != "birth_date, address.postal_code" || s.Path() != "customer → address" || len(s.Steps) != 1 {
		t.Errorf("1 column: %s via %s (%d steps)", got, s.Path(), len(s.Steps))
	}
	// Without references, nothing is joined and nothing is a lookup.
	ts = AnalyzeAcross(cfg, &refs.Model{}, JoinOptions{})
	for _, tb := range ts {
		if tb.Lookup || tb.Joined != nil {
			t.Errorf("%s: lookup %v, joined %v with an empty model", tb.Name, tb.Lookup, tb.Joined)
		}
	}
}

// A composite reference is one join on all its columns.
func TestAnalyzeAcrossComposite(t *testing.T) {
	cfg := parseRules(t, `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: `+pgtest.Secret+`
tables:
  patient:
    columns: {id: keep, gender: keep, site: keep, ward_no: keep}
  ward:
    columns: {site: keep, no: keep, city: keep}
`)
	m := &refs.Model{}
	for _, p := range [][2]string{{"site", "site"}, {"ward_no", "no"}} {
		m.Add(refs.Ref{From: refs.Column{Table: refs.Table("public", "patient"), Name: p[0]},
			To: refs.Column{Table: refs.Table("public", "ward"), Name: p[1]}, Constraint: "patient_ward_fkey"})
	}
	s := tableNamed(AnalyzeAcross(cfg, m, JoinOptions{}), "patient").Joined
	if s == nil || len(s.Steps) != 1 {
		t.Fatalf("patient: %+v", s)
	}
	sql := groupSQL(*s)
	if !strings.Contains(sql, `FROM public.patient AS t0 LEFT JOIN public.ward AS t1 ON t1.no = t0.ward_no AND t1.site = t0.site GROUP BY t0.gender::text, t1.city::text`) &&
		!strings.Contains(sql, `ON t1.site = t0.site AND t1.no = t0.ward_no GROUP BY t0.gender::text, t1.city::text`) {
		t.Errorf("groupSQL: %s", sql)
	}
}

func TestJoinedGroupSQL(t *testing.T) {
	s := Set{Schema: "public", Table: "customer", Columns: []string{"birth_date"}, Within: "tenant_id",
		Steps: []Step{
			{Parent: -1, From: []string{"address_id"}, Schema: "public", Table: "address", To: []string{"address_id"}, Label: "address"},
			{Parent: 0, From: []string{"city_id"}, Schema: "geo", Table: `Ci"ty`, To: []string{"id"}, Label: "city"},
		},
		Joined: []JoinedColumn{{Step: 0, Column: "postal_code"}, {Step: 1, Column: "name"}}}
	want := `FROM (SELECT count(*) AS n FROM public.customer AS t0` +
		` LEFT JOIN public.address AS t1 ON t1.address_id = t0.address_id` +
		` LEFT JOIN geo."Ci""ty" AS t2 ON t2.id = t1.city_id` +
		` GROUP BY t0.tenant_id::text, t0.birth_date::text, t1.postal_code::text, t2.name::text) g`
	if got := groupSQL(s); !strings.HasSuffix(got, want) {
		t.Errorf("groupSQL:\n got %s\nwant ...%s", got, want)
	}
	if got := s.Path(); got != "customer → address → city" {
		t.Errorf("Path %q", got)
	}
}

func TestHoldsPerson(t *testing.T) {
	cfg := parseRules(t, `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: `+pgtest.Secret+`
tables:
  customers: {columns: {id: keep, name: keep}}
  category: {columns: {id: keep, name: keep}}
  members: {columns: {id: keep, contact: {fake: email}}}
  people_stats: {columns: {id: keep, sex: hash}}
  country: {columns: {id: keep, country: keep, phone_prefix: keep}}
  language: {columns: {language_id: keep, name: keep}}
`)
	for i, want := range []bool{true, false, true, true, false, false} {
		if got := HoldsPerson(cfg.Tables[i]); got != want {
			t.Errorf("HoldsPerson(%s) = %v, want %v", cfg.Tables[i].Name, got, want)
		}
	}
}

// Pairs are found through the model's references, whatever the columns'
// names: payments.buyer refers to person.pid.
func TestCandidatesFromModel(t *testing.T) {
	cfg := parseRules(t, `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: `+pgtest.Secret+`
tables:
  person:
    columns: {pid: hash, income: {noise: 0.1}, joined_on: keep}
  payments:
    columns: {id: keep, buyer: hash, declared_income: keep, seller: keep}
`)
	m := &refs.Model{}
	m.Add(refs.Ref{From: refs.Column{Table: refs.Table("public", "payments"), Name: "buyer"}, To: refs.Column{Table: refs.Table("public", "person"), Name: "pid"}})
	m.Add(refs.Ref{From: refs.Column{Table: refs.Table("public", "payments"), Name: "seller"}, To: refs.Column{Table: refs.Table("public", "person"), Name: "pid"}})
	var got []string
	for _, p := range CandidatesFrom(cfg, m) {
		got = append(got, pairLabel(p))
	}
	// seller is kept while pid is hashed: no join; and it is a key, not
	// a measure. The naming convention alone finds nothing outside the
	// row.
	want := []string{
		"public.person.income (noise 0.1) | public.person.joined_on (keep) | same row",
		"public.person.income (noise 0.1) | public.payments.declared_income (keep) | public.payments.buyer = public.person.pid",
	}
	if !slices.Equal(got, want) {
		t.Errorf("CandidatesFrom:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if n := len(Candidates(cfg)); n != 1 {
		t.Errorf("Candidates by names: %d pairs, want the same row's only", n)
	}
}

// A table that refers to people is not a lookup table, even when others
// refer to it: orders' ship_zip is measured with its customer's columns.
func TestAnalyzeAcrossNotLookup(t *testing.T) {
	cfg := parseRules(t, `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: `+pgtest.Secret+`
tables:
  customers: {columns: {id: hash, name: {fake: name}, gender: keep}}
  orders: {columns: {id: keep, customer_id: hash, ship_zip: {truncate: 3}}}
  payments: {columns: {id: keep, order_id: keep, amount: keep}}
`)
	ts := AnalyzeAcross(cfg, nil, JoinOptions{}) // nil: the names' model
	o := tableNamed(ts, "orders")
	if o.Lookup || o.Joined == nil || o.Joined.Path() != "orders → customers" || strings.Join(o.Joined.Labels(), ",") != "ship_zip,customers.gender" {
		t.Errorf("orders: lookup %v, joined %+v", o.Lookup, o.Joined)
	}
	if c := tableNamed(ts, "customers"); c.Lookup || c.Joined != nil {
		t.Errorf("customers: lookup %v, joined %+v", c.Lookup, c.Joined)
	}
	if p := tableNamed(ts, "payments"); p.Joined != nil {
		t.Errorf("payments: %+v", p.Joined)
	}
}
