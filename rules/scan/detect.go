package scan

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"pgveil/schema"
	"pgveil/transform"
)

// category is what a column (or a JSON key) was recognised as holding.
type category int

const (
	catNone category = iota
	catSecret
	catGovID
	catEmail
	catPhone
	catFirstName
	catLastName
	catFullName
	catCompany
	catUsername
	catStreet
	catAddress
	catZip
	catCity
	catGeo
	catIP
	catIBAN
	catCard
	catCardLast4
	catBirth
	catDeath
	catFreeText
	catIdentifier
	catCoupon
	catLogin
	catDevice
	catBody // weight, height: quasi-identifying measurements
	catHealth
	catPlace    // "City, Region, Country", a hometown
	catCabin    // cabins and seats
	catBinary   // images and documents
	catExternal // identifiers shared with other systems
)

// what describes a category in reasons.
var what = map[category]string{
	catSecret:     "a secret (password, token, key)",
	catGovID:      "a government identifier",
	catEmail:      "emails",
	catPhone:      "phone numbers",
	catFirstName:  "first names",
	catLastName:   "last names",
	catFullName:   "person names",
	catCompany:    "company names",
	catUsername:   "user names",
	catStreet:     "street addresses",
	catAddress:    "postal addresses",
	catZip:        "postal codes",
	catCity:       "cities",
	catGeo:        "coordinates",
	catIP:         "IP addresses",
	catIBAN:       "IBANs",
	catCard:       "card numbers",
	catCardLast4:  "card number endings",
	catBirth:      "birth dates",
	catDeath:      "dates of death",
	catFreeText:   "free text",
	catIdentifier: "identifiers quoted outside the system",
	catCoupon:     "personal codes",
	catLogin:      "login times",
	catDevice:     "device fingerprints",
	catBody:       "measurements (weight, height)",
	catHealth:     "health data",
	catPlace:      "places (city, region, country)",
	catCabin:      "cabins or seats",
	catBinary:     "images or documents",
	catExternal:   "identifiers shared with other systems",
}

// Column is what the scan knows of one column. Samples are its sampled
// values in text form: they are only looked at, never printed, stored or
// put in a reason.
type Column struct {
	Name       string
	Type       schema.Type
	PrimaryKey bool
	Unique     bool
	// Samples are the sampled values as text; for bytea, the first bytes
	// of each value (string(bytes)), enough for magic numbers.
	Samples []string
	// DerivedFrom names the columns of the same table this column is
	// computed from (a tsvector maintained by a trigger, a column a
	// trigger function assigns from others); How says how it was seen.
	DerivedFrom []string
	DerivedHow  string
}

// Proposal is the rule proposed for a column and why.
type Proposal struct {
	// Rule is the rule as YAML flow text: "keep", "drop", "{fake: email}".
	Rule string
	// Reason is one line saying why; empty for a plain keep. It holds
	// names only, never a sampled value.
	Reason string
	cat    category
}

// Masks reports whether the proposal does anything but keep the column.
func (p Proposal) Masks() bool { return p.Rule != "keep" }

// tokens splits a SQL name into lower-case words: snake_case, camelCase,
// kebab-case and spaces.
func tokens(name string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case r == '_' || r == '-' || r == ' ' || r == '.' || r == '$':
			flush()
		case unicode.IsUpper(r):
			if i > 0 && unicode.IsLower(rs[i-1]) {
				flush()
			}
			cur.WriteRune(unicode.ToLower(r))
		default:
			cur.WriteRune(unicode.ToLower(r))
		}
	}
	flush()
	return out
}

type words struct {
	toks   []string
	joined string // the tokens without separators: "firstname"
}

func newWords(name string) words {
	t := tokens(name)
	return words{toks: t, joined: strings.Join(t, "")}
}

// has reports whether any token is one of ws.
func (w words) has(ws ...string) bool {
	for _, t := range w.toks {
		for _, x := range ws {
			if t == x {
				return true
			}
		}
	}
	return false
}

