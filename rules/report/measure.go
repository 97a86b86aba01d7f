package report

import (
	"context"
	"errors"
	"fmt"
	"pgveil/schema"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Options set how Measure runs.
type Options struct {
	// K is the threshold, at least 1: groups of fewer rows are counted,
	// and a set whose k is below it is flagged.
	K int
	// StatementTimeout bounds each query (rounded up to a millisecond);
	// 0 lets queries run as long as they take.
	StatementTimeout time.Duration
}

// Measurement is the k-anonymity of one set in the replica. It holds
// counts only.
type Measurement struct {
	Set    Set
	Rows   int64 // rows of the table
	Groups int64 // distinct combinations of the set's values, NULL being one value
	// K is the size of the smallest group; 0 when the table is empty,
	// which has no k.
	K int64
	// SmallGroups counts the groups of fewer than K rows of the
	// threshold, RowsInSmallGroups the rows in them.
	SmallGroups       int64
	RowsInSmallGroups int64
	// Err is why the set could not be measured (a *QueryError, or
	// another error naming the table), nil when it was.
	Err error
}

// Empty reports whether the set was measured on an empty table: there is
// no k to report.
func (m Measurement) Empty() bool { return m.Err == nil && m.Rows == 0 }

// Below reports whether the set was measured and its k is below
// threshold.
func (m Measurement) Below(threshold int) bool {
	return m.Err == nil && m.Rows > 0 && m.K < int64(threshold)
}

// TxStarter opens transactions: a *pgx.Conn or a pool.
type TxStarter interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Querier runs a query that returns one row: a pgx.Tx or a *pgx.Conn.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Result is what Measure found: a measurement per set, then an exposure
// per pair that the replica's catalog lets compare.
type Result struct {
	Sets      []Measurement
	Exposures []Exposure
}

// Measure measures every set, in order, then every pair whose columns the
// replica holds with comparable types (see Comparable; the others are
// left out), in one read-only REPEATABLE READ transaction (everything is
// measured on the same snapshot of the replica), each query bounded by
// the statement timeout. A set or pair the server cannot measure (its
// table or a column is missing, the query timed out) gets its Err and the
// others are still measured, each in a savepoint; the returned error is
// for what stops the whole report (the connection, the context), with
// what was measured until then.
func Measure(ctx context.Context, db TxStarter, sets []Set, pairs []Pair, opts Options) (Result, error) {
	var res Result
	if opts.K < 1 {
		return res, fmt.Errorf("the threshold k must be at least 1, not %d", opts.K)
	}
	if opts.StatementTimeout < 0 {
		return res, fmt.Errorf("the statement timeout cannot be negative (%s)", opts.StatementTimeout)
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return res, fmt.Errorf("opening a read-only transaction on the target: %w", sanitize(err, ""))
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true)`, timeoutMillis(opts.StatementTimeout)); err != nil {
		return res, fmt.Errorf("setting the statement timeout: %w", sanitize(err, ""))
	}
	res.Sets = make([]Measurement, 0, len(sets))
	for _, s := range sets {
		m := Measurement{Set: s}
		qerr, err := inSavepoint(ctx, tx, s.QualifiedTable(), func(q pgx.Tx) error {
			var err error
			m, err = MeasureSet(ctx, q, s, opts.K)
			return err
		})
		if err != nil {
			return res, err
		}
		m.Err = qerr
		res.Sets = append(res.Sets, m)
	}
	if len(pairs) == 0 {
		return res, nil
	}
	cat, err := ReadCatalog(ctx, tx, pairs)
	if err != nil {
		return res, err
	}
	for _, p := range pairs {
		if !Comparable(p, cat) {
			continue
		}
		e := Exposure{Pair: p}
		qerr, err := inSavepoint(ctx, tx, p.Noised.String(), func(q pgx.Tx) error {
			var err error
			e, err = MeasurePair(ctx, q, p, cat)
			return err
		})
		if err != nil {
			return res, err
		}
		e.Err = qerr
		res.Exposures = append(res.Exposures, e)
	}
	return res, nil
}

// inSavepoint runs f in a savepoint of tx, so that a server error in f
// leaves tx usable for the next query: that error, a *QueryError, is
// returned as qerr. err is for what ends the transaction; what is about
// names the savepoint's errors.
func inSavepoint(ctx context.Context, tx pgx.Tx, what string, f func(pgx.Tx) error) (qerr, err error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: opening a savepoint: %w", what, sanitize(err, ""))
	}
	ferr := f(sp)
	if ferr == nil {
		if err := sp.Commit(ctx); err != nil {
			return nil, fmt.Errorf("%s: releasing the savepoint: %w", what, sanitize(err, ""))
		}
		return nil, nil
	}
	var qe *QueryError
	if ctx.Err() != nil || !errors.As(ferr, &qe) {
		return nil, ferr
	}
	if rerr := sp.Rollback(ctx); rerr != nil {
		return nil, fmt.Errorf("%s: rolling back to the savepoint: %w", what, sanitize(rerr, ""))
	}
	return ferr, nil
}

// MeasureSet runs the GROUP BY query of s on q and returns its counts,
// with the groups of fewer than k rows counted. A server error is a
// *QueryError.
func MeasureSet(ctx context.Context, q Querier, s Set, k int) (Measurement, error) {
	m := Measurement{Set: s}
	err := q.QueryRow(ctx, groupSQL(s), int64(k)).Scan(&m.Rows, &m.Groups, &m.K, &m.SmallGroups, &m.RowsInSmallGroups)
	if err != nil {
		return m, sanitize(err, s.QualifiedTable())
	}
	return m, nil
}

// groupSQL counts the rows of each combination of the set's values (with
// the tenant's, for a set measured within tenants), then
// sums up those counts: rows, groups, the smallest group, and the groups
// (and their rows) under the threshold $1. Values are grouped by their
// text form, so that columns of types without equality (json, point)
// can be measured too; only the counts leave the server.
func groupSQL(s Set) string {
	if s.Across() {
		return joinedGroupSQL(s)
	}
	var cols []string
	if s.Within != "" {
		cols = append(cols, schema.QuoteIdent(s.Within)+"::text")
	}
	for _, c := range s.Columns {
		cols = append(cols, schema.QuoteIdent(c)+"::text")
	}
	return countGroupsSQL(schema.Qualified(s.Schema, s.Table), cols)
}

// joinedGroupSQL is groupSQL for a set across references: the table (t0)
// LEFT JOINed to each step's table (t1, t2, ...) on its key, so that
// every row of the table counts once (a key joins at most one row) and a
// row that references nothing groups with NULL values.
func joinedGroupSQL(s Set) string {
	alias := func(step int) string { return "t" + strconv.Itoa(step+1) }
	from := schema.Qualified(s.Schema, s.Table) + " AS t0"
	for i, st := range s.Steps {
		var on []string
		for j := range st.To {
			on = append(on, alias(i)+"."+schema.QuoteIdent(st.To[j])+" = "+alias(st.Parent)+"."+schema.QuoteIdent(st.From[j]))
		}
		from += " LEFT JOIN " + schema.Qualified(st.Schema, st.Table) + " AS " + alias(i) + " ON " + strings.Join(on, " AND ")
	}
	var cols []string
	if s.Within != "" {
		cols = append(cols, "t0."+schema.QuoteIdent(s.Within)+"::text")
	}
	for _, c := range s.Columns {
		cols = append(cols, "t0."+schema.QuoteIdent(c)+"::text")
	}
	for _, j := range s.Joined {
		cols = append(cols, alias(j.Step)+"."+schema.QuoteIdent(j.Column)+"::text")
	}
	return countGroupsSQL(from, cols)
}

// countGroupsSQL is the counting query over from grouped by cols.
func countGroupsSQL(from string, cols []string) string {
	return `SELECT coalesce(sum(n), 0)::bigint, count(*), coalesce(min(n), 0),` +
		` count(*) FILTER (WHERE n < $1), coalesce(sum(n) FILTER (WHERE n < $1), 0)::bigint` +
		` FROM (SELECT count(*) AS n FROM ` + from +
		` GROUP BY ` + strings.Join(cols, ", ") + `) g`
}

// timeoutMillis is d as statement_timeout takes it: milliseconds, rounded
// up so that a positive timeout does not become 0 (no timeout).
func timeoutMillis(d time.Duration) string {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return strconv.FormatInt(int64(ms), 10)
}

// QueryError is a server error met while measuring a set. It holds the
// table, the SQLSTATE and what the condition means for the report; the
// server's own message only for errors about names and privileges
// (SQLSTATE classes 42 and 3F), since others, data exceptions above all,
// may quote a value.
type QueryError struct {
	Table   string // the set's table; "" for errors outside a set's query
	Code    string // SQLSTATE
	Message string // the server's message, when its class never quotes a value
}

// SQLState is the error's SQLSTATE, as pgconn.PgError has it.
func (e *QueryError) SQLState() string { return e.Code }

// Error says what failed, where, and the SQLSTATE.
func (e *QueryError) Error() string {
	var b strings.Builder
	if e.Table != "" {
		b.WriteString(e.Table + ": ")
	}
	b.WriteString(condition(e.Code))
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	b.WriteString(" (SQLSTATE " + e.Code + ")")
	return b.String()
}

// sanitize replaces a server error by a *QueryError about table; other
// errors (network, context) hold no value and are wrapped with the table.
func sanitize(err error, table string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		if table == "" {
			return err
		}
		return fmt.Errorf("%s: %w", table, err)
	}
	qe := &QueryError{Table: table, Code: pgErr.Code}
	if strings.HasPrefix(pgErr.Code, "42") || strings.HasPrefix(pgErr.Code, "3F") {
		qe.Message = pgErr.Message
	}
	return qe
}

// condition says what an SQLSTATE means for the report.
func condition(code string) string {
	switch code {
	case "42P01":
		return "the table is not in the replica (has pgveil copied it?)"
	case "3F000":
		return "the schema is not in the replica (has pgveil copied it?)"
	case "42703":
		return "a column of the set is not in the replica"
	case "42501":
		return "permission denied to the role of target.dsn"
	case "57014":
		return "the query was canceled: it ran longer than the statement timeout (--timeout)"
	case "25006":
		return "the query tried to write in the report's read-only transaction"
	case "40001":
		return "serialization failure"
	}
	switch {
	case strings.HasPrefix(code, "53"):
		return "the server ran out of resources (memory or disk for grouping)"
	case strings.HasPrefix(code, "42"):
		return "the query was refused"
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "57"):
		return "the connection or the server failed"
	}
	return "server error"
}
