package replicate

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"pgveil/replicate/pgcopy"
	"pgveil/replicate/target"
	"pgveil/schema"
	"pgveil/transform"
)

// TableDiff compares one table of the replica with mask(source).
type TableDiff struct {
	Table     string
	Source    int64 // rows in the source (after the table's row filter)
	Target    int64 // rows in the replica
	Missing   int64 // in mask(source), not in the replica
	Extra     int64 // in the replica, not in mask(source)
	Different int64 // same key, other values
	// Changed counts the rows that differed in this comparison but not in
	// an earlier one of the same table (Within): changes applied to the
	// replica while it was read. They explain why Target is not Source -
	// Missing + Extra, and are no difference.
	Changed int64
	// Keys holds the (masked) keys of the rows that differ, as opaque
	// strings, with how they differ; nil when more than MaxDiffKeys
	// differ. It lets a caller keep only the differences that persist
	// from one comparison to the next (see Within). Never print it.
	Keys map[string]DiffKind
}

// DiffKind is how a row differs.
type DiffKind byte

// The kinds of difference.
const (
	DiffMissing DiffKind = iota + 1
	DiffExtra
	DiffDifferent
)

// MaxDiffKeys bounds TableDiff.Keys.
const MaxDiffKeys = 1 << 20

// OK reports whether the table matches.
func (d TableDiff) OK() bool { return d.Missing == 0 && d.Extra == 0 && d.Different == 0 }

// Within keeps the differences of d whose rows also differed in an
// earlier comparison, prev, of the same table. Against a replica that
// moves on while it is read, a row changed after the source snapshot
// differs once; a row the replica got wrong differs every time. When
// either side lost track of its keys, d is returned as it is.
func (d TableDiff) Within(prev TableDiff) TableDiff {
	if d.Keys == nil || prev.Keys == nil {
		return d
	}
	out := d
	out.Missing, out.Extra, out.Different = 0, 0, 0
	out.Keys = make(map[string]DiffKind)
	for k, kind := range d.Keys {
		if _, ok := prev.Keys[k]; !ok {
			continue
		}
		out.Keys[k] = kind
		switch kind {
		case DiffMissing:
			out.Missing++
		case DiffExtra:
			out.Extra++
		default:
			out.Different++
		}
	}
	out.Changed = d.Missing + d.Extra + d.Different - (out.Missing + out.Extra + out.Different)
	return out
}

