// Package process runs one child process for the tests and the benchmarks
// (the pgveil binary, mostly): it starts the command with its output
// captured, waits for a line of that output, signals, stops or kills it,
// and always reaps it, so that no test or benchmark leaves a process
// behind or reads an exit status that is not there yet.
//
// It must not import "testing": the benchmark command links it. The
// test-side wrapper (stopped when the test ends) is pgtest.StartProcess.
package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pgveil/internal/syncbuf"
)

// Process is a started command. Its methods are safe for concurrent use.
type Process struct {
	cmd     *exec.Cmd
	out     *syncbuf.Buffer
	started time.Time
	done    chan struct{} // closed once the process has exited and been reaped
	err     error         // the exit status; written before done is closed
}

// Start starts cmd with its standard output and error both captured
// (Output reads them) and reaps it in the background when it exits.
func Start(cmd *exec.Cmd) (*Process, error) {
	p := &Process{cmd: cmd, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p.started = time.Now()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited (and been reaped).
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exit status once Done is closed (nil for a clean exit), and
// nil before.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Output is what the process has written to standard output and error so
// far.
func (p *Process) Output() string { return p.out.String() }

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Started is when the process was started.
func (p *Process) Started() time.Time { return p.started }

// Signal sends sig to the process; a process that has already exited is
// not an error.
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling %s: %w", p.cmd.Path, err)
	}
	return nil
}

// Kill ends the process with SIGKILL (as a crash would) and waits until
// it is reaped.
func (p *Process) Kill() error {
	err := p.Signal(syscall.SIGKILL)
	<-p.done
	return err
}

// ErrNotStopped is Stop's error when the process outlived the wait.
var ErrNotStopped = errors.New("did not stop")

// Stop sends sig (SIGTERM for a clean stop) and waits up to wait for the
// process to exit; it returns the exit status. A process still running
// after wait is killed and reaped, and Stop says it did not stop.
func (p *Process) Stop(sig os.Signal, wait time.Duration) error {
	if err := p.Signal(sig); err != nil {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(wait):
		_ = p.Kill()
		return fmt.Errorf("%s %w within %s after %v: killed", p.cmd.Path, ErrNotStopped, wait, sig)
	}
}

// WaitUntil polls cond (every 50 ms: it may query a database) until it
// holds. It fails when the process exits first (with its exit status) or
// when ctx ends.
func (p *Process) WaitUntil(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-p.done:
			if cond() { // its last words may be what we wait for
				return nil
			}
			return fmt.Errorf("%s exited (%v)", p.cmd.Path, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// WaitLog waits until the output holds text; see WaitUntil.
func (p *Process) WaitLog(ctx context.Context, text string) error {
	if err := p.WaitUntil(ctx, func() bool { return strings.Contains(p.Output(), text) }); err != nil {
		return fmt.Errorf("waiting for %q in the output: %w", text, err)
	}
	return nil
}

// CPU is the CPU time (user and system) the process used, once it has
// exited; 0 before.
func (p *Process) CPU() time.Duration {
	if !p.Exited() {
		return 0
	}
	st := p.cmd.ProcessState
	return st.UserTime() + st.SystemTime()
}

// PeakRSS is the process's peak resident memory (VmHWM), in bytes, while
// it runs (Linux only).
func (p *Process) PeakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("reading VmHWM: %w", err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading /proc/%d/status: %w", p.PID(), err)
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}
