package scan

import (
	"pgveil/schema"
	"strings"
	"testing"
)

func col(name, typ string, samples ...string) Column {
	return Column{Name: name, Type: schema.MustType(typ), Samples: samples}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		table string
		c     Column
		rule  string
	}{
		// Emails, by name and by value.
		{"users", col("email", "text"), "{fake: email}"},
		{"users", col("contact", "text", "a@b.example", "c.d@e.example"), "{fake: email}"},
		{"users", Column{Name: "email", Type: schema.MustType("text"), Unique: true}, "{fake: {kind: email, unique: true}}"},
		{"users", Column{Name: "email", Type: schema.MustType("varchar(30)"), Unique: true}, "hash"},
		{"users", col("email_verified_at", "timestamptz"), "keep"},
		// Phones.
		{"users", col("phone", "text"), "{partial: {keep_last: 2}}"},
		{"users", col("contact_info", "varchar(40)", "+49 30 1234567", "+33 6 12 34 56 78"), "{partial: {keep_last: 2}}"},
		{"users", col("phone", "bigint"), "hash"},
		// Names.
		{"customers", col("first_name", "text"), "{fake: first_name}"},
		{"customers", col("surname", "text"), "{fake: last_name}"},
		{"customers", col("full_name", "text"), "{fake: name}"},
		{"customers", col("name", "text"), "{fake: name}"},
		{"accounts", col("name", "text"), "{fake: company}"},
		{"products", col("name", "text"), "keep"},
		{"payments", col("card_holder", "text"), "{fake: name}"},
		{"users", col("firstName", "text"), "{fake: first_name}"},
		// Addresses.
		{"customers", col("street", "text"), "{fake: street}"},
		{"addresses", col("line2", "text"), "{fake: street}"},
		{"orders", col("shipping_address", "text"), "{fake: address}"},
		{"customers", col("zip", "text"), "{truncate: 3}"},
		{"customers", col("postal_code", "varchar(10)"), "{truncate: 3}"},
		{"customers", col("city", "text"), "keep"},
		{"customers", col("country", "char(2)"), "keep"},
		// IBANs (mod 97) and cards (Luhn).
		{"payments", col("iban", "text"), "{fake: iban}"},
		{"payments", col("account", "text", "DE89370400440532013000", "GB82WEST12345698765432"), "{fake: iban}"},
		{"payments", col("account", "text", "DE89370400440532013001"), "keep"},
		{"payments", col("card", "text", "4111 1111 1111 1111", "5500005555555559"), "{fake: credit_card}"},
		{"payments", col("ref", "text", "4111111111111112"), "hash"},
		{"payments", col("card_last4", "char(4)"), `{redact: "0000"}`},
		// IP addresses.
		{"events", col("ip", "text"), "{fake: ipv4}"},
		{"events", col("origin", "inet"), "{fake: ipv4}"},
		{"events", col("origin", "text", "203.0.113.7", "2001:db8::1"), "{fake: ipv4}"},
		// Birth dates.
		{"patients", col("birth_date", "date"), "{truncate: year}"},
		{"patients", col("dob", "timestamptz"), "{truncate: year}"},
		{"patients", col("date_of_birth", "text"), "{truncate: 4}"},
		// Free text.
		{"orders", col("notes", "text"), "drop"},
		{"tickets", col("body", "text"), "drop"},
		{"tickets", col("customer_note", "text"), "drop"},
		// Secrets.
		{"users", col("password_hash", "text"), "drop"},
		{"users", col("api_key", "text"), "drop"},
		{"users", col("hint", "text", "$2a$10$abcdefghijklmnopqrstuv", "$2a$10$bcdefghijklmnopqrstuvw"), "drop"},
		{"users", col("x", "text", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"), "drop"},
		{"users", col("x", "text", "0123456789abcdef0123456789abcdef"), "drop"},
		{"users", col("ssn", "text"), "drop"},
		// Identifiers and codes.
		{"patients", Column{Name: "mrn", Type: schema.MustType("varchar(16)"), Unique: true}, "hash"},
		{"orders", col("coupon_code", "text"), "{partial: {keep_first: 3}}"},
		{"users", col("last_login_at", "timestamptz"), "{truncate: day}"},
		// Nothing personal.
		{"orders", col("status", "text", "paid", "shipped"), "keep"},
		{"orders", col("total", "numeric(12,2)"), "keep"},
		{"orders", col("created_at", "timestamptz"), "keep"},
		{"orders", col("active", "boolean"), "keep"},
	}
	for _, tt := range tests {
		t.Run(tt.table+"."+tt.c.Name, func(t *testing.T) {
			p := Classify(tt.table, tt.c)
			if p.Rule != tt.rule {
				t.Errorf("Classify(%s, %s %s) = %q (%s), want %q", tt.table, tt.c.Name, tt.c.Type, p.Rule, p.Reason, tt.rule)
			}
			if p.Rule != "keep" && p.Reason == "" {
				t.Errorf("%s: rule %s without a reason", tt.c.Name, p.Rule)
			}
			if strings.Contains(p.Reason, "\n") {
				t.Errorf("reason on several lines: %q", p.Reason)
			}
		})
	}
}

func TestClassifyJSON(t *testing.T) {
	tests := []struct {
		name    string
		samples []string
		rule    string
	}{
		{"profile", []string{`{"address": {"street": "x"}, "ssn": "1", "contacts": [{"email": "a@b.example"}]}`},
			`{json: {"$..address": {fake: address}, "$..email": {fake: email}, "$..ssn": drop, "$..street": {fake: street}}}`},
		{"metadata", []string{`{"ip": "203.0.113.9", "user_agent": "Mozilla", "tags": ["a"]}`},
			`{json: {"$..ip": {fake: ipv4}, "$..user_agent": drop}}`},
		{"properties", []string{`{"contact": "someone@mail.example", "n": 3}`}, `{json: {"$..contact": {fake: email}}}`},
		{"vitals", []string{`{"bp": "120/80", "pulse": 72, "weight_kg": 70.5}`}, `{json: {"$..weight_kg": {noise: 0.05}}}`},
		{"insurance", []string{`{"provider": "AOK", "member_id": "M1", "group_number": "G"}`},
			`{json: {"$..group_number": hash, "$..member_id": hash}}`},
		{"attributes", []string{`{"color": "red", "weight_g": "350"}`, `not json`}, `{json: {"$..weight_g": drop}}`},
		{"attributes", []string{`{"color": "red"}`}, "keep"},
		{"weird", []string{`{"e mail": "a@b.example"}`}, "drop"},
		{"settings", nil, "keep"},
		{"raw_response", nil, "drop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Classify("t", Column{Name: tt.name, Type: schema.MustType("jsonb"), Samples: tt.samples})
			if p.Rule != tt.rule {
				t.Errorf("got %s (%s), want %s", p.Rule, p.Reason, tt.rule)
			}
		})
	}
}

