package transform

import (
	"math/rand/v2"
	"testing"

	"github.com/brianvoe/gofakeit/v7"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

// TestFakeWordsAreGofakeits: the kinds drawn from word lists give what
// gofakeit's own functions give, and use its generator the same way, for
// many seeds.
func TestFakeWordsAreGofakeits(t *testing.T) {
	w := newFakeWords()
	if w == nil {
		t.Fatal("gofakeit lacks a word list")
	}
	gofakeitAddress := func(f *gofakeit.Faker) string {
		return f.Street() + ", " + f.City() + ", " + f.State() + " " + f.Zip()
	}
	kinds := []struct {
		name       string
		fast, want func(*gofakeit.Faker) string
	}{
		{"name", w.name, (*gofakeit.Faker).Name},
		{"first_name", w.firstName, (*gofakeit.Faker).FirstName},
		{"last_name", w.lastName, (*gofakeit.Faker).LastName},
		{"street", w.street, (*gofakeit.Faker).Street},
		{"city", w.city, (*gofakeit.Faker).City},
		{"state", w.state, (*gofakeit.Faker).State},
		{"zip", w.zip, (*gofakeit.Faker).Zip},
		{"country", w.country, (*gofakeit.Faker).Country},
		{"address", w.address, gofakeitAddress},
		{"email", w.email, (*gofakeit.Faker).Email},
		{"company", w.company, (*gofakeit.Faker).Company},
		{"ipv4", w.ipv4, (*gofakeit.Faker).IPv4Address},
	}
	seeds := 20000
	if testing.Short() {
		seeds = 2000
	}
	for _, k := range kinds {
		for seed := range uint64(seeds) {
			a := gofakeit.NewFaker(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15), false)
			b := gofakeit.NewFaker(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15), false)
			got, want := k.fast(a), k.want(b)
			if got != want {
				t.Fatalf("%s, seed %d: %q, gofakeit gives %q", k.name, seed, got, want)
			}
			// The same draws: both generators are at the same point after.
			if a.Uint64() != b.Uint64() {
				t.Fatalf("%s, seed %d: the generator was used differently", k.name, seed)
			}
		}
	}
	// The kinds use them.
	if fakeKinds()["address"].gen == nil || fakeKinds()["name"].gen == nil {
		t.Fatal("kinds without a generator")
	}
}

func BenchmarkFakeAddress(b *testing.B) {
	k := testKeys(b, pgtest.Secret)
	tr := build(b, k, "text", Rule{Name: "fake", Args: Args{"kind": "address"}})
	in := schema.Text("12 rue de la Paix, 75002 Paris")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Transform(in); err != nil {
			b.Fatal(err)
		}
	}
}
