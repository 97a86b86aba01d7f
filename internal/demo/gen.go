package demo

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/brianvoe/gofakeit/v7"
)

// anchor is "now" for seeded data: every seeded timestamp lies before it.
// It is fixed, not time.Now(), so that the same seed gives the same rows
// whenever Seed runs.
func anchor() time.Time { return time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC) }

// defaultSeed replaces a zero Options.Seed: gofakeit.New(0) would seed
// from crypto/rand, and the same seed must give the same data.
const defaultSeed = 20260101

// gen draws realistic values from one seeded faker. It is not safe for
// concurrent use; every draw advances the one generator, so the sequence of
// calls must be the same for the output to be the same.
type gen struct {
	f    *gofakeit.Faker
	card *gofakeit.CreditCardOptions
}

func newGen(seed uint64) *gen {
	if seed == 0 {
		seed = defaultSeed
	}
	return &gen{
		f:    gofakeit.New(seed),
		card: &gofakeit.CreditCardOptions{Types: []string{"visa", "visa", "mastercard", "mastercard", "amex", "discover"}},
	}
}

// intn returns a number in [0, n); 0 when n <= 1.
func (g *gen) intn(n int) int {
	if n <= 1 {
		return 0
	}
	return g.f.IntN(n)
}

// pct is true p times in 100.
func (g *gen) pct(p int) bool { return g.f.IntN(100) < p }

func pick[T any](g *gen, s []T) T { return s[g.intn(len(s))] }

// distinct returns k different numbers in [0, n), in random order.
func (g *gen) distinct(n, k int) []int {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	k = min(k, n)
	for i := range k {
		j := i + g.intn(n-i)
		all[i], all[j] = all[j], all[i]
	}
	return all[:k]
}

// weighted returns an index into weights, each with its weight's share.
func (g *gen) weighted(n int, weight func(i int) int) int {
	total := 0
	for i := range n {
		total += weight(i)
	}
	r := g.intn(total)
	for i := range n {
		if r -= weight(i); r < 0 {
			return i
		}
	}
	return n - 1
}

func (g *gen) country() int {
	return g.weighted(len(countries), func(i int) int { return countries[i].weight })
}

// fill replaces '#' with a digit and '?' with an upper-case letter.
func (g *gen) fill(pattern string) string {
	b := []byte(pattern)
	for i, c := range b {
		switch c {
		case '#':
			b[i] = byte('0' + g.intn(10))
		case '?':
			b[i] = "ABCDEFGHJKLMNPRSTUVWXYZ"[g.intn(23)]
		}
	}
	return string(b)
}

// between returns a time in [a, b), to the microsecond (PostgreSQL's
// precision, so that values read back compare equal).
func (g *gen) between(a, b time.Time) time.Time {
	d := b.Sub(a) / time.Microsecond
	if d <= 1 {
		return a
	}
	return a.Add(time.Duration(g.f.IntN(int(d))) * time.Microsecond)
}

// recent returns a time in the last span before end, more often close to
// end than far from it.
func (g *gen) recent(end time.Time, span time.Duration) time.Time {
	d := g.between(end.Add(-span), end)
	e := g.between(end.Add(-span), end)
	if e.After(d) {
		return e
	}
	return d
}

// person is a customer or staff member: name, contact and address.
type person struct {
	country           int
	first, last, full string
	email, phone      string
	street, zip       string
	city              city
}

func (g *gen) person(ci int) person {
	c := &countries[ci]
	p := person{country: ci}
	if len(c.firstNames) > 0 && g.pct(75) {
		p.first, p.last = pick(g, c.firstNames), pick(g, c.lastNames)
		if c.twoSurnames {
			p.last += " " + pick(g, c.lastNames)
		}
	} else {
		p.first, p.last = g.f.FirstName(), g.f.LastName()
	}
	p.full = p.first + " " + p.last
	if g.pct(3) {
		p.full = "Dr. " + p.full
	}
	p.email = g.personalEmail(p.first, p.last, c)
	p.phone = g.fill(pick(g, c.phones))
	p.city = pick(g, c.cities)
	p.zip = g.fill(p.city.zip)
	p.street = g.street(c)
	return p
}

