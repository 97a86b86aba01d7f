package scan

import (
	"pgveil/schema"
	"strings"
	"testing"
)

func TestPersonName(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want nameShape
	}{
		{"Braund, Mr. Owen Harris", nameFull},
		{"Cumings, Mrs. John Bradley (Florence Briggs Thayer)", nameFull},
		{"Rothes, the Countess. of (Lucy Noel Martha Dyer-Edwards)", nameFull},
		{"Smith, John", nameFull},
		{"John Smith", nameFull},
		{"MARY SMITH", nameFull},
		{"J. Smith", nameFull},
		{"Dr. Zoltan Qwerty", nameFull},
		{"Jonas Müller", nameFull},
		{"Aaron Zqxwv", nameWeak},
		{"Penelope", nameFirst},
		{"Abbott", nameLast},
		{"ACADEMY DINOSAUR", notName},
		{"Shoe 1", notName},
		{"47 MySakila Drive", notName},
		{"Acme GmbH", notName},
		{"action", notName},
		{"a great product for everyone who likes it", notName},
	} {
		if got := personName(tt.v); got != tt.want {
			t.Errorf("personName(%q) = %d, want %d", tt.v, got, tt.want)
		}
	}
}

func TestPlaceShapes(t *testing.T) {
	for _, v := range []string{"47 MySakila Drive", "1913 Hanoi Way", "28 MySQL Boulevard", "123 Main St.", "Hauptstraße 5", "12 Rue de la Paix"} {
		if !streetAddress(v) {
			t.Errorf("streetAddress(%q) = false", v)
		}
	}
	for _, v := range []string{"Shoe 1", "ACADEMY DINOSAUR", "12 Angry Men", "PC 17599", "Berlin"} {
		if streetAddress(v) {
			t.Errorf("streetAddress(%q) = true", v)
		}
	}
	for _, v := range []string{"St Louis, MO", "Montreal, PQ / Chesterville, ON", "Bangor, ME", "Lyon, Rhône, France", "New York, NY", "London / Winnipeg, MB"} {
		if !cityRegionCountry(v) {
			t.Errorf("cityRegionCountry(%q) = false", v)
		}
	}
	for _, v := range []string{"Hello, world", "red, green, blue", "Shoes", "1, 2, 3"} {
		if cityRegionCountry(v) {
			t.Errorf("cityRegionCountry(%q) = true", v)
		}
	}
}

