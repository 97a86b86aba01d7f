package demo

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Seeding happens in two steps. A plan first draws the skeleton of every
// table (which account, which customer, when), sorts each table by time so
// that ids grow with created_at as in a real database, and counts the
// rows. Then each table is streamed to COPY, its other columns drawn as
// pgx asks for rows, in one fixed order: the same seed draws the same
// values.

type accountRow struct {
	id           int64
	name, domain string
	plan         int
	country      int
	created      time.Time
	custWeight   int
	userWeight   int
	// indexes into the seeder's users, customers and orders, by time.
	users, customers, orders []int32
}

type userRow struct {
	id      int64
	account int32
	owner   bool
	created time.Time
	email   string // drawn with the row
}

type customerRow struct {
	id               int64
	account          int32
	country          int
	created, deleted time.Time // deleted is zero unless soft-deleted
	d                customerData
}

type orderRow struct {
	id       int64
	account  int32
	customer int32
	created  time.Time
	status   string
	cents    int64
	currency string
}

type ticketRow struct {
	account  int32
	customer int32 // -1: a prospect who is not a customer
	created  time.Time
}

type eventRow struct {
	account int32
	at      time.Time
}

type seeder struct {
	g         *gen
	now       time.Time
	accounts  []accountRow
	users     []userRow
	customers []customerRow
	orders    []orderRow
	payments  int
	tickets   []ticketRow
	events    []eventRow
	emails    map[string]bool // users.email is unique
}

// Proportions of Options.Scale, per table; payments follow the orders'
// statuses and events take the rest.
const (
	scaleAccounts  = 2000 // one account per 2000 rows
	scaleUsers     = 100  // one user per 100 rows
	pctCustomers   = 12
	pctOrders      = 25
	pctTickets     = 3
	minScale       = 1000
	defaultScale   = 100000
	minAccounts    = 4
	accountsMinAge = 1 // years
	accountsMaxAge = 4
)

func newSeeder(o Options) *seeder {
	scale := o.Scale
	if scale <= 0 {
		scale = defaultScale
	}
	scale = max(scale, minScale)
	s := &seeder{g: newGen(o.Seed), now: anchor(), emails: map[string]bool{}}
	s.planAccounts(max(minAccounts, scale/scaleAccounts))
	s.planUsers(max(2*len(s.accounts), scale/scaleUsers))
	s.planCustomers(scale * pctCustomers / 100)
	s.planOrders(scale * pctOrders / 100)
	s.planTickets(scale * pctTickets / 100)
	rest := scale - len(s.accounts) - len(s.users) - len(s.customers) - len(s.orders) - s.payments - len(s.tickets)
	s.planEvents(max(rest, scale/10))
	return s
}

// picker draws indexes with given weights, in O(log n).
type picker []int

func newPicker(n int, weight func(int) int) picker {
	p := make(picker, n)
	sum := 0
	for i := range n {
		sum += weight(i)
		p[i] = sum
	}
	return p
}

func (p picker) pick(g *gen) int {
	return sort.SearchInts(p, g.intn(p[len(p)-1])+1)
}

// before counts the leading entries of list (indexes, sorted by time)
// that happened at or before t.
func before(list []int32, at func(int32) time.Time, t time.Time) int {
	return sort.Search(len(list), func(i int) bool { return at(list[i]).After(t) })
}

func (s *seeder) planAccounts(n int) {
	g := s.g
	for i := range n {
		plan := len(plans) - 1 - i // small scales still get every plan...
		if i >= len(plans) {
			plan = g.weighted(len(plans), func(i int) int { return plans[i].weight })
		}
		ci := i // ...and several countries
		if i >= len(countries) {
			ci = g.country()
		}
		a := accountRow{
			name:    g.f.Company(),
			plan:    plan,
			country: ci,
			created: g.between(s.now.AddDate(-accountsMaxAge, 0, 0), s.now.AddDate(-accountsMinAge, 0, 0)),
		}
		a.custWeight = plans[plan].customers * (50 + g.intn(100))
		a.userWeight = plans[plan].users * (50 + g.intn(100))
		s.accounts = append(s.accounts, a)
	}
	slices.SortStableFunc(s.accounts, func(a, b accountRow) int { return a.created.Compare(b.created) })
	domains := map[string]bool{}
	for i := range s.accounts {
		a := &s.accounts[i]
		a.id = int64(i + 1)
		slug := fold(a.name)
		if slug == "" {
			slug = "tenant"
		}
		a.domain = slug + "." + countries[a.country].tld
		if domains[a.domain] {
			a.domain = slug + strconv.Itoa(i+1) + "." + countries[a.country].tld
		}
		domains[a.domain] = true
	}
}

