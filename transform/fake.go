package transform

import (
	"bytes"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"pgveil/schema"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/brianvoe/gofakeit/v7"
)

// fake replaces a value with realistic fake data of a chosen kind. The
// generator is seeded with a keyed hash of the input, so the same input
// always gets the same fake value, in every table and every run.
//
// Outputs depend on gofakeit's word lists: upgrading gofakeit may change
// them, so pgveil pins its version.
//
// char(n) values are seeded without their trailing blanks, which PostgreSQL
// ignores, so they get the same fake as the same text in other columns. In
// varchar(n) and char(n), values are cut to n characters; a unique tag and a
// kept email domain are never cut while the generated part can be shortened
// instead, so unique values stay unique.
type fake struct {
	// seed is the keyed hash that seeds the generator: its key depends on
	// the options that change the output (see fakeSeedKey).
	seed        *keyedHash
	gen         fakeKind
	kind        string
	keepDomain  bool
	unique      bool
	length      int // varchar(n): cut to n characters; 0 unlimited
	blankPadded bool
	typ         schema.Type
	fakers      *sync.Pool
}

// fakeKind generates one value with a seeded faker.
type fakeKind struct {
	gen func(f *gofakeit.Faker) string
	// types the kind may be written into besides text.
	also []schema.Kind
	// uniqueOK: a unique tag can be added without breaking the format.
	uniqueOK bool
}

// fakeKinds lists the kinds, by YAML name.
func fakeKinds() map[string]fakeKind {
	kinds := map[string]fakeKind{
		"name":          {gen: (*gofakeit.Faker).Name},
		"first_name":    {gen: (*gofakeit.Faker).FirstName},
		"last_name":     {gen: (*gofakeit.Faker).LastName},
		"email":         {gen: (*gofakeit.Faker).Email, uniqueOK: true},
		"phone":         {gen: (*gofakeit.Faker).Phone},
		"street":        {gen: (*gofakeit.Faker).Street},
		"city":          {gen: (*gofakeit.Faker).City},
		"state":         {gen: (*gofakeit.Faker).State},
		"zip":           {gen: (*gofakeit.Faker).Zip},
		"country":       {gen: (*gofakeit.Faker).Country},
		"address":       {gen: fakeAddress},
		"company":       {gen: (*gofakeit.Faker).Company},
		"job_title":     {gen: (*gofakeit.Faker).JobTitle},
		"username":      {gen: (*gofakeit.Faker).Username, uniqueOK: true},
		"ipv4":          {gen: (*gofakeit.Faker).IPv4Address, also: []schema.Kind{schema.KindInet}},
		"ipv6":          {gen: (*gofakeit.Faker).IPv6Address, also: []schema.Kind{schema.KindInet}},
		"iban":          {gen: fakeIBAN},
		"credit_card":   {gen: fakeCard},
		"ssn":           {gen: (*gofakeit.Faker).SSN},
		"url":           {gen: (*gofakeit.Faker).URL, uniqueOK: true},
		"word":          {gen: (*gofakeit.Faker).Word},
		"sentence":      {gen: func(f *gofakeit.Faker) string { return f.Sentence() }},
		"paragraph":     {gen: func(f *gofakeit.Faker) string { return f.Paragraph() }},
		"date_of_birth": {gen: fakeBirthDate, also: []schema.Kind{schema.KindDate, schema.KindTimestamp, schema.KindTimestampTZ}},
	}
	// The most used kinds draw from word lists looked up once: the same
	// outputs, faster.
	if w := newFakeWords(); w != nil {
		for name, gen := range map[string]func(*gofakeit.Faker) string{
			"name": w.name, "first_name": w.firstName, "last_name": w.lastName, "street": w.street,
			"city": w.city, "state": w.state, "zip": w.zip, "country": w.country, "address": w.address,
			"email": w.email, "company": w.company, "ipv4": w.ipv4,
		} {
			k := kinds[name]
			k.gen = gen
			kinds[name] = k
		}
	}
	return kinds
}

