package transform

import (
	"strconv"
	"strings"

	"github.com/brianvoe/gofakeit/v7"
	"github.com/brianvoe/gofakeit/v7/data"
)

// fakeWords draws the most used fake kinds from gofakeit's word lists,
// looked up once. gofakeit looks a list up in two maps, twice, at every
// draw, which was half of fake's time on names and addresses. The draws
// are gofakeit's own, call for call (the same lists, the same IntN in the
// same order), so the outputs are the same; TestFakeWordsAreGofakeits
// holds them to gofakeit's for many seeds, and fails if an upgrade of
// gofakeit changes how it draws.
type fakeWords struct {
	firsts, lasts, countries                       []string
	number, streetPrefix, streetName, streetSuffix []string
	cities, states, zips                           []string
	companies, domainSuffixes                      []string
}

// newFakeWords returns the word lists, or nil if gofakeit lacks one (the
// kinds then use gofakeit's own functions).
func newFakeWords() *fakeWords {
	person, address := data.Data["person"], data.Data["address"]
	w := &fakeWords{
		firsts: person["first"], lasts: person["last"], countries: address["country"],
		number: address["number"], streetPrefix: address["street_prefix"], streetName: address["street_name"],
		streetSuffix: address["street_suffix"], cities: address["city"], states: address["state"], zips: address["zip"],
		companies: data.Data["company"]["name"], domainSuffixes: data.Data["internet"]["domain_suffix"],
	}
	for _, l := range [][]string{w.firsts, w.lasts, w.countries, w.number, w.streetPrefix, w.streetName, w.streetSuffix, w.cities, w.states, w.zips, w.companies, w.domainSuffixes} {
		if len(l) == 0 {
			return nil
		}
	}
	return w
}

func pickWord(f *gofakeit.Faker, list []string) string { return list[f.IntN(len(list))] }

func (w *fakeWords) name(f *gofakeit.Faker) string {
	return pickWord(f, w.firsts) + " " + pickWord(f, w.lasts)
}

func (w *fakeWords) firstName(f *gofakeit.Faker) string { return pickWord(f, w.firsts) }
func (w *fakeWords) lastName(f *gofakeit.Faker) string  { return pickWord(f, w.lasts) }
func (w *fakeWords) city(f *gofakeit.Faker) string      { return pickWord(f, w.cities) }
func (w *fakeWords) state(f *gofakeit.Faker) string     { return pickWord(f, w.states) }
func (w *fakeWords) country(f *gofakeit.Faker) string   { return pickWord(f, w.countries) }
func (w *fakeWords) zip(f *gofakeit.Faker) string       { return withDigits(f, pickWord(f, w.zips)) }

// street is gofakeit's Street: a number, then a prefix (one time in two),
// a name and a suffix.
func (w *fakeWords) street(f *gofakeit.Faker) string {
	if f.IntN(2) == 0 {
		return w.streetNumber(f) + " " + pickWord(f, w.streetPrefix) + " " + pickWord(f, w.streetName) + pickWord(f, w.streetSuffix)
	}
	return w.streetNumber(f) + " " + pickWord(f, w.streetName) + pickWord(f, w.streetSuffix)
}

func (w *fakeWords) streetNumber(f *gofakeit.Faker) string {
	return strings.TrimLeft(withDigits(f, pickWord(f, w.number)), "0")
}

// address is fakeAddress with the lists looked up once.
func (w *fakeWords) address(f *gofakeit.Faker) string {
	return w.street(f) + ", " + w.city(f) + ", " + w.state(f) + " " + w.zip(f)
}

// withDigits is gofakeit's replaceWithNumbers: each # becomes a digit, and
// a leading 0 becomes 1-8.
func withDigits(f *gofakeit.Faker, s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	for i := range b {
		if b[i] == '#' {
			b[i] = byte(f.IntN(10)) + '0'
		}
	}
	if b[0] == '0' {
		b[0] = byte(f.IntN(8)+1) + '0'
	}
	return string(b)
}

func (w *fakeWords) company(f *gofakeit.Faker) string { return pickWord(f, w.companies) }

// email is gofakeit's Email: a first and a last name, a last name as the
// domain and a suffix, then one draw that picks the local part's style
// and an optional number. The saas rules mask every email with it (issue
// 20: gofakeit's four list lookups were a third of fake email's time).
func (w *fakeWords) email(f *gofakeit.Faker) string {
	first, last := pickWord(f, w.firsts), pickWord(f, w.lasts)
	domain, suffix := pickWord(f, w.lasts), pickWord(f, w.domainSuffixes)
	b := make([]byte, 0, len(first)+len(last)+len(domain)+len(suffix)+6)
	mix := f.Uint64()
	style := mix % 100
	mix /= 100
	switch {
	case style < 38:
		b = appendLowerASCII(appendLowerASCII(b, first), last)
	case style < 66:
		b = appendLowerASCII(append(appendLowerASCII(b, first), '.'), last)
	case style < 80:
		b = appendLowerASCII(appendLowerASCII(b, first[:min(len(first), 1)]), last)
	case style < 88:
		b = appendLowerASCII(appendLowerASCII(b, first), last[:min(len(last), 1)])
	case style < 94:
		b = appendLowerASCII(append(appendLowerASCII(b, first), '_'), last)
	default:
		b = appendLowerASCII(append(appendLowerASCII(b, first), '-'), last)
	}
	if mix%100 < 10 {
		mix /= 100
		if sub := mix % 100; sub < 30 {
			b = append(b, byte('0'+2+sub%8)) // 2-9
		} else {
			b = strconv.AppendUint(b, sub%90+10, 10) // 10-99
		}
	}
	b = appendLowerASCII(append(b, '@'), domain)
	b = append(append(b, '.'), suffix...)
	return string(b)
}

// appendLowerASCII appends s with A-Z lowered, as gofakeit's email does.
func appendLowerASCII(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// ipv4 is gofakeit's IPv4Address without fmt: four draws of 0-255.
func (w *fakeWords) ipv4(f *gofakeit.Faker) string {
	b := make([]byte, 0, 15)
	for i := range 4 {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendInt(b, int64(f.IntN(256)), 10)
	}
	return string(b)
}