func (s *seeder) planUsers(n int) {
	g := s.g
	for i := range s.accounts {
		a := &s.accounts[i]
		s.users = append(s.users, userRow{account: int32(i), owner: true, created: a.created.Add(time.Duration(g.intn(3600)) * time.Second)})
	}
	pk := newPicker(len(s.accounts), func(i int) int { return s.accounts[i].userWeight })
	for len(s.users) < n {
		ai := pk.pick(g)
		s.users = append(s.users, userRow{account: int32(ai), created: g.between(s.accounts[ai].created, s.now)})
	}
	slices.SortStableFunc(s.users, func(a, b userRow) int { return a.created.Compare(b.created) })
	for i := range s.users {
		u := &s.users[i]
		u.id = int64(i + 1)
		a := &s.accounts[u.account]
		a.users = append(a.users, int32(i))
	}
}

func (s *seeder) planCustomers(n int) {
	g := s.g
	pk := newPicker(len(s.accounts), func(i int) int { return s.accounts[i].custWeight })
	for range n {
		ai := pk.pick(g)
		a := &s.accounts[ai]
		c := customerRow{account: int32(ai), country: a.country, created: g.between(a.created, s.now)}
		if !g.pct(75) {
			c.country = g.country()
		}
		if g.pct(6) {
			c.deleted = g.between(c.created, s.now)
		}
		s.customers = append(s.customers, c)
	}
	slices.SortStableFunc(s.customers, func(a, b customerRow) int { return a.created.Compare(b.created) })
	for i := range s.customers {
		c := &s.customers[i]
		c.id = int64(i + 1)
		a := &s.accounts[c.account]
		a.customers = append(a.customers, int32(i))
	}
}

func (s *seeder) planOrders(n int) {
	g := s.g
	currencies := []string{"EUR", "USD", "GBP"}
	for range n {
		k := g.intn(len(s.customers))
		if g.pct(30) {
			k = k / 10 * 10 // every tenth customer is a regular
		}
		c := &s.customers[k]
		end := s.now
		if !c.deleted.IsZero() {
			end = c.deleted
		}
		o := orderRow{account: c.account, customer: int32(k), created: g.between(c.created, end)}
		o.status = g.orderStatus(s.now.Sub(o.created))
		o.cents = g.orderCents()
		o.currency = countries[s.accounts[c.account].country].currency
		if g.pct(10) {
			o.currency = pick(g, currencies)
		}
		s.payments += paymentsFor(o.status)
		s.orders = append(s.orders, o)
	}
	slices.SortStableFunc(s.orders, func(a, b orderRow) int { return a.created.Compare(b.created) })
	for i := range s.orders {
		o := &s.orders[i]
		o.id = int64(i + 1)
		a := &s.accounts[o.account]
		a.orders = append(a.orders, int32(i))
	}
}

func (s *seeder) customerAt(i int32) time.Time { return s.customers[i].created }
func (s *seeder) orderAt(i int32) time.Time    { return s.orders[i].created }
func (s *seeder) userAt(i int32) time.Time     { return s.users[i].created }

func (s *seeder) planTickets(n int) {
	g := s.g
	pk := newPicker(len(s.accounts), func(i int) int { return s.accounts[i].custWeight })
	for range n {
		ai := pk.pick(g)
		a := &s.accounts[ai]
		t := ticketRow{account: int32(ai), customer: -1, created: g.between(a.created, s.now)}
		if g.pct(85) {
			if k := before(a.customers, s.customerAt, t.created); k > 0 {
				t.customer = a.customers[g.intn(k)]
			}
		}
		s.tickets = append(s.tickets, t)
	}
	slices.SortStableFunc(s.tickets, func(a, b ticketRow) int { return a.created.Compare(b.created) })
}

func (s *seeder) planEvents(n int) {
	g := s.g
	pk := newPicker(len(s.accounts), func(i int) int { return s.accounts[i].custWeight + 5*s.accounts[i].userWeight })
	for range n {
		ai := pk.pick(g)
		a := &s.accounts[ai]
		var t time.Time
		if g.pct(70) {
			t = g.recent(s.now, 30*24*time.Hour)
		} else {
			t = g.between(s.now.AddDate(-1, 0, 0), s.now)
		}
		if t.Before(a.created) {
			t = g.between(a.created, s.now)
		}
		s.events = append(s.events, eventRow{account: int32(ai), at: t})
	}
	slices.SortStableFunc(s.events, func(a, b eventRow) int { return a.at.Compare(b.at) })
}

