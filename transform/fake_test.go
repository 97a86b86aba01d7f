package transform

import (
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"pgveil/internal/pgtest"
	"pgveil/schema"
)

func fakeOf(t testing.TB, k *Keys, typ string, args Args) Transformer {
	t.Helper()
	return build(t, k, typ, Rule{Name: "fake", Args: args})
}

func TestFakeEveryKind(t *testing.T) {
	ka, ka2, kb := testKeys(t, pgtest.Secret), testKeys(t, pgtest.Secret), testKeys(t, veilSecretB)
	kinds := fakeKindNames()
	if len(kinds) != len(fakeKinds()) || len(kinds) < 20 {
		t.Fatalf("fakeKindNames() = %v", kinds)
	}
	for _, kind := range kinds {
		a := fakeOf(t, ka, "text", Args{"kind": kind})
		a2 := fakeOf(t, ka2, "text", Args{"kind": kind})
		b := fakeOf(t, kb, "text", Args{"kind": kind})
		differs := 0
		outs := map[string]bool{}
		for i := range 20 {
			in := fmt.Sprintf("input %d", i)
			x, x2, y := apply(t, a, in), apply(t, a2, in), apply(t, b, in)
			if x == "" || !utf8.ValidString(x) {
				t.Errorf("fake %s of %q = %q", kind, in, x)
			}
			if x != x2 {
				t.Errorf("fake %s of %q: %q, then %q with the same secret", kind, in, x, x2)
			}
			if x != y {
				differs++
			}
			if strings.Contains(x, in) {
				t.Errorf("fake %s of %q = %q contains the input", kind, in, x)
			}
			outs[x] = true
		}
		if differs < 10 {
			t.Errorf("fake %s: only %d of 20 values change with the secret", kind, differs)
		}
		if len(outs) < 5 {
			t.Errorf("fake %s: only %d distinct values for 20 inputs", kind, len(outs))
		}
	}
}

func TestFakeSameAcrossColumns(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	// The same input gets the same fake in every table and column type.
	text := apply(t, fakeOf(t, k, "text", Args{"kind": "name"}), "Alice Martin")
	for _, typ := range []string{"varchar(200)", "citext", "char(100)"} {
		got := strings.TrimRight(apply(t, fakeOf(t, k, typ, Args{"kind": "name"}), "Alice Martin"), " ")
		if got != text {
			t.Errorf("fake name on %s = %q, on text %q", typ, got, text)
		}
	}
	// char(n) pads with blanks that are not part of the value: the input's
	// do not change the fake, and the output is padded as PostgreSQL would.
	padded := apply(t, fakeOf(t, k, "char(20)", Args{"kind": "name"}), "Alice Martin        ")
	if strings.TrimRight(padded, " ") != text || len([]rune(padded)) != 20 {
		t.Errorf("fake name on char(20) of a padded value = %q, want %q", padded, text)
	}
}

var emailRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$`)

func TestFakeEmail(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	plain := fakeOf(t, k, "text", Args{"kind": "email"})
	keep := fakeOf(t, k, "text", Args{"kind": "email", "keep_domain": true})
	seen := map[string]bool{}
	for i := range 300 {
		in := fmt.Sprintf("user%d@corp-%d.example.com", i, i%7)
		got := apply(t, plain, in)
		if !emailRE.MatchString(got) {
			t.Errorf("fake email of %q = %q, not an email", in, got)
		}
		seen[got] = true
		kept := apply(t, keep, in)
		if want := fmt.Sprintf("@corp-%d.example.com", i%7); !strings.HasSuffix(kept, want) || strings.Count(kept, "@") != 1 {
			t.Errorf("keep_domain of %q = %q, want the domain %s", in, kept, want)
		}
		if strings.Contains(kept, fmt.Sprintf("user%d@", i)) {
			t.Errorf("keep_domain of %q = %q kept the local part", in, kept)
		}
	}
	if len(seen) < 250 {
		t.Errorf("only %d distinct fake emails for 300 inputs", len(seen))
	}
	tests := []struct {
		in, wantSuffix string
	}{
		{"Alice@Example.COM", "@example.com"},
		{"a@b@c.org", "@c.org"},
		{"first.last+tag@sub.domain.co.uk", "@sub.domain.co.uk"},
		{"ünïcode@bücher.de", "@bücher.de"},
	}
	for _, tt := range tests {
		if got := apply(t, keep, tt.in); !strings.HasSuffix(got, tt.wantSuffix) {
			t.Errorf("keep_domain of %q = %q, want suffix %q", tt.in, got, tt.wantSuffix)
		}
	}
	// No domain to keep: a fake one.
	for _, in := range []string{"not an email", "trailing@", "@"} {
		got := apply(t, keep, in)
		if !emailRE.MatchString(got) {
			t.Errorf("keep_domain of %q = %q, not an email", in, got)
		}
	}
}

// TestFakeOptionsAreUnlinkable checks that outputs under different options
// share nothing pseudo-random (issue 17, finding 9): {fake: email} hides
// the domain that {fake: {kind: email, keep_domain: true}} keeps, so were
// their local parts the same, joining the two columns on it would give
// every real domain back. The same holds between unique and plain fakes,
// and between the unique tags of two kinds on the same input.
func TestFakeOptionsAreUnlinkable(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	local := func(s string) string { l, _, _ := strings.Cut(s, "@"); return l }
	tagOf := func(s string) string { return s[max(len(s)-uniqueTagLen, 0):] }
	type variant struct {
		args Args
		part func(string) string // the pseudo-random part two variants could share
	}
	emailOpts := []variant{
		{Args{"kind": "email"}, local},
		{Args{"kind": "email", "keep_domain": true}, local},
		{Args{"kind": "email", "unique": true}, func(s string) string { return strings.SplitN(local(s), ".", 2)[0] }},
		{Args{"kind": "email", "unique": true, "keep_domain": true}, func(s string) string { return strings.SplitN(local(s), ".", 2)[0] }},
	}
	const n = 400
	for i, a := range emailOpts {
		for _, b := range emailOpts[i+1:] {
			ta, tb := fakeOf(t, k, "text", a.args), fakeOf(t, k, "text", b.args)
			same := 0
			for j := range n {
				in := fmt.Sprintf("user%d@corp-%d.example.com", j, j%7)
				if a.part(apply(t, ta, in)) == b.part(apply(t, tb, in)) {
					same++
				}
			}
			// Independent draws from gofakeit's name lists meet by chance
			// now and then; shared seeds meet every time.
			if same > n/20 {
				t.Errorf("%v and %v: %d of %d inputs share the generated part", a.args, b.args, same, n)
			}
		}
	}
	// Unique tags of two kinds on the same input differ.
	em := fakeOf(t, k, "text", Args{"kind": "email", "unique": true})
	user := fakeOf(t, k, "text", Args{"kind": "username", "unique": true})
	url := fakeOf(t, k, "text", Args{"kind": "url", "unique": true})
	for j := range n {
		in := fmt.Sprintf("user%d@corp.example.com", j)
		te, tu, tl := tagOf(local(apply(t, em, in))), tagOf(apply(t, user, in)), tagOf(apply(t, url, in))
		if te == tu || tu == tl || te == tl {
			t.Fatalf("input %d: unique tags of email, username and url are shared: %s %s %s", j, te, tu, tl)
		}
	}
	// The same options still agree in every column (joins keep working).
	for _, a := range emailOpts {
		x := apply(t, fakeOf(t, k, "text", a.args), "bob@x.org")
		y := apply(t, fakeOf(t, k, "varchar(200)", a.args), "bob@x.org")
		if x != y {
			t.Errorf("%v: %q on text, %q on varchar(200)", a.args, x, y)
		}
	}
}

func TestFakeUnique(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, tt := range []struct {
		typ  string
		args Args
	}{
		{"text", Args{"kind": "email", "unique": true}},
		{"text", Args{"kind": "email", "unique": true, "keep_domain": true}},
		{"text", Args{"kind": "username", "unique": true}},
		{"text", Args{"kind": "url", "unique": true}},
		// Limited lengths cut the generated part, never the tag.
		{"varchar(40)", Args{"kind": "email", "unique": true}},
		{"varchar(40)", Args{"kind": "email", "unique": true, "keep_domain": true}},
		{"varchar(40)", Args{"kind": "url", "unique": true}},
		{"varchar(40)", Args{"kind": "username", "unique": true}},
		{"varchar(45)", Args{"kind": "url", "unique": true}},
		{"char(40)", Args{"kind": "url", "unique": true}},
	} {
		tr := fakeOf(t, k, tt.typ, tt.args)
		n := schema.MustType(tt.typ).Length
		seen := map[string]string{}
		for i := range 2000 {
			// Inputs that share a domain, as on a real users table.
			in := fmt.Sprintf("u%d@averyveryveryverylongdomainname.example.com", i)
			if i%2 == 0 {
				in = fmt.Sprintf("u%d@x.io", i)
			}
			got := apply(t, tr, in)
			if prev, dup := seen[got]; dup {
				t.Fatalf("%s %v: %q and %q both give %q", tt.typ, tt.args, prev, in, got)
			}
			seen[got] = in
			// The tag survives whole, whatever the column's length.
			in2 := in
			if schema.MustType(tt.typ).Name == "character" {
				in2 = strings.TrimRight(in, " ")
			}
			if tag := string(uniqueTag(k.fakeSeed(tt.args.String("kind", ""), tt.args.Bool("keep_domain", false), true).sum([]byte(in2)))); !strings.Contains(got, tag) {
				t.Fatalf("%s %v: %q lost its tag %s", tt.typ, tt.args, got, tag)
			}
			if n > 0 && utf8.RuneCountInString(got) > n {
				t.Fatalf("%s %v: %q has more than %d characters", tt.typ, tt.args, got, n)
			}
			if tt.args["kind"] == "email" && strings.Count(got, "@") != 1 {
				t.Fatalf("%s %v: %q is not an email", tt.typ, tt.args, got)
			}
			if tt.args["kind"] == "email" && n == 0 && !emailRE.MatchString(got) {
				t.Fatalf("%s %v: %q is not an email", tt.typ, tt.args, got)
			}
		}
	}
	// The tag: 13 base32 characters of the keyed hash, after the generated part.
	tr := fakeOf(t, k, "text", Args{"kind": "username", "unique": true})
	got := apply(t, tr, "bob")
	if !regexp.MustCompile(`^[A-Za-z0-9]+-[a-z2-7]{13}$`).MatchString(got) {
		t.Errorf("unique username of bob = %q, want a username plus -tag", got)
	}
	em := apply(t, fakeOf(t, k, "text", Args{"kind": "email", "unique": true, "keep_domain": true}), "bob@x.org")
	if !regexp.MustCompile(`^[^@]+\.[a-z2-7]{13}@x\.org$`).MatchString(em) {
		t.Errorf("unique email of bob@x.org = %q, want local.tag@x.org", em)
	}
	// Another secret, another tag.
	other := apply(t, fakeOf(t, testKeys(t, veilSecretB), "text", Args{"kind": "username", "unique": true}), "bob")
	if other[len(other)-13:] == got[len(got)-13:] {
		t.Errorf("the unique tag does not depend on the secret")
	}
}

func TestFakeVarcharLength(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, n := range []int{1, 5, 12, 40} {
		for _, kind := range fakeKindNames() {
			if kind == "date_of_birth" && n < 10 {
				continue // cut dates are text, which is all varchar(n) asks
			}
			for _, typ := range []string{fmt.Sprintf("varchar(%d)", n), fmt.Sprintf("char(%d)", n)} {
				tr := fakeOf(t, k, typ, Args{"kind": kind})
				for i := range 10 {
					got := apply(t, tr, fmt.Sprint("value ", i))
					if c := utf8.RuneCountInString(got); c > n || c == 0 || !utf8.ValidString(got) {
						t.Errorf("fake %s on %s = %q (%d characters)", kind, typ, got, c)
					}
				}
			}
		}
	}
	// Multi-byte output is cut in characters.
	if got := truncateRunes([]byte("日本語😀"), 2); string(got) != "日本" {
		t.Errorf("truncateRunes = %q", got)
	}
	// keep_domain on a short column shortens the local part first.
	got := apply(t, fakeOf(t, k, "varchar(16)", Args{"kind": "email", "keep_domain": true}), "someone@mail.example")
	if utf8.RuneCountInString(got) > 16 || !strings.HasSuffix(got, "@mail.example") {
		t.Errorf("keep_domain on varchar(16) = %q, want the domain kept within 16 characters", got)
	}
}

func TestFakeDateOfBirth(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	first := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(2007, 12, 31, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		typ, layout string
	}{
		{"text", "2006-01-02"},
		{"varchar(10)", "2006-01-02"},
		{"date", "2006-01-02"},
		{"timestamp", "2006-01-02 15:04:05"},
		{"timestamptz", "2006-01-02 15:04:05-07"},
		{"date[]", ""},
	} {
		tr := fakeOf(t, k, tt.typ, Args{"kind": "date_of_birth"})
		if tt.layout == "" {
			got := apply(t, tr, "{1990-05-17,NULL}")
			if !regexp.MustCompile(`^\{\d{4}-\d\d-\d\d,NULL\}$`).MatchString(got) {
				t.Errorf("date_of_birth on date[] = %q", got)
			}
			continue
		}
		minY, maxY := 9999, 0
		for i := range 500 {
			in := fmt.Sprint("1985-01-", 1+i%28, " #", i)
			if tt.typ != "text" && tt.typ != "varchar(10)" {
				in = time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i*17).Format(tt.layout)
			}
			got := apply(t, tr, in)
			d, err := time.Parse(tt.layout, got)
			if err != nil {
				t.Fatalf("date_of_birth on %s = %q: %v", tt.typ, got, err)
			}
			if _, err := checkLiteral(schema.MustType(tt.typ), got); err != nil {
				t.Fatalf("date_of_birth on %s = %q: %v", tt.typ, got, err)
			}
			if d.Before(first) || d.After(last) || d.Hour() != 0 || d.Minute() != 0 {
				t.Fatalf("date_of_birth on %s = %q, outside 1940-01-01..2007-12-31", tt.typ, got)
			}
			minY, maxY = min(minY, d.Year()), max(maxY, d.Year())
		}
		if minY > 1945 || maxY < 2002 {
			t.Errorf("date_of_birth on %s spreads over %d..%d only", tt.typ, minY, maxY)
		}
	}
	// The edges of the range.
	if got := formatBirthDate("1940-01-01", schema.KindTimestampTZ); got != "1940-01-01 00:00:00+00" {
		t.Errorf("formatBirthDate = %q", got)
	}
}

func TestFakeIBAN(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := fakeOf(t, k, "text", Args{"kind": "iban"})
	lengths := map[string]int{"DE": 22, "FR": 27, "ES": 24, "NL": 18, "GB": 22, "IT": 27}
	countries := map[string]int{}
	for i := range 600 {
		got := apply(t, tr, fmt.Sprint("DE89370400440532013", i))
		cc := got[:2]
		want, ok := lengths[cc]
		if !ok || len(got) != want {
			t.Fatalf("iban %q: unknown country or wrong length", got)
		}
		countries[cc]++
		// ISO 13616: move the first four characters to the end, letters
		// to 10..35; the number is 1 modulo 97.
		var digits strings.Builder
		for _, c := range got[4:] + got[:4] {
			switch {
			case c >= '0' && c <= '9':
				digits.WriteRune(c)
			case c >= 'A' && c <= 'Z':
				fmt.Fprint(&digits, int(c-'A')+10)
			default:
				t.Fatalf("iban %q: bad character %q", got, c)
			}
		}
		n, _ := new(big.Int).SetString(digits.String(), 10)
		if new(big.Int).Mod(n, big.NewInt(97)).Int64() != 1 {
			t.Fatalf("iban %q: check digits are wrong", got)
		}
	}
	if len(countries) != len(lengths) {
		t.Errorf("iban countries drawn: %v", countries)
	}
	if IBANMod97("3214282912345698765432161182") != 1 { // GB82WEST12345698765432, rearranged
		t.Errorf("ibanMod97 of a known IBAN is %d", IBANMod97("3214282912345698765432161182"))
	}
}

func TestFakeCreditCard(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := fakeOf(t, k, "text", Args{"kind": "credit_card"})
	if !LuhnValid("4111111111111111") || LuhnValid("4111111111111112") {
		t.Fatal("LuhnValid is wrong")
	}
	firsts := map[byte]int{}
	for i := range 1000 {
		got := apply(t, tr, fmt.Sprint("4556 7375 8689 ", i))
		if !regexp.MustCompile(`^[45]\d{15}$`).MatchString(got) || !LuhnValid(got) {
			t.Fatalf("credit_card %q: not a valid card number", got)
		}
		firsts[got[0]]++
	}
	if firsts['4'] < 300 || firsts['5'] < 300 {
		t.Errorf("first digits: %v", firsts)
	}
}

func TestFakeInet(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, tt := range []struct {
		typ, kind string
		is4       bool
	}{
		{"inet", "ipv4", true}, {"inet", "ipv6", false}, {"text", "ipv4", true}, {"cidr", "ipv4", true},
	} {
		tr := fakeOf(t, k, tt.typ, Args{"kind": tt.kind})
		for i := range 50 {
			got := apply(t, tr, fmt.Sprint("10.0.0.", i))
			a, err := netip.ParseAddr(got)
			if err != nil || a.Is4() != tt.is4 {
				t.Fatalf("fake %s on %s = %q", tt.kind, tt.typ, got)
			}
		}
	}
}

func TestFakeKeepsEmptyAndArrays(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := fakeOf(t, k, "text", Args{"kind": "email"})
	if got := apply(t, tr, ""); got != "" {
		t.Errorf("fake email of empty = %q", got)
	}
	if got := apply(t, fakeOf(t, k, "char(5)", Args{"kind": "email"}), "     "); got != "     " {
		t.Errorf("fake email of blank char(5) = %q", got)
	}
	a, b, c := apply(t, tr, "a@x.com"), apply(t, tr, "b@y.com"), apply(t, tr, "c@z.com")
	arr := fakeOf(t, k, "text[]", Args{"kind": "email"})
	if got, want := apply(t, arr, `{a@x.com,NULL,"b@y.com"}`), "{"+a+",NULL,"+b+"}"; got != want {
		t.Errorf("fake email on text[] = %s, want %s", got, want)
	}
	if got, want := apply(t, arr, `{{a@x.com,b@y.com},{NULL,c@z.com}}`), "{{"+a+","+b+"},{NULL,"+c+"}}"; got != want {
		t.Errorf("fake email on 2-D text[] = %s, want %s", got, want)
	}
	// Names have blanks: the array quotes them.
	names := fakeOf(t, k, "varchar(50)[]", Args{"kind": "name"})
	n := apply(t, fakeOf(t, k, "varchar(50)", Args{"kind": "name"}), "x")
	if got, want := apply(t, names, "{x,NULL}"), `{"`+n+`",NULL}`; got != want {
		t.Errorf("fake name on varchar(50)[] = %s, want %s", got, want)
	}
}

func TestFakeConcurrent(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tr := fakeOf(t, k, "text", Args{"kind": "address"})
	want := make([]string, 50)
	for i := range want {
		want[i] = apply(t, tr, fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for round := range 20 {
				for i := range want {
					j := (i + round) % len(want)
					out, err := tr.Transform(schema.Text(fmt.Sprint(j)))
					if err != nil || out.String() != want[j] {
						errs <- fmt.Sprintf("%d: %q, want %q", j, out, want[j])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestFakeBuildErrors(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	tests := []struct {
		typ  string
		args Args
		want string
	}{
		{"integer", Args{"kind": "email"}, "fake email does not fit a integer column"},
		{"date", Args{"kind": "name"}, "fake name does not fit a date column"},
		{"integer", Args{"kind": "date_of_birth"}, "does not fit"},
		{"inet", Args{"kind": "email"}, "does not fit a inet column"},
		{"date", Args{"kind": "ipv4"}, "fake ipv4 does not fit a date column"},
		{"uuid", Args{"kind": "word"}, "does not fit"},
		{"integer[]", Args{"kind": "email"}, "does not fit a integer column"},
		{"varchar(20)", Args{"kind": "email", "unique": true}, "character varying(20) is too short for unique fake email values: they need up to 40 characters"},
		{"varchar(39)", Args{"kind": "url", "unique": true}, "too short for unique"},
		{"char(10)", Args{"kind": "username", "unique": true}, "too short for unique"},
		// Checks that need no catalog.
		{"text", Args{"kind": "name", "keep_domain": true}, "keep_domain applies to kind email only"},
		{"text", Args{"kind": "name", "unique": true}, "unique is supported for kinds email, username and url, not name; for unique values use hash"},
		{"text", Args{"kind": "date_of_birth", "unique": true}, "not date_of_birth"},
		{"text", Args{}, "kind is required, for example {fake: email}"},
		{"text", Args{"unique": true}, "kind is required"},
		{"text", Args{"kind": "mail"}, "kind: must be one of address, city,"},
		{"text", Args{"kind": 3.0}, "kind: must be a string"},
		{"text", Args{"kind": "email", "keep_domain": "yes"}, "keep_domain: must be a boolean"},
		{"text", Args{"kind": "email", "locale": "fr"}, `fake has no parameter "locale"`},
	}
	for _, tt := range tests {
		_, err := veilBuildErr(k, tt.typ, Rule{Name: "fake", Args: tt.args})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fake %v on %s: error %v, want %q", tt.args, tt.typ, err, tt.want)
		}
	}
	// unique and keep_domain on a long enough column are fine.
	for _, typ := range []string{"varchar(40)", "text", "char(64)"} {
		if _, err := veilBuildErr(k, typ, Rule{Name: "fake", Args: Args{"kind": "email", "unique": true, "keep_domain": true}}); err != nil {
			t.Errorf("unique email on %s: %v", typ, err)
		}
	}
}

func TestFakeNeverLeaks(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, kind := range fakeKindNames() {
		tr := fakeOf(t, k, "text", Args{"kind": kind})
		for _, in := range []string{veilCanary, "\x00\xff", strings.Repeat("é", 1000)} {
			out, err := veilRun(tr, in)
			if err != nil {
				t.Errorf("fake %s of %q: %v", kind, in, err)
				continue
			}
			if strings.Contains(out.String(), veilCanary) {
				t.Errorf("fake %s leaks its input: %q", kind, out)
			}
		}
	}
}

func BenchmarkFakeEmail(b *testing.B) {
	k := testKeys(b, pgtest.Secret)
	tr := fakeOf(b, k, "text", Args{"kind": "email"})
	in := schema.Text("alice.martin@example.com")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Transform(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFakeName(b *testing.B) {
	k := testKeys(b, pgtest.Secret)
	tr := fakeOf(b, k, "text", Args{"kind": "name"})
	in := schema.Text("Alice Martin")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Transform(in); err != nil {
			b.Fatal(err)
		}
	}
}

// A fake never equals its input, even where the kind's word list holds it
// or the column's length cuts the fake down to it.
func TestFakeNeverReturnsInput(t *testing.T) {
	k := testKeys(t, pgtest.Secret)
	for _, tc := range []struct{ typ, kind string }{{"text", "first_name"}, {"varchar(1)", "first_name"}, {"text", "country"}, {"char(1)", "last_name"}} {
		tr := build(t, k, tc.typ, Rule{Name: "fake", Args: Args{"kind": tc.kind}})
		// Feed each output back: outputs are exactly the values most
		// likely to be drawn again.
		seen := 0
		for _, in := range []string{"John", "A", "B", "C", "France", "Smith", "J", "S", "M"} {
			v := in
			for range 30 {
				out := apply(t, tr, v)
				if out == v {
					t.Fatalf("%s %s: %q -> itself", tc.typ, tc.kind, v)
				}
				v = out
				seen++
			}
		}
		if seen == 0 {
			t.Fatal("no values checked")
		}
	}
}

func TestFakeWarnsOnUniqueColumn(t *testing.T) {
	r := Builtin()
	col := schema.Column{Name: "email", Type: schema.MustType("text"), Unique: true}
	if w := r.Warning(Rule{Name: "fake", Args: Args{"kind": "email"}}, col); !strings.Contains(w, "set unique: true") {
		t.Errorf("warning %q", w)
	}
	if w := r.Warning(Rule{Name: "fake", Args: Args{"kind": "email", "unique": true}}, col); w != "" {
		t.Errorf("unique: true still warns: %q", w)
	}
	col.Unique = false
	if w := r.Warning(Rule{Name: "fake", Args: Args{"kind": "email"}}, col); w != "" {
		t.Errorf("non-unique column warns: %q", w)
	}
}