func fakeKindNames() []string {
	var names []string
	for n := range fakeKinds() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// uniqueTagLen is the length of the tag that keeps unique fakes unique:
// 13 base32 characters, 64 bits of the keyed hash.
const uniqueTagLen = 13

func fakeSpec() *Spec {
	return &Spec{
		Name: "fake",
		Doc:  "Realistic fake data of a kind ({fake: email}), the same for the same input in every table. keep_domain keeps an email's domain; unique adds a tag that keeps values unique on unique columns.",
		Params: []Param{
			{Name: "kind", Kind: ParamString, Doc: "What to generate.", Enum: fakeKindNames()},
			{Name: "keep_domain", Kind: ParamBool, Doc: "email: keep the part after @ (for example to keep counts by email provider)."},
			{Name: "unique", Kind: ParamBool, Doc: "email, username, url: add a " + fmt.Sprint(uniqueTagLen) + "-character keyed tag so that distinct inputs stay distinct."},
		},
		Shorthand: func(v any) string {
			if _, ok := v.(string); ok {
				return "kind"
			}
			return ""
		},
		Check: func(a Args) error {
			kind := a.String("kind", "")
			switch {
			case kind == "":
				return errors.New("kind is required, for example {fake: email}")
			case a.Bool("keep_domain", false) && kind != "email":
				return errors.New("keep_domain applies to kind email only")
			case a.Bool("unique", false) && !fakeKinds()[kind].uniqueOK:
				return fmt.Errorf("unique is supported for kinds email, username and url, not %s; for unique values use hash", kind)
			}
			return nil
		},
		New: newFake,
		Warn: func(c schema.Column, a Args) string {
			if c.Unique && !c.PrimaryKey && !a.Bool("unique", false) {
				return "values may collide on a unique column; set unique: true (email, username, url) or use hash"
			}
			return ""
		},
	}
}

func newFake(c schema.Column, a Args, k *Keys, _ *Registry) (Transformer, error) {
	name := a.String("kind", "")
	kind := fakeKinds()[name]
	t := c.Type
	if t.Kind != schema.KindText && !slices.Contains(kind.also, t.Kind) {
		return nil, fmt.Errorf("fake %s does not fit a %s column", name, t)
	}
	keepDomain, unique := a.Bool("keep_domain", false), a.Bool("unique", false)
	f := &fake{
		seed: k.fakeSeed(name, keepDomain, unique), gen: kind, kind: name, typ: t,
		keepDomain:  keepDomain,
		unique:      unique,
		length:      t.Length,
		blankPadded: t.Name == "character",
		fakers: &sync.Pool{New: func() any {
			return gofakeit.NewFaker(rand.NewPCG(0, 0), false)
		}},
	}
	if f.unique && f.length > 0 && f.length < 40 {
		return nil, fmt.Errorf("%s is too short for unique fake %s values: they need up to 40 characters", t, name)
	}
	return f, nil
}

func (f *fake) Transform(v schema.Value) (schema.Value, error) {
	in := v.Text
	if f.blankPadded {
		in = bytes.TrimRight(in, " ")
	}
	if len(in) == 0 {
		return v, nil // an empty value says nothing; keep it empty
	}
	sum := f.seed.sum(in)
	fk := f.fakers.Get().(*gofakeit.Faker)
	fk.Rand.(*rand.PCG).Seed(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16]))
	// A fake value never equals its input: draw again (deterministically,
	// the generator goes on) in the rare case it does.
	var out []byte
	for range maxFakeDraws {
		out = f.render(f.gen.gen(fk), in, sum)
		if !bytes.Equal(out, in) {
			break
		}
	}
	f.fakers.Put(fk)
	return schema.Value{Text: out}, nil
}

// fakeSeed returns the keyed hash that seeds fakes of one kind and set of
// options. Each (kind, keep_domain, unique) has its own key, derived from
// the fake key: were the seed shared, {fake: email} and {fake: {kind:
// email, keep_domain: true}} would draw the same local part, and joining
// the two columns on it would give the real domain the first one hides
// (likewise a unique tag would link a username to an email of the same
// input). With keyed seeds, outputs under different options are
// unrelated, while the same options still give the same output in every
// table and column (the column's type and length are left out on
// purpose: a varchar(n) output is the text output cut to n, which tells
// nothing the longer one does not, and joins across them keep working).
func (k *Keys) fakeSeed(kind string, keepDomain, unique bool) *keyedHash {
	label := fmt.Sprintf("pgveil/fake/v2\x00kind=%s\x00keep_domain=%t\x00unique=%t", kind, keepDomain, unique)
	sub := k.fake.sum([]byte(label))
	h := &keyedHash{}
	h.init(sub[:])
	return h
}

// maxFakeDraws bounds the draws for a value that its fake keeps equalling.
const maxFakeDraws = 16

