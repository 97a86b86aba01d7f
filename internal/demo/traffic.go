package demo

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TrafficStats counts what Traffic did, in committed transactions only. The
// fields are safe to read while Traffic runs. Rows removed by ON DELETE
// CASCADE are not counted.
type TrafficStats struct {
	Transactions, Inserts, Updates, Deletes atomic.Int64
}

const (
	defaultRate = 20
	maxRate     = 10000
	// txGrace is how long a transaction in flight may go on after ctx
	// ends: cancelling a query would close the caller's connection. It
	// only matters when the server is stuck: a transaction takes
	// milliseconds, and many times that on a loaded machine, which must
	// not cost the caller its connection.
	txGrace = 30 * time.Second
)

// Traffic runs live application traffic until ctx ends: new customers
// signing up, orders placed and paid, orders shipped and delivered
// (updates), profile edits (jsonb updates), customers soft-deleted and
// restored (deleted_at), tickets opened and closed, staff logging in, events
// inserted in bursts, old events and cancelled orders deleted, and now and
// then a larger transaction of a few hundred rows. The first transactions
// do each kind once, so that a short run already shows every kind of
// change; after that kinds are drawn with weights.
//
// It runs about rate transactions per second (default 20), one at a time
// on conn, and needs a seeded database (accounts and users). It returns nil
// when ctx ends, or the first database error. A transaction in flight when
// ctx ends is finished (given up after 30 seconds), so conn stays usable; conn
// must not be used by anything else while Traffic runs. Counts go into st,
// which may be nil.
func Traffic(ctx context.Context, conn *pgx.Conn, rate int, st *TrafficStats) error {
	if rate <= 0 {
		rate = defaultRate
	}
	rate = min(rate, maxRate)
	if st == nil {
		st = new(TrafficStats)
	}
	if ctx.Err() != nil {
		return nil
	}
	ictx, cancel := detach(ctx, txGrace)
	t, err := newTraffic(ictx, conn, st)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		a := n
		if n >= len(trafficActions) {
			a = t.g.weighted(len(trafficActions), func(i int) int { return trafficActions[i].weight })
		}
		if err := t.run(ctx, a); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// trafficActions are the kinds of transaction, with their weights, in the
// order of the first round.
var trafficActions = [...]struct {
	name   string
	weight int
	run    func(*traffic, context.Context, *txn) error
}{
	{"signup", 10, (*traffic).signup},
	{"place order", 16, (*traffic).placeOrder},
	{"pay order", 7, (*traffic).payOrder},
	{"ship order", 10, (*traffic).shipOrder},
	{"deliver order", 8, (*traffic).deliverOrder},
	{"edit profile", 10, (*traffic).editProfile},
	{"soft-delete customer", 3, (*traffic).softDelete},
	{"restore customer", 2, (*traffic).restore},
	{"open ticket", 5, (*traffic).openTicket},
	{"close ticket", 5, (*traffic).closeTicket},
	{"event burst", 10, (*traffic).eventBurst},
	{"login", 6, (*traffic).login},
	{"prune events", 3, (*traffic).pruneEvents},
	{"cancel order", 2, (*traffic).cancelOrder},
	{"purge cancelled order", 1, (*traffic).purgeCancelled},
	{"refund order", 1, (*traffic).refund},
	{"invite user", 1, (*traffic).inviteUser},
	{"large transaction", 1, (*traffic).large},
}

type trafficAccount struct {
	id      int64
	country int
	domain  string
	users   []trafficUser
}

type trafficUser struct {
	id    int64
	email string
}

// traffic is Traffic's state: the tenants, their staff, and the largest
// ids, from which random rows are looked up.
type traffic struct {
	conn     *pgx.Conn
	st       *TrafficStats
	g        *gen
	accounts []trafficAccount
	maxID    map[string]int64 // by table
}

func newTraffic(ctx context.Context, conn *pgx.Conn, st *TrafficStats) (*traffic, error) {
	t := &traffic{conn: conn, st: st, g: newGen(uint64(time.Now().UnixNano()) | 1), maxID: map[string]int64{}}
	rows, err := conn.Query(ctx, "SELECT id, name, country FROM accounts ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("demo: traffic: reading accounts: %w", err)
	}
	index := map[int64]int{}
	for rows.Next() {
		var a trafficAccount
		var name, code string
		if err := rows.Scan(&a.id, &name, &code); err != nil {
			rows.Close()
			return nil, fmt.Errorf("demo: traffic: reading accounts: %w", err)
		}
		a.country = countryIndex(code)
		a.domain = fold(name) + "." + countries[a.country].tld
		index[a.id] = len(t.accounts)
		t.accounts = append(t.accounts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("demo: traffic: reading accounts: %w", err)
	}
	if len(t.accounts) == 0 {
		return nil, errors.New("demo: traffic needs a seeded database: accounts is empty")
	}
	rows, err = conn.Query(ctx, "SELECT id, account_id, email FROM users ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("demo: traffic: reading users: %w", err)
	}
	for rows.Next() {
		var u trafficUser
		var account int64
		if err := rows.Scan(&u.id, &account, &u.email); err != nil {
			rows.Close()
			return nil, fmt.Errorf("demo: traffic: reading users: %w", err)
		}
		if i, ok := index[account]; ok {
			t.accounts[i].users = append(t.accounts[i].users, u)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("demo: traffic: reading users: %w", err)
	}
	for _, table := range seedTables {
		var id int64
		if err := conn.QueryRow(ctx, "SELECT COALESCE(max(id), 0) FROM "+table).Scan(&id); err != nil {
			return nil, fmt.Errorf("demo: traffic: reading the largest id of %s: %w", table, err)
		}
		t.maxID[table] = id
	}
	return t, nil
}

func countryIndex(code string) int {
	for i := range countries {
		if countries[i].code == code {
			return i
		}
	}
	return 0
}

// txn is one transaction and what it changed.
type txn struct {
	pgx.Tx
	inserts, updates, deletes int64
}

func (x *txn) count(tag pgconn.CommandTag) {
	switch {
	case tag.Insert():
		x.inserts += tag.RowsAffected()
	case tag.Update():
		x.updates += tag.RowsAffected()
	case tag.Delete():
		x.deletes += tag.RowsAffected()
	}
}

func (x *txn) changed() bool { return x.inserts+x.updates+x.deletes > 0 }

// exec runs a statement and counts the rows it changed.
func (x *txn) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := x.Exec(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	x.count(tag)
	return tag.RowsAffected(), nil
}

// row runs a statement that returns at most one row of interest, scans it
// into dest, and counts the rows the statement changed. found is false when
// it returned no row.
func (x *txn) row(ctx context.Context, sql string, args []any, dest ...any) (found bool, err error) {
	rows, err := x.Query(ctx, sql, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		if !found {
			if err := rows.Scan(dest...); err != nil {
				return false, err
			}
			found = true
		}
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	x.count(rows.CommandTag())
	return found, nil
}

// detach returns the context of one transaction: it does not end with ctx,
// since a query cancelled half-way closes the connection, but it gives up
// grace after ctx ends.
func detach(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	inner, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-timer.C:
			cancel()
		case <-inner.Done():
		}
	})
	return inner, func() { stop(); cancel() }
}

// run does action a in one transaction. An action that finds nothing to
// change (no pending order left, say) is followed by an event burst, so
// every transaction changes something.
func (t *traffic) run(ctx context.Context, a int) (err error) {
	act := &trafficActions[a]
	tctx, cancel := detach(ctx, txGrace)
	defer cancel()
	tx, err := t.conn.Begin(tctx)
	if err != nil {
		return fmt.Errorf("demo: traffic: %s: begin: %w", act.name, err)
	}
	x := &txn{Tx: tx}
	defer func() {
		if err != nil {
			_ = tx.Rollback(tctx)
		}
	}()
	if err = act.run(t, tctx, x); err != nil {
		return fmt.Errorf("demo: traffic: %s: %w", act.name, err)
	}
	if !x.changed() {
		if err = t.eventBurst(tctx, x); err != nil {
			return fmt.Errorf("demo: traffic: %s: event burst instead: %w", act.name, err)
		}
	}
	if err = tx.Commit(tctx); err != nil {
		return fmt.Errorf("demo: traffic: %s: commit: %w", act.name, err)
	}
	t.st.Transactions.Add(1)
	t.st.Inserts.Add(x.inserts)
	t.st.Updates.Add(x.updates)
	t.st.Deletes.Add(x.deletes)
	return nil
}

// randomID is an id in [1, max id of table], a starting point for finding
// a row near it.
func (t *traffic) randomID(table string) int64 {
	return 1 + int64(t.g.intn(int(max(t.maxID[table], 1))))
}

// recentID is an id among the last n of table (the last fifth, if that is
// fewer).
func (t *traffic) recentID(table string, n int) int64 {
	top := t.maxID[table]
	n = min(n, int(top/5)+1)
	return max(top-int64(t.g.intn(n)), 1)
}

// recentFirst are the ids to search down from for a recent row of table
// in some state: a random recent one, then the newest.
func (t *traffic) recentFirst(table string, n int) []int64 {
	return []int64{t.recentID(table, n), t.maxID[table]}
}

func (t *traffic) noteID(table string, id int64) {
	t.maxID[table] = max(t.maxID[table], id)
}

func (t *traffic) account(id int64) *trafficAccount {
	for i := range t.accounts {
		if t.accounts[i].id == id {
			return &t.accounts[i]
		}
	}
	return &t.accounts[0]
}

// customerRef is a customer read back for traffic.
type customerRef struct {
	id, account int64
	d           customerData
}

// pickCustomer finds a customer that is not soft-deleted, at or after a
// random id (wrapping around).
func (t *traffic) pickCustomer(ctx context.Context, x *txn) (customerRef, bool, error) {
	const q = `SELECT id, account_id, email, full_name, COALESCE(phone, ''), COALESCE(street, ''), COALESCE(city, ''),
  COALESCE(zip, ''), COALESCE(country, 'US')
FROM customers WHERE deleted_at IS NULL AND id >= $1 ORDER BY id LIMIT 1`
	var c customerRef
	var phone, street, city, zip, code string
	for _, from := range []int64{t.randomID("customers"), 0} {
		found, err := x.row(ctx, q, []any{from}, &c.id, &c.account, &c.d.p.email, &c.d.p.full, &phone, &street, &city, &zip, &code)
		if err != nil {
			return c, false, fmt.Errorf("picking a customer: %w", err)
		}
		if found {
			p := &c.d.p
			p.country = countryIndex(code)
			p.phone, p.street, p.zip, p.city = phone, street, zip, cityOf(p.country, city)
			c.d.hasPhone, c.d.hasAddress = phone != "", street != ""
			return c, true, nil
		}
	}
	return c, false, nil
}

// cityOf finds a city (with its region) in the country's table.
func cityOf(ci int, name string) city {
	for _, c := range countries[ci].cities {
		if c.name == name {
			return c
		}
	}
	return city{name: name}
}

// event inserts one event of account.
func (t *traffic) event(ctx context.Context, x *txn, a *trafficAccount, kind string, user *trafficUser, r eventRefs) error {
	r.country, r.domain = a.country, a.domain
	var userID, ip any
	if user != nil {
		userID, r.userEmail, ip = user.id, user.email, t.g.ip()
	}
	props, err := t.g.eventProps(kind, r)
	if err != nil {
		return err
	}
	if _, err := x.exec(ctx, `INSERT INTO events (account_id, user_id, kind, ip, properties) VALUES ($1, $2, $3, $4, $5)`,
		a.id, userID, kind, ip, props); err != nil {
		return fmt.Errorf("inserting a %s event: %w", kind, err)
	}
	return nil
}

func (r *customerRef) refs() eventRefs {
	return eventRefs{customerID: r.id, customerEmail: r.d.p.email, customerPhone: phoneOf(&r.d)}
}

func (t *traffic) staff(a *trafficAccount) *trafficUser {
	if len(a.users) == 0 {
		return nil
	}
	return &a.users[t.g.intn(len(a.users))]
}

const insertCustomer = `INSERT INTO customers (account_id, email, full_name, phone, street, city, zip, country, birth_date, notes, profile)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`

func customerArgs(account int64, d *customerData) []any {
	return []any{account, d.p.email, d.p.full, d.phone, d.street, d.city, d.zip, countries[d.p.country].code, d.birth, d.notes, d.profile}
}

// signup: a new customer and its customer_created event.
func (t *traffic) signup(ctx context.Context, x *txn) error {
	a := &t.accounts[t.g.intn(len(t.accounts))]
	ci := a.country
	if t.g.pct(25) {
		ci = t.g.country()
	}
	d, err := t.g.customer(ci)
	if err != nil {
		return err
	}
	c := customerRef{account: a.id, d: d}
	if _, err := x.row(ctx, insertCustomer, customerArgs(a.id, &d), &c.id); err != nil {
		return fmt.Errorf("inserting a customer: %w", err)
	}
	t.noteID("customers", c.id)
	return t.event(ctx, x, a, "customer_created", nil, c.refs())
}

// placeOrder: a pending order, paid at once now and then.
func (t *traffic) placeOrder(ctx context.Context, x *txn) error {
	c, ok, err := t.pickCustomer(ctx, x)
	if err != nil || !ok {
		return err
	}
	a := t.account(c.account)
	cents, currency := t.g.orderCents(), countries[a.country].currency
	var id int64
	if _, err := x.row(ctx, `INSERT INTO orders (account_id, customer_id, status, total, currency, shipping_address)
VALUES ($1, $2, 'pending', $3, $4, $5) RETURNING id`, []any{a.id, c.id, numeric(cents), currency, t.g.shipping(&c.d)}, &id); err != nil {
		return fmt.Errorf("inserting an order: %w", err)
	}
	t.noteID("orders", id)
	r := c.refs()
	r.orderID, r.orderCents, r.currency = id, cents, currency
	if err := t.event(ctx, x, a, "order_placed", nil, r); err != nil {
		return err
	}
	if t.g.pct(40) {
		return t.pay(ctx, x, a, &c, id, cents, currency)
	}
	return nil
}

// pay marks an order paid and records its payment, after a failed attempt
// now and then.
func (t *traffic) pay(ctx context.Context, x *txn, a *trafficAccount, c *customerRef, order, cents int64, currency string) error {
	r := c.refs()
	r.orderID, r.orderCents, r.currency = order, cents, currency
	if t.g.pct(10) {
		if err := t.event(ctx, x, a, "payment_failed", nil, r); err != nil {
			return err
		}
	}
	if _, err := x.exec(ctx, `UPDATE orders SET status = 'paid' WHERE id = $1`, order); err != nil {
		return fmt.Errorf("marking order paid: %w", err)
	}
	method, last4, iban := t.g.payment(currency, c.d.p.country)
	if _, err := x.exec(ctx, `INSERT INTO payments (order_id, amount, method, card_last4, iban) VALUES ($1, $2, $3, $4, $5)`,
		order, numeric(cents), method, last4, iban); err != nil {
		return fmt.Errorf("inserting a payment: %w", err)
	}
	return t.event(ctx, x, a, "payment_succeeded", nil, r)
}

// payOrder: a recent pending order gets paid.
func (t *traffic) payOrder(ctx context.Context, x *txn) error {
	const q = `SELECT o.id, o.account_id, (o.total * 100)::bigint, o.currency, c.id, c.email, COALESCE(c.phone, ''), COALESCE(c.country, 'US')
FROM orders o JOIN customers c ON c.id = o.customer_id
WHERE o.status = 'pending' AND o.id <= $1 ORDER BY o.id DESC LIMIT 1`
	var order, account, cents int64
	var currency, phone, code string
	var c customerRef
	found := false
	for _, from := range t.recentFirst("orders", 200) {
		var err error
		found, err = x.row(ctx, q, []any{from}, &order, &account, &cents, &currency, &c.id, &c.d.p.email, &phone, &code)
		if err != nil {
			return fmt.Errorf("finding a pending order: %w", err)
		}
		if found {
			break
		}
	}
	if !found {
		return nil
	}
	c.d.p.phone, c.d.hasPhone, c.d.p.country = phone, phone != "", countryIndex(code)
	return t.pay(ctx, x, t.account(account), &c, order, cents, currency)
}

// advance moves a recent order from one status to the next and sends the
// customer a message about it.
func (t *traffic) advance(ctx context.Context, x *txn, from, to, kind string) error {
	q := `UPDATE orders SET status = $2 WHERE id = (
  SELECT id FROM orders WHERE status = $3 AND id <= $1 ORDER BY id DESC LIMIT 1)
RETURNING id, account_id, customer_id,
  (SELECT email FROM customers c WHERE c.id = customer_id), (SELECT COALESCE(phone, '') FROM customers c WHERE c.id = customer_id)`
	var order, account int64
	var c customerRef
	var phone string
	found := false
	for _, start := range t.recentFirst("orders", 2000) {
		var err error
		found, err = x.row(ctx, q, []any{start, to, from}, &order, &account, &c.id, &c.d.p.email, &phone)
		if err != nil {
			return fmt.Errorf("moving an order from %s to %s: %w", from, to, err)
		}
		if found {
			break
		}
	}
	if !found {
		return nil
	}
	c.d.p.phone, c.d.hasPhone = phone, phone != ""
	r := c.refs()
	r.orderID = order
	return t.event(ctx, x, t.account(account), kind, nil, r)
}

func (t *traffic) shipOrder(ctx context.Context, x *txn) error {
	return t.advance(ctx, x, statusPaid, statusShipped, "sms_sent")
}

func (t *traffic) deliverOrder(ctx context.Context, x *txn) error {
	return t.advance(ctx, x, statusShipped, statusDelivered, "email_sent")
}

func (t *traffic) cancelOrder(ctx context.Context, x *txn) error {
	return t.advance(ctx, x, statusPending, statusCancelled, "email_sent")
}

// refund: a delivered order comes back; its charge is reversed.
func (t *traffic) refund(ctx context.Context, x *txn) error {
	var order int64
	found := false
	for _, from := range t.recentFirst("orders", 5000) {
		var err error
		found, err = x.row(ctx, `UPDATE orders SET status = 'refunded' WHERE id = (
  SELECT id FROM orders WHERE status = 'delivered' AND id <= $1 ORDER BY id DESC LIMIT 1) RETURNING id`, []any{from}, &order)
		if err != nil {
			return fmt.Errorf("refunding an order: %w", err)
		}
		if found {
			break
		}
	}
	if !found {
		return nil
	}
	if _, err := x.exec(ctx, `INSERT INTO payments (order_id, amount, method, card_last4, iban)
SELECT order_id, -amount, method, card_last4, iban FROM payments WHERE order_id = $1 AND amount > 0 ORDER BY id LIMIT 1`, order); err != nil {
		return fmt.Errorf("inserting a refund: %w", err)
	}
	return nil
}

// purgeCancelled: an old cancelled order is deleted (its payments go with
// it, by cascade).
func (t *traffic) purgeCancelled(ctx context.Context, x *txn) error {
	for _, from := range []int64{t.randomID("orders"), 0} {
		n, err := x.exec(ctx, `DELETE FROM orders WHERE id = (
  SELECT id FROM orders WHERE status = 'cancelled' AND id >= $1 ORDER BY id LIMIT 1)`, from)
		if err != nil || n > 0 {
			return err
		}
	}
	return nil
}

// editProfile: a customer moves, changes phone or email, adds a contact
// address, changes preferences or passes identity checks.
func (t *traffic) editProfile(ctx context.Context, x *txn) error {
	c, ok, err := t.pickCustomer(ctx, x)
	if err != nil || !ok {
		return err
	}
	g := t.g
	var q string
	var args []any
	kind := g.intn(6)
	switch kind {
	case 0: // moved
		p := g.person(c.d.p.country)
		addr, err := marshal(map[string]any{"street": p.street, "city": p.city.name, "country": countries[p.country].code})
		if err != nil {
			return err
		}
		q = `UPDATE customers SET street = $2, city = $3, zip = $4, profile = profile || jsonb_build_object('address', $5::jsonb) WHERE id = $1`
		args = []any{c.id, p.street, p.city.name, p.zip, addr}
	case 1: // new phone
		c.d.p.phone, c.d.hasPhone = g.fill(pick(g, countries[c.d.p.country].phones)), true
		q = `UPDATE customers SET phone = $2 WHERE id = $1`
		args = []any{c.id, c.d.p.phone}
	case 2: // new email, also the billing email when there is one
		c.d.p.email = g.personalEmail(g.f.FirstName(), g.f.LastName(), &countries[c.d.p.country])
		q = `UPDATE customers SET email = $2, profile = jsonb_set(profile, '{billing,email}', to_jsonb($2::text), true) WHERE id = $1`
		args = []any{c.id, c.d.p.email}
	case 3: // another contact address
		contact, err := marshal([]any{map[string]any{"type": pick(g, []string{"work", "private", "assistant"}), "email": g.f.Email()}})
		if err != nil {
			return err
		}
		q = `UPDATE customers SET profile = jsonb_set(profile, '{contacts}', COALESCE(profile->'contacts', '[]'::jsonb) || $2::jsonb) WHERE id = $1`
		args = []any{c.id, contact}
	case 4: // preferences
		prefs, err := marshal(map[string]any{"newsletter": g.pct(50), "channel": pick(g, []string{"email", "sms", "none"})})
		if err != nil {
			return err
		}
		q = `UPDATE customers SET profile = profile || jsonb_build_object('preferences', COALESCE(profile->'preferences', '{}'::jsonb) || $2::jsonb) WHERE id = $1`
		args = []any{c.id, prefs}
	default: // identity checked
		q = `UPDATE customers SET profile = profile || jsonb_build_object('ssn', $2::text) WHERE id = $1`
		args = []any{c.id, g.ssn(c.d.p.country)}
	}
	if _, err := x.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("editing a customer: %w", err)
	}
	if kind > 2 {
		return nil
	}
	a := t.account(c.account)
	props := map[string]any{"customer_id": c.id, "fields": []string{"street", "city", "zip", "profile"}}
	switch kind {
	case 1:
		props["fields"], props["changes"] = []string{"phone"}, map[string]any{"phone": c.d.p.phone}
	case 2:
		props["fields"], props["changes"] = []string{"email"}, map[string]any{"email": c.d.p.email}
	}
	b, err := marshal(props)
	if err != nil {
		return err
	}
	var userID any
	if u := t.staff(a); u != nil && g.pct(50) {
		userID = u.id
	}
	_, err = x.exec(ctx, `INSERT INTO events (account_id, user_id, kind, properties) VALUES ($1, $2, 'customer_updated', $3)`, a.id, userID, b)
	return err
}

