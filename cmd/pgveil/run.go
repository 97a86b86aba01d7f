package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"pgveil/replicate"
	"pgveil/replicate/metrics"
	"pgveil/replicate/source"
	"pgveil/rules"
	"pgveil/transform"
)

func runRun(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "run")
	fileFlag := configFlag(fs)
	logFormat := fs.String("log-format", "auto", "`format` of the log: text, json, or auto (text on a terminal, json otherwise)")
	logLevel := fs.String("log-level", "info", "`level`: debug, info, warn or error")
	workers := fs.Int("snapshot-workers", 4, "source connections copying the initial snapshot in parallel")
	// No os.TempDir() here: a shared /tmp lets another user pre-create
	// pgveil's directory. "" lets replicate pick a private one.
	spillDir := fs.String("spill-dir", "", "`directory` for large in-progress transactions until they commit (default: $STATE_DIRECTORY, else $TMPDIR if only pgveil's user can write it, else $XDG_STATE_HOME/pgveil or ~/.local/state/pgveil)")
	listen := fs.String("listen", "", "serve /metrics (Prometheus) and /healthz on this `address`, e.g. :9187")
	watch := fs.Bool("watch", false, "reload the rules when the file changes (SIGHUP always does)")
	statusInterval := fs.Duration("status-interval", 10*time.Second, "how often production is told how far the replica has committed")
	cpuProfile := fs.String("cpu-profile", "", "diagnostics: write a CPU profile (go tool pprof) to this `file` until pgveil stops")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	file := *fileFlag
	tuneGC(e.lookupEnv)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(e.stderr, "pgveil run: --cpu-profile: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(e.stderr, "pgveil run: --cpu-profile: %v\n", err)
			return exitUsage
		}
		defer pprof.StopCPUProfile()
	}
	log, err := newLogger(e.stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil run: %v\n", err)
		return exitUsage
	}
	reg := transform.Builtin()
	cfg, err := rules.Load(file, e.lookupEnv, reg)
	if err != nil {
		return reportProblems(e, err)
	}
	m := metrics.New(time.Now)
	m.SetBuildInfo(buildVersion())
	// Every series exists from the first scrape, the per-table ones too.
	m.Tables(replicate.TableLabels(cfg))
	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintf(e.stderr, "pgveil run: --listen: %v\n", err)
			return exitUsage
		}
		srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("serving /metrics and /healthz", "address", ln.Addr().String())
	}
	p := replicate.New(replicate.Options{
		Config: cfg, Registry: reg, Logger: log, Observer: m,
		Snapshot: replicate.SnapshotOptions{Workers: *workers},
		Stream:   replicate.StreamOptions{SpillDir: *spillDir, StatusInterval: *statusInterval},
	})
	rl := &reloader{file: file, env: e, reg: reg, log: log, p: p}
	rl.last, _ = os.ReadFile(file)
	stopReload := rl.start(ctx, *watch)
	defer stopReload()
	err = p.Run(ctx)
	if err != nil {
		var rp rules.Problems
		if errors.As(err, &rp) {
			return reportProblems(e, rp)
		}
		log.Error("pgveil stopped", "error", err.Error())
		// Statements for the tables' owner read better on lines of their
		// own than inside a log record.
		var oe *source.OwnerNeededError
		if errors.As(err, &oe) {
			fmt.Fprintf(e.stderr, "\npgveil run: %v\n", oe)
		}
		return exitProblems
	}
	log.Info("pgveil stopped")
	return exitOK
}

// reloader puts changed rules in force on SIGHUP and, with --watch, when
// the file changes. Invalid rules are logged (positions and messages, no
// values) and the rules in force stay.
type reloader struct {
	file string
	env  *env
	reg  *transform.Registry
	log  *slog.Logger
	p    *replicate.Pipeline
	last []byte
}

func (r *reloader) start(ctx context.Context, watch bool) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var tick <-chan time.Time
		if watch {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.reload(ctx, "SIGHUP")
			case <-tick:
				if data, err := os.ReadFile(r.file); err == nil && !bytes.Equal(data, r.last) {
					r.reload(ctx, "the file changed")
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

func (r *reloader) reload(ctx context.Context, why string) {
	data, err := os.ReadFile(r.file)
	if err != nil {
		r.log.Error("reloading the rules", "why", why, "error", err.Error())
		return
	}
	r.last = data
	cfg, err := rules.Parse(r.file, data, r.env.lookupEnv, r.reg)
	if err == nil {
		err = r.p.Reload(ctx, cfg)
	}
	var pending *replicate.RulesPendingError
	if errors.As(err, &pending) {
		// The pipeline has logged what they wait for.
		r.log.Info("the new rules are valid and wait; the rules in force keep streaming", "why", why, "file", r.file)
		return
	}
	if err != nil {
		r.log.Error("the new rules are refused; the rules in force stay", "why", why, "problems", strings.TrimSpace(err.Error()))
		return
	}
	r.log.Info("new rules accepted", "why", why, "file", r.file)
}

// newLogger builds the slog logger of the run command.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "auto":
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return slog.New(slog.NewTextHandler(w, opts)), nil
			}
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text, json or auto", format)
}

// The garbage collector's settings for run when the environment sets
// neither GOGC nor GOMEMLIMIT. Masking allocates a little per value, and
// at the default GOGC=100 a heap of 30 MiB was collected 145 times in a
// 2M-row snapshot; at 400 pgveil's CPU per row fell by about a tenth
// (BENCHMARKS.md "Snapshot CPU"). The soft memory limit keeps the larger
// heap bounded: past it the collector runs as often as it must, so the
// peak stays near the limit whatever GOGC allows.
const (
	runGCPercent   = 400
	runMemoryLimit = 160 << 20
)

// tuneGC applies runGCPercent and runMemoryLimit unless the environment
// sets either GOGC or GOMEMLIMIT (then the runtime has read them).
func tuneGC(lookupEnv func(string) (string, bool)) {
	if _, ok := lookupEnv("GOGC"); ok {
		return
	}
	if _, ok := lookupEnv("GOMEMLIMIT"); ok {
		return
	}
	debug.SetMemoryLimit(runMemoryLimit)
	debug.SetGCPercent(runGCPercent)
}