// is reports whether the joined name is one of ws.
func (w words) is(ws ...string) bool {
	for _, x := range ws {
		if w.joined == x {
			return true
		}
	}
	return false
}

func (w words) contains(subs ...string) bool {
	for _, s := range subs {
		if strings.Contains(w.joined, s) {
			return true
		}
	}
	return false
}

var personTables = []string{"user", "users", "customer", "customers", "patient", "patients", "person", "persons", "people",
	"employee", "employees", "contact", "contacts", "member", "members", "author", "authors", "student", "students",
	"client", "clients", "practitioner", "practitioners", "staff", "account_holder", "profile", "profiles", "applicant", "applicants",
	"passenger", "passengers", "guest", "guests", "traveler", "travelers", "traveller", "travellers", "actor", "actors",
	"subscriber", "subscribers", "driver", "drivers", "rider", "riders", "donor", "donors", "volunteer", "volunteers",
	"resident", "residents", "candidate", "candidates", "athlete", "athletes", "player", "players", "voter", "voters"}

// personWords are words that, in a table's name, say its rows are about
// people: "customer_address", "patient_visits", "staff".
var personWords = map[string]bool{}

func init() {
	for _, t := range personTables {
		personWords[t] = true
	}
}

// personTableName reports whether a table's name says it is about people.
func personTableName(table string) bool {
	for _, t := range tokens(table) {
		if personWords[t] {
			return true
		}
	}
	return false
}

// reSecondLine is a numbered address line: address2, addr_2,
// address_line_2, street2, line2.
var reSecondLine = regexp.MustCompile(`^(address|addr|street|streetaddress|addressline|streetline|line)([1-9])$`)

// secondLine returns the number of a numbered address line (2 for
// "address2"), 0 for none.
func secondLine(name string) int {
	if m := reSecondLine.FindStringSubmatch(newWords(name).joined); m != nil {
		return int(m[2][0] - '0')
	}
	return 0
}

// externalWords, in an identifier column's name, say the identifier
// leaves the system: a payment provider's customer id, an OAuth subject.
var externalWords = []string{"external", "ext", "stripe", "paypal", "braintree", "adyen", "square", "provider", "gateway",
	"auth0", "oauth", "oidc", "google", "facebook", "apple", "github", "firebase", "hubspot", "salesforce", "intercom",
	"zendesk", "segment", "mixpanel", "amplitude", "sso", "saml", "crm", "erp", "partner", "vendor", "upstream", "remote", "legacy"}

// catalogueWords name the text of catalogue rows (a product's name, a
// film's title and description): kept in tables not about people.
var catalogueWords = []string{"name", "title", "description", "summary", "synopsis", "caption", "tagline", "label",
	"overview", "subtitle", "blurb", "desc"}

var companyTables = []string{"account", "accounts", "company", "companies", "organization", "organizations", "organisation",
	"organisations", "org", "orgs", "tenant", "tenants", "vendor", "vendors", "supplier", "suppliers", "merchant", "merchants", "business", "businesses"}

