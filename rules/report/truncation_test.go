package report

import (
	"slices"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
	"pgveil/rules/refs"
)

// truncRules: Pagila's shape. rental.rental_date is cut to the day while
// payment.payment_date, written minutes later, is kept; payment refers
// to rental through rental_id (a foreign key the model holds, its names
// unconventional for the naming convention: rental's key is rental_id,
// not id). customer.birth_date is cut to the year; member_card keeps a
// copy, joined through holder, hashed like customer_id. staff_ref's
// hashed key does not join customer's kept one.
const truncRules = `source: {dsn: "postgres://u@prod/app"}
target: {dsn: "postgres://u@analytics/copy"}
secret: ` + pgtest.Secret + `
tables:
  rental:
    columns:
      rental_id: keep
      rental_date: {truncate: day}
      return_date: keep
      customer_id: hash
      status: keep
  payment:
    columns:
      payment_id: keep
      rental_id: keep
      payment_date: keep
      amount: {truncate: {step: 5}}
      fee: keep
  customer:
    columns:
      customer_id: hash
      birth_date: {truncate: year}
      zip: {truncate: 3}
      created_at: {noise: 1d}
  member_card:
    columns:
      card_id: keep
      holder: hash
      holder_birth: keep
  staff_ref:
    columns:
      id: keep
      customer_id: keep
      hired_on: keep
`

func truncLabel(p TruncPair) string {
	return p.Truncated.String() + " (" + p.TruncateLabel() + ") | " + p.Kept.String() + " (" + p.KeptRule + ") | " + p.Join()
}

func truncModel() *refs.Model {
	col := func(table, name string) refs.Column {
		return refs.Column{Table: refs.Table("public", table), Name: name}
	}
	m := &refs.Model{}
	m.Add(refs.Ref{From: col("payment", "rental_id"), To: col("rental", "rental_id"), Origin: refs.Partition, Constraint: "payment_p2022_01_rental_id_fkey"})
	m.Add(refs.Ref{From: col("rental", "customer_id"), To: col("customer", "customer_id"), Origin: refs.Declared, Constraint: "rental_customer_id_fkey"})
	m.Add(refs.Ref{From: col("member_card", "holder"), To: col("customer", "customer_id"), Origin: refs.Declared, Constraint: "member_card_holder_fkey"})
	m.Add(refs.Ref{From: col("staff_ref", "customer_id"), To: col("customer", "customer_id"), Origin: refs.Declared, Constraint: "staff_ref_customer_id_fkey"})
	return m
}

