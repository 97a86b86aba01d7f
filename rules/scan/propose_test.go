package scan

import (
	"bytes"
	"strings"
	"testing"

	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/schema"
)

// pagilaTables is Pagila's shape as Read gives it: payment is one table
// (its partitions lifted; references come from the model),
// a few sampled values each.
func pagilaTables() []*Table {
	ty := schema.MustType
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
	return []*Table{
		{Schema: "public", Name: "country", Columns: []Column{
			{Name: "country_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "country", Type: ty("text"), Samples: []string{"Afghanistan", "Algeria", "American Samoa"}},
			{Name: "last_update", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "city", Columns: []Column{
			{Name: "city_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "city", Type: ty("text"), Samples: []string{"A Corua (La Corua)", "Abha", "Abu Dhabi"}},
			{Name: "country_id", Type: ty("integer")},
			{Name: "last_update", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "address", Columns: []Column{
			{Name: "address_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "address", Type: ty("text"), Samples: []string{"47 MySakila Drive", "28 MySQL Boulevard", "23 Workhaven Lane"}},
			{Name: "address2", Type: ty("text"), Samples: []string{"", "", ""}},
			{Name: "district", Type: ty("text"), Samples: []string{"Alberta", "QLD", "Alberta"}},
			{Name: "city_id", Type: ty("integer")},
			{Name: "postal_code", Type: ty("text"), Samples: []string{"35200", "17886"}},
			{Name: "phone", Type: ty("text"), Samples: []string{"14033335568", "6172235589"}},
			{Name: "last_update", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "language", Columns: []Column{
			{Name: "language_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "name", Type: ty("character(20)"), Samples: []string{"English", "Italian", "Japanese"}},
			{Name: "last_update", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "film", Columns: []Column{
			{Name: "film_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "title", Type: ty("text"), Samples: []string{"ACADEMY DINOSAUR", "ACE GOLDFINGER", "ADAPTATION HOLES"}},
			{Name: "description", Type: ty("text"), Samples: []string{"A Epic Drama of a Feminist And a Mad Scientist who must Battle a Teacher in The Canadian Rockies"}},
			{Name: "language_id", Type: ty("integer")},
			{Name: "rating", Type: ty("text"), Samples: []string{"PG", "G", "NC-17"}},
			{Name: "last_update", Type: ty("timestamptz")},
			{Name: "fulltext", Type: ty("tsvector"), DerivedFrom: []string{"title", "description"}, DerivedHow: "tsvector trigger"},
		}},
		{Schema: "public", Name: "category", Columns: []Column{
			{Name: "category_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "name", Type: ty("text"), Samples: []string{"Action", "Animation", "Children"}},
		}},
		{Schema: "public", Name: "actor", Columns: []Column{
			{Name: "actor_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "first_name", Type: ty("text"), Samples: []string{"PENELOPE", "NICK", "ED"}},
			{Name: "last_name", Type: ty("text"), Samples: []string{"GUINESS", "WAHLBERG", "CHASE"}},
			{Name: "last_update", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "staff", Columns: []Column{
			{Name: "staff_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "first_name", Type: ty("text"), Samples: []string{"Mike", "Jon"}},
			{Name: "last_name", Type: ty("text"), Samples: []string{"Hillyer", "Stephens"}},
			{Name: "address_id", Type: ty("integer")},
			{Name: "email", Type: ty("text"), Samples: []string{"Mike.Hillyer@sakilastaff.com"}},
			{Name: "store_id", Type: ty("integer")},
			{Name: "username", Type: ty("text"), Samples: []string{"Mike"}},
			{Name: "password", Type: ty("text")},
			{Name: "picture", Type: ty("bytea"), Samples: []string{png}},
			{Name: "last_update", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "store", Columns: []Column{
			{Name: "store_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "manager_staff_id", Type: ty("integer")},
			{Name: "address_id", Type: ty("integer")},
			{Name: "last_update", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "customer", Columns: []Column{
			{Name: "customer_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "store_id", Type: ty("integer")},
			{Name: "first_name", Type: ty("text"), Samples: []string{"MARY", "PATRICIA", "LINDA"}},
			{Name: "last_name", Type: ty("text"), Samples: []string{"SMITH", "JOHNSON", "WILLIAMS"}},
			{Name: "email", Type: ty("text"), Samples: []string{"MARY.SMITH@sakilacustomer.org"}},
			{Name: "address_id", Type: ty("integer")},
			{Name: "activebool", Type: ty("boolean")},
			{Name: "create_date", Type: ty("date")},
			{Name: "last_update", Type: ty("timestamptz")},
			{Name: "uuid", Type: ty("uuid")},
		}},
		{Schema: "public", Name: "inventory", Columns: []Column{
			{Name: "inventory_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "film_id", Type: ty("integer")},
			{Name: "store_id", Type: ty("integer")},
			{Name: "last_update", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "rental", Columns: []Column{
			{Name: "rental_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "rental_date", Type: ty("timestamptz")},
			{Name: "inventory_id", Type: ty("integer")},
			{Name: "customer_id", Type: ty("integer")},
			{Name: "return_date", Type: ty("timestamptz")},
			{Name: "staff_id", Type: ty("integer")},
			{Name: "last_update", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "payment", Columns: []Column{
			{Name: "payment_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "customer_id", Type: ty("integer")},
			{Name: "staff_id", Type: ty("integer")},
			{Name: "rental_id", Type: ty("integer")},
			{Name: "amount", Type: ty("numeric(5,2)")},
			{Name: "payment_date", Type: ty("timestamptz"), PrimaryKey: true},
		}},
	}
}

// pagilaModel is what refs.Read gives for Pagila, with payment's
// references lifted from its partitions and store.manager_staff_id
// inferred.
func pagilaModel() *refs.Model {
	c := func(t, col string) refs.Column { return refs.Column{Table: refs.Table("public", t), Name: col} }
	m := &refs.Model{}
	for _, r := range [][4]string{
		{"city", "country_id", "country", "country_id"}, {"address", "city_id", "city", "city_id"},
		{"film", "language_id", "language", "language_id"}, {"staff", "address_id", "address", "address_id"},
		{"staff", "store_id", "store", "store_id"}, {"store", "address_id", "address", "address_id"},
		{"customer", "store_id", "store", "store_id"}, {"customer", "address_id", "address", "address_id"},
		{"inventory", "film_id", "film", "film_id"}, {"inventory", "store_id", "store", "store_id"},
		{"rental", "inventory_id", "inventory", "inventory_id"}, {"rental", "customer_id", "customer", "customer_id"},
		{"rental", "staff_id", "staff", "staff_id"},
	} {
		m.Add(refs.Ref{From: c(r[0], r[1]), To: c(r[2], r[3]), Origin: refs.Declared})
	}
	for _, r := range [][4]string{
		{"payment", "customer_id", "customer", "customer_id"}, {"payment", "staff_id", "staff", "staff_id"},
		{"payment", "rental_id", "rental", "rental_id"},
	} {
		m.Add(refs.Ref{From: c(r[0], r[1]), To: c(r[2], r[3]), Origin: refs.Partition})
	}
	m.Add(refs.Ref{From: c("store", "manager_staff_id"), To: c("staff", "staff_id"), Origin: refs.Inferred, Why: "suffix _staff_id names staff.staff_id"})
	return m
}

// assertConsistent fails for every reference of m whose two columns are
// proposed different rules: a join across it would return nothing.
func assertConsistent(t *testing.T, ruled []Ruled, m *refs.Model) {
	t.Helper()
	rule := map[refs.Column]string{}
	for _, r := range ruled {
		for i, c := range r.Table.Columns {
			rule[colOf(r.Table, c.Name)] = r.Proposals[i].Rule
		}
	}
	for _, r := range m.Refs {
		from, ok1 := rule[r.From]
		to, ok2 := rule[r.To]
		if !ok1 || !ok2 {
			t.Errorf("reference %s -> %s: a column is not in the proposals", r.From, r.To)
			continue
		}
		if from != to {
			t.Errorf("reference %s (%s) -> %s (%s): %s, want the key's %s", r.From, r.Origin, r.To, r.Origin, from, to)
		}
	}
}

func rulesOf(ruled []Ruled) map[string]Proposal {
	out := map[string]Proposal{}
	for _, r := range ruled {
		for i, c := range r.Table.Columns {
			out[r.Table.Name+"."+c.Name] = r.Proposals[i]
		}
	}
	return out
}

func TestProposePagilaConsistent(t *testing.T) {
	tables, m := pagilaTables(), pagilaModel()
	ruled := Propose(tables, m)
	assertConsistent(t, ruled, m)
	got := rulesOf(ruled)
	for col, want := range map[string]string{
		"payment.customer_id": "hash", "payment.staff_id": "hash", "payment.rental_id": "hash",
		"store.manager_staff_id": "hash", "rental.inventory_id": "hash", "inventory.film_id": "hash",
		"staff.picture": "drop", "address.address2": "{fake: address}", "address.address": "{fake: address}",
		"film.title": "keep", "film.description": "keep", "film.fulltext": "keep", "category.name": "keep",
		"language.name": "keep", "customer.uuid": "hash", "rental.rental_date": "{truncate: day}",
		// Part of payment's primary key (Pagila partitions payment by
		// it): keys may only be kept or hashed; the reason says so.
		"payment.payment_date": "keep",
		"actor.first_name":     "{fake: first_name}", "actor.last_name": "{fake: last_name}",
		"customer.email": "{fake: email}", "staff.password": "drop",
	} {
		if p := got[col]; p.Rule != want {
			t.Errorf("%s: %s (%s), want %s", col, p.Rule, p.Reason, want)
		}
	}
	if r := got["payment.payment_date"].Reason; !strings.Contains(r, "same chain of events as public.rental.rental_date") {
		t.Errorf("payment.payment_date: the reason does not name the chain: %s", r)
	}
	// The proposals load and compile.
	var cat schema.Tables = catalogOf(tables)
	cfg := writeAndParse(t, ruled)
	if _, probs, err := cfg.Compile(cat, nil, nil); err != nil || len(probs.Errors()) > 0 {
		t.Fatalf("compile: %v %v", err, probs)
	}
}

// A tsvector built from a dropped title is dropped; the event chain gives
// a payment's time the rental's truncation; a key kept raw that a
// personal column references is raised to hash.
func TestProposeDerivedChainsAndRaise(t *testing.T) {
	ty := schema.MustType
	tables := []*Table{
		{Schema: "public", Name: "customer", Columns: []Column{
			{Name: "customer_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "email", Type: ty("text"), Samples: []string{"a@b.example"}},
			{Name: "title", Type: ty("text"), Samples: []string{"likes cats"}},
			{Name: "search", Type: ty("tsvector"), DerivedFrom: []string{"title"}, DerivedHow: "tsvector trigger"},
			{Name: "words", Type: ty("tsvector")},
		}},
		{Schema: "public", Name: "rental", Columns: []Column{
			{Name: "rental_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "customer_id", Type: ty("integer")},
			{Name: "rental_date", Type: ty("timestamptz")},
		}},
		{Schema: "public", Name: "shipment", Columns: []Column{
			{Name: "shipment_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "rental_id", Type: ty("integer")},
			{Name: "shipped_at", Type: ty("timestamp")},
			{Name: "amount", Type: ty("numeric")},
		}},
		{Schema: "public", Name: "emails", Columns: []Column{
			{Name: "address", Type: ty("text"), Unique: true},
		}},
		{Schema: "public", Name: "logins", Columns: []Column{
			{Name: "login_id", Type: ty("integer"), PrimaryKey: true},
			{Name: "user_email", Type: ty("text"), Samples: []string{"x@y.example", "z@y.example"}},
		}},
	}
	c := func(t, col string) refs.Column { return refs.Column{Table: refs.Table("public", t), Name: col} }
	m := &refs.Model{}
	m.Add(refs.Ref{From: c("rental", "customer_id"), To: c("customer", "customer_id")})
	m.Add(refs.Ref{From: c("shipment", "rental_id"), To: c("rental", "rental_id")})
	m.Add(refs.Ref{From: c("logins", "user_email"), To: c("emails", "address"), Origin: refs.Inferred})
	ruled := Propose(tables, m)
	assertConsistent(t, ruled, m)
	got := rulesOf(ruled)
	for col, want := range map[string]string{
		"customer.title": "drop", "customer.search": "drop", "customer.words": "drop",
		"rental.rental_date": "{truncate: day}", "shipment.shipped_at": "{truncate: day}",
		"emails.address": "hash", "logins.user_email": "hash",
	} {
		if p := got[col]; p.Rule != want {
			t.Errorf("%s: %s (%s), want %s", col, p.Rule, p.Reason, want)
		}
	}
}

func writeAndParse(t *testing.T, ruled []Ruled) *rules.Config {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, Header{}, ruled); err != nil {
		t.Fatal(err)
	}
	cfg, err := rules.Parse("scan.yaml", buf.Bytes(), lookup, nil)
	if err != nil {
		t.Fatalf("the output does not load: %v\n%s", err, buf.String())
	}
	return cfg
}

// A catalogue that references its author stays a catalogue (its name and
// description kept); a booking that references a passenger is related to
// people (its ticket-shaped codes hashed, its times coarsened).
func TestProposeRelatedTables(t *testing.T) {
	ty := schema.MustType
	codes := []string{"X7K2PQ", "A8B9C1", "Z2Y3X4", "Q5W6E7"}
	tables := []*Table{
		{Schema: "public", Name: "users", Columns: []Column{
			{Name: "id", Type: ty("integer"), PrimaryKey: true},
			{Name: "email", Type: ty("text"), Samples: []string{"a@b.example"}},
		}},
		{Schema: "public", Name: "products", Columns: []Column{
			{Name: "id", Type: ty("integer"), PrimaryKey: true},
			{Name: "created_by", Type: ty("integer")},
			{Name: "name", Type: ty("text"), Samples: []string{"Red scarf", "Blue boots", "Hat"}},
			{Name: "description", Type: ty("text"), Samples: []string{"Warm and soft"}},
			{Name: "code", Type: ty("text"), Samples: codes},
		}},
		{Schema: "public", Name: "bookings", Columns: []Column{
			{Name: "id", Type: ty("integer"), PrimaryKey: true},
			{Name: "user_id", Type: ty("integer")},
			{Name: "code", Type: ty("text"), Samples: codes},
			{Name: "booked_at", Type: ty("timestamptz")},
		}},
	}
	c := func(t, col string) refs.Column { return refs.Column{Table: refs.Table("public", t), Name: col} }
	m := &refs.Model{}
	m.Add(refs.Ref{From: c("products", "created_by"), To: c("users", "id")})
	m.Add(refs.Ref{From: c("bookings", "user_id"), To: c("users", "id")})
	ruled := Propose(tables, m)
	assertConsistent(t, ruled, m)
	got := rulesOf(ruled)
	for col, want := range map[string]string{
		"products.name": "keep", "products.description": "keep", "bookings.code": "hash",
		"bookings.booked_at": "{truncate: day}", "products.created_by": "hash",
	} {
		if p := got[col]; p.Rule != want {
			t.Errorf("%s: %s (%s), want %s", col, p.Rule, p.Reason, want)
		}
	}
}