// nameCategory recognises a column or JSON key by its name. table is the
// table's name ("" for JSON keys).
func nameCategory(name, table string) category {
	w := newWords(name)
	switch {
	case w.has("password", "passwd", "pwd", "secret", "token", "salt", "otp", "totp", "passphrase", "pin", "cvv", "cvc") ||
		w.contains("password", "apikey", "privatekey", "accesskey", "secretkey", "authtoken"):
		return catSecret
	case w.has("ssn", "sin", "nin", "passport", "tin") || w.contains("nationalid", "socialsecurity", "taxid", "taxnumber",
		"driverlicen", "driverslicen", "idcard", "identitynumber", "personnummer", "nationalnumber"):
		return catGovID
	case w.has("email", "mail", "emails") || w.contains("email"):
		return catEmail
	case w.has("ip", "ipv4", "ipv6", "ipaddr") || w.contains("ipaddress", "remoteaddr", "clientaddr"):
		return catIP
	case w.has("phone", "mobile", "tel", "telephone", "fax", "cell", "msisdn", "phones") || w.contains("phone"):
		return catPhone
	case w.has("iban"):
		return catIBAN
	case w.contains("last4", "lastfour", "lastdigits"):
		return catCardLast4
	case w.has("pan") || w.contains("cardnumber", "ccnumber", "creditcard", "cardno", "cardnum"):
		return catCard
	case w.has("hometown", "birthplace", "residence", "domicile") || w.contains("placeofbirth", "birthplace", "hometown", "homedest", "destination"):
		return catPlace
	case w.has("birth", "dob", "birthday", "birthdate", "born") || w.contains("dateofbirth", "birthdate", "birthday"):
		return catBirth
	case w.has("deceased", "death", "died"):
		return catDeath
	case w.is("firstname", "givenname", "forename", "fname", "first", "middlename"):
		return catFirstName
	case w.is("lastname", "surname", "familyname", "lname", "last", "maidenname"):
		return catLastName
	case w.is("username", "login", "userlogin", "handle", "nickname", "screenname", "nick"):
		return catUsername
	case w.is("companyname", "company", "employer", "organization", "organisation", "businessname"):
		return catCompany
	case w.has("recipient", "holder", "cardholder", "pharmacist", "signer", "addressee", "guardian", "spouse", "sender") ||
		w.is("fullname", "displayname", "authorname", "contactname", "holdername", "customername", "patientname",
			"legalname", "realname", "personname", "billingname", "shippingname", "author"):
		return catFullName
	case w.is("name") && table != "":
		tw := strings.ToLower(table)
		for _, t := range personTables {
			if tw == t {
				return catFullName
			}
		}
		for _, t := range companyTables {
			if tw == t {
				return catCompany
			}
		}
		return catNone
	case w.is("name"):
		return catFullName // a JSON key: emergency contacts, pharmacists, ...
	case secondLine(name) > 0:
		return catStreet
	case w.has("uuid", "guid") || w.has(externalWords...) && w.has("id", "ref", "key", "uid", "sub", "subject", "token", "number", "code"):
		return catExternal
	case w.has("ticket", "booking", "reservation", "pnr", "confirmation", "locator", "boarding") && !w.has("type", "status", "kind", "class", "category", "count", "price", "fare"):
		return catIdentifier
	case w.has("cabin", "seat", "berth") && !w.has("type", "class", "count", "rate", "category", "kind"):
		return catCabin
	case w.has("zip", "zipcode", "postcode", "postal", "plz") || w.contains("postalcode", "zipcode", "postcode"):
		return catZip
	case w.has("street", "addr", "line1", "line2", "line3", "housenumber") || w.contains("addressline", "streetaddress", "street"):
		return catStreet
	case w.has("address", "addresses"):
		return catAddress
	case w.has("city", "town", "municipality"):
		return catCity
	case w.has("lat", "latitude", "lng", "lon", "longitude", "geo", "location", "coordinates"):
		return catGeo
	case w.has("mrn", "ref", "reference", "license", "licence", "number") ||
		w.contains("accountnumber", "customernumber", "membernumber", "memberid", "externalid", "transactionid", "policynumber", "groupnumber"):
		return catIdentifier
	case w.has("coupon", "voucher", "promo", "referral", "invite"):
		return catCoupon
	case w.contains("lastlogin", "lastseen", "lastactive", "lastsignin", "loggedin", "lastaccess"):
		return catLogin
	case w.contains("useragent", "fingerprint", "deviceid"):
		return catDevice
	case w.has("weight", "height", "bmi"):
		return catBody
	case w.has("note", "notes", "comment", "comments", "body", "description", "message", "messages", "text", "content",
		"remark", "remarks", "bio", "about", "instructions", "instruction", "reason", "subject", "title", "feedback",
		"memo", "summary", "transcript", "raw", "payload", "response", "request", "answer", "details"):
		return catFreeText
	case w.has("diagnosis", "diagnoses", "condition", "conditions", "allergy", "allergies", "medication", "medications", "disease", "symptoms"):
		return catHealth
	}
	return catNone
}

