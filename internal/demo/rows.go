package demo

import (
	"fmt"
	"strings"
	"time"
)

// Row builders shared by Seed and Traffic: they draw every column except
// ids and foreign keys, which the caller knows.

// customerData is a customer's columns; nil stands for NULL.
type customerData struct {
	p                    person
	phone, street, city  any
	zip, birth, notes    any
	profile              []byte
	hasPhone, hasAddress bool
}

func (g *gen) customer(ci int) (customerData, error) {
	d := customerData{p: g.person(ci)}
	if g.pct(92) {
		d.phone, d.hasPhone = d.p.phone, true
	}
	if g.pct(90) {
		d.street, d.city, d.zip, d.hasAddress = d.p.street, d.p.city.name, d.p.zip, true
	}
	if g.pct(80) {
		d.birth = g.birthDate()
	}
	if g.pct(35) {
		d.notes = g.customerNote(&d.p)
	}
	level := 2
	switch r := g.intn(100); {
	case r < 15:
		level = 0
	case r < 50:
		level = 1
	}
	var err error
	d.profile, err = g.profile(&d.p, level, d.hasAddress)
	return d, err
}

// shipping is an order's shipping address: usually the customer's own,
// sometimes a gift to someone else, rarely none (digital goods).
func (g *gen) shipping(d *customerData) any {
	switch {
	case g.pct(4):
		return nil
	case d.hasAddress && g.pct(85):
		return d.p.address()
	default:
		other := g.person(d.p.country)
		return other.full + ", " + other.address()
	}
}

// orderStatus is the status of an order placed age ago.
func (g *gen) orderStatus(age time.Duration) string {
	type w struct {
		s string
		n int
	}
	var ws []w
	switch {
	case age < 3*24*time.Hour:
		ws = []w{{statusPending, 35}, {statusPaid, 35}, {statusShipped, 20}, {statusCancelled, 10}}
	case age < 14*24*time.Hour:
		ws = []w{{statusPaid, 10}, {statusShipped, 45}, {statusDelivered, 37}, {statusCancelled, 5}, {statusRefunded, 3}}
	default:
		ws = []w{{statusDelivered, 88}, {statusCancelled, 6}, {statusRefunded, 6}}
	}
	return ws[g.weighted(len(ws), func(i int) int { return ws[i].n })].s
}

// paymentsFor is how many payments an order in this status has.
func paymentsFor(status string) int {
	switch status {
	case statusPaid, statusShipped, statusDelivered:
		return 1
	case statusRefunded:
		return 2 // the charge and the refund
	}
	return 0
}

// payment draws a payment method for an order in currency by a customer
// of country ci, with the card's last four digits or the IBAN it uses.
func (g *gen) payment(currency string, ci int) (method string, last4, iban any) {
	type w struct {
		s string
		n int
	}
	var ws []w
	switch currency {
	case "USD":
		ws = []w{{"card", 75}, {"paypal", 15}, {"apple_pay", 10}}
	case "GBP":
		ws = []w{{"card", 65}, {"paypal", 15}, {"bank_transfer", 10}, {"apple_pay", 10}}
	default:
		ws = []w{{"card", 50}, {"sepa_debit", 25}, {"paypal", 15}, {"bank_transfer", 5}, {"apple_pay", 5}}
	}
	method = ws[g.weighted(len(ws), func(i int) int { return ws[i].n })].s
	switch method {
	case "card", "apple_pay":
		n := g.cardNumber()
		last4 = n[len(n)-4:]
	case "sepa_debit", "bank_transfer":
		iban = g.iban(ci)
	}
	return method, last4, iban
}

// ticketStatus is the status of a ticket opened age ago.
func (g *gen) ticketStatus(age time.Duration) string {
	r := g.intn(100)
	switch {
	case age < 3*24*time.Hour:
		return [...]string{"open", "pending", "closed"}[min(r/30, 2)]
	case age < 30*24*time.Hour:
		switch {
		case r < 10:
			return "open"
		case r < 30:
			return "pending"
		}
	case r < 5:
		return "pending"
	}
	return "closed"
}

// eventKinds are the product events, with weights; byUser events are done
// by a staff member (events.user_id), the others by the system.
var eventKinds = [...]struct {
	name   string
	weight int
	byUser bool
}{
	{"page_view", 35, true}, {"login", 10, true}, {"search", 8, true}, {"export_csv", 3, true},
	{"invite_sent", 2, true}, {"customer_updated", 5, true}, {"login_failed", 3, false},
	{"customer_created", 6, false}, {"order_placed", 8, false}, {"payment_succeeded", 7, false},
	{"payment_failed", 2, false}, {"email_sent", 6, false}, {"sms_sent", 3, false}, {"webhook_delivered", 2, false},
}

