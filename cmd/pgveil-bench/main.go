// Command pgveil-bench measures pgveil against the baselines users already
// have, in one run on the same data: a raw COPY pipe, a native logical
// replication subscription, and pg_dump | psql. It starts its own
// PostgreSQL clusters, prints a table, and writes the figures as JSON.
//
//	go run ./cmd/pgveil-bench [--quick] [--scale tiny|small|medium|large|ROWS] [--out bench.json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pgveil/internal/bench"
)

// scales are the named data sizes: rows seeded across the example's
// tables.
var scales = map[string]int{"tiny": 20_000, "small": 200_000, "medium": 2_000_000, "large": 5_000_000}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pgveil-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "short runs (about 6 minutes on 2 cores): a smaller backlog, shorter lag runs, a smaller big transaction, smaller growth curves")
	scaleFlag := fs.String("scale", "medium", "data size: tiny (20k rows), small (200k), medium (2M), large (5M), or a number of rows")
	out := fs.String("out", "", "write the results as JSON to this `file`")
	pgveilBin := fs.String("pgveil", "", "the pgveil `binary` to measure (default: built from this module with go build)")
	dir := fs.String("dir", "", "`directory` for the clusters (default: a new temporary one, removed at the end)")
	only := fs.String("only", "", "comma-separated scenarios to run: snapshot, catch-up, lag, big, growth, micro (default: all)")
	profile := fs.String("profile", "", "write a CPU profile of each pgveil process into this `directory`")
	bigRows := fs.Int("big-rows", 0, "rows of the big transaction (default: 5000000, or 500000 with --quick)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	scale, ok := scales[*scaleFlag]
	if !ok {
		n, err := strconv.Atoi(*scaleFlag)
		if err != nil || n < 1000 {
			fmt.Fprintf(stderr, "pgveil-bench: --scale %q: want tiny, small, medium, large or a number of rows (at least 1000)\n", *scaleFlag)
			return 2
		}
		scale = n
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	runs := func(name string) bool { return len(want) == 0 || want[name] }

	log := slog.New(slog.NewTextHandler(stderr, nil))
	base := *dir
	if base == "" {
		d, err := os.MkdirTemp("", "pgveil-bench-")
		if err != nil {
			fmt.Fprintf(stderr, "pgveil-bench: %v\n", err)
			return 1
		}
		os.Chmod(d, 0o755) // the postgres user runs the clusters when we are root
		defer os.RemoveAll(d)
		base = d
	}
	if *profile != "" {
		// Made here, not after the seeding: a missing directory fails the
		// first pgveil run, minutes into the benchmark.
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			fmt.Fprintf(stderr, "pgveil-bench: --profile: %v\n", err)
			return 1
		}
	}
	report := &bench.Report{Started: time.Now().UTC(), Command: "pgveil-bench " + strings.Join(args, " "),
		Machine: bench.MachineDescription(), Scale: scale, Quick: *quick}
	began := time.Now()
	if err := measure(ctx, base, scale, *quick, *bigRows, *pgveilBin, *profile, runs, report, log); err != nil {
		fmt.Fprintf(stderr, "pgveil-bench: %v\n", err)
		return 1
	}
	report.Seconds = time.Since(began).Seconds()
	report.EvaluateGoals()
	fmt.Fprintf(stdout, "pgveil-bench, %s rows (%s), %s; %s; %.0f s\n\n", *scaleFlag, strconv.Itoa(scale), quickWord(*quick), report.Machine, report.Seconds)
	report.Print(stdout)
	if *out != "" {
		if err := report.WriteJSON(*out); err != nil {
			fmt.Fprintf(stderr, "pgveil-bench: %v\n", err)
			return 1
		}
	}
	return 0
}

func quickWord(q bool) string {
	if q {
		return "quick"
	}
	return "full"
}

func measure(ctx context.Context, dir string, scale int, quick bool, bigRows int, pgveilBin, profile string, runs func(string) bool, r *bench.Report, log *slog.Logger) error {
	if runs("micro") {
		m, err := bench.Microbenchmarks()
		if err != nil {
			return err
		}
		r.Micro = m
	}
	if !runs("snapshot") && !runs("catch-up") && !runs("lag") && !runs("big") && !runs("growth") {
		return nil
	}
	if pgveilBin == "" {
		b, err := bench.BuildPgveil(ctx, dir)
		if err != nil {
			return err
		}
		pgveilBin = b
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	site, err := bench.NewSite(setup, dir, pgveilBin, scale, log)
	if err != nil {
		return err
	}
	defer site.Close()
	site.ProfileDir = profile
	r.Postgres = site.ServerVersion(ctx)
	if runs("snapshot") {
		if err := bench.Snapshot(ctx, site, r); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	if runs("growth") {
		if err := bench.Growth(ctx, site, growthOptions(quick, scale), r); err != nil {
			return err
		}
	}
	// Both load rates in every run: each has a goal of its own.
	o := bench.StreamOptions{Backlog: 500_000, Rates: []int{500, 2000}, LagFor: 60 * time.Second, BigRows: 5_000_000,
		SkipCatch: !runs("catch-up"), SkipLag: !runs("lag"), SkipBig: !runs("big")}
	if quick {
		o.Backlog, o.LagFor, o.BigRows = 100_000, 10*time.Second, 500_000
		if scale <= scales["tiny"] { // the smoke test: every scenario, briefly
			o.Backlog, o.LagFor, o.BigRows = 20_000, 3*time.Second, 50_000
		}
	}
	if bigRows > 0 {
		o.BigRows = bigRows
	}
	if o.SkipCatch && o.SkipLag && o.SkipBig {
		return nil
	}
	return bench.Stream(ctx, site, o, r)
}

// growthOptions size the cost-growth curves: the points (10, 100
// and 1000 tables; 10 and 200 columns; 1, 10 and 100 tables per
// transaction) with fewer rows in --quick, and small curves for the
// smoke test, which must stay fast.
func growthOptions(quick bool, scale int) bench.GrowthOptions {
	o := bench.GrowthOptions{Tables: []int{10, 100, 1000}, RowsPerTable: 1000, Columns: []int{10, 200}, WideRows: 200_000,
		Touched: []int{1, 10, 100}, Transactions: 2000}
	if quick {
		o.RowsPerTable, o.WideRows, o.Transactions = 100, 20_000, 200
		if scale <= scales["tiny"] {
			o = bench.GrowthOptions{Tables: []int{5, 10, 20}, RowsPerTable: 20, Columns: []int{10, 50}, WideRows: 1000,
				Touched: []int{1, 5, 10}, Transactions: 20}
		}
	}
	return o
}