// Compare re-masks every row of the source and compares it, by key, with
// the replica. It never returns or logs a value: only counts. src should
// be in a REPEATABLE READ transaction and the replica quiet (or caught up
// to the same point) for the counts to mean anything; the source
// connection must use the session settings of the pipeline (see
// ConnectSource).
func Compare(ctx context.Context, src, tgt *pgx.Conn, plan *transform.Plan) ([]TableDiff, error) {
	var out []TableDiff
	for _, tp := range plan.Tables() {
		d := TableDiff{Table: tp.Table.QualifiedName(), Keys: map[string]DiffKind{}}
		note := func(k string, kind DiffKind) {
			if d.Keys != nil && len(d.Keys) >= MaxDiffKeys {
				d.Keys = nil
			}
			if d.Keys != nil {
				d.Keys[k] = kind
			}
		}
		keyIdx := target.KeyColumns(tp)
		want := map[string][32]byte{}
		srcSeen := map[string]int{}
		err := readCopy(ctx, src, SelectSQL(tp, "", tp.Where), func(row []schema.Value) error {
			masked, err := tp.Mask(nil, row)
			if err != nil {
				return maskedAt(err, 0)
			}
			d.Source++
			k := dupKey(srcSeen, rowKey(masked, keyIdx))
			want[k] = rowSum(masked)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: reading the source: %w", d.Table, err)
		}
		tgtSeen := map[string]int{}
		err = readCopy(ctx, tgt, SelectSQL(tp, ""), func(row []schema.Value) error {
			d.Target++
			k, sum := dupKey(tgtSeen, rowKey(row, keyIdx)), rowSum(row)
			w, ok := want[k]
			switch {
			case !ok:
				d.Extra++
				note(k, DiffExtra)
			case w != sum:
				d.Different++
				note(k, DiffDifferent)
				delete(want, k)
			default:
				delete(want, k)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: reading the replica: %w", d.Table, err)
		}
		d.Missing = int64(len(want))
		for k := range want {
			note(k, DiffMissing)
		}
		out = append(out, d)
	}
	return out, nil
}

// dupKey numbers the repeats of a key: only tables without a primary key
// (identified by all their columns) hold them, and such repeats are equal
// rows, so matching the n-th copy on each side is exact.
func dupKey(seen map[string]int, k string) string {
	n := seen[k]
	seen[k] = n + 1
	if n == 0 {
		return k
	}
	return fmt.Sprintf("%s\x00dup%d", k, n)
}

// SelectSQL selects the plan's columns of a table, in plan order, with
// from after the table's name (a TABLESAMPLE clause, or "") and the
// non-empty conditions ANDed together. A table other than a partitioned
// one is read with ONLY: rows of inheritance children (tables no rule may
// name) are never read through their parent, as the publication, which
// lists tables with ONLY, never sends their changes.
func SelectSQL(tp *transform.TablePlan, from string, conds ...string) string {
	cols := make([]string, len(tp.Columns))
	for i, c := range tp.Columns {
		cols[i] = schema.QuoteIdent(c.Column.Name)
	}
	only := "ONLY "
	if tp.Table.Partitioned {
		only = ""
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + only + tp.Table.QualifiedName() + from
	var where []string
	for _, c := range conds {
		if c != "" {
			where = append(where, "("+c+")")
		}
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q
}

// errStopped ends a COPY pipe whose reader stopped early.
var errStopped = errors.New("copy stopped")

// copyBufferBytes is how much of a COPY stream readCopy gathers before
// handing it to the parser.
const copyBufferBytes = 128 << 10

// readCopy runs COPY (query) TO STDOUT and calls fn with each row; the
// row's values are valid only during the call.
func readCopy(ctx context.Context, conn *pgx.Conn, query string, fn func([]schema.Value) error) error {
	return copyOut(ctx, conn, query, func(rd *pgcopy.Reader) error {
		var row []schema.Value
		for {
			var err error
			row, err = rd.Next(row)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := fn(row); err != nil {
				return err
			}
		}
	})
}

// copyOut runs COPY (query) TO STDOUT and hands fn a Reader of its rows;
// fn reads them (to io.EOF, or stops early by returning).
func copyOut(ctx context.Context, conn *pgx.Conn, query string, fn func(*pgcopy.Reader) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		// The server sends a message per row: buffer them, or every row
		// costs a hand-over between two goroutines.
		bw := bufio.NewWriterSize(pw, copyBufferBytes)
		_, err := conn.PgConn().CopyTo(ctx, bw, "COPY ("+query+") TO STDOUT")
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	ferr := fn(pgcopy.NewReader(pr))
	pr.CloseWithError(errStopped)
	if err := <-done; ferr == nil && err != nil {
		return err
	}
	return ferr
}

func rowKey(row []schema.Value, idx []int) string {
	var b strings.Builder
	for _, i := range idx {
		if row[i].State == schema.Null {
			b.WriteString("\x01")
		} else {
			b.WriteString("\x02")
			b.Write(row[i].Text)
		}
		b.WriteByte(0)
	}
	return b.String()
}

func rowSum(row []schema.Value) [32]byte {
	h := sha256.New()
	for _, v := range row {
		if v.State == schema.Null {
			h.Write([]byte{1})
		} else {
			h.Write([]byte{2})
			h.Write(v.Text)
		}
		h.Write([]byte{0})
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// ConnectSource opens a source connection with the session settings the
// masking rules expect (ISO dates, hex bytea, UTC, ...).
func ConnectSource(ctx context.Context, dsn string) (*pgx.Conn, error) {
	return connectSource(ctx, dsn)
}
