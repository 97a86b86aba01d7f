package demo

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// validIBAN checks an IBAN the way banks do: the first four characters
// moved to the end, letters as 10..35, the number mod 97 is 1.
func validIBAN(s string) bool {
	if len(s) < 15 {
		return false
	}
	rem := 0
	for _, c := range s[4:] + s[:4] {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A') + 10) % 97
		default:
			return false
		}
	}
	return rem == 1
}

func TestIBANCheckDigits(t *testing.T) {
	for _, tc := range []struct{ cc, bban, want string }{
		{"GB", "WEST12345698765432", "82"}, // the standard's examples
		{"DE", "370400440532013000", "89"},
		{"NL", "ABNA0417164300", "91"},
		{"FR", "30006000011234567890189", "76"},
	} {
		if got := ibanCheckDigits(tc.cc, tc.bban); got != tc.want {
			t.Errorf("%s %s: check digits %s, want %s", tc.cc, tc.bban, got, tc.want)
		}
	}
	g := newGen(7)
	lengths := map[string]int{"DE": 22, "GB": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27}
	for ci := range countries {
		for range 50 {
			iban := g.iban(ci)
			if !validIBAN(iban) {
				t.Fatalf("%s: invalid IBAN %s", countries[ci].code, iban)
			}
			if want := lengths[iban[:2]]; len(iban) != want {
				t.Fatalf("%s: IBAN %s has %d characters, want %d", countries[ci].code, iban, len(iban), want)
			}
		}
	}
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Müller": "mueller", "D'Angelo": "dangelo", "de Jong": "dejong", "Ibáñez": "ibanez",
		"Étienne": "etienne", "Weiß": "weiss", "Niccolò": "niccolo", "François": "francois",
	} {
		if got := fold(in); got != want {
			t.Errorf("fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPersonValues(t *testing.T) {
	g := newGen(1)
	email := regexp.MustCompile(`^[a-z0-9._+-]+@[a-z0-9.-]+\.[a-z]{2,}$`)
	for ci := range countries {
		for range 200 {
			p := g.person(ci)
			if !email.MatchString(p.email) {
				t.Fatalf("%s: bad email %q", countries[ci].code, p.email)
			}
			if strings.ContainsAny(p.phone, "#?") || strings.ContainsAny(p.zip, "#?") {
				t.Fatalf("%s: unfilled pattern in %q / %q", countries[ci].code, p.phone, p.zip)
			}
			if p.street == "" || p.full == "" || p.city.name == "" {
				t.Fatalf("%s: incomplete person %+v", countries[ci].code, p)
			}
		}
	}
	for range 1000 {
		b := g.birthDate()
		if age := anchor().Sub(b); age < 18*365*24*time.Hour || age > 86*366*24*time.Hour {
			t.Fatalf("birth date %s", b)
		}
		n := g.cardNumber()
		if len(n) < 12 || strings.Trim(n, "0123456789") != "" {
			t.Fatalf("card number %q", n)
		}
	}
}

func TestGenDeterministic(t *testing.T) {
	draw := func(seed uint64) string {
		g := newGen(seed)
		var b strings.Builder
		for range 50 {
			p := g.person(g.country())
			b.WriteString(p.full + p.email + p.phone + g.customerNote(&p) + g.ticketBody(&p, 7) + "\n")
		}
		return b.String()
	}
	if draw(3) != draw(3) {
		t.Fatal("the same seed drew different values")
	}
	if draw(3) == draw(4) {
		t.Fatal("different seeds drew the same values")
	}
	if draw(0) != draw(0) {
		t.Fatal("seed 0 is not a fixed seed")
	}
}

func TestMoney(t *testing.T) {
	for cents, want := range map[int64]string{0: "0.00", 5: "0.05", 1234: "12.34", -1999: "-19.99"} {
		if got := money(cents); got != want {
			t.Errorf("money(%d) = %s, want %s", cents, got, want)
		}
	}
}