// personalEmail is an address at a mail provider, built from the name the
// way people pick them, or now and then one from gofakeit.
func (g *gen) personalEmail(first, last string, c *country) string {
	if g.pct(10) {
		return g.f.Email()
	}
	f, l := fold(first), fold(last)
	if f == "" {
		f = "info"
	}
	var local string
	switch g.intn(7) {
	case 0:
		local = f + "." + l
	case 1:
		local = f + l
	case 2:
		local = f[:1] + "." + l
	case 3:
		local = f + "_" + l + strconv.Itoa(10+g.intn(90))
	case 4:
		local = l + "." + f + strconv.Itoa(60+g.intn(40))
	case 5:
		local = f + "." + l + "+shop"
	default:
		local = f + strconv.Itoa(g.intn(1000))
	}
	domain := pick(g, c.domains)
	if g.pct(10) {
		domain = pick(g, globalDomains[:])
	}
	return local + "@" + domain
}

// fold lowers a name to the ASCII letters of an email's local part:
// "Müller" becomes "mueller", "D'Angelo" "dangelo", "de Jong" "dejong".
func fold(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == 'ä':
			b.WriteString("ae")
		case r == 'ö':
			b.WriteString("oe")
		case r == 'ü':
			b.WriteString("ue")
		case r == 'ß':
			b.WriteString("ss")
		case strings.ContainsRune("àáâã", r):
			b.WriteByte('a')
		case strings.ContainsRune("èéêë", r):
			b.WriteByte('e')
		case strings.ContainsRune("ìíîï", r):
			b.WriteByte('i')
		case strings.ContainsRune("òóôõ", r):
			b.WriteByte('o')
		case strings.ContainsRune("ùúû", r):
			b.WriteByte('u')
		case r == 'ñ':
			b.WriteByte('n')
		case r == 'ç':
			b.WriteByte('c')
		}
	}
	return b.String()
}

// street is a street line as written in the country.
func (g *gen) street(c *country) string {
	if len(c.streets) == 0 {
		s := g.f.Street()
		if g.pct(15) {
			s += fmt.Sprintf(", Apt %d%c", 1+g.intn(30), 'A'+rune(g.intn(6)))
		}
		return s
	}
	num := strconv.Itoa(1 + g.intn(180))
	if !c.numberFirst && g.pct(8) {
		num += string(rune('a' + g.intn(3)))
	}
	name := pick(g, c.streets)
	switch {
	case c.numberFirst:
		return num + " " + name
	case c.numberComma:
		return name + ", " + num
	default:
		return name + " " + num
	}
}

// address is the full postal address on one line, as on a parcel.
func address(street string, ct city, zip string, c *country) string {
	var line string
	switch {
	case ct.region != "":
		line = ct.name + ", " + ct.region + " " + zip
	case c.zipAfterCity:
		line = ct.name + " " + zip
	default:
		line = zip + " " + ct.name
	}
	return street + ", " + line + ", " + c.name
}

func (p *person) address() string {
	return address(p.street, p.city, p.zip, &countries[p.country])
}

