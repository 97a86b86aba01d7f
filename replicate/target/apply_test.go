package target

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"pgveil/internal/pgtest"
	"pgveil/schema"
	"pgveil/transform"
)

func ins(t *transform.TablePlan, row ...string) *Change {
	return &Change{Op: OpInsert, Table: t, Row: vals(row...)}
}

func upd(t *transform.TablePlan, key []string, row ...string) *Change {
	ch := &Change{Op: OpUpdate, Table: t, Row: vals(row...)}
	if key != nil {
		ch.Key = vals(key...)
	}
	return ch
}

func del(t *transform.TablePlan, key ...string) *Change {
	return &Change{Op: OpDelete, Table: t, Key: vals(key...)}
}

func trunc(tables ...*transform.TablePlan) *Change {
	return &Change{Op: OpTruncate, Tables: tables, Cascade: true}
}

func k(s ...string) []string { return s }

// applyTx applies changes in one transaction and commits at pos.
func applyTx(t *testing.T, ctx context.Context, a *Applier, pos Position, changes ...*Change) {
	t.Helper()
	if err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	for i, ch := range changes {
		if err := a.Apply(ctx, ch); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	if a.Pending() != len(changes) {
		t.Errorf("Pending() = %d, want %d", a.Pending(), len(changes))
	}
	if err := a.Commit(ctx, pos); err != nil {
		t.Fatal(err)
	}
}

func TestApplySameKeyInOneTransaction(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"), c("n", "integer"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	a := NewApplier(conn, "slot")
	applyTx(t, ctx, a, Position{LSN: 100},
		ins(tb, "1", "a", "1"),
		upd(tb, nil, "1", "b", "2"),
		del(tb, "1"),
		ins(tb, "1", "c", "3"),
		ins(tb, "2", "x", null),
		upd(tb, nil, "2", "y", null),
		del(tb, "2"),
		del(tb, "3"), // missing: not an error
		ins(tb, "4", "", null),
		ins(tb, "4", "again", "4"), // an insert replayed on an existing key upserts
	)
	equal(t, "rows", query(t, conn, `SELECT * FROM app.t ORDER BY id`), []string{"1|c|3", "4|again|4"})
	equal(t, "empty string is not NULL", query(t, conn, `SELECT count(*) FROM app.t WHERE v = ''`), []string{"0"})
	applyTx(t, ctx, a, Position{LSN: 101}, ins(tb, "5", "", null))
	equal(t, "empty string is not NULL", query(t, conn, `SELECT id FROM app.t WHERE v = ''`), []string{"5"})
}

func TestApplyKeyChanges(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"), c("big", "text"))
	comp := table("app", "m", pk("org", "integer"), pk("usr", "integer"), c("role", "text"), c("doc", "jsonb"))
	ctx, _, conn := setupDB(t, plan(tb, comp), nil)
	a := NewApplier(conn, "slot")
	applyTx(t, ctx, a, Position{LSN: 1},
		ins(tb, "1", "a", "BIG1"),
		ins(tb, "2", "b", "BIG2"),
		ins(comp, "1", "1", "admin", `{"x": 1}`),
	)
	applyTx(t, ctx, a, Position{LSN: 2},
		// Key change with an unchanged TOASTed column: the value moves along.
		upd(tb, k("1"), "10", "a2", unch),
		// Key change with every value: delete then upsert.
		upd(tb, k("2"), "20", "b2", "BIG20"),
		// Unchanged column, same key (Key given and equal): kept.
		upd(tb, k("10"), "10", "a3", unch),
		// Composite key: one part changes.
		upd(comp, k("1", "1"), "1", "2", "owner", unch),
	)
	equal(t, "t", query(t, conn, `SELECT * FROM app.t ORDER BY id`), []string{"10|a3|BIG1", "20|b2|BIG20"})
	equal(t, "m", query(t, conn, `SELECT * FROM app.m`), []string{`1|2|owner|{"x": 1}`})
}

func TestApplyUnchangedAndMissingRows(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"), c("big", "text"), c("doc", "json"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	a := NewApplier(conn, "slot")
	applyTx(t, ctx, a, Position{LSN: 1}, ins(tb, "1", "a", "BIG", `{"a":1}`))
	applyTx(t, ctx, a, Position{LSN: 2},
		upd(tb, nil, "1", "b", unch, unch),          // keeps big and doc
		upd(tb, nil, "1", unch, "BIG2", unch),       // keeps v and doc
		upd(tb, nil, "1", unch, unch, unch),         // nothing to write
		upd(tb, nil, "2", "new", "row", null),       // missing row, full: inserted
		upd(tb, nil, "3", "partial", unch, `{}`),    // missing row, partial: nothing, no error
		upd(tb, k("4"), "5", "moved", unch, "null"), // missing old row, partial: nothing
		upd(tb, k("6"), "7", "moved", "full", null), // missing old row, full: inserted at the new key
	)
	equal(t, "rows", query(t, conn, `SELECT * FROM app.t ORDER BY id`), []string{
		`1|b|BIG2|{"a":1}`, "2|new|row|NULL", "7|moved|full|NULL"})
}

func TestApplyTablesWithoutKey(t *testing.T) {
	t.Parallel()
	tb := table("app", "log", c("at", "date"), c("msg", "text"), c("doc", "json"), c("tags", "json[]"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	a := NewApplier(conn, "slot")
	row := []string{"2024-01-01", "dup", `{"a": 1}`, `{"{\"t\": 1}"}`}
	nulls := []string{null, null, null, null}
	applyTx(t, ctx, a, Position{LSN: 1},
		ins(tb, row...), ins(tb, row...), ins(tb, row...),
		ins(tb, nulls...), ins(tb, nulls...),
		ins(tb, "2024-01-02", "big", "{}", null),
	)
	applyTx(t, ctx, a, Position{LSN: 2},
		del(tb, row...),   // exactly one of three
		del(tb, nulls...), // NULLs match NULLs: one of two
		upd(tb, row, "2024-01-03", "changed", `{"a": 1}`, null), // one row only
		upd(tb, k("2024-01-02", "big", "{}", null), "2024-01-02", "big2", unch, unch),
		del(tb, "1999-01-01", "missing", "{}", null), // nothing
	)
	equal(t, "rows", query(t, conn, `SELECT at, msg, doc, tags FROM app.log ORDER BY at NULLS LAST, msg`), []string{
		`2024-01-01|dup|{"a": 1}|{"{\"t\": 1}"}`,
		`2024-01-02|big2|{}|NULL`,
		`2024-01-03|changed|{"a": 1}|NULL`,
		"NULL|NULL|NULL|NULL",
	})
	// An update without the old row but with unchanged values cannot find its row.
	if err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, upd(tb, nil, "2024-01-02", "x", unch, null)); err == nil {
		t.Error("no error for an update without old row on a table without key")
	}
}

func TestApplyEveryTypeWithAndWithoutNulls(t *testing.T) {
	t.Parallel()
	all, _ := allTypes("app", "all_types", true)
	allNoKey, _ := allTypes("app", "all_nokey", false)
	ctx, _, conn := setupDB(t, plan(all, allNoKey), moodEnum)
	a := NewApplier(conn, "slot")
	nulls := make([]string, len(allValues))
	for i := range nulls {
		nulls[i] = null
	}
	nulls[0] = "8"
	noKeyNulls := slices.Clone(nulls)
	noKeyNulls[0] = null
	applyTx(t, ctx, a, Position{LSN: 1},
		ins(all, allValues...), ins(all, nulls...),
		ins(allNoKey, allValues...), ins(allNoKey, allValues...), ins(allNoKey, noKeyNulls...), ins(allNoKey, noKeyNulls...),
	)
	want := strings.Join(allValues, "|")
	wantNull := strings.Repeat("NULL|", len(allValues)-1) + "NULL"
	equal(t, "all_types", query(t, conn, `SELECT * FROM app.all_types ORDER BY id`), []string{want, "8|" + wantNull[5:]})
	equal(t, "all_nokey", query(t, conn, `SELECT * FROM app.all_nokey ORDER BY id`), []string{want, want, wantNull, wantNull})

	// Every column matches its own text form: one row of each kind goes.
	applyTx(t, ctx, a, Position{LSN: 2}, del(allNoKey, allValues...), del(allNoKey, noKeyNulls...), del(all, "8"))
	equal(t, "all_nokey after deletes", query(t, conn, `SELECT * FROM app.all_nokey`), []string{want, wantNull})
	equal(t, "all_types after delete", query(t, conn, `SELECT * FROM app.all_types`), []string{want})
}

func TestApplyTruncate(t *testing.T) {
	t.Parallel()
	ta := table("app", "a", pk("id", "integer"))
	tb := table("app", "b", c("id", "integer"))
	ctx, _, conn := setupDB(t, plan(ta, tb), nil)
	a := NewApplier(conn, "slot")
	applyTx(t, ctx, a, Position{LSN: 1}, ins(ta, "1"), ins(tb, "1"))
	applyTx(t, ctx, a, Position{LSN: 2},
		ins(ta, "2"), ins(tb, "2"),
		trunc(ta, tb, ta),
		ins(ta, "3"),
	)
	equal(t, "a", query(t, conn, `SELECT * FROM app.a`), []string{"3"})
	equal(t, "b", query(t, conn, `SELECT * FROM app.b`), []string{})
}

func TestApplyCheckpoint(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	if _, found, err := ReadCheckpoint(ctx, conn, "slot"); err != nil || found {
		t.Fatalf("before any commit: found %v, %v", found, err)
	}
	a := NewApplier(conn, "slot")
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	applyTx(t, ctx, a, Position{LSN: 0x16B374D848, CommitTime: at}, ins(tb, "1"))
	pos, found, err := ReadCheckpoint(ctx, conn, "slot")
	if err != nil || !found || pos.LSN != 0x16B374D848 || !pos.CommitTime.Equal(at) {
		t.Fatalf("after commit: %v %v %v", pos, found, err)
	}
	equal(t, "stored", query(t, conn, `SELECT slot, lsn FROM pgveil.checkpoint`), []string{"slot|16/B374D848"})

	// Rolled back: neither the change nor the checkpoint.
	if err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 1500 { // some of them reach the server
		if err := a.Apply(ctx, ins(tb, fmt.Sprint(i+10))); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	equal(t, "rows after rollback", query(t, conn, `SELECT id FROM app.t`), []string{"1"})
	pos, _, _ = ReadCheckpoint(ctx, conn, "slot")
	if pos.LSN != 0x16B374D848 {
		t.Errorf("checkpoint after rollback: %v", pos.LSN)
	}
	// Without commit time; another slot is separate.
	applyTx(t, ctx, a, Position{LSN: 0x17000000}, ins(tb, "2"))
	b := NewApplier(conn, "other")
	applyTx(t, ctx, b, Position{LSN: 5}, ins(tb, "3"))
	pos, _, _ = ReadCheckpoint(ctx, conn, "slot")
	if pos.LSN != 0x17000000 || !pos.CommitTime.IsZero() {
		t.Errorf("checkpoint without commit time: %v", pos)
	}
	pos, _, _ = ReadCheckpoint(ctx, conn, "other")
	if pos.LSN != 5 {
		t.Errorf("other slot: %v", pos)
	}
}

func TestApplyFailureRollsBack(t *testing.T) {
	t.Parallel()
	tb := table("app", "nums", pk("id", "integer"), c("n", "integer"), c("s", "varchar(3)"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	a := NewApplier(conn, "slot")
	applyTx(t, ctx, a, Position{LSN: 1}, ins(tb, "1", "1", "a"))

	for _, tc := range []struct {
		name    string
		flushAt int
		bad     *Change
		op      string
	}{
		{"bad integer at commit", flushStatements, ins(tb, "3", "SECRET-42", "a"), "insert or update of app.nums"},
		{"too long in a mid-transaction flush", 5, upd(tb, nil, "1", "2", "SECRET"), "insert or update of app.nums"},
		{"bad key in a delete", flushStatements, del(tb, "SECRET"), "delete from app.nums"},
	} {
		a.flushAt = tc.flushAt
		if err := a.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		var err error
		for _, ch := range []*Change{ins(tb, "2", "2", "b"), upd(tb, nil, "1", "5", unch), tc.bad, ins(tb, "4", "4", "d"), ins(tb, "5", "5", "e"), ins(tb, "6", "6", "e")} {
			if err = a.Apply(ctx, ch); err != nil {
				break
			}
		}
		if err == nil {
			err = a.Commit(ctx, Position{LSN: 99})
		}
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.op) || strings.Contains(msg, "SECRET") {
			t.Errorf("%s: error %q should name %q and not the value", tc.name, msg, tc.op)
		}
		var se *ServerError
		if !errors.As(err, &se) || se.Code == "" {
			t.Errorf("%s: not a ServerError: %v", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
		equal(t, tc.name+": rows", query(t, conn, `SELECT * FROM app.nums`), []string{"1|1|a"})
		if pos, _, _ := ReadCheckpoint(ctx, conn, "slot"); pos.LSN != 1 {
			t.Errorf("%s: checkpoint moved to %v", tc.name, pos.LSN)
		}
		if err := a.Apply(ctx, ins(tb, "7", "7", "g")); err == nil {
			t.Errorf("%s: Apply after a failure did not fail", tc.name)
		}
		if err := a.Rollback(ctx); err != nil {
			t.Errorf("%s: Rollback after a failure: %v", tc.name, err)
		}
	}
	// The applier and connection are usable again.
	a.flushAt = flushStatements
	applyTx(t, ctx, a, Position{LSN: 2}, ins(tb, "8", "8", "h"))
	equal(t, "rows", query(t, conn, `SELECT id FROM app.nums ORDER BY id`), []string{"1", "8"})
}

func TestApplyBadChanges(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	a := NewApplier(conn, "slot")
	if err := a.Apply(ctx, ins(tb, "1", "a")); err == nil {
		t.Error("Apply without Begin")
	}
	if err := a.Commit(ctx, Position{}); err == nil {
		t.Error("Commit without Begin")
	}
	for _, ch := range []*Change{
		nil,
		ins(tb, "1"),
		ins(tb, "1", unch),
		upd(tb, k("1", "2"), "1", "a"),
		upd(tb, nil, unch, "a"),
		del(tb),
		{Op: OpInsert, Row: vals("1", "a")},
		{Op: 99, Table: tb},
	} {
		if err := a.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Apply(ctx, ins(tb, "1", "a")); err != nil {
			t.Fatal(err)
		}
		if err := a.Apply(ctx, ch); err == nil {
			t.Errorf("no error for %+v", ch)
			a.Rollback(ctx)
		}
	}
	equal(t, "rows", query(t, conn, `SELECT * FROM app.t`), []string{})
}

// TestApplyCrash: a connection that dies before COMMIT leaves neither the
// changes nor the checkpoint.
func TestApplyCrash(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"))
	ctx, dsn, conn := setupDB(t, plan(tb), nil)
	a := NewApplier(conn, "slot")
	old := Position{LSN: 1000, CommitTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	applyTx(t, ctx, a, old, ins(tb, "1", "kept"))

	if err := a.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2500 {
		if err := a.Apply(ctx, ins(tb, fmt.Sprint(i+2), "lost")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Apply(ctx, upd(tb, nil, "1", "lost")); err != nil {
		t.Fatal(err)
	}
	// The batch sent in the background owns the connection until its
	// outcome is read: only then may the test look at it.
	if err := a.wait(); err != nil {
		t.Fatal(err)
	}
	if st := conn.PgConn().TxStatus(); st != 'T' {
		t.Fatalf("the transaction is not open on the server (status %c)", st)
	}
	// The crash: the socket goes away, no COMMIT, no Terminate.
	conn.PgConn().Conn().Close()
	if err := a.Commit(ctx, Position{LSN: 2000}); err == nil {
		t.Fatal("commit on a dead connection succeeded")
	}

	conn2 := pgtest.Connect(t, dsn)
	equal(t, "rows", query(t, conn2, `SELECT * FROM app.t`), []string{"1|kept"})
	pos, found, err := ReadCheckpoint(ctx, conn2, "slot")
	if err != nil || !found || pos.LSN != old.LSN || !pos.CommitTime.Equal(old.CommitTime) {
		t.Errorf("checkpoint after the crash: %v %v %v", pos, found, err)
	}
}

// TestApplyOrder applies random changes to a few keys across many batch
// boundaries and compares the table with a model.
func TestApplyOrder(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"), c("big", "text"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	a := NewApplier(conn, "slot")
	a.flushAt = 7
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[int][2]string{}
	const keys = 8
	for txn := range 30 {
		if err := a.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			id := rng.IntN(keys)
			v := fmt.Sprintf("v%d.%d", txn, i)
			var ch *Change
			switch rng.IntN(6) {
			case 0:
				ch = ins(tb, fmt.Sprint(id), v, "big"+v)
				model[id] = [2]string{v, "big" + v}
			case 1:
				ch = upd(tb, nil, fmt.Sprint(id), v, "big"+v)
				model[id] = [2]string{v, "big" + v}
			case 2:
				ch = upd(tb, nil, fmt.Sprint(id), v, unch)
				if r, ok := model[id]; ok {
					model[id] = [2]string{v, r[1]}
				}
			case 3: // key move, only to a free key, as on the source
				to := rng.IntN(keys)
				r, ok := model[id]
				if _, taken := model[to]; !ok || taken {
					continue
				}
				if rng.IntN(2) == 0 {
					ch = upd(tb, k(fmt.Sprint(id)), fmt.Sprint(to), v, unch)
					model[to] = [2]string{v, r[1]}
				} else {
					ch = upd(tb, k(fmt.Sprint(id)), fmt.Sprint(to), v, "big"+v)
					model[to] = [2]string{v, "big" + v}
				}
				delete(model, id)
			default:
				ch = del(tb, fmt.Sprint(id))
				delete(model, id)
			}
			if err := a.Apply(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Commit(ctx, Position{LSN: pglogrepl.LSN(txn + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for id := range keys {
		if r, ok := model[id]; ok {
			want = append(want, fmt.Sprintf("%d|%s|%s", id, r[0], r[1]))
		}
	}
	equal(t, "rows", query(t, conn, `SELECT * FROM app.t ORDER BY id`), want)
}

// Net changes carry values through text arrays (they once went through
// JSON): JSON null must stay apart from SQL NULL, json text must keep its
// spelling, and text with quotes, backslashes and control characters must
// arrive intact.
func TestApplyNetValuesThroughJSON(t *testing.T) {
	t.Parallel()
	tb := table("app", "j", pk("id", "integer"), c("jb", "jsonb"), c("js", "json"), c("s", "text"), c("arr", "text[]"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	a := NewApplier(conn, "slot")
	odd := "quote \" backslash \\ newline \n tab \t bell \x07 unicode é 日本"
	applyTx(t, ctx, a, Position{LSN: 1},
		ins(tb, "1", "null", `{"b": 2,  "a": [1, "x"], "a": 3}`, odd, `{"a \"q\"",NULL,"\\\\"}`),
		ins(tb, "2", null, null, null, null),
		ins(tb, "3", `"a string"`, `"s"`, "", "{}"),
		upd(tb, nil, "3", `{"k": "v"}`, unch, unch, unch), // a partial update
	)
	equal(t, "rows", query(t, conn, `SELECT id, jb::text, jb IS NULL, js::text, s = `+schema.QuoteLiteral(odd)+`, arr::text FROM app.j ORDER BY id`), []string{
		`1|null|f|{"b": 2,  "a": [1, "x"], "a": 3}|t|{"a \"q\"",NULL,"\\\\"}`,
		"2|NULL|t|NULL|NULL|NULL",
		`3|{"k": "v"}|f|"s"|f|{}`,
	})
}

// evenFilter passes rows whose one filter value is even, counting calls.
type evenFilter struct{ calls, rows int }

func (f *evenFilter) Match(_ context.Context, rows [][]schema.Value) ([]bool, error) {
	f.calls++
	f.rows += len(rows)
	out := make([]bool, len(rows))
	for i, r := range rows {
		n, err := strconv.Atoi(string(r[0].Text))
		if err != nil {
			return nil, err
		}
		out[i] = n%2 == 0
	}
	return out, nil
}

// Row filters on a table with a key are evaluated once per batch, and the
// last change of a key decides: a row that fails leaves the replica.
func TestApplyDeferredRowFilter(t *testing.T) {
	t.Parallel()
	tb := table("app", "f", pk("id", "integer"), c("v", "text"), c("big", "text"))
	ctx, _, conn := setupDB(t, plan(tb), nil)
	a := NewApplier(conn, "slot")
	f := &evenFilter{}
	with := func(ch *Change, n int) *Change {
		ch.Filter, ch.FilterRow = f, vals(strconv.Itoa(n))
		return ch
	}
	applyTx(t, ctx, a, Position{LSN: 1},
		with(ins(tb, "1", "a", "A"), 2), // passes
		with(ins(tb, "2", "b", "B"), 3), // fails: not written
		with(ins(tb, "3", "c", "C"), 4),
		with(ins(tb, "4", "d", "D"), 6),
	)
	equal(t, "after inserts", query(t, conn, `SELECT * FROM app.f ORDER BY id`), []string{"1|a|A", "3|c|C", "4|d|D"})
	if f.calls != 1 || f.rows != 4 {
		t.Errorf("filter called %d times for %d rows, want once for 4", f.calls, f.rows)
	}
	applyTx(t, ctx, a, Position{LSN: 2},
		with(upd(tb, nil, "1", "a2", unch), 5),  // a partial update that now fails: the row goes
		with(upd(tb, nil, "2", "b2", "B2"), 8),  // now passes: the row comes
		with(upd(tb, nil, "3", "c2", unch), 10), // partial, passes: updated
		with(upd(tb, nil, "4", "d2", "D2"), 1),  // fails...
		with(upd(tb, nil, "4", "d3", unch), 12), // ...then passes: the last change decides
	)
	equal(t, "after updates", query(t, conn, `SELECT * FROM app.f ORDER BY id`), []string{"2|b2|B2", "3|c2|C", "4|d3|D2"})
	if f.calls != 2 {
		t.Errorf("filter called %d times, want 2 (once per batch)", f.calls)
	}
	// A second instance of the filter (a new Relation message) in the same
	// batch: each evaluates its own rows.
	g := &evenFilter{}
	second := upd(tb, nil, "3", "c3", "C3")
	second.Filter, second.FilterRow = g, vals("7")
	applyTx(t, ctx, a, Position{LSN: 3}, with(upd(tb, nil, "2", "b3", "B3"), 2), second)
	equal(t, "two filter instances", query(t, conn, `SELECT * FROM app.f ORDER BY id`), []string{"2|b3|B3", "4|d3|D2"})
}
