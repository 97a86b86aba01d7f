package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"pgveil/replicate"
	"pgveil/rules"
	"pgveil/transform"
)

func runRun(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "run")
	var file string
	fs.StringVar(&file, "c", "pgveil.yaml", "the rules `file`")
	fs.StringVar(&file, "config", "pgveil.yaml", "the rules `file` (same as -c)")
	logFormat := fs.String("log-format", "auto", "`format` of the log: text, json, or auto (text on a terminal, json otherwise)")
	logLevel := fs.String("log-level", "info", "`level`: debug, info, warn or error")
	workers := fs.Int("snapshot-workers", 4, "source connections copying the initial snapshot in parallel")
	spillDir := fs.String("spill-dir", os.TempDir(), "`directory` for large in-progress transactions until they commit")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "pgveil run: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
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
	err = replicate.Run(ctx, replicate.Options{
		Config: cfg, Registry: reg, Logger: log,
		Snapshot: replicate.SnapshotOptions{Workers: *workers},
		Stream:   replicate.StreamOptions{SpillDir: *spillDir},
	})
	if err != nil {
		var rp rules.Problems
		if errors.As(err, &rp) {
			return reportProblems(e, rp)
		}
		log.Error("pgveil stopped", "error", err.Error())
		return exitProblems
	}
	log.Info("pgveil stopped")
	return exitOK
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