func (g *gen) eventKind() int {
	return g.weighted(len(eventKinds), func(i int) int { return eventKinds[i].weight })
}

// eventRefs are what an event's properties talk about; zero values are
// drawn afresh.
type eventRefs struct {
	country                      int
	domain                       string
	userEmail                    string
	customerID                   int64
	customerEmail, customerPhone string
	orderID                      int64
	orderCents                   int64
	currency                     string
}

// eventProps is an event's properties document. Emails and phone numbers
// sit at different depths, as pgveil's $..email and $..phone rules expect.
func (g *gen) eventProps(kind string, r eventRefs) ([]byte, error) {
	c := &countries[r.country]
	email := func(e string) string {
		if e == "" {
			return g.f.Email()
		}
		return e
	}
	phone := func(p string) string {
		if p == "" {
			return g.fill(pick(g, c.phones))
		}
		return p
	}
	if r.currency == "" {
		r.currency = c.currency
	}
	if r.orderCents == 0 {
		r.orderCents = g.orderCents()
	}
	var m map[string]any
	switch kind {
	case "page_view":
		path := pick(g, appPaths[:])
		if strings.Contains(path, "%d") {
			path = fmt.Sprintf(path, 1+g.intn(5000))
		}
		m = map[string]any{"path": path, "duration_ms": 200 + g.intn(30000), "device": pick(g, []string{"desktop", "desktop", "mobile", "tablet"})}
		if ref := pick(g, referrers[:]); ref != "" {
			m["referrer"] = ref
		}
	case "login":
		m = map[string]any{"method": pick(g, loginMethods[:]), "mfa": g.pct(30), "user": map[string]any{"email": email(r.userEmail)}}
	case "search":
		q := g.f.Noun()
		if g.pct(30) && r.orderID > 0 {
			q = fmt.Sprintf("#%d", r.orderID)
		}
		m = map[string]any{"query": q, "results": g.intn(50)}
	case "export_csv":
		m = map[string]any{"table": pick(g, exportTables[:]), "rows": 10 + g.intn(5000), "format": "csv"}
	case "invite_sent":
		m = map[string]any{"role": userRoles[g.intn(len(userRoles))].name, "invitee": map[string]any{"email": g.f.Email()}}
	case "customer_updated":
		m = map[string]any{"customer_id": r.customerID}
		switch g.intn(3) {
		case 0:
			m["fields"] = []string{"phone"}
			m["changes"] = map[string]any{"phone": g.fill(pick(g, c.phones))}
		case 1:
			m["fields"] = []string{"email"}
			m["changes"] = map[string]any{"email": g.f.Email()}
		default:
			m["fields"] = []string{"street", "city", "zip"}
		}
	case "login_failed":
		m = map[string]any{"reason": pick(g, []string{"bad_password", "unknown_user", "mfa_timeout", "locked"}),
			"attempted": map[string]any{"email": email(r.userEmail)}}
	case "customer_created":
		cust := map[string]any{"email": email(r.customerEmail)}
		if r.customerPhone != "" {
			cust["phone"] = r.customerPhone
		}
		m = map[string]any{"customer_id": r.customerID, "source": pick(g, signupSources[:]), "customer": cust}
	case "order_placed":
		m = map[string]any{"order_id": r.orderID, "total": money(r.orderCents), "currency": r.currency,
			"items": 1 + g.intn(6), "customer": map[string]any{"email": email(r.customerEmail)}}
	case "payment_succeeded":
		m = map[string]any{"order_id": r.orderID, "amount": money(r.orderCents), "currency": r.currency,
			"billing": map[string]any{"email": email(r.customerEmail), "phone": phone(r.customerPhone)}}
	case "payment_failed":
		m = map[string]any{"order_id": r.orderID, "reason": pick(g, []string{"card_declined", "insufficient_funds", "expired_card", "3ds_failed"}),
			"billing": map[string]any{"email": email(r.customerEmail)}}
	case "email_sent":
		m = map[string]any{"template": pick(g, emailTemplates[:]), "to": map[string]any{"email": email(r.customerEmail)}}
	case "sms_sent":
		m = map[string]any{"template": pick(g, smsTemplates[:]), "to": map[string]any{"phone": phone(r.customerPhone)}}
	default: // webhook_delivered
		domain := r.domain
		if domain == "" {
			domain = g.f.DomainName()
		}
		m = map[string]any{"endpoint": "https://hooks." + domain + "/orders", "status": pick(g, []int{200, 200, 200, 204, 500}),
			"attempt": 1 + g.intn(3), "duration_ms": 20 + g.intn(2000)}
	}
	return marshal(m)
}