var (
	reEmail     = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$`)
	rePhoneIntl = regexp.MustCompile(`^\+[0-9][0-9 ().-]{6,22}$`)
	rePhoneUS   = regexp.MustCompile(`^\(?[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4}$`)
	reIBAN      = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`)
	reBcrypt    = regexp.MustCompile(`^\$(2[abxy]?|argon2(id|i|d)?|pbkdf2[a-z0-9-]*|scrypt|[156])\$`)
	reHex32     = regexp.MustCompile(`^[0-9a-fA-F]{32,}$`)
	reCardChars = regexp.MustCompile(`^[0-9][0-9 -]{11,22}[0-9]$`)
)

func isEmail(s string) bool { return reEmail.MatchString(s) }

func isPhone(s string) bool {
	if !rePhoneIntl.MatchString(s) && !rePhoneUS.MatchString(s) {
		return false
	}
	n := 0
	for _, r := range s {
		if r >= '0' && r <= '9' {
			n++
		}
	}
	return n >= 7 && n <= 15
}

func isIP(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// isIBAN checks the shape and the ISO 13616 mod-97 check digits.
func isIBAN(s string) bool {
	s = strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	if !reIBAN.MatchString(s) {
		return false
	}
	return transform.IBANMod97(s[4:]+s[:4]) == 1
}

// isCard checks 13 to 19 digits (spaces and dashes allowed) with a valid
// reICD10 is an ICD-10 code: a letter, two digits or a digit and a
// letter, and optionally a dot and up to four more (E11.9, I10, S72.001A).
var reICD10 = regexp.MustCompile(`^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$`)

func isICD10(s string) bool { return reICD10.MatchString(s) }

// allElements reports whether every element of every sample (a value, or
// an array's text form such as {E11.9,I10}) satisfies f, and there is one.
func allElements(samples []string, f func(string) bool) bool {
	n := 0
	for _, s := range samples {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			s = s[1 : len(s)-1]
		}
		if s == "" {
			continue
		}
		for _, e := range strings.Split(s, ",") {
			if !f(strings.Trim(strings.TrimSpace(e), `"`)) {
				return false
			}
			n++
		}
	}
	return n > 0
}

// Luhn check digit.
func isCard(s string) bool {
	if !reCardChars.MatchString(s) {
		return false
	}
	d := strings.NewReplacer(" ", "", "-", "").Replace(s)
	if len(d) < 13 || len(d) > 19 {
		return false
	}
	return transform.LuhnValid(d)
}

func isSecret(s string) bool { return reBcrypt.MatchString(s) || reHex32.MatchString(s) }

// valueCategory recognises sampled text values: most non-empty samples
// (all, for card numbers) must look alike.
func valueCategory(samples []string) category {
	var vals []string
	for _, s := range samples {
		if s = strings.TrimSpace(s); s != "" {
			vals = append(vals, s)
		}
	}
	if len(vals) == 0 {
		return catNone
	}
	most := func(f func(string) bool) bool {
		n := 0
		for _, v := range vals {
			if f(v) {
				n++
			}
		}
		return n*10 >= len(vals)*8
	}
	all := func(f func(string) bool) bool {
		for _, v := range vals {
			if !f(v) {
				return false
			}
		}
		return true
	}
	switch {
	case most(isEmail):
		return catEmail
	case all(isCard):
		return catCard
	case most(isIBAN):
		return catIBAN
	case most(isIP):
		return catIP
	case most(isPhone):
		return catPhone
	case most(isSecret):
		return catSecret
	}
	return catNone
}