// birthDate is a date of birth of someone 18 to 85 years old.
func (g *gen) birthDate() time.Time {
	now := anchor()
	t := g.between(now.AddDate(-85, 0, 0), now.AddDate(-18, 0, 0))
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// cardNumber is a card number that passes the Luhn check.
func (g *gen) cardNumber() string { return g.f.CreditCardNumber(g.card) }

// spaced writes a card number or IBAN in groups of four.
func spaced(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// iban is a valid IBAN (correct check digits) of a country that has them,
// else a German one.
func (g *gen) iban(ci int) string {
	c := &countries[ci]
	if c.iban == "" {
		c = &countries[1] // DE
	}
	bban := c.iban
	if len(c.banks) > 0 {
		bank := pick(g, c.banks)
		bban = bank + bban[len(bank):]
	}
	bban = g.fill(bban)
	return c.code + ibanCheckDigits(c.code, bban) + bban
}

// ibanCheckDigits computes ISO 13616 check digits: 98 - (BBAN + country +
// "00", letters as 10..35) mod 97.
func ibanCheckDigits(cc, bban string) string {
	rem := 0
	for _, s := range [...]string{bban, cc, "00"} {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c >= '0' && c <= '9' {
				rem = (rem*10 + int(c-'0')) % 97
			} else {
				rem = (rem*100 + int(c-'A') + 10) % 97
			}
		}
	}
	return fmt.Sprintf("%02d", 98-rem)
}

// ssn is a national identifier in the country's format.
func (g *gen) ssn(ci int) string { return g.fill(countries[ci].ssn) }

// ip is a client address: mostly IPv4, some IPv6.
func (g *gen) ip() netip.Addr {
	if g.pct(12) {
		var b [16]byte
		b[0], b[1] = 0x2a, byte(g.intn(16))
		for i := 2; i < 16; i++ {
			b[i] = byte(g.intn(256))
		}
		return netip.AddrFrom16(b)
	}
	return g.ipv4()
}

// ipv4 is a public-looking IPv4 address from gofakeit.
func (g *gen) ipv4() netip.Addr {
	for {
		a, err := netip.ParseAddr(g.f.IPv4Address())
		if err == nil && a.IsGlobalUnicast() && !a.IsPrivate() && a.As4()[0] < 224 {
			return a
		}
	}
}

// customerNote is what an agent wrote about a customer: it mentions phone
// numbers, card digits, IBANs and addresses, which is why pgveil drops it.
func (g *gen) customerNote(p *person) string {
	var parts []string
	for _, k := range g.distinct(9, 1+g.intn(2)) {
		var s string
		switch k {
		case 0:
			s = fmt.Sprintf("Called %s about a late delivery; promised a call back before Friday.", p.phone)
		case 1:
			card := g.cardNumber()
			s = fmt.Sprintf("Read the full card number %s to the agent on the phone; told them never to do that. Card ending %s.", spaced(card), card[len(card)-4:])
		case 2:
			s = fmt.Sprintf("Prefers WhatsApp on %s. %s", p.phone, g.f.Sentence())
		case 3:
			s = fmt.Sprintf("VIP customer. %s Alternative number: %s.", g.f.Sentence(), g.fill(pick(g, countries[p.country].phones)))
		case 4:
			card := g.cardNumber()
			s = fmt.Sprintf("Chargeback opened on the card ending %s, see ticket history.", card[len(card)-4:])
		case 5:
			s = fmt.Sprintf("Wants invoices by post only, to %s.", p.address())
		case 6:
			s = fmt.Sprintf("Pays by bank transfer from %s.", spaced(g.iban(p.country)))
		case 7:
			s = fmt.Sprintf("Do not call before 10am. Mobile %s, office %s.", p.phone, g.fill(pick(g, countries[p.country].phones)))
		default:
			s = g.f.Sentence()
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// ticketSubject is a support ticket's subject line; %d becomes an order id.
func (g *gen) ticketSubject(orderID int64) string {
	s := pick(g, ticketSubjects[:])
	if strings.Contains(s, "%d") {
		s = fmt.Sprintf(s, orderID)
	}
	return s
}

// ticketBody is a customer's message to support, full of personal data.
func (g *gen) ticketBody(p *person, orderID int64) string {
	var b strings.Builder
	b.WriteString(pick(g, []string{"Hi,", "Hello,", "Dear support,", "Hi there,"}))
	b.WriteString("\n\n")
	for _, k := range g.distinct(10, 2+g.intn(3)) {
		switch k {
		case 0:
			fmt.Fprintf(&b, "My order #%d still hasn't arrived and the tracking page shows nothing.", orderID)
		case 1:
			card := g.cardNumber()
			fmt.Fprintf(&b, "I was charged twice on my card ending in %s.", card[len(card)-4:])
		case 2:
			fmt.Fprintf(&b, "You can reach me on %s any time after 6pm.", p.phone)
		case 3:
			fmt.Fprintf(&b, "My new address is %s.", p.address())
		case 4:
			fmt.Fprintf(&b, "Please refund to my IBAN %s.", spaced(g.iban(p.country)))
		case 5:
			fmt.Fprintf(&b, "The card I used was %s, expiry %s.", spaced(g.cardNumber()), g.f.CreditCardExp())
		case 6:
			fmt.Fprintf(&b, "I can't log in with %s any more.", p.email)
		case 7:
			fmt.Fprintf(&b, "Please send the invoice to %s.", p.email)
		case 8:
			b.WriteString(g.f.Question())
		default:
			b.WriteString(g.f.Sentence())
		}
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "\n\n%s\n%s", pick(g, []string{"Thanks,", "Best regards,", "Cheers,", "Kind regards,"}), p.full)
	if g.pct(40) {
		fmt.Fprintf(&b, "\n%s", p.phone)
	}
	return b.String()
}

// ticketMetadata is the JSON the help desk stores with a ticket.
func (g *gen) ticketMetadata(lang string) ([]byte, error) {
	ch := pick(g, ticketChannels[:])
	m := map[string]any{
		"channel":  ch,
		"priority": pick(g, ticketPriorities[:]),
		"locale":   lang,
	}
	tags := []string{}
	for _, k := range g.distinct(len(ticketTags), g.intn(4)) {
		tags = append(tags, ticketTags[k])
	}
	m["tags"] = tags
	if ch != "phone" {
		m["ip"] = g.ipv4().String()
		if g.pct(90) {
			m["user_agent"] = g.f.UserAgent()
		}
	}
	return marshal(m)
}

// profile is a customer's profile document. level 0 is empty, 1 holds
// preferences only, 2 also the address, national id and extra emails.
func (g *gen) profile(p *person, level int, hasAddress bool) ([]byte, error) {
	if level == 0 {
		return []byte("{}"), nil
	}
	c := &countries[p.country]
	m := map[string]any{
		"preferences": map[string]any{
			"language":   c.lang,
			"newsletter": g.pct(40),
			"channel":    pick(g, []string{"email", "sms", "none"}),
		},
		"signup_source": pick(g, signupSources[:]),
	}
	if level < 2 {
		return marshal(m)
	}
	if hasAddress {
		m["address"] = map[string]any{"street": p.street, "city": p.city.name, "country": c.code}
	}
	m["ssn"] = g.ssn(p.country)
	contacts := []any{map[string]any{"type": "work", "email": fold(p.first) + "." + fold(p.last) + "@" + g.f.DomainName()}}
	if g.pct(30) {
		contacts = append(contacts, map[string]any{"type": "private", "email": g.personalEmail(p.first, p.last, c)})
	}
	m["contacts"] = contacts
	m["billing"] = map[string]any{"email": p.email, "vat_exempt": g.pct(10)}
	m["loyalty"] = map[string]any{"tier": pick(g, loyaltyTiers[:]), "points": g.intn(20000)}
	return marshal(m)
}

// passwordHash looks like what a web framework stores.
func (g *gen) passwordHash() string {
	const alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	draw := func(set string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = set[g.intn(len(set))]
		}
		return string(b)
	}
	if g.pct(70) {
		return "$2b$12$" + draw(alphabet, 53)
	}
	return "$argon2id$v=19$m=65536,t=3,p=4$" + draw(b64, 22) + "$" + draw(b64, 43)
}

// money formats cents as a decimal string: 1234 -> "12.34".
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// orderCents is an order total: many small orders, a few large ones.
func (g *gen) orderCents() int64 {
	var lo, hi int
	switch r := g.intn(100); {
	case r < 40:
		lo, hi = 500, 5000
	case r < 75:
		lo, hi = 5000, 20000
	case r < 95:
		lo, hi = 20000, 100000
	default:
		lo, hi = 100000, 500000
	}
	c := int64(lo + g.intn(hi-lo))
	if g.pct(40) {
		c = c/100*100 + 99 // psychological pricing
	}
	return c
}

func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding JSON: %w", err)
	}
	return b, nil
}
