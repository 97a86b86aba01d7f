package process

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func start(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start(exec.Command("sh", "-c", script))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	return p
}

func waitContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestStopCleanly: Stop signals, and returns the exit status of a process
// that stops on the signal; the output holds what it wrote to stdout and
// stderr.
func TestStopCleanly(t *testing.T) {
	p := start(t, `trap 'echo bye >&2; exit 0' TERM; echo ready; while :; do sleep 0.05; done`)
	if err := p.WaitLog(waitContext(t), "ready"); err != nil {
		t.Fatal(err)
	}
	if p.Exited() || p.Err() != nil {
		t.Fatalf("exited %v, %v before Stop", p.Exited(), p.Err())
	}
	if err := p.Stop(syscall.SIGTERM, time.Minute); err != nil {
		t.Fatalf("Stop: %v\n%s", err, p.Output())
	}
	if !p.Exited() || p.Output() != "ready\nbye\n" {
		t.Errorf("exited %v, output %q", p.Exited(), p.Output())
	}
	if p.CPU() < 0 {
		t.Errorf("CPU %v", p.CPU())
	}
}

// TestStopKillsWhatIgnoresTheSignal: a process still running after Stop's
// wait is killed and reaped, and Stop says so.
func TestStopKillsWhatIgnoresTheSignal(t *testing.T) {
	p := start(t, `trap '' TERM; echo ready; while :; do sleep 0.05; done`)
	if err := p.WaitLog(waitContext(t), "ready"); err != nil {
		t.Fatal(err)
	}
	err := p.Stop(syscall.SIGTERM, 200*time.Millisecond)
	if !errors.Is(err, ErrNotStopped) {
		t.Errorf("Stop: %v, want did not stop", err)
	}
	if !p.Exited() {
		t.Error("not reaped after Stop")
	}
}

// TestKill: Kill ends the process and returns once it is reaped, with
// its exit status (killed) in Err; a second Kill is harmless.
func TestKill(t *testing.T) {
	p := start(t, `echo ready; exec sleep 600`)
	if err := p.WaitLog(waitContext(t), "ready"); err != nil {
		t.Fatal(err)
	}
	if rss, err := p.PeakRSS(); err != nil || rss <= 0 {
		t.Errorf("PeakRSS %d, %v", rss, err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || p.Err() == nil || !strings.Contains(p.Err().Error(), "killed") {
		t.Errorf("after Kill: exited %v, status %v", p.Exited(), p.Err())
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
}

// TestWaitLogFailsWhenTheProcessExits: waiting for a line the process
// never writes ends when it exits, with its exit status; a line written
// just before exiting is still found.
func TestWaitLogFailsWhenTheProcessExits(t *testing.T) {
	p := start(t, `echo starting; exit 3`)
	err := p.WaitLog(waitContext(t), "ready")
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("WaitLog: %v, want the exit status", err)
	}
	if err := p.WaitLog(waitContext(t), "starting"); err != nil {
		t.Errorf("WaitLog of the last line: %v", err)
	}
}

// TestWaitLogEndsWithTheContext: a wait ends with its context.
func TestWaitLogEndsWithTheContext(t *testing.T) {
	p := start(t, `exec sleep 600`)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.WaitLog(ctx, "never"); err == nil || !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
		t.Errorf("WaitLog: %v, want the context's end", err)
	}
}