// render turns a generated value into the output: date formats, the
// unique tag, a kept email domain and the column's length.
func (f *fake) render(s string, in []byte, sum [32]byte) []byte {
	if f.kind == "date_of_birth" {
		s = formatBirthDate(s, f.typ.Kind)
	}
	if !f.unique && !(f.kind == "email" && f.keepDomain) {
		out := []byte(s)
		if f.length > 0 && utf8.RuneCount(out) > f.length {
			out = truncateRunes(out, f.length)
		}
		return out
	}
	// head + tag + tail, where tag keeps values unique and tail is an
	// email's @domain.
	head, tail := s, ""
	if f.kind == "email" {
		local, domain, _ := strings.Cut(s, "@")
		head, tail = local, "@"+domain
		if i := bytes.LastIndexByte(in, '@'); f.keepDomain && i >= 0 && i < len(in)-1 {
			tail = "@" + string(bytes.ToLower(in[i+1:]))
		}
	}
	var tag []byte
	if f.unique {
		sep := byte('-')
		if f.kind == "email" {
			sep = '.'
		}
		tag = append([]byte{sep}, uniqueTag(sum)...)
	}
	if f.length > 0 {
		nh, nt := utf8.RuneCountInString(head), utf8.RuneCountInString(tail)
		if over := nh + len(tag) + nt - f.length; over > 0 {
			// Shorten the generated part (keeping a character of it),
			// then the tail; the tag fits since unique needs n >= 40.
			cut := min(over, max(nh-1, 0))
			head = string(truncateRunes([]byte(head), nh-cut))
			if over -= cut; over > 0 {
				tail = string(truncateRunes([]byte(tail), max(nt-over, 0)))
			}
		}
	}
	out := make([]byte, 0, len(head)+len(tag)+len(tail))
	return append(append(append(out, head...), tag...), tail...)
}

// uniqueTag is 64 bits of the keyed hash in lower-case base32.
func uniqueTag(sum [32]byte) []byte {
	out := make([]byte, tagEncoding.EncodedLen(8))
	tagEncoding.Encode(out, sum[16:24])
	return out
}

var tagEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func truncateRunes(b []byte, n int) []byte {
	i := 0
	for k := 0; k < n && i < len(b); k++ {
		_, size := utf8.DecodeRune(b[i:])
		i += size
	}
	return b[:i]
}

func fakeAddress(f *gofakeit.Faker) string {
	return f.Street() + ", " + f.City() + ", " + f.State() + " " + f.Zip()
}

// fakeBirthDate draws a date from 1940-01-01 to 2007-12-31; the range is
// fixed so that outputs do not change with the current date.
func fakeBirthDate(f *gofakeit.Faker) string {
	first := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC)
	span := int(time.Date(2008, 1, 1, 0, 0, 0, 0, time.UTC).Sub(first).Hours() / 24)
	return first.AddDate(0, 0, f.IntN(span)).Format(time.DateOnly)
}

func formatBirthDate(s string, k schema.Kind) string {
	switch k {
	case schema.KindTimestamp:
		return s + " 00:00:00"
	case schema.KindTimestampTZ:
		return s + " 00:00:00+00"
	}
	return s
}

// ibanFormats: country, BBAN pattern (# digit, @ upper-case letter).
var ibanFormats = [...]struct{ country, bban string }{
	{"DE", "##################"},
	{"FR", "#######################"},
	{"ES", "####################"},
	{"NL", "@@@@##########"},
	{"GB", "@@@@##############"},
	{"IT", "@######################"},
}

// fakeIBAN draws an IBAN with valid check digits (ISO 13616, mod 97).
func fakeIBAN(f *gofakeit.Faker) string {
	format := ibanFormats[f.IntN(len(ibanFormats))]
	bban := make([]byte, len(format.bban))
	for i, c := range []byte(format.bban) {
		if c == '#' {
			bban[i] = byte('0' + f.IntN(10))
		} else {
			bban[i] = byte('A' + f.IntN(26))
		}
	}
	check := 98 - IBANMod97(string(bban)+format.country+"00")
	return fmt.Sprintf("%s%02d%s", format.country, check, bban)
}

// fakeCard draws a 16-digit card number with a valid Luhn check digit.
func fakeCard(f *gofakeit.Faker) string {
	var d [16]byte
	d[0] = byte('4' + f.IntN(2)) // 4 (Visa-like) or 5 (Mastercard-like)
	for i := 1; i < 15; i++ {
		d[i] = byte('0' + f.IntN(10))
	}
	sum := 0
	for i := 0; i < 15; i++ {
		x := int(d[14-i] - '0')
		if i%2 == 0 {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	d[15] = byte('0' + (10-sum%10)%10)
	return string(d[:])
}
