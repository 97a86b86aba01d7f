package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"pgveil/internal/pgtest"
)

// truncRules: Pagila's shape. rental.rental_date is cut to the day,
// payment.payment_date kept (it is part of payment's primary key).
const truncRules = `source:
  dsn: ${SOURCE_DSN}
target:
  dsn: ${TARGET_DSN}
secret: ${PGVEIL_SECRET}
tables:
  rental:
    columns: {rental_id: keep, rental_date: {truncate: day}, customer_id: keep}
  payment:
    columns: {payment_id: keep, rental_id: keep, amount: keep, payment_date: keep}
`

// truncSource is the source: 60 rentals, 7h13m apart from 2022-01-01,
// each paid once; payment is partitioned and its foreign key to rental
// is declared on its partition only (as in Pagila), so that only the
// model read from the source (partitions lifted to the root) joins it.
// PAYMENT_DATE is the payment's time (SQL of r.rental_date and g).
const truncSource = `
CREATE TABLE rental (rental_id int PRIMARY KEY, rental_date timestamptz NOT NULL, customer_id int);
INSERT INTO rental SELECT g, timestamptz '2022-01-01 00:00:00+00' + g * interval '7 hours 13 minutes', g % 7 FROM generate_series(1, 60) g;
CREATE TABLE payment (payment_id int, rental_id int, amount numeric(5,2), payment_date timestamptz NOT NULL,
  PRIMARY KEY (payment_date, payment_id)) PARTITION BY RANGE (payment_date);
CREATE TABLE payment_p2022 PARTITION OF payment FOR VALUES FROM ('2022-01-01 00:00:00+00') TO ('2023-01-01 00:00:00+00');
ALTER TABLE payment_p2022 ADD FOREIGN KEY (rental_id) REFERENCES rental (rental_id);
INSERT INTO payment SELECT g, g, 4.99, PAYMENT_DATE FROM rental r JOIN generate_series(1, 60) g ON g = r.rental_id;`

// newTruncSite is a report site whose source holds truncSource with
// payment_date = paymentDate; the replica holds the rentals cut to the
// day, as pgveil leaves them.
func newTruncSite(t *testing.T, paymentDate string) *reportSite {
	t.Helper()
	s := newReportSite(t, truncRules)
	src := clusters.Target.NewDB(t)
	if err := pgtest.Exec(context.Background(), src, strings.Replace(truncSource, "PAYMENT_DATE", paymentDate, 1)); err != nil {
		t.Fatalf("creating the source: %v", err)
	}
	if err := pgtest.Exec(context.Background(), s.dsn, strings.Replace(strings.Replace(truncSource, "PAYMENT_DATE", paymentDate, 1),
		"FROM generate_series(1, 60) g;\n", "FROM generate_series(1, 60) g;\nUPDATE rental SET rental_date = date_trunc('day', rental_date);\n", 1)); err != nil {
		t.Fatalf("creating the replica: %v", err)
	}
	s.env["SOURCE_DSN"] = src
	return s
}

// runTrunc runs the report and checks that no time of the source shows.
func (s *reportSite) runTrunc(args ...string) (int, string, string) {
	s.t.Helper()
	code, out, errOut := s.run(args...)
	if strings.Contains(out+errOut, "2022-") {
		s.t.Errorf("report %v prints a time:\n%s%s", args, out, errOut)
	}
	return code, out, errOut
}

