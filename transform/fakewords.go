package transform

import (
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
}

// newFakeWords returns the word lists, or nil if gofakeit lacks one (the
// kinds then use gofakeit's own functions).
func newFakeWords() *fakeWords {
	person, address := data.Data["person"], data.Data["address"]
	w := &fakeWords{
		firsts: person["first"], lasts: person["last"], countries: address["country"],
		number: address["number"], streetPrefix: address["street_prefix"], streetName: address["street_name"],
		streetSuffix: address["street_suffix"], cities: address["city"], states: address["state"], zips: address["zip"],
	}
	for _, l := range [][]string{w.firsts, w.lasts, w.countries, w.number, w.streetPrefix, w.streetName, w.streetSuffix, w.cities, w.states, w.zips} {
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
