package report

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/schema"
	"pgveil/transform"
)

// Truncation hides a value's finer part only as long as the replica holds
// nothing that tracks it. rental.rental_date cut to the day
// ({truncate: day}) is given back to the minute by payment.payment_date,
// kept raw (it is part of payment's primary key) and written minutes
// after the rental, one join away (payment.rental_id → rental). The
// pairs are found as the noise's are (a truncated column, each kept
// column its row meets through a join the masking leaves intact), but
// they cannot be measured in the replica: it holds the truncated value,
// not the raw one the kept column may track. They are measured in the
// source, counts only, in a read-only transaction.
//
// The measure: d = kept − raw, per joined row (seconds for times, the
// numbers' difference for numbers). A kept column gives the raw value
// back when d is nearly constant: for most rows it lies within
// width / Divisor of its median (width: the truncation's unit, a month
// counted as 30 days and a year as 365, or its step), so that the kept
// value, less the usual offset, places the raw value Divisor times more
// finely than the truncation does. The median is the offset a reader
// would learn from a handful of known rows (payment three minutes after
// rental; a due date 30 days after). The same count against another
// row's raw value says how often an unrelated column does as well by
// chance. The verdict's thresholds are the noise's (MinRows,
// ExposedPercent, ChanceFactor).

// DefaultDivisor is the Divisor of TruncOptions when none is given: a
// kept column that places the raw value within an hour of a day's
// truncation (2.5 minutes of an hour's, about 15 days of a year's)
// gives back what the truncation hides.
const DefaultDivisor = 24

// TruncPair is a truncated column and a kept column its row meets: in
// the same row, or in a row joined through a key whose two sides the
// rules mask alike.
type TruncPair struct {
	Truncated Ref
	Truncate  transform.Rule // the truncated column's rule: a unit or a step
	Kept      Ref
	KeptRule  string // keep
	// TruncatedOn = KeptOn joins the truncated row to the kept one; both
	// are zero when the kept column is in the same row.
	TruncatedOn, KeptOn Ref
	// KeptReferenced is true when TruncatedOn refers to KeptOn (the kept
	// row is the parent), false when KeptOn refers to TruncatedOn.
	KeptReferenced bool
}

// pair is p as a Pair, to share the noise pairs' joins and catalog.
func (p TruncPair) pair() Pair {
	return Pair{Noised: p.Truncated, Noise: p.Truncate, Kept: p.Kept, KeptRule: p.KeptRule,
		NoisedOn: p.TruncatedOn, KeptOn: p.KeptOn, KeptReferenced: p.KeptReferenced}
}

// SameRow reports whether the kept column is in the truncated column's row.
func (p TruncPair) SameRow() bool { return p.pair().SameRow() }

// Join says how the rows meet: "same row", or the join condition.
func (p TruncPair) Join() string { return p.pair().Join() }

// Unit is the truncation's unit for dates and timestamps (year, month,
// day, hour, minute), "" for a step.
func (p TruncPair) Unit() string { return p.Truncate.Args.String("unit", "") }

// Step is the truncation's step for numbers ({truncate: {step: 1000}},
// or a length on a number column), 0 for a unit.
func (p TruncPair) Step() float64 {
	if p.Truncate.Args.Has("step") {
		return p.Truncate.Args.Number("step", 0)
	}
	return float64(p.Truncate.Args.Int("length", 0))
}

// TruncateLabel is the truncation as the rules write it: "day",
// "step 1000".
func (p TruncPair) TruncateLabel() string {
	if u := p.Unit(); u != "" {
		return u
	}
	return "step " + strconv.FormatFloat(p.Step(), 'f', -1, 64)
}

// unitWidth is the length of a unit of truncation, a month counted as
// 30 days and a year as 365; 0 for an unknown unit.
func unitWidth(unit string) time.Duration {
	switch unit {
	case "minute":
		return time.Minute
	case "hour":
		return time.Hour
	case "day":
		return 24 * time.Hour
	case "month":
		return 30 * 24 * time.Hour
	case "year":
		return 365 * 24 * time.Hour
	}
	return 0
}

// TruncationCandidates lists, from the rules alone, every pair of a
// truncated column and a kept column its row meets, its joins found by
// the naming convention (NamingModel).
func TruncationCandidates(cfg *rules.Config) []TruncPair {
	return TruncationCandidatesFrom(cfg, NamingModel(cfg))
}

