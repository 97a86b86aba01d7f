package pgtest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

var shared Shared

func TestMain(m *testing.M) { Main(m, &shared) }

func TestSharedNewDB(t *testing.T) {
	a, b := shared.NewDB(t), shared.NewDB(t)
	if a == b {
		t.Fatal("same database twice")
	}
	MustExec(t, Connect(t, a), "CREATE TABLE x (id int PRIMARY KEY)")
}

// TestNewDBWithConnectAs: NewDBWith runs its SQL in the new database, and
// ConnectAs connects as the role asked for.
func TestNewDBWithConnectAs(t *testing.T) {
	conn, dsn := shared.NewDBWith(t, "CREATE TABLE x (id int PRIMARY KEY); INSERT INTO x VALUES (1), (2)")
	ctx := Context(t)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM x").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows of x: %d, %v; want 2", n, err)
	}
	role := "pgtest_reader_" + sanitize(t.Name())
	MustExec(t, conn, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		admin := Connect(t, dsn)
		_, _ = admin.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role)
	})
	var user string
	if err := ConnectAs(t, dsn, role).QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != role {
		t.Fatalf("current_user %q, %v; want %s", user, err, role)
	}
}

// TestStartProcessReapedAtTestEnd: a process a test leaves running is
// killed and reaped when the test ends.
func TestStartProcessReapedAtTestEnd(t *testing.T) {
	var p interface {
		Exited() bool
		Output() string
	}
	t.Run("leaves it running", func(t *testing.T) {
		proc := StartProcess(t, exec.Command("sh", "-c", "echo ready; exec sleep 600"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := proc.WaitLog(ctx, "ready"); err != nil {
			t.Fatal(err)
		}
		p = proc
	})
	if !p.Exited() {
		t.Fatal("the process still runs after its test ended")
	}
	if !strings.Contains(p.Output(), "ready") {
		t.Errorf("output %q", p.Output())
	}
}
