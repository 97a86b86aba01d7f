package scan

import (
	"bytes"
	"pgveil/schema"
	"regexp"
	"strings"
	"sync"
	"unicode"

	"github.com/brianvoe/gofakeit/v7/data"
)

// This file recognises what sampled values hold from the values alone:
// people's names (by dictionaries of first and last names and by the
// shapes names are written in), places (street addresses, "City, Region,
// Country"), identifiers by their shape (tickets, bookings, cabins and
// seats, card numbers) and binary content by its magic bytes. Sampled
// values are looked at here and nowhere kept: every function returns a
// verdict, never a value.

// dicts are the word lists the value detectors look names up in, lower
// case. They are built once, from gofakeit's data (the same lists the
// fake transformer draws from), and only read afterwards.
type dicts struct {
	firsts, lasts, cities, regions, streetWords, titles map[string]bool
}

var dictionaries = sync.OnceValue(func() *dicts {
	set := func(lists ...[]string) map[string]bool {
		m := map[string]bool{}
		for _, l := range lists {
			for _, w := range l {
				m[strings.ToLower(w)] = true
			}
		}
		return m
	}
	person, address := data.Person, data.Address
	d := &dicts{
		firsts: set(person["first"], person["middle"], extraFirsts),
		lasts:  set(person["last"], extraLasts),
		cities: set(address["city"]),
		// The last part of "City, Region, Country": a country, a US state,
		// or a state or province code.
		regions:     set(address["country"], address["state"], address["state_abr"], regionCodes, extraCountries),
		streetWords: set(address["street_name"], streetAbbrevs),
		titles:      set(personTitles),
	}
	return d
})