func TestChecks(t *testing.T) {
	for _, s := range []string{"DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606"} {
		if !isIBAN(s) {
			t.Errorf("isIBAN(%q) = false", s)
		}
	}
	for _, s := range []string{"DE89370400440532013001", "DE8937040044", "hello"} {
		if isIBAN(s) {
			t.Errorf("isIBAN(%q) = true", s)
		}
	}
	for _, s := range []string{"4111111111111111", "5500-0055-5555-5559", "378282246310005"} {
		if !isCard(s) {
			t.Errorf("isCard(%q) = false", s)
		}
	}
	for _, s := range []string{"4111111111111112", "1234", "2024-01-05"} {
		if isCard(s) {
			t.Errorf("isCard(%q) = true", s)
		}
	}
	for _, s := range []string{"2024-01-05", "12345678", "hello"} {
		if isPhone(s) {
			t.Errorf("isPhone(%q) = true", s)
		}
	}
	if got := tokens("lastLoginAt_utc"); strings.Join(got, ",") != "last,login,at,utc" {
		t.Errorf("tokens = %v", got)
	}
}

func TestClassifySurrogateKeys(t *testing.T) {
	for _, tt := range []struct {
		c    Column
		rule string
	}{
		{col("shipping_address_id", "bigint"), "keep"},
		{col("email_id", "uuid"), "hash"}, // a uuid leaves the system; hashed, it still joins a hashed key
		{col("national_id", "text"), "drop"},
		{col("device_id", "text"), "drop"},
	} {
		if p := Classify("orders", tt.c); p.Rule != tt.rule {
			t.Errorf("%s: %s (%s), want %s", tt.c.Name, p.Rule, p.Reason, tt.rule)
		}
	}
}

// Health data is kept for analytics, except ICD-10 codes, which are cut to
// their category: the full code (E11.9, type 2 diabetes without
// complications) says more than analytics needs and narrows people down.
func TestClassifyHealthCodes(t *testing.T) {
	for _, c := range []struct {
		col     Column
		rule    string
		because string
	}{
		{Column{Name: "chronic_conditions", Type: schema.MustType("text[]"), Samples: []string{"{E11.9,I10}", "{}", `{"S72.001A"}`}}, "{truncate: 3}", "ICD-10"},
		{Column{Name: "diagnosis", Type: schema.MustType("varchar(10)"), Samples: []string{"E11.9", "J45"}}, "{truncate: 3}", "ICD-10"},
		{Column{Name: "diagnosis", Type: schema.MustType("text"), Samples: []string{"E11.9", "asthma"}}, "keep", "review"},
		{Column{Name: "allergies", Type: schema.MustType("text[]"), Samples: []string{"{penicillin}"}}, "keep", "review"},
		{Column{Name: "conditions", Type: schema.MustType("text[]")}, "keep", "review"},
	} {
		p := Classify("patients", c.col)
		if p.Rule != c.rule || !strings.Contains(p.Reason, c.because) {
			t.Errorf("%s %v: %s (%s), want %s because %s", c.col.Name, c.col.Samples, p.Rule, p.Reason, c.rule, c.because)
		}
	}
}
