package report

import (
	"context"
	"fmt"
	"pgveil/schema"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// The verdict on a pair. When the kept column holds the raw values the
// noise hides, every joined row lies within the noise (the noise moves a
// value by at most ratio × itself, or by at most the duration), save the
// rows where the kept column is not a copy: a refund beside its order's
// charge, a later correction (1160 of 1236 payments of the demo equal
// their order's raw total). An unrelated column lies within the noise
// only as often as a random value does.
const (
	// MinRows is the fewest joined rows the report judges from: with
	// fewer, a majority can be luck.
	MinRows = 20
	// ExposedPercent: at least this share of the joined rows within the
	// noise is a clear majority, with room for a fifth of rows that are
	// not copies; unrelated columns of a narrow noise stay far below.
	ExposedPercent = 80
	// ChanceFactor: the rows within the noise must be at least this many
	// times the rows within it by chance (each kept value set against
	// another row's noised value). Otherwise the noise is so wide that
	// any value of the column falls within it, and being within says
	// nothing of the kept column: the report cannot tell.
	ChanceFactor = 2
)

// Verdict is what the report concludes of a pair.
type Verdict string

// The verdicts, as the JSON output writes them.
const (
	Exposed   Verdict = "exposed"   // the kept column very likely holds the values the noise hides
	NotShown  Verdict = "ok"        // no clear majority within the noise
	FewRows   Verdict = "few_rows"  // fewer than MinRows joined rows: cannot tell
	Undecided Verdict = "undecided" // within the noise, but as often by chance: cannot tell
	Failed    Verdict = "error"     // not measured: Err says why
)

// Exposure is what the replica says of one pair. It holds counts only.
type Exposure struct {
	Pair Pair
	// Rows counts the joined rows where both sides hold a value (for a
	// json key, a number or a string of digits), Within those whose kept
	// value lies within the noise of the noised one, and Chance the rows
	// whose kept value lies within the noise of another joined row's
	// noised value (the rows taken in an order given by a hash of their
	// physical positions): what an unrelated column would reach.
	Rows, Within, Chance int64
	// Err is why the pair could not be measured (a *QueryError), nil
	// when it was.
	Err error
}

// Verdict judges the counts: Exposed when at least MinRows rows were
// joined, at least ExposedPercent of them are within the noise, and at
// least ChanceFactor times as many as by chance.
func (e Exposure) Verdict() Verdict {
	switch {
	case e.Err != nil:
		return Failed
	case e.Rows < MinRows:
		return FewRows
	case e.Within*100 < e.Rows*ExposedPercent:
		return NotShown
	case e.Within < ChanceFactor*e.Chance:
		return Undecided
	}
	return Exposed
}

// Queryer runs a query that returns rows: a pgx.Tx or a *pgx.Conn.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ReadCatalog reads the types of the columns of the tables pairs name
// from the replica's catalog (names and types only). A table the replica
// lacks is left out: its pairs are not comparable.
func ReadCatalog(ctx context.Context, q Queryer, pairs []Pair) (Catalog, error) {
	schemas, names := tablesOf(pairs)
	rows, err := q.Query(ctx, `SELECT n.nspname, c.relname, a.attname, coalesce(bt.typname, t.typname)::text
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("reading the replica's column types: %w", sanitize(err, ""))
	}
	cat := Catalog{}
	for rows.Next() {
		var r Ref
		var typ string
		if err := rows.Scan(&r.Schema, &r.Table, &r.Column, &typ); err != nil {
			return nil, fmt.Errorf("reading the replica's column types: %w", sanitize(err, ""))
		}
		cat[r] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the replica's column types: %w", sanitize(err, ""))
	}
	return cat, nil
}

// MeasurePair runs the query of p on q and returns its counts. A server
// error is a *QueryError naming the noised column.
func MeasurePair(ctx context.Context, q Querier, p Pair, cat Catalog) (Exposure, error) {
	e := Exposure{Pair: p}
	sql, args := pairSQL(p, cat)
	if err := q.QueryRow(ctx, sql, args...).Scan(&e.Rows, &e.Within, &e.Chance); err != nil {
		return e, sanitize(err, p.Noised.String())
	}
	return e, nil
}

// pairSQL is the query that counts p's joined rows, those within the
// noise, and those within it by chance. Values never leave the server:
// only the three counts do. Every value read from a json document is
// checked before its cast, so that no document can make the query fail
// (and the error quote it).
//
// The bound: a ratio noise moves a number x to x(1 + ratio·u), u in
// [-1, 1], rounded to the column's scale (integers to units), so a kept
// raw value k lies within ratio·|k| of the noised one, plus half a unit
// of its last digit (read from the noised value's scale), plus a
// millionth of k for floats. A duration noise moves a timestamp by at
// most the duration (a date by whole days): the bound is the duration,
// plus a day when either side is a date (a kept timestamp against a
// noised date).
func pairSQL(p Pair, cat Catalog) (string, []any) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	nk, _ := cat.kind(p.Noised)
	kk, _ := cat.kind(p.Kept)
	from, position, kAlias := joinedRows(p, cat, arg)
	var within func(k, n string) string
	if ratio := p.Ratio(); ratio > 0 {
		nv := "n." + schema.QuoteIdent(p.Noised.Column) + "::numeric"
		kvExpr := kAlias + "." + schema.QuoteIdent(p.Kept.Column) + "::numeric"
		if p.Kept.Key != "" {
			kvExpr = jsonNumber(kAlias+"."+schema.QuoteIdent(p.Kept.Column), kk, arg(p.Kept.Key))
		}
		r := arg(strconv.FormatFloat(ratio, 'f', -1, 64))
		within = func(k, n string) string {
			b := r + "::numeric * abs(" + k + ")"
			switch nk {
			case kindInt:
				b += " + 0.5"
			case kindNumeric:
				b += " + 0.5 * 10::numeric ^ (-scale(" + n + "))"
			}
			if nk == kindFloat || kk == kindFloat {
				b += " + 0.000001 * abs(" + k + ")"
			}
			return "abs(" + k + " - " + n + ") <= " + b
		}
		return countSQL(kvExpr, nv, position, from, within), args
	}
	bound := p.Duration()
	if nk == kindDate || kk == kindDate {
		bound += 24 * time.Hour
	}
	seconds := arg(strconv.FormatFloat(bound.Seconds()+1e-6, 'f', -1, 64))
	within = func(k, n string) string {
		return "abs(extract(epoch FROM " + k + " - " + n + ")) <= " + seconds + "::numeric"
	}
	nvExpr := "n." + schema.QuoteIdent(p.Noised.Column) + "::timestamptz"
	kvExpr := kAlias + "." + schema.QuoteIdent(p.Kept.Column) + "::timestamptz"
	return countSQL(kvExpr, nvExpr, position, from, within), args
}

// joinedRows is the FROM of a pair's measure: the masked (n) column's
// table, joined to the kept (k) column's unless they share a row; the
// expression that tells joined rows apart (position); and the alias the
// kept column is read under.
func joinedRows(p Pair, cat Catalog, arg func(any) string) (from, position, kAlias string) {
	from = schema.Qualified(p.Noised.Schema, p.Noised.Table) + " AS n"
	if p.SameRow() {
		return from, "n.ctid::text", "n"
	}
	from += " JOIN " + schema.Qualified(p.Kept.Schema, p.Kept.Table) + " AS k ON " + joinSQL(p, cat, arg)
	return from, "n.ctid::text || k.ctid::text", "k"
}

// countSQL counts the rows of from where kv and nv both hold a value,
// those where within(kv, nv), and those where within(kv, mv), mv being nv
// of the next row in the order of a hash of position.
func countSQL(kv, nv, position, from string, within func(k, n string) string) string {
	return `SELECT count(*), count(*) FILTER (WHERE ` + within("kv", "nv") + `), count(*) FILTER (WHERE ` + within("kv", "mv") + `)` +
		` FROM (SELECT kv, nv, lead(nv) OVER (ORDER BY h, kv, nv) AS mv` +
		` FROM (SELECT ` + kv + ` AS kv, ` + nv + ` AS nv, hashtext(` + position + `) AS h FROM ` + from + `) x` +
		` WHERE kv IS NOT NULL AND nv IS NOT NULL) y`
}

// joinSQL is p's join condition: the kept row's key equals the noised
// row's. A key read from a json document is compared as text with the
// noised row's key; key columns of different types too.
func joinSQL(p Pair, cat Catalog, arg func(any) string) string {
	n := "n." + schema.QuoteIdent(p.NoisedOn.Column)
	k := "k." + schema.QuoteIdent(p.KeptOn.Column)
	if p.KeptOn.Key != "" {
		return "(" + k + " ->> " + arg(p.KeptOn.Key) + "::text) = " + n + "::text"
	}
	if cat[p.NoisedOn.column()] != cat[p.KeptOn.column()] {
		return k + "::text = " + n + "::text"
	}
	return k + " = " + n
}

// jsonNumber reads key of the json or jsonb column col as a number: a
// json number, or a string of at most 30 digits before and after the
// point; anything else is NULL. The check comes before the cast, so no
// document makes it fail: a jsonb number is a numeric already, a json
// number is text and is checked like a string (with an exponent of at
// most three digits, within numeric's range).
func jsonNumber(col string, kind int, key string) string {
	v := "(" + col + " ->> " + key + "::text)"
	const digits = `'^-?[0-9]{1,30}(\.[0-9]{1,30})?$'`
	if kind == kindJSON {
		return "CASE json_typeof(" + col + " -> " + key + "::text)" +
			" WHEN 'number' THEN CASE WHEN " + v + ` ~ '^-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?$' THEN ` + v + "::numeric END" +
			" WHEN 'string' THEN CASE WHEN " + v + " ~ " + digits + " THEN " + v + "::numeric END END"
	}
	return "CASE jsonb_typeof(" + col + " -> " + key + "::text)" +
		" WHEN 'number' THEN " + v + "::numeric" +
		" WHEN 'string' THEN CASE WHEN " + v + " ~ " + digits + " THEN " + v + "::numeric END END"
}
