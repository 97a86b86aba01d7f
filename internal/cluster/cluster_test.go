package cluster_test

// External test package: the tests start clusters with pgtest, which
// builds on this package.

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/cluster"
	"pgveil/internal/pgtest"
)

func TestClusterLogicalAndRestart(t *testing.T) {
	c := pgtest.New(t, cluster.Options{Settings: map[string]string{"work_mem": "8MB"}})
	ctx := startContext(t)
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var walLevel, workMem string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level'), current_setting('work_mem')").Scan(&walLevel, &workMem); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if walLevel != "logical" || workMem != "8MB" {
		t.Errorf("wal_level %s, work_mem %s", walLevel, workMem)
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if c.Running() {
		t.Fatal("still running after Kill")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	conn.Close(ctx)
}

func TestStopRemovesDir(t *testing.T) {
	c, err := cluster.Start(startContext(t), cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists", dir)
	}
}

// TestKeptClusterStartsWithItsCommand: a cluster stopped and started again
// with StartCommand (what the demo prints after --keep) has its settings,
// wal_level = logical first, and the same port.
func TestKeptClusterStartsWithItsCommand(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgtest-kept-") // searchable by the postgres user
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	ctx := startContext(t)
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, Settings: map[string]string{"work_mem": "9MB"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "sh", "-c", c.StartCommand()).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", c.StartCommand(), err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("sh", "-c", c.StopCommand()).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", c.StopCommand(), err, out)
		}
	})
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("after %s: %v", c.StartCommand(), err)
	}
	defer conn.Close(ctx)
	var walLevel, workMem string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level'), current_setting('work_mem')").Scan(&walLevel, &workMem); err != nil {
		t.Fatal(err)
	}
	if walLevel != "logical" || workMem != "9MB" {
		t.Errorf("started with its command: wal_level %s, work_mem %s; want logical, 9MB", walLevel, workMem)
	}
}

// startContext bounds a test's start and restarts of a cluster: initdb and
// crash recovery on a loaded machine take many times what they take on an
// idle one.
func startContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