// TruncationCandidatesFrom lists every pair of a truncated column (rule
// truncate) and a kept column its row meets, in file order of the
// truncated columns, the joins taken from the reference model m: as
// CandidatesFrom does for noise (the same row, child and parent tables
// joined through keys masked alike with keep or hash; keys never taken
// as the kept side; composite references not followed), without json
// keys. Types are not known here: TruncComparable checks them against
// the source's catalog (a text truncated to its first characters is
// never compared).
func TruncationCandidatesFrom(cfg *rules.Config, m *refs.Model) []TruncPair {
	var out []TruncPair
	for _, p := range meetings(cfg, m, "truncate") {
		out = append(out, TruncPair{Truncated: p.Noised, Truncate: p.Noise, Kept: p.Kept, KeptRule: p.KeptRule,
			TruncatedOn: p.NoisedOn, KeptOn: p.KeptOn, KeptReferenced: p.KeptReferenced})
	}
	return out
}

// TruncComparable reports whether the catalog holds every column of p
// with types that can be compared: a date or timestamp truncated to a
// unit that hides something (not a date to the day) with a kept date or
// timestamp, a number truncated to a step with a kept number; and the
// join's key columns.
func TruncComparable(p TruncPair, cat Catalog) bool {
	tk, ok1 := cat.kind(p.Truncated)
	kk, ok2 := cat.kind(p.Kept)
	if !ok1 || !ok2 || p.Kept.Key != "" {
		return false
	}
	if !p.SameRow() {
		onT, ok3 := cat.kind(p.TruncatedOn)
		onK, ok4 := cat.kind(p.KeptOn)
		if !ok3 || !ok4 || isJSON(onT) || isJSON(onK) {
			return false
		}
	}
	if u := p.Unit(); u != "" {
		return unitWidth(u) > 0 && isTime(tk) && isTime(kk) && (tk != kindDate || unitWidth(u) > 24*time.Hour)
	}
	return p.Step() > 0 && isNumber(tk) && isNumber(kk)
}

// TruncOptions set how MeasureTruncations runs.
type TruncOptions struct {
	// Divisor: a kept column whose offset to the raw value stays within
	// width / Divisor of its median gives the raw value back. 0 means
	// DefaultDivisor.
	Divisor int
	// StatementTimeout bounds each query (rounded up to a millisecond);
	// 0 lets queries run as long as they take.
	StatementTimeout time.Duration
}

func (o TruncOptions) divisor() int {
	if o.Divisor <= 0 {
		return DefaultDivisor
	}
	return o.Divisor
}

// TruncExposure is what the source says of one pair. It holds counts
// only.
type TruncExposure struct {
	Pair TruncPair
	// Divisor is the one measured with.
	Divisor int
	// Rows counts the joined rows where both sides hold a value, Within
	// those whose offset kept − raw lies within width / Divisor of the
	// offsets' median, and Chance the same with another joined row's raw
	// value (the rows taken in an order given by a hash of their
	// physical positions): what an unrelated column would reach.
	Rows, Within, Chance int64
	// Err is why the pair could not be measured (a *QueryError), nil
	// when it was.
	Err error
}

// Verdict judges the counts with the noise's thresholds: Exposed when
// at least MinRows rows were joined, at least ExposedPercent of them
// are within the window, and at least ChanceFactor times as many as by
// chance.
func (e TruncExposure) Verdict() Verdict {
	return Exposure{Rows: e.Rows, Within: e.Within, Chance: e.Chance, Err: e.Err}.Verdict()
}

// Window is the width the offsets must stay within: the truncation's
// width divided by the divisor, as the rules write durations ("1h",
// "2.5m" is written 150s) or numbers.
func (e TruncExposure) Window() string {
	d := e.Divisor
	if d <= 0 {
		d = DefaultDivisor
	}
	if u := e.Pair.Unit(); u != "" {
		return shortDuration(unitWidth(u) / time.Duration(d))
	}
	return strconv.FormatFloat(e.Pair.Step()/float64(d), 'g', 6, 64)
}