func TestIdentifierShapes(t *testing.T) {
	for _, v := range []string{"PC 17599", "A/5 21171", "STON/O2. 3101282", "113803", "W./C. 6608"} {
		if !ticketNumber(v) {
			t.Errorf("ticketNumber(%q) = false", v)
		}
	}
	for _, v := range []string{"X7K2PQ", "BK-20240117-0042", "ch_3MtwBwLkdIwHu7ix", "cus_N1a2b3c4"} {
		if !alnumCode(v) {
			t.Errorf("alnumCode(%q) = false", v)
		}
	}
	for _, v := range []string{"PG-13", "hello", "2024", "NC-17"} {
		if alnumCode(v) {
			t.Errorf("alnumCode(%q) = true", v)
		}
	}
	for _, v := range []string{"C85", "B57 B59 B63 B66", "12A", "E46"} {
		if !cabinCode(v) {
			t.Errorf("cabinCode(%q) = false", v)
		}
	}
	for _, tt := range []struct {
		v    string
		want bool
	}{
		{"4111111111111111", true},       // Luhn-valid
		{"4111 1111 1111 1112", true},    // grouped, check digit wrong
		{"5500000000000005", true},       // 16 digits from a card brand, check digit wrong
		{"3782 822463 10005", true},      // Amex groups
		{"1234567890123456789", false},   // 19 digits, no check digit, no brand
		{"20240117", false},              // a date
		{"1111-2222", false},             // too short
		{"4111111111111112x", false},     // not digits
		{"341234567890123", true},        // Amex prefix, 15 digits
		{"9111111111111111", false},      // 16 digits, no brand, Luhn wrong
		{"4539 1488 0343 6467", true},    // valid, grouped
		{"0000000000000000000", true},    // 19 zeros pass Luhn: formats say card
		{"6011-1111-1111-1117", true},    // Discover, dashes
		{"12345678901", false},           // a phone-length number
		{"9999 9999 9999 9999 99", true}, // grouped 4-4-4-4-2
	} {
		if got := cardNumber(tt.v); got != tt.want {
			t.Errorf("cardNumber(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestBinaryKind(t *testing.T) {
	for _, tt := range []struct {
		b, want string
	}{
		{"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"},
		{"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG image"},
		{"GIF89a\x01\x00", "GIF image"},
		{"%PDF-1.7\n", "PDF document"},
		{"PK\x03\x04\x14\x00\x06\x00", "ZIP or Office document"},
		{"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Office document"},
		{"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP image"},
		{"\x00\x01\x02\x03", ""},
		{"hello", ""},
	} {
		if got := binaryKind([]byte(tt.b)); got != tt.want {
			t.Errorf("binaryKind(%q) = %q, want %q", tt.b, got, tt.want)
		}
	}
}

// TestClassifyByValues checks that columns whose names say nothing are
// recognised from their values, that the context decides for a bare
// "name", and that no reason holds a sampled value (each sample carries
// the canary where its shape allows).
func TestClassifyByValues(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
	rep := func(vs ...string) []string {
		var out []string
		for range 4 {
			out = append(out, vs...)
		}
		return out
	}
	for _, tt := range []struct {
		table string
		c     Column
		rule  string
	}{
		{"passengers", Column{Name: "name", Type: schema.MustType("text"), Samples: []string{"Braund, Mr. Owen Harris", "Heikkinen, Miss. Laina", "Futrelle, Mrs. Jacques Heath (Lily May Peel)", "Allen, Mr. William Henry", "Moran, Mr. James"}}, "{fake: name}"},
		{"guests", Column{Name: "name", Type: schema.MustType("text")}, "{fake: name}"},
		{"products", Column{Name: "name", Type: schema.MustType("text"), Samples: []string{"Shoe 1", "Hat", "Red scarf", "Blue boots"}}, "keep"},
		{"film", Column{Name: "title", Type: schema.MustType("text"), Samples: []string{"ACADEMY DINOSAUR", "ACE GOLDFINGER", "ADAPTATION HOLES"}}, "keep"},
		{"film", Column{Name: "description", Type: schema.MustType("text"), Samples: []string{"A Epic Drama of a Feminist And a Mad Scientist who must Battle a Teacher in The Canadian Rockies"}}, "keep"},
		{"people", Column{Name: "hometown", Type: schema.MustType("text"), Samples: []string{"St Louis, MO", "Bangor, ME", "Montreal, PQ / Chesterville, ON"}}, "{fake: city}"},
		{"things", Column{Name: "origin", Type: schema.MustType("text"), Samples: []string{"St Louis, MO", "Bangor, ME", "New York, NY"}}, "{fake: city}"},
		{"t", Column{Name: "who", Type: schema.MustType("text"), Samples: []string{"John Smith", "Mary Johnson", "Robert Brown CANARY"[:12], "Linda Davis"}}, "{fake: name}"},
		{"t", Column{Name: "loc", Type: schema.MustType("text"), Samples: []string{"47 MySakila Drive", "1913 Hanoi Way", "123 Main St."}}, "{fake: street}"},
		{"passengers", Column{Name: "ticket", Type: schema.MustType("text"), Samples: []string{"A/5 21171", "PC 17599", "113803"}}, "hash"},
		{"passengers", Column{Name: "tkt", Type: schema.MustType("text"), Samples: []string{"A/5 21171", "PC 17599", "113803", "373450", "STON/O2. 3101282"}}, "hash"},
		{"passengers", Column{Name: "cabin", Type: schema.MustType("text"), Samples: []string{"C85", "C123", "E46", "B57 B59 B63 B66"}}, "hash"},
		{"passengers", Column{Name: "deck_pos", Type: schema.MustType("text"), Samples: []string{"C85", "C123", "E46", "B57 B59 B63 B66"}}, "hash"},
		{"products", Column{Name: "code", Type: schema.MustType("text"), Samples: []string{"X7K2PQ", "A8B9C1", "Z2Y3X4"}}, "keep"},
		{"members", Column{Name: "code", Type: schema.MustType("text"), Samples: []string{"X7K2PQ", "A8B9C1", "Z2Y3X4"}}, "hash"},
		{"t", Column{Name: "cc", Type: schema.MustType("text"), Samples: []string{"4111 1111 1111 1112", "5500 0000 0000 0001"}}, "{fake: credit_card}"},
		{"t", Column{Name: "cc", Type: schema.MustType("bigint"), Samples: rep("4111111111111111", "5500000000000004")}, "hash"},
		{"staff", Column{Name: "picture", Type: schema.MustType("bytea"), Samples: []string{png, png}}, "drop"},
		{"things", Column{Name: "blob1", Type: schema.MustType("bytea"), Samples: []string{"%PDF-1.4\n"}}, "drop"},
		{"things", Column{Name: "avatar", Type: schema.MustType("bytea")}, "drop"},
		{"things", Column{Name: "digest", Type: schema.MustType("bytea"), Samples: []string{"\x01\x02\x03"}}, "keep"},
		{"address", Column{Name: "address2", Type: schema.MustType("text")}, "{fake: street}"},
		{"address", Column{Name: "address_line_2", Type: schema.MustType("text")}, "{fake: street}"},
		{"customer", Column{Name: "uuid", Type: schema.MustType("uuid")}, "hash"},
		{"customer", Column{Name: "stripe_customer_id", Type: schema.MustType("text"), Samples: []string{"cus_N1a2b3c4", "cus_Z9y8x7w6"}}, "hash"},
		{"customer", Column{Name: "external_id", Type: schema.MustType("text")}, "hash"},
		{"orders", Column{Name: "session_id", Type: schema.MustType("text"), Samples: []string{"s3ss10nA1", "s3ss10nB2", "s3ss10nC3"}}, "hash"},
		{"customer", Column{Name: "notes", Type: schema.MustType("text"), Samples: []string{"likes cats"}}, "drop"},
		{"rating", Column{Name: "label", Type: schema.MustType("text"), Samples: []string{"PG-13", "G", "R"}}, "keep"},
	} {
		p := Classify(tt.table, tt.c)
		if p.Rule != tt.rule {
			t.Errorf("%s.%s: %s (%s), want %s", tt.table, tt.c.Name, p.Rule, p.Reason, tt.rule)
		}
		for _, s := range tt.c.Samples {
			if len(s) >= 4 && strings.Contains(p.Reason, s) {
				t.Errorf("%s.%s: the reason quotes a sampled value", tt.table, tt.c.Name)
			}
		}
	}
}