// softDelete: a customer closes their account; the row stays, marked.
func (t *traffic) softDelete(ctx context.Context, x *txn) error {
	c, ok, err := t.pickCustomer(ctx, x)
	if err != nil || !ok {
		return err
	}
	if _, err := x.exec(ctx, `UPDATE customers SET deleted_at = now() WHERE id = $1`, c.id); err != nil {
		return fmt.Errorf("soft-deleting a customer: %w", err)
	}
	b, err := marshal(map[string]any{"customer_id": c.id, "reason": pick(t.g, []string{"customer_request", "gdpr_erasure", "fraud", "duplicate"})})
	if err != nil {
		return err
	}
	_, err = x.exec(ctx, `INSERT INTO events (account_id, kind, properties) VALUES ($1, 'customer_deleted', $2)`, c.account, b)
	return err
}

// restore: a soft-deleted customer comes back.
func (t *traffic) restore(ctx context.Context, x *txn) error {
	for _, from := range []int64{t.randomID("customers"), 0} {
		n, err := x.exec(ctx, `UPDATE customers SET deleted_at = NULL WHERE id = (
  SELECT id FROM customers WHERE deleted_at IS NOT NULL AND id >= $1 ORDER BY id LIMIT 1)`, from)
		if err != nil || n > 0 {
			return err
		}
	}
	return nil
}