// TestReportTruncationExposed: every payment three minutes after its
// rental gives the rental's time back to the minute: flagged, through
// the foreign key declared on payment's partition, measured in the
// source (the replica holds the rentals cut to the day).
func TestReportTruncationExposed(t *testing.T) {
	s := newTruncSite(t, "r.rental_date + interval '3 minutes'")
	code, out, errOut := s.runTrunc()
	t.Logf("%s%s", out, errOut)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, re := range []string{
		`(?m)^  TRUNCATED +KEPT +JOIN +WINDOW +ROWS +IN WINDOW +BY CHANCE +RESULT$`,
		`(?m)^  public\.rental\.rental_date \(truncate day\) +public\.payment\.payment_date \(keep\) +public\.payment\.rental_id = public\.rental\.rental_id +1h +60 +60 +\d +EXPOSED$`,
		`(?m)^  public\.rental\.rental_date \(truncate day\) is exposed by public\.payment\.payment_date \(keep\) via public\.payment\.rental_id = public\.rental\.rental_id: 60 of 60 joined rows within 1h of the usual offset \(\d by chance\): the kept column gives back what the truncation hides; mask public\.payment\.payment_date as well \(\{truncate: day\}\) or drop it$`,
		`(?m)^report: 0 sets measured, 1 truncated/kept pair checked in the source, 1 exposed$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s", re)
		}
	}

	code, out, _ = s.runTrunc("--fail-under")
	if code != exitProblems || !strings.HasSuffix(out, "1 exposed (--fail-under: exit 1)\n") {
		t.Errorf("--fail-under: exit %d\n%s", code, out)
	}

	code, out, errOut = s.runTrunc("--json", "--fail-under")
	var r privacyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json does not parse: %v\n%s%s", err, out, errOut)
	}
	if code != exitProblems || r.OK || r.TruncationExposed != 1 || r.Exposed != 0 || r.Failed != 0 || len(r.Truncation) != 1 || r.TruncationNote != "" {
		t.Fatalf("--json: exit %d, %+v", code, r)
	}
	got := r.Truncation[0]
	want := truncResult{Truncated: "public.rental.rental_date", Truncate: "day", Kept: "public.payment.payment_date", KeptRule: "keep",
		Join: "public.payment.rental_id = public.rental.rental_id", Window: "1h", Rows: 60, WithinWindow: 60, WithinByChance: got.WithinByChance,
		Verdict: "exposed", Exposed: true}
	if got != want || got.WithinByChance*2 > got.WithinWindow {
		t.Errorf("--json:\n got %+v\nwant %+v", got, want)
	}
	for _, name := range []string{`"truncation_exposures": [`, `"within_window": `, `"truncation_exposed": 1`, `"noise_exposures": []`} {
		if !strings.Contains(out, name) {
			t.Errorf("--json lacks %s", name)
		}
	}

	// A window so narrow that three minutes is wider: a minute's width
	// (a day / 1440) still holds every row, the offset being constant.
	if _, out, _ = s.runTrunc("--truncation-divisor", "1440"); !regexp.MustCompile(`(?m) +1m +60 +60 +\d +EXPOSED$`).MatchString(out) {
		t.Errorf("--truncation-divisor 1440:\n%s", out)
	}

	// Without the source nothing is measured, and the report says why.
	code, out, _ = s.runTrunc("--references", "names", "--fail-under")
	if code != exitOK || strings.Contains(out, "EXPOSED") ||
		!strings.Contains(out, "\ntruncation: truncated columns were not set against the kept columns they meet: that is measured in the source (the replica holds only the truncated values), and --references names opens no connection to the source\n") {
		t.Errorf("--references names: exit %d\n%s", code, out)
	}
}

// TestReportTruncationNotExposed: payments at times unrelated to their
// rentals (spread over months by a hash of the id) give nothing back.
func TestReportTruncationNotExposed(t *testing.T) {
	s := newTruncSite(t, "timestamptz '2022-01-01 00:00:00+00' + (hashtext(g::text)::bigint & 65535) * interval '5 minutes'")
	code, out, errOut := s.runTrunc("--fail-under")
	t.Logf("%s%s", out, errOut)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, re := range []string{
		`(?m)^  public\.rental\.rental_date \(truncate day\) +public\.payment\.payment_date \(keep\) +public\.payment\.rental_id = public\.rental\.rental_id +1h +60 +\d +\d +OK$`,
		`(?m)^report: 0 sets measured, 1 truncated/kept pair checked in the source, 0 exposed$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s", re)
		}
	}
	if strings.Contains(out, "is exposed by") {
		t.Errorf("an unrelated payment_date is flagged")
	}
}
