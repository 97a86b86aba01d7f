// Package cluster starts throwaway PostgreSQL clusters for the demo, the
// benchmarks and (through internal/pgtest) the tests: initdb into a
// temporary directory, a free port on 127.0.0.1, wal_level=logical, and a
// server that dies with the process that started it. When running as root
// (initdb refuses root) the cluster runs as the "postgres" system user.
//
// It must not import "testing": the pgveil binary links it through the
// demo (TestBinaryLinksNoTestCode holds that). The helpers that take a
// testing.TB live in internal/pgtest.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/schema"
)

// Options configure a cluster.
type Options struct {
	// Dir holds the data directory, socket and log; a new temporary
	// directory (removed by Stop) when empty.
	Dir string
	// Settings override or add postgresql.conf parameters.
	Settings map[string]string
	// InitArgs are extra initdb arguments.
	InitArgs []string
}

// Cluster is a running throwaway server.
type Cluster struct {
	Dir  string // holds data/, the socket and server.log
	Port int
	bin  string
	cred *syscall.Credential
	opts Options
	temp bool // Dir was created by Start: Stop removes it

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the server process has exited.
	exited chan struct{}
}

// defaultSettings make a fast, logical-replication-ready test server. fsync
// is off: tests kill processes, never the machine.
func defaultSettings() map[string]string {
	return map[string]string{
		"wal_level":             "logical",
		"max_replication_slots": "32",
		"max_wal_senders":       "32",
		"max_connections":       "200",
		"fsync":                 "off",
		"full_page_writes":      "off",
		"synchronous_commit":    "off",
		"shared_buffers":        "64MB",
		"listen_addresses":      "127.0.0.1",
		"log_min_messages":      "warning",
		"log_line_prefix":       "%m [%p] %q%a ",
		"max_worker_processes":  "16",
		"wal_sender_timeout":    "60s",
		"TimeZone":              "UTC",
	}
}

// BinDir finds the directory holding initdb and postgres: $PGVEIL_PG_BIN,
// then PATH, then the newest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if d := os.Getenv("PGVEIL_PG_BIN"); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
		if pg, err := exec.LookPath("postgres"); err == nil {
			if real, err := filepath.EvalSymlinks(pg); err == nil {
				return filepath.Dir(real), nil
			}
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin: install the server (Debian: apt-get install postgresql)")
}

func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// Start creates and starts a cluster.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, opts: opts, Dir: opts.Dir}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "pgveil-pg-"); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		c.temp = true
	}
	if err := c.setOwner(); err != nil {
		c.cleanup()
		return nil, err
	}
	if err := c.initdb(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}

// setOwner arranges for the server to run as "postgres" when we are root.
func (c *Cluster) setOwner() error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("cluster: running as root, and initdb refuses root: create a postgres system user (installing Debian's postgresql package does): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if err := os.Chown(c.Dir, uid, gid); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	// The server must be able to reach its directory.
	for d := filepath.Dir(c.Dir); d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("cluster: %s is not searchable by the postgres user; use a directory under /tmp", d)
		}
	}
	return nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8", "TZ=UTC")
	cmd.Dir = c.Dir
	return cmd
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

// LogPath is the server's log file.
func (c *Cluster) LogPath() string { return filepath.Join(c.Dir, "server.log") }

func (c *Cluster) initdb(ctx context.Context) error {
	args := append([]string{"-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"}, c.opts.InitArgs...)
	out, err := c.command(ctx, "initdb", args...).CombinedOutput()
	if err != nil {
		// Older initdb lacks C.UTF-8 support for --locale: fall back to C.
		args[7] = "--locale=C"
		if out2, err2 := c.command(ctx, "initdb", args...).CombinedOutput(); err2 == nil {
			return nil
		} else {
			out = append(out, out2...)
		}
		return fmt.Errorf("cluster: initdb: %w\n%s", err, out)
	}
	return nil
}

// start runs the server on a free port (retrying if another process takes
// the port first) and waits until it accepts connections.
func (c *Cluster) start(ctx context.Context) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := c.Port
		if port == 0 || attempt > 0 {
			p, err := freePort()
			if err != nil {
				return err
			}
			port = p
		}
		c.Port = port
		if lastErr = c.launch(ctx); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

