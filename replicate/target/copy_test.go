package target

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"pgveil/internal/pgtest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestCopyIn(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"), c("n", "numeric(5,1)"))
	ctx, _, conn := setupDB(t, plan(tb), nil)

	rows, err := CopyIn(ctx, conn, tb, strings.NewReader("1\ta\t1.5\n2\t\\N\t\\N\n3\ttab\\there\t2.0\n"))
	if err != nil || rows != 3 {
		t.Fatalf("first load: %d rows, %v", rows, err)
	}
	first := []string{"1|a|1.5", "2|NULL|NULL", "3|tab\there|2.0"}
	equal(t, "first load", query(t, conn, `SELECT * FROM app.t ORDER BY id`), first)
	equal(t, "state", query(t, conn, `SELECT state || ' ' || rows FROM pgveil.tables`), []string{"copied 3"})

	// A reload replaces the content: no duplicates.
	rows, err = CopyIn(ctx, conn, tb, strings.NewReader("1\tb\t3.0\n4\td\t4.0\n"))
	if err != nil || rows != 2 {
		t.Fatalf("reload: %d rows, %v", rows, err)
	}
	second := []string{"1|b|3.0", "4|d|4.0"}
	equal(t, "reload", query(t, conn, `SELECT * FROM app.t ORDER BY id`), second)
	equal(t, "state", query(t, conn, `SELECT state || ' ' || rows FROM pgveil.tables`), []string{"copied 2"})

	// A bad row in the middle: the previous content stays, the error names
	// the line and column but not the value.
	var b strings.Builder
	for i := range 5000 {
		if i == 2500 {
			b.WriteString("9999\tx\tSECRET-7\n")
			continue
		}
		b.WriteString(itoa(i+10) + "\tok\t1.0\n")
	}
	_, err = CopyIn(ctx, conn, tb, strings.NewReader(b.String()))
	if err == nil {
		t.Fatal("no error for a bad row")
	}
	t.Log(err)
	var se *ServerError
	if !errors.As(err, &se) || se.Line != 2501 || se.Column != "n" || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "app.t") {
		t.Errorf("bad row: error %q (%+v)", err, se)
	}
	equal(t, "after a bad row", query(t, conn, `SELECT * FROM app.t ORDER BY id`), second)
	equal(t, "state", query(t, conn, `SELECT state || ' ' || rows FROM pgveil.tables`), []string{"copied 2"})

	// A duplicate key (the detail would quote it).
	_, err = CopyIn(ctx, conn, tb, strings.NewReader("5\tSECRET\t1.0\n5\tSECRET\t1.0\n"))
	if err == nil || strings.Contains(err.Error(), "SECRET") || !errors.As(err, &se) || se.Code != "23505" {
		t.Errorf("duplicate key: %v", err)
	}
	equal(t, "after a duplicate key", query(t, conn, `SELECT * FROM app.t ORDER BY id`), second)

	// The stream fails: its error comes back, the server never sees it.
	boom := errors.New("source went away (SECRET)")
	_, err = CopyIn(ctx, conn, tb, io.MultiReader(strings.NewReader("7\tx\t1.0\n"), errReader{boom}))
	if !errors.Is(err, boom) {
		t.Errorf("stream failure: %v", err)
	}
	equal(t, "after a stream failure", query(t, conn, `SELECT * FROM app.t ORDER BY id`), second)
	// Still usable.
	if _, err := CopyIn(ctx, conn, tb, strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	equal(t, "empty load", query(t, conn, `SELECT * FROM app.t`), []string{})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestWriteCheckpoint(t *testing.T) {
	t.Parallel()
	ctx, _, conn := setupDB(t, plan(table("app", "t", pk("id", "integer"))), nil)
	at := time.Date(2025, 3, 4, 5, 6, 7, 890000000, time.FixedZone("x", 3600))
	for _, pos := range []Position{{LSN: 0x1_0000_0010, CommitTime: at}, {LSN: 0x2_0000_0000}} {
		if err := WriteCheckpoint(ctx, conn, "snap", pos); err != nil {
			t.Fatal(err)
		}
		got, found, err := ReadCheckpoint(ctx, conn, "snap")
		if err != nil || !found || got.LSN != pos.LSN || !got.CommitTime.Equal(pos.CommitTime) {
			t.Errorf("wrote %v, read %v %v %v", pos, got, found, err)
		}
	}
	// Before Setup there is no checkpoint table: not found, no error.
	other := pgtest.Connect(t, shared.NewDB(t))
	if _, found, err := ReadCheckpoint(ctx, other, "snap"); found || err != nil {
		t.Errorf("without Setup: %v %v", found, err)
	}
}

// lateReader gives one row, then has the copy's backend terminated and
// fails only once pgconn has cleaned the dead connection up: after
// CopyFrom returned, on pgconn's reading goroutine, which CopyFrom does
// not join on that path.
type lateReader struct {
	t       *testing.T
	killer  *pgx.Conn
	victim  *pgconn.PgConn
	err     error
	reads   int
	stopped chan struct{} // closed when Read has returned its error
}

func (r *lateReader) Read(p []byte) (int, error) {
	r.reads++
	if r.reads == 1 {
		return copy(p, "1\tx\t1.0\n"), nil
	}
	defer close(r.stopped)
	var ok bool
	if err := r.killer.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, r.victim.PID()).Scan(&ok); err != nil || !ok {
		r.t.Errorf("terminating the copy's backend: %v %v", ok, err)
	}
	<-r.victim.CleanupDone()
	return 0, r.err
}

// A stream that fails after the copy already failed for another reason
// (here its connection was terminated) neither races with CopyIn (go test
// -race) nor takes the place of the real cause in the error.
func TestCopyInStreamFailsAfterTheConnection(t *testing.T) {
	t.Parallel()
	tb := table("app", "t", pk("id", "integer"), c("v", "text"), c("n", "numeric(5,1)"))
	ctx, dsn, conn := setupDB(t, plan(tb), nil)
	late := errors.New("the producer saw the copy go")
	r := &lateReader{t: t, killer: pgtest.Connect(t, dsn), victim: conn.PgConn(), err: late, stopped: make(chan struct{})}
	_, err := CopyIn(ctx, conn, tb, r)
	<-r.stopped
	if err == nil {
		t.Fatal("no error from a copy whose connection was terminated")
	}
	if errors.Is(err, late) || strings.Contains(err.Error(), "reading the stream") {
		t.Errorf("the stream's late error replaced the cause: %v", err)
	}
	equal(t, "after a terminated copy", query(t, pgtest.Connect(t, dsn), `SELECT count(*) FROM app.t`), []string{"0"})
}