// MeasureTruncations measures every pair whose columns the source's
// catalog holds with comparable types (see TruncComparable; the others
// are left out), in one read-only REPEATABLE READ transaction on db, the
// source: only counts leave the server. Each query is bounded by the
// statement timeout and runs in a savepoint, so that a pair the server
// cannot measure gets its Err and the others are still measured; the
// returned error is for what stops the whole measure, with what was
// measured until then.
func MeasureTruncations(ctx context.Context, db TxStarter, pairs []TruncPair, opts TruncOptions) ([]TruncExposure, error) {
	if opts.StatementTimeout < 0 {
		return nil, fmt.Errorf("the statement timeout cannot be negative (%s)", opts.StatementTimeout)
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("opening a read-only transaction on the source: %w", sanitize(err, ""))
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true)`, timeoutMillis(opts.StatementTimeout)); err != nil {
		return nil, fmt.Errorf("setting the statement timeout on the source: %w", sanitize(err, ""))
	}
	ps := make([]Pair, len(pairs))
	for i, p := range pairs {
		ps[i] = p.pair()
	}
	cat, err := ReadCatalog(ctx, tx, ps)
	if err != nil {
		return nil, fmt.Errorf("on the source: %w", err)
	}
	var out []TruncExposure
	for _, p := range pairs {
		if !TruncComparable(p, cat) {
			continue
		}
		e := TruncExposure{Pair: p, Divisor: opts.divisor()}
		qerr, err := inSavepoint(ctx, tx, "source "+p.Truncated.String(), func(q pgx.Tx) error {
			var err error
			e, err = MeasureTruncation(ctx, q, p, cat, opts.divisor())
			return err
		})
		if err != nil {
			return out, err
		}
		e.Err = qerr
		out = append(out, e)
	}
	return out, nil
}

// MeasureTruncation runs the query of p on q (the source) and returns its
// counts. A server error is a *QueryError naming the truncated column.
func MeasureTruncation(ctx context.Context, q Querier, p TruncPair, cat Catalog, divisor int) (TruncExposure, error) {
	if divisor <= 0 {
		divisor = DefaultDivisor
	}
	e := TruncExposure{Pair: p, Divisor: divisor}
	sql, args := truncSQL(p, cat, divisor)
	if err := q.QueryRow(ctx, sql, args...).Scan(&e.Rows, &e.Within, &e.Chance); err != nil {
		return e, sanitize(err, "source "+p.Truncated.String())
	}
	return e, nil
}

// truncSQL is the query that counts p's joined rows, those whose offset
// kept − raw lies within width / divisor of the median offset, and those
// whose offset to another row's raw value does. Times are compared as
// timestamptz, in seconds; numbers as numeric. The test is
// |d − median| × divisor ≤ width, exact in numeric. Only the three
// counts leave the server.
func truncSQL(p TruncPair, cat Catalog, divisor int) (string, []any) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	from, position, kAlias := joinedRows(p.pair(), cat, arg)
	kv := kAlias + "." + schema.QuoteIdent(p.Kept.Column)
	nv := "n." + schema.QuoteIdent(p.Truncated.Column)
	var width string
	var diff func(k, n string) string
	finite := ""
	if u := p.Unit(); u != "" {
		kv, nv = kv+"::timestamptz", nv+"::timestamptz"
		// infinity has no offset (and subtracting it fails before
		// PostgreSQL 17): such rows are not counted.
		finite = " AND isfinite(kv) AND isfinite(nv)"
		width = arg(strconv.FormatInt(int64(unitWidth(u)/time.Second), 10))
		diff = func(k, n string) string { return "extract(epoch FROM " + k + " - " + n + ")" }
	} else {
		kv, nv = kv+"::numeric", nv+"::numeric"
		width = arg(strconv.FormatFloat(p.Step(), 'f', -1, 64))
		diff = func(k, n string) string { return "(" + k + " - " + n + ")" }
	}
	div := arg(strconv.Itoa(divisor))
	within := func(d string) string {
		return "abs(" + d + " - o.med) * " + div + "::numeric <= " + width + "::numeric"
	}
	return `WITH x AS (SELECT kv, nv, lead(nv) OVER (ORDER BY h, kv, nv) AS mv` +
		` FROM (SELECT ` + kv + ` AS kv, ` + nv + ` AS nv, hashtext(` + position + `) AS h FROM ` + from + `) s` +
		` WHERE kv IS NOT NULL AND nv IS NOT NULL` + finite + `),` +
		` d AS (SELECT ` + diff("kv", "nv") + ` AS dn, ` + diff("kv", "mv") + ` AS dm FROM x),` +
		` o AS (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY dn) AS med FROM d)` +
		` SELECT count(*), count(*) FILTER (WHERE ` + within("dn") + `), count(*) FILTER (WHERE ` + within("dm") + `) FROM d, o`, args
}