func (c *Cluster) launch(ctx context.Context) error {
	settings := defaultSettings()
	for k, v := range c.opts.Settings {
		settings[k] = v
	}
	settings["port"] = strconv.Itoa(c.Port)
	settings["unix_socket_directories"] = c.Dir
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if err := c.persist(settings, keys); err != nil {
		return err
	}
	args := []string{"-D", c.dataDir()}
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	logf, err := os.OpenFile(c.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	// Not CommandContext: the server outlives the start-up context.
	cmd := c.command(context.Background(), "postgres", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server stops (immediate shutdown) if this process dies.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cluster: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()

	deadline := time.Now().Add(startWait)
	for {
		select {
		case <-exited:
			return fmt.Errorf("cluster: postgres exited during start-up; log %s:\n%s", c.LogPath(), tail(c.LogPath(), 20))
		case <-ctx.Done():
			c.Kill()
			return ctx.Err()
		default:
		}
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			c.Kill()
			return fmt.Errorf("cluster: postgres did not accept connections within %s: %w; log %s:\n%s", startWait, err, c.LogPath(), tail(c.LogPath(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// How long the helpers wait for the server and for their own set-up
// work. Generous: on a loaded machine running several clusters, initdb,
// crash recovery or a shutdown checkpoint may take many times what they
// take on an idle one, and a wait only ends early when something is
// wrong anyway.
const (
	// startWait bounds a start (or restart, crash recovery included)
	// until the server accepts connections.
	startWait = 3 * time.Minute
	// stopWait bounds a shutdown (fast or immediate) before the server's
	// processes are killed.
	stopWait = 3 * time.Minute
)

// settingsFile is the file, in the data directory, that holds the
// cluster's settings; postgresql.conf includes it. The server gets them
// on its command line too, but a kept cluster (the demo's --keep) is
// started again with pg_ctl, which passes none: without the file it
// would come back with wal_level = replica, and pgveil would refuse it.
//
// The name predates this package (it was internal/pgtest): clusters kept
// by earlier demos include it by that name, and the README cites it.
const settingsFile = "pgtest.conf"

// persist writes settings to settingsFile and makes postgresql.conf
// include it (once).
func (c *Cluster) persist(settings map[string]string, keys []string) error {
	var b strings.Builder
	b.WriteString("# Written by pgveil (internal/cluster) at each start: the settings the server was started with.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(settings[k], "'", "''"))
	}
	path := filepath.Join(c.dataDir(), settingsFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("cluster: writing the settings: %w", err)
	}
	conf := filepath.Join(c.dataDir(), "postgresql.conf")
	data, err := os.ReadFile(conf)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	include := "include_if_exists = '" + settingsFile + "'"
	if !strings.Contains(string(data), include) {
		f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		_, err = fmt.Fprintf(f, "\n# pgveil: the cluster's settings.\n%s\n", include)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("cluster: adding the settings to postgresql.conf: %w", err)
		}
	}
	if c.cred != nil {
		// The log too: pg_ctl appends to it as the postgres user.
		if f, err := os.OpenFile(c.LogPath(), os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
		for _, p := range []string{path, c.LogPath()} {
			if err := os.Chown(p, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
		}
	}
	return nil
}

// StartCommand is the shell command that starts the cluster again once
// stopped (after the demo's --keep): pg_ctl with the data directory and
// the log, as the postgres system user when we run as root.
func (c *Cluster) StartCommand() string {
	return c.ctlCommand("-l " + shellQuote(c.LogPath()) + " start")
}

// StopCommand is the shell command that stops a cluster StartCommand
// started.
func (c *Cluster) StopCommand() string { return c.ctlCommand("-m fast stop") }

func (c *Cluster) ctlCommand(args string) string {
	cmd := shellQuote(filepath.Join(c.bin, "pg_ctl")) + " -D " + shellQuote(c.dataDir()) + " " + args
	if c.cred != nil {
		return "su postgres -c " + shellQuote(cmd)
	}
	return cmd
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cluster: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DSN returns a connection string for database db, as the superuser
// postgres, over TCP.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", c.Port, db)
}

// URL returns the same as DSN, in URL form.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// signal sends sig to the server and waits for it to exit.
func (c *Cluster) signal(sig syscall.Signal, wait time.Duration) error {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return nil
	case <-time.After(wait):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return fmt.Errorf("cluster: postgres did not stop within %s after %v", wait, sig)
	}
}

// Kill stops the server at once (immediate shutdown: no checkpoint, as in
// a crash). Restart brings it back.
func (c *Cluster) Kill() error { return c.signal(syscall.SIGQUIT, stopWait) }

// Shutdown stops the server cleanly (fast shutdown).
func (c *Cluster) Shutdown() error { return c.signal(syscall.SIGINT, stopWait) }

// Restart starts a stopped server again on the same port and data.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.Shutdown(); err != nil {
		return err
	}
	return c.launch(ctx)
}

// PID is the postmaster's process id, 0 when the server is not running.
// The CPU time of its ended children (backends, walsenders, workers)
// is added to its own in /proc/PID/stat once they have exited.
func (c *Cluster) PID() int {
	if !c.Running() {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd.Process.Pid
}

// Running reports whether the server process is up.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exited == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// Stop shuts the server down and removes a temporary directory.
func (c *Cluster) Stop() error {
	err := c.Shutdown()
	c.cleanup()
	return err
}

func (c *Cluster) cleanup() {
	if c.temp && c.Dir != "" {
		os.RemoveAll(c.Dir)
	}
}

// CreateDB creates a database and returns its DSN.
func (c *Cluster) CreateDB(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+schema.QuoteIdent(name)); err != nil {
		return "", fmt.Errorf("cluster: creating database %s: %w", name, err)
	}
	return c.DSN(name), nil
}

// Exec runs sql (one or more statements, no parameters) on a new
// connection to dsn.
func Exec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// DropDB drops a database, first dropping its replication slots and
// ending its sessions.
func (c *Cluster) DropDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, name)
	_, _ = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, name)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+schema.QuoteIdent(name)+" WITH (FORCE)")
	return err
}