func isText(t schema.Type) bool { return t.Kind == schema.KindText }

func isTime(t schema.Type) bool {
	return !t.IsArray() && (t.Kind == schema.KindTimestamp || t.Kind == schema.KindTimestampTZ || t.Kind == schema.KindDate)
}

// hashable reports whether hash fits c (as a unique value when unique).
func hashable(c Column) bool {
	switch c.Type.Kind {
	case schema.KindInt, schema.KindNumeric, schema.KindUUID, schema.KindBytea:
		return true
	case schema.KindText:
		return c.Type.Length == 0 || c.Type.Length >= 16 || !(c.PrimaryKey || c.Unique)
	}
	return false
}

// Classify proposes a rule for a column that is neither part of a
// primary key nor a reference to a key, from its table's name, its name,
// type and sampled values. Whether the table is about people is read from
// its name only; Propose also counts the columns and references that say
// so.
func Classify(table string, c Column) Proposal {
	p := personTableName(table)
	return classify(table, c, tableCtx{people: p, related: p})
}

// tableCtx is what Propose knows of a column's table.
type tableCtx struct {
	// people: the table is about people (by its name or its columns).
	people bool
	// related: it is, or it references a table that is (a booking of a
	// passenger, a payment of a customer).
	related bool
}

// classify is Classify knowing whether the table is about people: a
// column called name holds people there and things in a catalogue (a
// product table that references its author is still a catalogue); codes
// shaped like tickets or bookings identify people in tables related to
// people and products elsewhere.
func classify(table string, c Column, ctx tableCtx) Proposal {
	person := ctx.people
	if c.Type.Kind == schema.KindJSON || c.Type.Kind == schema.KindJSONB {
		if !c.Type.IsArray() {
			return classifyJSON(table, c)
		}
	}
	if c.Type.Kind == schema.KindBytea {
		if kind := binaryContent(c.Samples); kind != "" {
			return Proposal{Rule: "drop", Reason: "sampled values are " + kind + "s: images and documents cannot be masked, only dropped", cat: catBinary}
		}
		if binaryName(c.Name) {
			return Proposal{Rule: "drop", Reason: "name suggests images or documents: binary content cannot be masked, only dropped", cat: catBinary}
		}
	}
	byName := nameCategory(c.Name, table)
	if ts := tokens(c.Name); len(ts) > 1 && ts[len(ts)-1] == "id" && !isText(c.Type) && byName != catGovID && byName != catSecret && byName != catExternal {
		byName = catNone // a surrogate key of another row ("shipping_address_id"), not the data its name mentions
	}
	if byName == catNone && c.Type.Kind == schema.KindUUID && !c.Type.IsArray() {
		byName = catExternal // a uuid that is not a key is an identifier other systems hold
	}
	// byValue: exact formats (emails, IBANs, Luhn-valid cards), which may
	// overrule a name; byShape: shapes (names, places, codes), which
	// decide only where the name says nothing, or says text or a city.
	var byValue, byShape category
	switch {
	case isText(c.Type):
		byValue = valueCategory(c.Samples)
		byShape = shapeCategory(c.Samples)
		if byShape == catNone && ctx.related {
			byShape = identifierShape(c.Samples)
		}
		if byShape == catNone && isIDName(c.Name) && share(nonEmpty(c.Samples), alnumCode) >= 0.8 {
			byShape = catExternal // a text id that is no reference: an id of another system
		}
	case (c.Type.Kind == schema.KindInt || c.Type.Kind == schema.KindNumeric) && !c.Type.IsArray():
		if vals := nonEmpty(c.Samples); len(vals) >= 3 && share(vals, isCard) == 1 {
			byValue = catCard
		}
	}
	cat, why := byName, "name"
	switch {
	case byName == catNone && byValue != catNone:
		cat, why = byValue, "sampled values"
	case byName != catNone && byValue == byName:
		why = "name and sampled values"
	case byName != catNone && byValue != catNone && strongValue(byValue) && !strongName(byName):
		cat, why = byValue, "sampled values"
	case byName != catNone && byValue == catNone && byShape == byName:
		why = "name and sampled values"
	case byName == catNone && byValue == catNone && byShape != catNone:
		cat, why = byShape, "sampled values"
	case (byName == catCity || byName == catFreeText && !person) && (byShape == catFullName || byShape == catPlace || byShape == catStreet || byShape == catAddress):
		cat, why = byShape, "sampled values" // a "title" of people's names, a "city" of full addresses
	}
	if cat == catNone && person && isPersonNameColumn(c.Name) && isText(c.Type) {
		return build(catFullName, "table about people; name", c)
	}
	if cat == catFreeText && !person && newWords(c.Name).has(catalogueWords...) && !newWords(c.Name).has("note", "notes", "comment", "comments", "message", "bio") {
		return Proposal{Rule: "keep", Reason: "catalogue text (the table is not about people): kept; drop it if people write in it"}
	}
	if cat == catNone && c.Type.Kind == schema.KindInet {
		cat, why = catIP, "type inet"
	}
	if cat == catNone {
		return Proposal{Rule: "keep"}
	}
	return build(cat, why, c)
}

