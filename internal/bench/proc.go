package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"pgveil/internal/process"
)

// BuildPgveil builds cmd/pgveil into dir with the go tool, from the module
// the benchmark runs in, and returns the binary's path.
func BuildPgveil(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "pgveil")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "pgveil/cmd/pgveil")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building pgveil (or pass --pgveil PATH): %w\n%s", err, b)
	}
	return out, nil
}

// Proc is a running pgveil process.
type Proc struct {
	*process.Process
}

// StartPgveil runs `pgveil run` with the rules file and environment of
// Site.Config.
func (s *Site) StartPgveil(config string, env []string, extra ...string) (*Proc, error) {
	args := append([]string{"run", "-c", config, "--log-format", "json", "--log-level", logLevel(), // info or more: StreamingSince reads it
		"--spill-dir", s.Dir, "--status-interval", "1s"}, extra...)
	if s.ProfileDir != "" {
		s.profiles++
		args = append(args, "--cpu-profile", filepath.Join(s.ProfileDir, fmt.Sprintf("pgveil-%02d.pprof", s.profiles)))
	}
	cmd := exec.Command(s.Pgveil, args...)
	cmd.Env = append(os.Environ(), env...)
	p, err := process.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting pgveil: %w", err)
	}
	return &Proc{p}, nil
}

// Stop ends pgveil with SIGTERM (a clean stop) and waits for it.
func (p *Proc) Stop() error {
	err := p.Process.Stop(syscall.SIGTERM, 3*time.Minute)
	if dir := os.Getenv("PGVEIL_BENCH_KEEP_LOGS"); dir != "" && p.Exited() {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("pgveil-%d.log", p.PID())), []byte(p.Output()), 0o644)
	}
	return err
}

// exitError reports pgveil's end, if it has ended, with its log.
func (p *Proc) exitError() error {
	if !p.Exited() {
		return nil
	}
	return fmt.Errorf("pgveil exited (%v):\n%s", p.Err(), p.Output())
}

// waitUntil polls cond every interval until it is true, the process (if
// any) exits, or the timeout passes.
func waitUntil(ctx context.Context, p *Proc, timeout, interval time.Duration, what string, cond func(ctx context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if p != nil {
			if err := p.exitError(); err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s did not happen within %s", what, timeout)
			if p != nil {
				msg += "\npgveil's log:\n" + p.Output()
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// rowVisible returns a condition: a row with this id is in table on dsn.
func rowVisible(conn *pgx.Conn, table string, id int64) func(ctx context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		var ok bool
		err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+table+" WHERE id = $1)", id).Scan(&ok)
		if err != nil && strings.Contains(err.Error(), "does not exist") {
			return false, nil // not created yet
		}
		return ok, err
	}
}

// checkpointWritten returns a condition: pgveil has finished its initial
// copy (the checkpoint of slot exists in the target).
func checkpointWritten(conn *pgx.Conn, slot string) func(ctx context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		var ok bool
		err := conn.QueryRow(ctx, `SELECT to_regclass('pgveil.checkpoint') IS NOT NULL`).Scan(&ok)
		if err != nil || !ok {
			return false, err
		}
		err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pgveil.checkpoint WHERE slot = $1)`, slot).Scan(&ok)
		return ok, err
	}
}

// StreamingSince is when pgveil logged that it started streaming (after
// connecting, checking the rules and the target), or its start when it has
// not.
func (p *Proc) StreamingSince() time.Time {
	for _, line := range strings.Split(p.Output(), "\n") {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "streaming" {
			return rec.Time
		}
	}
	return p.Started()
}

// logLevel is pgveil's log level in the benchmark: info, or
// $PGVEIL_BENCH_LOG_LEVEL (its logs are printed when it fails, and kept in
// the run's directory).
func logLevel() string {
	if l := os.Getenv("PGVEIL_BENCH_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}