// openTicket: a customer (or a prospect) writes to support.
func (t *traffic) openTicket(ctx context.Context, x *txn) error {
	g := t.g
	var p person
	var custID any
	a := &t.accounts[g.intn(len(t.accounts))]
	if g.pct(85) {
		c, ok, err := t.pickCustomer(ctx, x)
		if err != nil {
			return err
		}
		if ok {
			p, custID, a = c.d.p, c.id, t.account(c.account)
		}
	}
	if custID == nil {
		p = g.person(a.country)
	}
	order := t.recentID("orders", 1000)
	meta, err := g.ticketMetadata(countries[p.country].lang)
	if err != nil {
		return err
	}
	var id int64
	if _, err := x.row(ctx, `INSERT INTO support_tickets (account_id, customer_id, subject, body, metadata) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		[]any{a.id, custID, g.ticketSubject(order), g.ticketBody(&p, order), meta}, &id); err != nil {
		return fmt.Errorf("inserting a ticket: %w", err)
	}
	t.noteID("support_tickets", id)
	return nil
}

// closeTicket: support answers a recent ticket, closes it or waits for
// the customer, and tags it.
func (t *traffic) closeTicket(ctx context.Context, x *txn) error {
	status, tag := "closed", "resolved"
	if t.g.pct(30) {
		status, tag = "pending", "waiting-on-customer"
	}
	for _, from := range t.recentFirst("support_tickets", 500) {
		n, err := x.exec(ctx, `UPDATE support_tickets SET status = $2,
  metadata = CASE WHEN metadata->'tags' ? $3 THEN metadata
    ELSE jsonb_set(metadata, '{tags}', COALESCE(metadata->'tags', '[]'::jsonb) || to_jsonb($3::text)) END
WHERE id = (SELECT id FROM support_tickets WHERE status <> 'closed' AND id <= $1 ORDER BY id DESC LIMIT 1)`,
			from, status, tag)
		if err != nil {
			return fmt.Errorf("closing a ticket: %w", err)
		}
		if n > 0 {
			break
		}
	}
	return nil
}

// events copies n events of one account, as a client library flushing its
// buffer does.
func (t *traffic) events(ctx context.Context, x *txn, a *trafficAccount, n int) error {
	g := t.g
	c, ok, err := t.pickCustomer(ctx, x)
	if err != nil {
		return err
	}
	r := eventRefs{country: a.country, domain: a.domain}
	if ok {
		r = c.refs()
		r.country, r.domain = a.country, a.domain
	}
	now := time.Now()
	rows := make([][]any, 0, n)
	for i := range n {
		k := eventKinds[g.eventKind()]
		er := r
		var userID, ip any
		if u := t.staff(a); u != nil && k.byUser {
			userID, er.userEmail, ip = u.id, u.email, g.ip()
		}
		props, err := g.eventProps(k.name, er)
		if err != nil {
			return err
		}
		at := now.Add(time.Duration(i-n) * 250 * time.Millisecond) // a client's buffer, in order
		rows = append(rows, []any{a.id, userID, k.name, ip, props, at})
	}
	copied, err := x.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"account_id", "user_id", "kind", "ip", "properties", "occurred_at"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("copying %d events: %w", n, err)
	}
	x.inserts += copied
	return nil
}

// eventBurst: 5 to 60 events of one tenant.
func (t *traffic) eventBurst(ctx context.Context, x *txn) error {
	return t.events(ctx, x, &t.accounts[t.g.intn(len(t.accounts))], 5+t.g.intn(56))
}

// login: a staff member logs in.
func (t *traffic) login(ctx context.Context, x *txn) error {
	a := &t.accounts[t.g.intn(len(t.accounts))]
	u := t.staff(a)
	if u == nil {
		return nil
	}
	if _, err := x.exec(ctx, `UPDATE users SET last_login_at = now() WHERE id = $1`, u.id); err != nil {
		return fmt.Errorf("recording a login: %w", err)
	}
	return t.event(ctx, x, a, "login", u, eventRefs{})
}

// pruneEvents: the retention job deletes the oldest events.
func (t *traffic) pruneEvents(ctx context.Context, x *txn) error {
	_, err := x.exec(ctx, `DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT $1)`, 20+t.g.intn(81))
	if err != nil {
		return fmt.Errorf("pruning events: %w", err)
	}
	return nil
}

// inviteUser: a tenant invites a colleague.
func (t *traffic) inviteUser(ctx context.Context, x *txn) error {
	g := t.g
	a := &t.accounts[g.intn(len(t.accounts))]
	p := g.person(a.country)
	email := fold(p.first) + "." + fold(p.last) + "@" + a.domain
	role := userRoles[g.weighted(len(userRoles), func(i int) int { return userRoles[i].weight })].name
	var id int64
	found, err := x.row(ctx, `INSERT INTO users (account_id, email, full_name, password_hash, role) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (email) DO NOTHING RETURNING id`, []any{a.id, email, p.full, g.passwordHash(), role}, &id)
	if err != nil {
		return fmt.Errorf("inviting a user: %w", err)
	}
	if !found {
		return nil
	}
	t.noteID("users", id)
	inviter := t.staff(a)
	a.users = append(a.users, trafficUser{id: id, email: email})
	b, err := marshal(map[string]any{"role": role, "invitee": map[string]any{"email": email}})
	if err != nil {
		return err
	}
	var inviterID any
	if inviter != nil {
		inviterID = inviter.id
	}
	_, err = x.exec(ctx, `INSERT INTO events (account_id, user_id, kind, properties) VALUES ($1, $2, 'invite_sent', $3)`, a.id, inviterID, b)
	return err
}

// large is a transaction of a few hundred rows: a CSV import of
// customers, a newsletter opt-out campaign, or a backfill of events.
func (t *traffic) large(ctx context.Context, x *txn) error {
	g := t.g
	a := &t.accounts[g.intn(len(t.accounts))]
	n := 150 + g.intn(250)
	switch g.intn(3) {
	case 0:
		rows := make([][]any, 0, n)
		for range n {
			ci := a.country
			if g.pct(25) {
				ci = g.country()
			}
			d, err := g.customer(ci)
			if err != nil {
				return err
			}
			rows = append(rows, customerArgs(a.id, &d))
		}
		copied, err := x.CopyFrom(ctx, pgx.Identifier{"customers"},
			[]string{"account_id", "email", "full_name", "phone", "street", "city", "zip", "country", "birth_date", "notes", "profile"},
			pgx.CopyFromRows(rows))
		if err != nil {
			return fmt.Errorf("importing %d customers: %w", n, err)
		}
		x.inserts += copied
		var maxID int64
		if err := x.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM customers`).Scan(&maxID); err != nil {
			return fmt.Errorf("reading the largest customer id: %w", err)
		}
		t.noteID("customers", maxID)
		b, err := marshal(map[string]any{"table": "customers", "rows": copied, "source": "csv_import"})
		if err != nil {
			return err
		}
		_, err = x.exec(ctx, `INSERT INTO events (account_id, kind, properties) VALUES ($1, 'import_completed', $2)`, a.id, b)
		return err
	case 1:
		if _, err := x.exec(ctx, `UPDATE customers SET profile = profile || jsonb_build_object('preferences',
  COALESCE(profile->'preferences', '{}'::jsonb) || '{"newsletter": false}'::jsonb)
WHERE id IN (SELECT id FROM customers WHERE deleted_at IS NULL AND id >= $1 ORDER BY id LIMIT $2)`,
			t.randomID("customers"), n); err != nil {
			return fmt.Errorf("opting %d customers out of the newsletter: %w", n, err)
		}
		return nil
	default:
		return t.events(ctx, x, a, n)
	}
}