// copyTable is one table's COPY: its columns and a row source.
type copyTable struct {
	name    string
	columns []string
	rows    int
	next    func(i int) ([]any, error)
}

// tables lists the COPYs in foreign-key order. Their sources draw values
// when pgx asks for rows, so they must run in this order, once.
func (s *seeder) tables() []copyTable {
	return []copyTable{
		{"accounts", []string{"id", "name", "plan", "country", "created_at"}, len(s.accounts), s.accountRow},
		{"users", []string{"id", "account_id", "email", "full_name", "password_hash", "role", "last_login_at", "created_at"}, len(s.users), s.userRow},
		{"customers", []string{"id", "account_id", "email", "full_name", "phone", "street", "city", "zip", "country", "birth_date", "notes", "profile", "created_at", "deleted_at"}, len(s.customers), s.customerRow},
		{"orders", []string{"id", "account_id", "customer_id", "status", "total", "currency", "shipping_address", "created_at"}, len(s.orders), s.orderRow},
		{"payments", []string{"id", "order_id", "amount", "method", "card_last4", "iban", "paid_at"}, s.payments, s.paymentRows()},
		{"support_tickets", []string{"id", "account_id", "customer_id", "subject", "body", "metadata", "status", "created_at"}, len(s.tickets), s.ticketRow},
		{"events", []string{"id", "account_id", "user_id", "kind", "ip", "properties", "occurred_at"}, len(s.events), s.eventRow},
	}
}

func (s *seeder) accountRow(i int) ([]any, error) {
	a := &s.accounts[i]
	return []any{a.id, a.name, plans[a.plan].name, countries[a.country].code, a.created}, nil
}

func (s *seeder) userRow(i int) ([]any, error) {
	g := s.g
	u := &s.users[i]
	a := &s.accounts[u.account]
	p := g.person(a.country)
	f, l := fold(p.first), fold(p.last)
	var local, domain string
	switch r := g.intn(100); {
	case r < 8: // a freelancer with a private address
		local, domain, _ = cutEmail(p.email)
	case r < 25:
		local, domain = f[:min(1, len(f))]+l, a.domain
	default:
		local, domain = f+"."+l, a.domain
	}
	u.email = local + "@" + domain
	for n := 2; s.emails[u.email]; n++ {
		u.email = local + strconv.Itoa(n) + "@" + domain
	}
	s.emails[u.email] = true
	role := "owner"
	if !u.owner {
		role = userRoles[g.weighted(len(userRoles), func(i int) int { return userRoles[i].weight })].name
	}
	var lastLogin any
	if g.pct(90) {
		t := g.recent(s.now, 30*24*time.Hour)
		if t.Before(u.created) {
			t = g.between(u.created, s.now)
		}
		lastLogin = t
	}
	return []any{u.id, a.id, u.email, p.full, g.passwordHash(), role, lastLogin, u.created}, nil
}

// cutEmail splits an address at its last @.
func cutEmail(e string) (local, domain string, ok bool) {
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] == '@' {
			return e[:i], e[i+1:], true
		}
	}
	return e, "", false
}

func (s *seeder) customerRow(i int) ([]any, error) {
	c := &s.customers[i]
	d, err := s.g.customer(c.country)
	if err != nil {
		return nil, err
	}
	c.d = d
	var deleted any
	if !c.deleted.IsZero() {
		deleted = c.deleted
	}
	return []any{c.id, s.accounts[c.account].id, d.p.email, d.p.full, d.phone, d.street, d.city, d.zip,
		countries[d.p.country].code, d.birth, d.notes, d.profile, c.created, deleted}, nil
}

func numeric(cents int64) pgtype.Numeric {
	return pgtype.Numeric{Int: big.NewInt(cents), Exp: -2, Valid: true}
}

func (s *seeder) orderRow(i int) ([]any, error) {
	o := &s.orders[i]
	c := &s.customers[o.customer]
	return []any{o.id, s.accounts[o.account].id, c.id, o.status, numeric(o.cents), o.currency, s.g.shipping(&c.d), o.created}, nil
}