// isPersonNameColumn reports whether a column's name is a bare "name"
// (or "display", "label" of a row): in a table about people it holds the
// person's name.
func isPersonNameColumn(name string) bool {
	return newWords(name).is("name", "names", "displayname", "label")
}

// isIDName reports whether a column's name ends in id (or uid, ref,
// key): "session_id", "stripeCustomerId", "payment_ref".
func isIDName(name string) bool {
	ts := tokens(name)
	if len(ts) == 0 {
		return false
	}
	switch ts[len(ts)-1] {
	case "id", "uid", "ref", "key":
		return true
	}
	return false
}

// strongValue: value checks that rarely match by accident.
func strongValue(c category) bool {
	return c == catEmail || c == catIBAN || c == catCard || c == catIP
}

// strongName: names that settle the matter whatever the values.
func strongName(c category) bool {
	return c == catSecret || c == catGovID || c == catFreeText || c == catCardLast4 || c == catCoupon
}

// fakeOf is the fake kind of the categories that are faked as they are.
var fakeOf = map[category]string{
	catEmail: "email", catFirstName: "first_name", catLastName: "last_name", catFullName: "name",
	catCompany: "company", catUsername: "username", catStreet: "street", catAddress: "address",
	catIP: "ipv4", catIBAN: "iban", catCard: "credit_card",
}