// extraFirsts and extraLasts complete gofakeit's (mostly American) lists
// with common European names, so that a column of European names is
// recognised as well as one of American names.
var (
	extraFirsts = []string{"Jonas", "Lukas", "Leon", "Finn", "Felix", "Paul", "Elias", "Ben", "Noah", "Emil", "Anna", "Emma",
		"Mia", "Hanna", "Lena", "Lea", "Marie", "Sophie", "Léa", "Chloé", "Zoë", "Zoé", "Jürgen", "Jörg", "Günter", "Sören",
		"Matteo", "Giulia", "Francesca", "Luca", "Marco", "Giuseppe", "Pierre", "Jean", "Jacques", "François", "Jose",
		"José", "María", "Juan", "Carlos", "Javier", "Lucía", "Sven", "Lars", "Anders", "Ingrid", "Astrid", "Björn",
		"Jan", "Piotr", "Katarzyna", "Agnieszka", "Ivan", "Olga", "Sergei", "Dmitri", "Eva", "Klaus", "Hans", "Karl", "Owen",
		"Harris", "Johan", "Mohammed", "Muhammad", "Ali", "Fatima", "Wei", "Li", "Yuki", "Hiroshi", "Kenji", "Priya", "Raj"}
	extraLasts = []string{"Müller", "Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
		"Schulz", "Hoffmann", "Koch", "Klein", "Wolf", "Schröder", "Neumann", "Braun", "Zimmermann", "Krüger", "Hofmann",
		"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Rossi",
		"Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "García", "Garcia", "Fernández", "González",
		"Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Nowak", "Kowalski", "Wiśniewski", "Ivanov", "Smirnov",
		"Jansen", "De Jong", "Janssen", "Visser", "Andersson", "Johansson", "Karlsson", "Nilsson", "Hansen", "Jensen",
		"Nielsen", "Larsen", "Murphy", "Kelly", "Walsh", "Byrne", "Ryan", "O'Brien", "Silva", "Santos", "Ferreira",
		"Pereira", "Oliveira", "Costa", "Wang", "Zhang", "Liu", "Chen", "Yang", "Kim", "Park", "Nguyen", "Tran", "Sato",
		"Suzuki", "Tanaka", "Singh", "Kumar", "Patel", "Sharma", "Khan", "Braund", "Cumings", "Heikkinen", "Futrelle"}
	extraCountries = []string{"USA", "UK", "England", "Scotland", "Wales", "Deutschland", "Russia", "South Korea", "Vietnam",
		"Iran", "Syria", "Venezuela", "Bolivia", "Tanzania", "Taiwan", "Czech Republic", "United States", "United Kingdom"}
	// regionCodes are US state and Canadian province codes (PQ is
	// Quebec's old code, still in older data).
	regionCodes = []string{"AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
		"KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH",
		"OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC", "AB", "BC", "MB",
		"NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "PQ", "SK", "YT"}
	streetAbbrevs = []string{"st", "ave", "av", "rd", "blvd", "dr", "ln", "ct", "pl", "pkwy", "hwy", "sq", "ter", "cres",
		"cir", "way", "rue", "via", "calle", "avenida", "strasse", "straße", "str", "weg", "gasse", "platz", "allee", "ring",
		"damm", "chaussee", "ufer", "laan", "straat", "gata", "gatan", "vej", "ulica", "plaza", "boulevard", "chemin"}
	personTitles = []string{"mr", "mrs", "ms", "miss", "master", "mx", "dr", "rev", "prof", "sir", "lady", "mme", "mlle",
		"madame", "monsieur", "herr", "frau", "don", "dona", "col", "major", "capt", "jonkheer", "countess", "fr"}
)

// word normalises one word of a value for a dictionary look-up.
func word(s string) string {
	return strings.ToLower(strings.Trim(s, ".,;:()\"'"))
}

// nameWord reports whether s is written like a word of a person's name:
// letters (and ' - .), capitalised or all upper case.
func nameWord(s string) bool {
	rs := []rune(s)
	if len(rs) == 0 || !unicode.IsUpper(rs[0]) {
		return false
	}
	for _, r := range rs {
		if !unicode.IsLetter(r) && r != '\'' && r != '-' && r != '.' && r != '’' {
			return false
		}
	}
	return true
}

// initial reports whether s is an initial: "F." or "F".
func initial(s string) bool {
	rs := []rune(s)
	return (len(rs) == 2 && rs[1] == '.' || len(rs) == 1) && unicode.IsUpper(rs[0])
}

// nameShape is what one value looks like as a person's name.
type nameShape int

const (
	notName   nameShape = iota
	nameWeak            // capitalised words, one of them a known name
	nameFull            // a known first name and a known last name, or a title
	nameFirst           // one word, a known first name
	nameLast            // one word, a known last name
)

// reLastTitleFirst is "Last, Title First ...": "Braund, Mr. Owen Harris".
var reLastTitleFirst = regexp.MustCompile(`^([\p{L}'’ .-]+),\s+(?:the\s+)?(\p{L}+)\.?(?:\s+(.+))?$`)

// personName classifies one value.
func personName(s string) nameShape {
	d := dictionaries()
	s = strings.TrimSpace(s)
	if m := reLastTitleFirst.FindStringSubmatch(s); m != nil {
		if d.titles[word(m[2])] && m[3] != "" {
			return nameFull
		}
		// "Last, First": a last name, then a first name.
		rest := strings.Fields(m[2] + " " + m[3])
		if nameWord(m[1]) && d.lasts[word(m[1])] && len(rest) <= 3 && d.firsts[word(rest[0])] {
			return nameFull
		}
		return notName
	}
	ws := strings.Fields(s)
	titled := false
	for len(ws) > 1 && d.titles[word(ws[0])] {
		ws, titled = ws[1:], true
	}
	switch {
	case len(ws) == 1:
		if !nameWord(ws[0]) {
			return notName
		}
		switch w := word(ws[0]); {
		case titled:
			return nameFull
		case d.firsts[w] && !d.lasts[w]:
			return nameFirst
		case d.lasts[w] && !d.firsts[w]:
			return nameLast
		case d.firsts[w]:
			return nameFirst
		}
		return notName
	case len(ws) > 4:
		return notName
	}
	for _, w := range ws {
		if !nameWord(w) {
			return notName
		}
	}
	if titled {
		return nameFull
	}
	first, last := word(ws[0]), word(ws[len(ws)-1])
	knownFirst := d.firsts[first] || initial(ws[0])
	switch {
	case knownFirst && d.lasts[last]:
		return nameFull
	case d.firsts[first] || d.lasts[last] && len(ws) == 2:
		return nameWeak
	}
	return notName
}

// personNames recognises a column of people's names: most values must
// look like names, and enough of them be names for sure.
func personNames(vals []string) category {
	var full, weak, firsts, lasts int
	for _, v := range vals {
		switch personName(v) {
		case nameFull:
			full++
		case nameWeak:
			weak++
		case nameFirst:
			firsts++
		case nameLast:
			lasts++
		}
	}
	n := len(vals)
	switch {
	case n == 0:
		return catNone
	case (full+weak)*10 >= n*6 && full*4 >= n:
		return catFullName
	case (firsts+lasts)*10 >= n*7 && firsts >= lasts:
		return catFirstName
	case (firsts+lasts)*10 >= n*7:
		return catLastName
	}
	return catNone
}

var (
	reHouseNumber = regexp.MustCompile(`^\d{1,6}[A-Za-z]?(-\d+)?,?$`)
)

// streetAddress reports whether a value is a street address: a house
// number followed by words, one of them a street word ("47 MySakila
// Drive", "12 Rue de la Paix"), or a street word then a number
// ("Hauptstraße 5").
func streetAddress(s string) bool {
	ws := strings.Fields(s)
	if len(ws) < 2 {
		return false
	}
	d := dictionaries()
	if reHouseNumber.MatchString(ws[0]) {
		for _, w := range ws[1:] {
			if d.streetWords[word(w)] {
				return true
			}
		}
		return false
	}
	// The number after the street's name.
	for i, w := range ws[1:] {
		if !reHouseNumber.MatchString(w) {
			continue
		}
		for _, x := range ws[:i+1] {
			lw := word(x)
			if d.streetWords[lw] {
				return true
			}
			for _, suf := range []string{"straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "damm", "straat", "gatan", "vej"} {
				if strings.HasSuffix(lw, suf) || strings.HasSuffix(strings.ToLower(x), suf) {
					return true
				}
			}
		}
	}
	return false
}

// cityRegionCountry reports whether a value is "City, Region",
// "City, Region, Country" or several of them separated by "/": the last
// part a known country, state, or state or province code.
func cityRegionCountry(s string) bool {
	d := dictionaries()
	found := false
	for _, piece := range strings.Split(s, "/") {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		parts := strings.Split(piece, ",")
		if len(parts) < 2 || len(parts) > 4 {
			if len(parts) == 1 && allWords(piece) {
				continue // "London / Winnipeg, MB": a bare city beside a full one
			}
			return false
		}
		for _, p := range parts {
			p = strings.TrimSpace(p)
			for _, w := range strings.Fields(p) {
				if !nameWord(w) && !initial(w) {
					return false
				}
			}
			if p == "" {
				return false
			}
		}
		if !d.regions[strings.ToLower(strings.TrimSpace(parts[len(parts)-1]))] {
			return false
		}
		found = true
	}
	return found
}

// allWords reports whether s is capitalised words only.
func allWords(s string) bool {
	ws := strings.Fields(s)
	for _, w := range ws {
		if !nameWord(w) {
			return false
		}
	}
	return len(ws) > 0
}

// knownCity reports whether a value is a city of the dictionary.
func knownCity(s string) bool { return dictionaries().cities[strings.ToLower(strings.TrimSpace(s))] }

var (
	// reTicket is a ticket or booking number: an optional letter prefix
	// (with / and .) and a number ("PC 17599", "A/5 21171",
	// "STON/O2. 3101282", "113803").
	reTicket = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9./]*\.?\s)?\d{3,}$`)
	// reCode is an opaque alphanumeric code: letters and digits mixed
	// ("X7K2PQ", "BK-20240117-0042", "ch_3MtwBwLkdIwHu7ix").
	reCode = regexp.MustCompile(`^[A-Za-z0-9]+([-_/][A-Za-z0-9]+)*$`)
	// reCabin is a cabin or seat: a deck letter and a number, one or
	// several ("C85", "B57 B59 B63"), or a row and a seat letter ("12A").
	reCabin = regexp.MustCompile(`^([A-Z]\d{1,3}(\s+[A-Z]\d{1,3})*|\d{1,3}[A-K]|[A-Z])$`)
	// reCardGrouped is a card number in groups: 4-4-4-4, 4-4-4-4-3, 4-6-5.
	reCardGrouped = regexp.MustCompile(`^(\d{4}([ -]\d{4}){3}([ -]\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{5})$`)
	reDigits      = regexp.MustCompile(`^\d+$`)
)

// ticketNumber reports whether a value is shaped like a ticket number
// with a prefix (a bare number is anything).
func ticketNumber(s string) bool { return reTicket.MatchString(s) }

// alnumCode reports whether a value is an opaque code: 6 to 40
// characters, letters and digits both (one group at least mixing them, or
// several groups).
func alnumCode(s string) bool {
	if len(s) < 6 || len(s) > 40 || !reCode.MatchString(s) {
		return false
	}
	var letters, digits int
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case unicode.IsLetter(r):
			letters++
		}
	}
	return letters > 0 && digits >= 2
}

func cabinCode(s string) bool { return reCabin.MatchString(s) }

// cardNumber reports whether a value is a card number: 13 to 19 digits
// with a valid Luhn check digit, or, without one, written in a card's
// groups or 15 or 16 digits starting as card brands do (test data and
// masked exports often break the check digit).
func cardNumber(s string) bool {
	if isCard(s) {
		return true
	}
	if reCardGrouped.MatchString(s) {
		return true
	}
	if !reDigits.MatchString(s) {
		return false
	}
	switch {
	case len(s) == 16 && strings.ContainsRune("23456", rune(s[0])):
		return true
	case len(s) == 15 && (strings.HasPrefix(s, "34") || strings.HasPrefix(s, "37")):
		return true
	}
	return false
}

// distinctShare is the share of distinct values among vals.
func distinctShare(vals []string) float64 {
	if len(vals) == 0 {
		return 0
	}
	seen := map[string]bool{}
	for _, v := range vals {
		seen[v] = true
	}
	return float64(len(seen)) / float64(len(vals))
}

// share is the share of vals that f accepts.
func share(vals []string, f func(string) bool) float64 {
	if len(vals) == 0 {
		return 0
	}
	n := 0
	for _, v := range vals {
		if f(v) {
			n++
		}
	}
	return float64(n) / float64(len(vals))
}

// nonEmpty trims the samples and leaves out the empty ones.
func nonEmpty(samples []string) []string {
	var vals []string
	for _, s := range samples {
		if s = strings.TrimSpace(s); s != "" {
			vals = append(vals, s)
		}
	}
	return vals
}

// shapeCategory recognises text values by the shapes people's data is
// written in: names, addresses, places, card numbers. It is asked after
// valueCategory's exact formats (emails, IBANs, ...).
func shapeCategory(samples []string) category {
	vals := nonEmpty(samples)
	if len(vals) == 0 {
		return catNone
	}
	switch {
	case share(vals, cardNumber) >= 0.8 && distinctShare(vals) >= 0.5:
		return catCard
	case share(vals, streetAddress) >= 0.6:
		if share(vals, func(s string) bool { return strings.Count(s, ",") >= 1 }) >= 0.6 {
			return catAddress
		}
		return catStreet
	case share(vals, cityRegionCountry) >= 0.6:
		return catPlace
	}
	if c := personNames(vals); c != catNone {
		return c
	}
	if share(vals, knownCity) >= 0.6 {
		return catCity
	}
	return catNone
}

// identifierShape recognises identifiers by their shape: ticket and
// booking numbers, opaque codes, cabins and seats. These shapes also fit
// product codes and catalogue numbers, so Propose asks only in tables
// about people.
func identifierShape(samples []string) category {
	vals := nonEmpty(samples)
	if len(vals) < 3 {
		return catNone
	}
	prefixed := func(s string) bool { return ticketNumber(s) && !reDigits.MatchString(s) }
	switch {
	case share(vals, ticketNumber) >= 0.8 && share(vals, prefixed) >= 0.1 && distinctShare(vals) >= 0.5:
		return catIdentifier
	case share(vals, alnumCode) >= 0.8 && distinctShare(vals) >= 0.8:
		return catIdentifier
	case share(vals, cabinCode) >= 0.8 && distinctShare(vals) >= 0.5 &&
		share(vals, func(s string) bool { return len(s) > 1 }) >= 0.5:
		return catCabin
	}
	return catNone
}

// binaryKind names the content of a binary value by its first bytes, ""
// when unknown.
func binaryKind(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "PNG image"
	case bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}):
		return "JPEG image"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "GIF image"
	case len(b) >= 12 && bytes.HasPrefix(b, []byte("RIFF")) && string(b[8:12]) == "WEBP":
		return "WebP image"
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "TIFF image"
	case bytes.HasPrefix(b, []byte("BM")) && len(b) >= 14:
		return "BMP image"
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		return "HEIC, AVIF or MP4 media"
	case bytes.HasPrefix(b, []byte("%PDF")):
		return "PDF document"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return "ZIP or Office document"
	case bytes.HasPrefix(b, []byte{0xd0, 0xcf, 0x11, 0xe0}):
		return "Office document"
	case bytes.HasPrefix(b, []byte("{\\rtf")):
		return "RTF document"
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip data"
	}
	return ""
}

// binaryContent is the kind most sampled binary values share, "" when
// none: at least half of the non-empty samples must be of that kind.
func binaryContent(samples []string) string {
	count := map[string]int{}
	n := 0
	best := ""
	for _, s := range samples {
		if s == "" {
			continue
		}
		n++
		if k := binaryKind([]byte(s)); k != "" {
			count[k]++
			if count[k] > count[best] {
				best = k
			}
		}
	}
	if best == "" || count[best]*2 < n {
		return ""
	}
	return best
}

// binaryName reports whether a column's name says it holds images or
// documents.
func binaryName(name string) bool {
	w := newWords(name)
	return w.has("picture", "pictures", "photo", "photos", "avatar", "image", "images", "img", "scan", "scans", "document",
		"documents", "doc", "signature", "thumbnail", "thumb", "attachment", "attachments", "file", "blob", "pdf", "portrait",
		"selfie", "headshot", "fingerprint", "face", "logo") ||
		w.contains("picture", "photo", "avatar", "image", "signature", "attachment", "thumbnail")
}

// sampledType reports whether a column of type t is sampled, and whether
// as binary (a prefix of its bytes) rather than text.
func sampledType(t schema.Type) (sampled, binary bool) {
	switch t.Kind {
	case schema.KindBytea:
		return !t.IsArray(), !t.IsArray()
	case schema.KindText, schema.KindJSON, schema.KindJSONB, schema.KindInet, schema.KindInt, schema.KindNumeric:
		return true, false
	}
	return false, false
}
