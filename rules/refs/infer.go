package refs

import (
	"cmp"
	"context"
	"fmt"
	"pgveil/schema"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults of the inference options.
const (
	// DefaultSampleSize distinct values are enough to tell a reference
	// (every value found) from a coincidence of names (few found), and
	// cheap to look up through the key's unique index.
	DefaultSampleSize = 1000
	// DefaultTimeout bounds each sampling statement: a slow or locked
	// table costs one inference, not the command.
	DefaultTimeout = 5 * time.Second
	// DefaultMinOverlap leaves room for a few orphans (rows whose parent
	// was deleted without a constraint to stop it).
	DefaultMinOverlap = 0.9
)

// scanFactor bounds the rows read per sample: SampleSize distinct values
// are taken from at most scanFactor times as many rows, so a column with
// few distinct values in a large table does not make the sample read it
// all.
const scanFactor = 20

// column is one column of the catalog, as inference sees it.
type column struct {
	Column
	typ uint32 // type oid, domains resolved to their base type
	key bool   // a single-column primary key or unique key of its table
	pk  bool   // the primary key
}

// candidate is a key a column may refer to, with why its name says so.
type candidate struct {
	to     column
	why    string
	named  bool // the column's name names the key's table (customer_id → customer)
	schema bool // same schema as the column
}

// infer adds to m the references the catalog does not declare: for each
// column no foreign key covers, the keys its name and type point at, tried
// best first, the first whose sampled overlap reaches opt.MinOverlap kept.
// Candidates not kept go to m.Unconfirmed, with why.
func infer(ctx context.Context, conn *pgx.Conn, opt Options, m *Model) error {
	cols, err := readColumns(ctx, conn, opt.Schemas)
	if err != nil {
		return err
	}
	if len(opt.Tables) > 0 {
		cols = slices.DeleteFunc(cols, func(c column) bool { return !slices.Contains(opt.Tables, c.Table) })
	}
	var keys []column
	for _, c := range cols {
		if c.key {
			keys = append(keys, c)
		}
	}
	covered := map[Column]bool{}
	for _, r := range m.Refs {
		covered[r.From] = true
	}
	for _, c := range cols {
		if covered[c.Column] {
			continue
		}
		for _, cand := range candidates(c, keys) {
			r := Ref{From: c.Column, To: cand.to.Column, Origin: Inferred}
			n, found, err := overlap(ctx, conn, c.Column, cand.to.Column, opt)
			switch {
			case err != nil:
				code := schema.SQLState(err)
				if ctx.Err() != nil || code == "" {
					return fmt.Errorf("sampling %s against %s: %w", c.Column, cand.to.Column, err)
				}
				// The server's message may quote a value: keep its code only.
				r.Why = fmt.Sprintf("%s; not confirmed: sampling failed (SQLSTATE %s%s)", cand.why, code, sqlStateHint(code))
				m.Unconfirmed = append(m.Unconfirmed, r)
				continue
			case n == 0:
				r.Why = cand.why + "; not confirmed: no value to sample (empty, or all NULL)"
				m.Unconfirmed = append(m.Unconfirmed, r)
				continue
			}
			r.Overlap = float64(found) / float64(n)
			r.Why = fmt.Sprintf("%s; %s of %d sampled values found in the key", cand.why, percent(r.Overlap), n)
			if r.Overlap < opt.MinOverlap {
				r.Why += fmt.Sprintf(", below the %s required", percent(opt.MinOverlap))
				m.Unconfirmed = append(m.Unconfirmed, r)
				continue
			}
			m.Add(r)
			break
		}
	}
	return nil
}

// percent formats a share as a whole percentage, never rounding a share
// below 1 up to 100%.
func percent(f float64) string {
	p := int(f * 100)
	return fmt.Sprintf("%d%%", p)
}

func sqlStateHint(code string) string {
	switch code {
	case "57014":
		return ": statement timeout"
	case "42501":
		return ": permission denied"
	}
	return ""
}

// candidates returns the keys c's name and type point at, best first:
// keys of the table the name names, then keys in c's own schema, then
// primary keys before other unique keys. A column that is itself a key
// only refers to a key of the table its name names (customer_detail's
// primary key customer_id refers to customer, not the other way round).
func candidates(c column, keys []column) []candidate {
	var out []candidate
	for _, k := range keys {
		if k.Column == c.Column || !compatible(c.typ, k.typ) {
			continue
		}
		why, named := match(c.Name, k)
		if why == "" || c.key && !named {
			continue
		}
		out = append(out, candidate{to: k, why: why, named: named, schema: k.Table.Schema == c.Table.Schema})
	}
	slices.SortStableFunc(out, func(a, b candidate) int {
		if a.named != b.named {
			return boolFirst(a.named)
		}
		if a.schema != b.schema {
			return boolFirst(a.schema)
		}
		if a.to.pk != b.to.pk {
			return boolFirst(a.to.pk)
		}
		return compareColumn(a.to.Column, b.to.Column)
	})
	return out
}

func boolFirst(a bool) int {
	if a {
		return -1
	}
	return 1
}

// match says why column name refers to key k ("" when it does not), and
// whether the name names k's table.
//   - same name: payment.customer_id → customer.customer_id (not for id,
//     which every table has);
//   - a suffix that is the key's name: manager_staff_id → staff.staff_id;
//   - the table's name, singular or plural, then _id, for a key named id:
//     author_id → authors.id, owner_user_id → users.id.
func match(name string, k column) (why string, named bool) {
	key, table := k.Name, k.Table.Name
	stems := []string{Singular(table), table}
	namesTable := func(s string) bool {
		for _, stem := range stems {
			if s == stem+"_"+key || strings.HasSuffix(s, "_"+stem+"_"+key) ||
				key != "id" && strings.HasPrefix(key, stem+"_") {
				return true
			}
		}
		return false
	}
	switch {
	case key == "id":
		for _, stem := range stems {
			if name == stem+"_id" || strings.HasSuffix(name, "_"+stem+"_id") {
				return fmt.Sprintf("%s names the table %s, whose key is id", name, k.Table.QualifiedName()), true
			}
		}
	case name == key:
		return fmt.Sprintf("same name and type as the key %s", k.Column), namesTable(name)
	case strings.HasSuffix(name, "_"+key):
		return fmt.Sprintf("suffix _%s names the key %s", key, k.Column), namesTable(name)
	}
	return "", false
}

// Singular is a table name's singular as key columns name it:
// orders → order, companies → company, addresses → address.
func Singular(name string) string {
	switch {
	case strings.HasSuffix(name, "ies") && len(name) > 3:
		return name[:len(name)-3] + "y"
	case strings.HasSuffix(name, "sses"), strings.HasSuffix(name, "xes"), strings.HasSuffix(name, "ches"), strings.HasSuffix(name, "shes"):
		return name[:len(name)-2]
	case strings.HasSuffix(name, "ss"), strings.HasSuffix(name, "us"):
		return name
	case strings.HasSuffix(name, "s") && len(name) > 1:
		return name[:len(name)-1]
	}
	return name
}

// Type oids of the families whose values compare across types.
var (
	intTypes  = []uint32{20, 21, 23}         // bigint, smallint, integer
	textTypes = []uint32{25, 1042, 1043, 19} // text, char(n), varchar(n), name
)

// compatible reports whether values of type a can be found in a key of
// type b: the same type, or both integers, or both text.
func compatible(a, b uint32) bool {
	return a == b || slices.Contains(intTypes, a) && slices.Contains(intTypes, b) ||
		slices.Contains(textTypes, a) && slices.Contains(textTypes, b)
}

// readColumns lists the columns of the tables pgveil can replicate
// (ordinary and partitioned tables, not partitions: pgveil replicates a
// partition as its root), marking single-column primary and unique keys.
// A key declared only on partitions is unique per partition, not across
// the root, so it is not a key here.
func readColumns(ctx context.Context, conn *pgx.Conn, schemas []string) ([]column, error) {
	rows, err := conn.Query(ctx, `
SELECT n.nspname::text, c.relname::text, a.attname::text,
       (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)::int8,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
               WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
                 AND i.indpred IS NULL AND i.indkey[0] = a.attnum),
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
               WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND (coalesce(cardinality($1::text[]), 0) = 0 OR n.nspname = ANY ($1))
ORDER BY 1, 2, a.attnum`, schemas)
	if err != nil {
		return nil, fmt.Errorf("reading columns for inferred references: %w", err)
	}
	defer rows.Close()
	var out []column
	for rows.Next() {
		var c column
		var typ int64
		if err := rows.Scan(&c.Table.Schema, &c.Table.Name, &c.Name, &typ, &c.key, &c.pk); err != nil {
			return nil, fmt.Errorf("reading columns for inferred references: %w", err)
		}
		c.typ = uint32(typ)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading columns for inferred references: %w", err)
	}
	return out, nil
}

// overlap samples up to opt.SampleSize distinct non-null values of from
// (read from at most scanFactor times as many rows) and counts how many
// the key column to holds. It runs in a read-only transaction with
// opt.Timeout as its statement timeout, and reads back two counts: no
// value leaves the server.
func overlap(ctx context.Context, conn *pgx.Conn, from, to Column, opt Options) (n, found int64, err error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	ms := max(opt.Timeout.Milliseconds(), 1)
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", ms)); err != nil {
		return 0, 0, err
	}
	fc, tc := schema.QuoteIdent(from.Name), schema.QuoteIdent(to.Name)
	q := fmt.Sprintf(`
SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM %s k WHERE k.%s = s.v))
FROM (SELECT DISTINCT v FROM (SELECT r.%s AS v FROM %s r WHERE r.%s IS NOT NULL LIMIT $1) w LIMIT $2) s`,
		to.Table.QualifiedName(), tc, fc, from.Table.QualifiedName(), fc)
	err = tx.QueryRow(ctx, q, int64(opt.SampleSize)*scanFactor, opt.SampleSize).Scan(&n, &found)
	return n, found, err
}

// withDefaults fills the zero inference options.
func (o Options) withDefaults() Options {
	o.SampleSize = cmp.Or(o.SampleSize, DefaultSampleSize)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.MinOverlap = cmp.Or(o.MinOverlap, DefaultMinOverlap)
	return o
}