// build turns a category into a rule that fits the column's type.
func build(cat category, why string, c Column) Proposal {
	reason := why + " look like " + what[cat]
	if why == "name" {
		reason = "name suggests " + what[cat]
	} else if strings.HasPrefix(why, "table about people") {
		reason = why + ": " + what[cat]
	} else if why == "type inet" {
		reason = "type inet: " + what[cat]
	}
	p := Proposal{Reason: reason, cat: cat}
	text := isText(c.Type)
	fake := func(kind string) string {
		if !text && !(kind == "ipv4" && c.Type.Kind == schema.KindInet) {
			return ""
		}
		if c.Unique {
			if (kind == "email" || kind == "username") && (c.Type.Length == 0 || c.Type.Length >= 40) {
				return "{fake: {kind: " + kind + ", unique: true}}"
			}
			if hashable(c) {
				return "hash"
			}
			return ""
		}
		return "{fake: " + kind + "}"
	}
	switch cat {
	case catSecret, catGovID, catFreeText, catDevice, catBinary:
		p.Rule = "drop"
	case catPlace:
		if text && !c.Unique {
			p.Rule = "{fake: city}"
		}
	case catCabin, catExternal:
		if !hashable(c) {
			return Proposal{Rule: "keep", Reason: reason + "; kept: hash does not fit type " + c.Type.String() + ", check it"}
		}
		p.Rule = "hash"
	case catPhone:
		if text && !c.Unique {
			p.Rule = "{partial: {keep_last: 2}}"
		} else if text {
			p.Rule = fake("phone")
		}
	case catZip:
		if text {
			p.Rule = "{truncate: 3}"
		}
	case catCity:
		p.Rule = "keep"
		p.Reason = "quasi-identifier (" + what[cat] + "): kept for analytics; drop it for small populations"
		return p
	case catGeo:
		if !c.Type.IsArray() && (c.Type.Kind == schema.KindFloat || c.Type.Kind == schema.KindNumeric) {
			p.Rule = "{truncate: 0.1}"
		}
	case catCardLast4:
		if text && (c.Type.Length == 0 || c.Type.Length >= 4) {
			p.Rule = `{redact: "0000"}`
		}
	case catBirth:
		switch {
		case isTime(c.Type):
			p.Rule = "{truncate: year}"
		case text && !c.Unique:
			p.Rule = "{truncate: 4}"
		case c.Type.Kind == schema.KindInt && !c.Type.IsArray():
			p.Rule = "{truncate: 5}"
		}
	case catDeath:
		if isTime(c.Type) {
			p.Rule = "{truncate: month}"
		}
	case catIdentifier:
		if !hashable(c) {
			return Proposal{Rule: "keep"}
		}
		p.Rule = "hash"
	case catCoupon:
		if text {
			p.Rule = "{partial: {keep_first: 3}}"
		}
	case catLogin:
		if isTime(c.Type) {
			p.Rule = "{truncate: day}"
		} else {
			return Proposal{Rule: "keep"}
		}
	case catBody:
		if !c.Type.IsArray() && (c.Type.Kind == schema.KindFloat || c.Type.Kind == schema.KindNumeric || c.Type.Kind == schema.KindInt) {
			p.Rule = "{noise: 0.05}"
		}
	case catHealth:
		if isText(c.Type) && len(c.Samples) > 0 && allElements(c.Samples, isICD10) {
			p.Rule = "{truncate: 3}"
			p.Reason = what[cat] + " (a special category): ICD-10 codes, each cut to its category (E11.9 -> E11)"
			return p
		}
		p.Rule = "keep"
		p.Reason = what[cat] + " (a special category): kept for analytics; review"
		return p
	default:
		if kind, ok := fakeOf[cat]; ok {
			p.Rule = fake(kind)
		}
	}
	if p.Rule == "" {
		switch c.Type.Kind {
		case schema.KindBool, schema.KindDate, schema.KindTimestamp, schema.KindTimestampTZ,
			schema.KindTime, schema.KindInterval, schema.KindFloat:
			return Proposal{Rule: "keep"} // cannot hold what the name suggests
		case schema.KindInt, schema.KindNumeric, schema.KindUUID:
			if hashable(c) {
				p.Rule = "hash"
				p.Reason += "; hashed: stored as " + c.Type.String()
				return p
			}
		}
		p.Rule = "drop"
		p.Reason += "; dropped: no masking rule fits type " + c.Type.String()
	}
	return p
}

// jsonRule is the rule for a JSON key of a category, or "".
func jsonRule(cat category, numeric bool) string {
	switch cat {
	case catSecret, catGovID, catFreeText, catDevice, catBirth, catDeath, catCard:
		return "drop"
	case catEmail:
		return "{fake: email}"
	case catPhone:
		return "{partial: {keep_last: 2}}"
	case catFirstName:
		return "{fake: first_name}"
	case catLastName:
		return "{fake: last_name}"
	case catFullName:
		return "{fake: name}"
	case catCompany:
		return "{fake: company}"
	case catUsername:
		return "{fake: username}"
	case catStreet:
		return "{fake: street}"
	case catAddress:
		return "{fake: address}"
	case catZip:
		return "{truncate: 3}"
	case catIP:
		return "{fake: ipv4}"
	case catIBAN:
		return "{fake: iban}"
	case catCardLast4:
		return "drop"
	case catIdentifier:
		return "hash"
	case catCoupon:
		return "{partial: {keep_first: 3}}"
	case catBody, catGeo:
		if numeric {
			return "{noise: 0.05}"
		}
		return "drop"
	}
	return ""
}

var reJSONKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// jsonKey is what the samples told of one key, at any depth.
type jsonKey struct {
	byName  category
	byValue map[category]int
	strings []string
	numbers int
	others  int // objects, arrays, booleans
}

// classifyJSON samples the documents: keys that hold personal data, by
// their name or their values, get a "$..key" path.
func classifyJSON(table string, c Column) Proposal {
	keys := map[string]*jsonKey{}
	docs := 0
	var walk func(key string, v any)
	walk = func(key string, v any) {
		k := keys[key]
		if key != "" && k == nil {
			k = &jsonKey{byName: nameCategory(key, ""), byValue: map[category]int{}}
			keys[key] = k
		}
		switch x := v.(type) {
		case map[string]any:
			if k != nil {
				k.others++
			}
			for kk, vv := range x {
				walk(kk, vv)
			}
		case []any:
			for _, vv := range x {
				walk(key, vv)
			}
		case string:
			if k != nil {
				k.strings = append(k.strings, x)
			}
		case json.Number, float64:
			if k != nil {
				k.numbers++
			}
		default:
			if k != nil {
				k.others++
			}
		}
	}
	for _, s := range c.Samples {
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var v any
		if d.Decode(&v) != nil {
			continue
		}
		docs++
		walk("", v)
	}
	type found struct {
		path, rule string
		cat        category
		byValue    bool
	}
	var fs []found
	unquotable := false
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		k := keys[n]
		cat, byValue := k.byName, false
		if vc := valueCategory(k.strings); vc != catNone && (cat == catNone || strongValue(vc) && !strongName(cat)) {
			cat, byValue = vc, true
		}
		rule := jsonRule(cat, k.numbers > 0 && len(k.strings) == 0 && k.others == 0)
		if rule == "" {
			continue
		}
		if !reJSONKey.MatchString(n) {
			unquotable = true
			continue
		}
		fs = append(fs, found{path: "$.." + n, rule: rule, cat: cat, byValue: byValue})
	}
	if unquotable {
		return Proposal{Rule: "drop", Reason: "a JSON key with an unusual name holds personal data: whole document dropped", cat: catFreeText}
	}
	if len(fs) == 0 {
		if docs == 0 {
			// Nothing sampled: decide from the column's name.
			if cat := nameCategory(c.Name, table); cat != catNone && cat != catCity && cat != catHealth && cat != catLogin {
				if r := jsonRule(cat, false); r != "" {
					return Proposal{Rule: r, Reason: "name suggests " + what[cat] + "; no document sampled", cat: cat}
				}
			}
			return Proposal{Rule: "keep", Reason: "no document sampled: check its keys by hand"}
		}
		return Proposal{Rule: "keep"}
	}
	var b strings.Builder
	b.WriteString("{json: {")
	var whats []string
	seen := map[category]bool{}
	for i, f := range fs {
		if i > 0 {
			b.WriteString(", ")
		}
		q, _ := json.Marshal(f.path)
		b.Write(q)
		b.WriteString(": ")
		b.WriteString(f.rule)
		if !seen[f.cat] {
			seen[f.cat] = true
			whats = append(whats, what[f.cat])
		}
	}
	b.WriteString("}}")
	return Proposal{Rule: b.String(), Reason: "sampled documents have keys holding " + strings.Join(whats, ", "), cat: fs[0].cat}
}