// paymentRows walks the orders, giving each paid order its payment and
// each refunded one a charge and a refund.
func (s *seeder) paymentRows() func(int) ([]any, error) {
	oi := 0
	var refund []any // the refund row that follows a refunded order's charge
	return func(i int) ([]any, error) {
		id := int64(i + 1)
		if refund != nil {
			row := refund
			row[0], refund = id, nil
			return row, nil
		}
		for ; oi < len(s.orders); oi++ {
			if paymentsFor(s.orders[oi].status) > 0 {
				break
			}
		}
		if oi == len(s.orders) {
			return nil, fmt.Errorf("demo: payment %d has no order (planned %d payments)", id, s.payments)
		}
		o := &s.orders[oi]
		oi++
		g := s.g
		c := &s.customers[o.customer]
		method, last4, iban := g.payment(o.currency, c.country)
		paid := o.created.Add(time.Duration(5+g.intn(600)) * time.Second)
		if method == "sepa_debit" || method == "bank_transfer" {
			paid = o.created.Add(time.Duration(1+g.intn(72)) * time.Hour)
		}
		paid = minTime(paid, s.now)
		if o.status == statusRefunded {
			at := minTime(paid.Add(time.Duration(24+g.intn(24*20))*time.Hour), s.now)
			refund = []any{nil, o.id, numeric(-o.cents), method, last4, iban, at}
		}
		return []any{id, o.id, numeric(o.cents), method, last4, iban, paid}, nil
	}
}

func minTime(a, b time.Time) time.Time {
	if a.After(b) {
		return b
	}
	return a
}

func (s *seeder) ticketRow(i int) ([]any, error) {
	g := s.g
	t := &s.tickets[i]
	a := &s.accounts[t.account]
	var p person
	var custID any
	if t.customer >= 0 {
		c := &s.customers[t.customer]
		p, custID = c.d.p, c.id
	} else {
		p = g.person(a.country)
	}
	orderID := int64(1000 + g.intn(9000))
	if k := before(a.orders, s.orderAt, t.created); k > 0 {
		orderID = s.orders[a.orders[g.intn(k)]].id
	}
	meta, err := g.ticketMetadata(countries[p.country].lang)
	if err != nil {
		return nil, err
	}
	return []any{int64(i + 1), a.id, custID, g.ticketSubject(orderID), g.ticketBody(&p, orderID), meta,
		g.ticketStatus(s.now.Sub(t.created)), t.created}, nil
}

func (s *seeder) eventRow(i int) ([]any, error) {
	g := s.g
	e := &s.events[i]
	a := &s.accounts[e.account]
	k := eventKinds[g.eventKind()]
	r := eventRefs{country: a.country, domain: a.domain}
	var userID, ip any
	if k.byUser {
		if n := before(a.users, s.userAt, e.at); n > 0 {
			u := &s.users[a.users[g.intn(n)]]
			userID, r.userEmail = u.id, u.email
			if !g.pct(5) {
				ip = g.ip()
			}
		}
	} else if k.name == "login_failed" && len(a.users) > 0 {
		r.userEmail = s.users[a.users[g.intn(len(a.users))]].email
		ip = g.ip()
	}
	if n := before(a.orders, s.orderAt, e.at); n > 0 && k.name != "customer_created" {
		o := &s.orders[a.orders[g.intn(n)]]
		c := &s.customers[o.customer]
		r.orderID, r.orderCents, r.currency = o.id, o.cents, o.currency
		r.customerID, r.customerEmail, r.customerPhone = c.id, c.d.p.email, phoneOf(&c.d)
	} else if n := before(a.customers, s.customerAt, e.at); n > 0 {
		c := &s.customers[a.customers[g.intn(n)]]
		r.customerID, r.customerEmail, r.customerPhone = c.id, c.d.p.email, phoneOf(&c.d)
	}
	props, err := g.eventProps(k.name, r)
	if err != nil {
		return nil, err
	}
	return []any{int64(i + 1), a.id, userID, k.name, ip, props, e.at}, nil
}

func phoneOf(d *customerData) string {
	if d.hasPhone {
		return d.p.phone
	}
	return ""
}

// copyAll runs every table's COPY in tx and returns the rows written.
func (s *seeder) copyAll(ctx context.Context, tx pgx.Tx) (int64, error) {
	var total int64
	for _, t := range s.tables() {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.columns, pgx.CopyFromSlice(t.rows, t.next))
		if err != nil {
			return total, fmt.Errorf("demo: copying %d rows into %s: %w", t.rows, t.name, err)
		}
		if n != int64(t.rows) {
			return total, fmt.Errorf("demo: copied %d rows into %s, planned %d", n, t.name, t.rows)
		}
		total += n
	}
	return total, nil
}