func TestTruncationCandidatesFrom(t *testing.T) {
	cfg := parseRules(t, truncRules)
	var got []string
	for _, p := range TruncationCandidatesFrom(cfg, truncModel()) {
		got = append(got, truncLabel(p))
	}
	want := []string{
		// The same row: every kept column but keys.
		"public.rental.rental_date (day) | public.rental.return_date (keep) | same row",
		"public.rental.rental_date (day) | public.rental.status (keep) | same row",
		// The child through the partitions' foreign key, both sides kept.
		"public.rental.rental_date (day) | public.payment.payment_date (keep) | public.payment.rental_id = public.rental.rental_id",
		"public.rental.rental_date (day) | public.payment.fee (keep) | public.payment.rental_id = public.rental.rental_id",
		// The parent, customer, keeps nothing raw.
		"public.payment.amount (step 5) | public.payment.payment_date (keep) | same row",
		"public.payment.amount (step 5) | public.payment.fee (keep) | same row",
		"public.payment.amount (step 5) | public.rental.return_date (keep) | public.payment.rental_id = public.rental.rental_id",
		"public.payment.amount (step 5) | public.rental.status (keep) | public.payment.rental_id = public.rental.rental_id",
		// A child joined through a hashed key; staff_ref's kept key does
		// not join customer's hashed one.
		"public.customer.birth_date (year) | public.rental.return_date (keep) | public.rental.customer_id = public.customer.customer_id",
		"public.customer.birth_date (year) | public.rental.status (keep) | public.rental.customer_id = public.customer.customer_id",
		"public.customer.birth_date (year) | public.member_card.holder_birth (keep) | public.member_card.holder = public.customer.customer_id",
		// A length reads as a step: only a number column is compared.
		"public.customer.zip (step 3) | public.rental.return_date (keep) | public.rental.customer_id = public.customer.customer_id",
		"public.customer.zip (step 3) | public.rental.status (keep) | public.rental.customer_id = public.customer.customer_id",
		"public.customer.zip (step 3) | public.member_card.holder_birth (keep) | public.member_card.holder = public.customer.customer_id",
	}
	if !slices.Equal(got, want) {
		t.Errorf("TruncationCandidatesFrom:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	// The noise's candidates are not changed by the truncation's: the
	// noised created_at meets what customer's children keep.
	for _, p := range CandidatesFrom(cfg, truncModel()) {
		if p.Noise.Name != "noise" {
			t.Errorf("a noise pair of rule %s: %s", p.Noise.Name, pairLabel(p))
		}
	}
	// By names alone, payment.rental_id does not name rental.id (rental
	// has none): only the same rows' pairs.
	for _, p := range TruncationCandidates(cfg) {
		if !p.SameRow() {
			t.Errorf("by names: %s", truncLabel(p))
		}
	}
}

func TestTruncComparable(t *testing.T) {
	cfg := parseRules(t, truncRules)
	cat := Catalog{}
	for _, c := range []struct{ table, column, typ string }{
		{"rental", "rental_id", "int4"}, {"rental", "rental_date", "timestamptz"}, {"rental", "return_date", "timestamp"},
		{"rental", "customer_id", "int4"}, {"rental", "status", "text"},
		{"payment", "payment_id", "int4"}, {"payment", "rental_id", "int4"}, {"payment", "payment_date", "timestamptz"},
		{"payment", "amount", "numeric"}, {"payment", "fee", "numeric"},
		{"customer", "customer_id", "int4"}, {"customer", "birth_date", "date"}, {"customer", "zip", "text"},
		{"member_card", "card_id", "int4"}, {"member_card", "holder", "int4"}, {"member_card", "holder_birth", "date"},
	} {
		cat[Ref{Schema: "public", Table: c.table, Column: c.column}] = c.typ
	}
	var got []string
	for _, p := range TruncationCandidatesFrom(cfg, truncModel()) {
		if TruncComparable(p, cat) {
			got = append(got, truncLabel(p))
		}
	}
	want := []string{
		"public.rental.rental_date (day) | public.rental.return_date (keep) | same row",
		"public.rental.rental_date (day) | public.payment.payment_date (keep) | public.payment.rental_id = public.rental.rental_id",
		"public.payment.amount (step 5) | public.payment.fee (keep) | same row",
		"public.customer.birth_date (year) | public.rental.return_date (keep) | public.rental.customer_id = public.customer.customer_id",
		"public.customer.birth_date (year) | public.member_card.holder_birth (keep) | public.member_card.holder = public.customer.customer_id",
	}
	if !slices.Equal(got, want) {
		t.Errorf("TruncComparable:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	// A date cut to the day hides nothing: not compared.
	cat[Ref{Schema: "public", Table: "rental", Column: "rental_date"}] = "date"
	for _, p := range TruncationCandidatesFrom(cfg, truncModel()) {
		if p.Truncated.Column == "rental_date" && TruncComparable(p, cat) {
			t.Errorf("a date cut to the day is compared: %s", truncLabel(p))
		}
	}
}

func TestTruncSQL(t *testing.T) {
	cfg := parseRules(t, truncRules)
	cat := Catalog{
		{Schema: "public", Table: "rental", Column: "rental_id"}:     "int4",
		{Schema: "public", Table: "rental", Column: "rental_date"}:   "timestamptz",
		{Schema: "public", Table: "payment", Column: "rental_id"}:    "int4",
		{Schema: "public", Table: "payment", Column: "payment_date"}: "timestamptz",
		{Schema: "public", Table: "payment", Column: "amount"}:       "numeric",
		{Schema: "public", Table: "payment", Column: "fee"}:          "numeric",
	}
	var rental, amount TruncPair
	for _, p := range TruncationCandidatesFrom(cfg, truncModel()) {
		switch truncLabel(p) {
		case "public.rental.rental_date (day) | public.payment.payment_date (keep) | public.payment.rental_id = public.rental.rental_id":
			rental = p
		case "public.payment.amount (step 5) | public.payment.fee (keep) | same row":
			amount = p
		}
	}
	sql, args := truncSQL(rental, cat, 24)
	for _, want := range []string{
		`FROM public.rental AS n JOIN public.payment AS k ON k.rental_id = n.rental_id`,
		`k.payment_date::timestamptz AS kv, n.rental_date::timestamptz AS nv, hashtext(n.ctid::text || k.ctid::text) AS h`,
		`WHERE kv IS NOT NULL AND nv IS NOT NULL AND isfinite(kv) AND isfinite(nv)`,
		`extract(epoch FROM kv - nv) AS dn, extract(epoch FROM kv - mv) AS dm`,
		`percentile_disc(0.5) WITHIN GROUP (ORDER BY dn) AS med`,
		`count(*) FILTER (WHERE abs(dn - o.med) * $2::numeric <= $1::numeric)`,
		`count(*) FILTER (WHERE abs(dm - o.med) * $2::numeric <= $1::numeric)`,
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("rental_date: the SQL lacks %s:\n%s", want, sql)
		}
	}
	if !slices.Equal(args, []any{"86400", "24"}) {
		t.Errorf("rental_date: args %v", args)
	}
	if w := (TruncExposure{Pair: rental, Divisor: 24}).Window(); w != "1h" {
		t.Errorf("window of a day / 24: %s", w)
	}
	if w := (TruncExposure{Pair: rental, Divisor: 48}).Window(); w != "30m" {
		t.Errorf("window of a day / 48: %s", w)
	}

	sql, args = truncSQL(amount, cat, 10)
	for _, want := range []string{
		`n.fee::numeric AS kv, n.amount::numeric AS nv, hashtext(n.ctid::text) AS h FROM public.payment AS n) s WHERE kv IS NOT NULL AND nv IS NOT NULL)`,
		`(kv - nv) AS dn, (kv - mv) AS dm`,
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("amount: the SQL lacks %s:\n%s", want, sql)
		}
	}
	if !slices.Equal(args, []any{"5", "10"}) {
		t.Errorf("amount: args %v", args)
	}
	if w := (TruncExposure{Pair: amount, Divisor: 10}).Window(); w != "0.5" {
		t.Errorf("window of a step 5 / 10: %s", w)
	}
}

func TestTruncExposureVerdict(t *testing.T) {
	for _, tc := range []struct {
		e    TruncExposure
		want Verdict
	}{
		{TruncExposure{Rows: 100, Within: 100, Chance: 3}, Exposed},
		{TruncExposure{Rows: 100, Within: 10, Chance: 3}, NotShown},
		{TruncExposure{Rows: 100, Within: 90, Chance: 60}, Undecided},
		{TruncExposure{Rows: 5, Within: 5}, FewRows},
	} {
		if got := tc.e.Verdict(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.e, got, tc.want)
		}
	}
}
