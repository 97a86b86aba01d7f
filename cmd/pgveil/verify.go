package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jackc/pglogrepl"

	"pgveil/replicate"
	"pgveil/transform"
)

func runVerify(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "verify")
	file := configFlag(fs)
	table := fs.String("table", "", "compare only this `table` (name or schema.name)")
	sample := fs.Int("sample", 0, "compare a random sample of `N` source rows per table, looked up by key in the replica (0: compare every row)")
	wait := fs.Duration("wait", 60*time.Second, "how long to wait for the replica to reach the source's position")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	if *sample < 0 || *wait < 0 {
		fmt.Fprintln(e.stderr, "pgveil verify: --sample and --wait cannot be negative")
		return exitUsage
	}
	cfg, reg, code := loadRules(e, *file)
	if code >= 0 {
		return code
	}
	var only []string
	if *table != "" {
		tr, err := findTableRule(cfg, *table)
		if err != nil {
			fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
			return exitProblems
		}
		only = []string{tr.Schema, tr.Name}
	}
	src, err := openSource(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
		return exitProblems
	}
	defer src.Close(context.Background())
	prep, err := replicate.PrepareRunning(ctx, src, cfg, reg)
	if err != nil {
		n := printPrepareError(e, "verify", cfg, err, nil)
		fmt.Fprintf(e.stderr, "%d problem%s\n", n, plural(n))
		return exitProblems
	}
	tables := prep.Plan.Tables()
	if only != nil {
		tp := prep.Plan.Table(only[0], only[1])
		if tp == nil {
			fmt.Fprintf(e.stderr, "pgveil verify: table %s is not in the source\n", *table)
			return exitProblems
		}
		tables = []*transform.TablePlan{tp}
	}
	tgt, err := openTarget(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
		return exitProblems
	}
	defer tgt.Close(context.Background())
	// A second source connection holds the snapshot; src reads each table
	// in a transaction of its own that imports it.
	snap, err := openSource(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
		return exitProblems
	}
	defer snap.Close(context.Background())

	v := &replicate.Verifier{
		Source: src, Snapshot: snap, Target: tgt, Slot: cfg.Source.Slot, Wait: *wait, Sample: *sample, Catalog: prep.Catalog,
		LookingAgain: func(n int, at pglogrepl.LSN) {
			verb := "s differ"
			if n == 1 {
				verb = " differs"
			}
			fmt.Fprintf(e.stderr, "%d table%s at source position %s; looking again at a newer position\n", n, verb, at)
		},
	}
	res, err := v.Verify(ctx, tables)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil verify: %v\n", err)
		return exitProblems
	}
	printVerify(e, res.Tables, *sample > 0)
	if bad := res.Bad(); bad > 0 {
		verb := "differ"
		if bad == 1 {
			verb = "differs"
		}
		fmt.Fprintf(e.stdout, "verify: %d of %d table%s %s (source position %s)\n", bad, len(res.Tables), plural(len(res.Tables)), verb, res.LSN)
		return exitProblems
	}
	fmt.Fprintf(e.stdout, "verify: %d table%s OK (source position %s)\n", len(res.Tables), plural(len(res.Tables)), res.LSN)
	return exitOK
}

// printVerify prints one line of counts per table. A table that rows
// changed in while verify read it says how many on its line: its counts
// are those of its last look, in which the replica had moved on from the
// source's snapshot, so REPLICA is not SOURCE - MISSING + EXTRA there.
func printVerify(e *env, diffs []replicate.TableDiff, sample bool) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if sample {
		fmt.Fprintln(tw, "TABLE\tSAMPLED\tMISSING\tDIFFERENT\tRESULT")
	} else {
		fmt.Fprintln(tw, "TABLE\tSOURCE\tREPLICA\tMISSING\tEXTRA\tDIFFERENT\tRESULT")
	}
	for _, d := range diffs {
		verdict := "OK"
		if !d.OK() {
			verdict = "DIFF"
		}
		if d.Changed > 0 {
			verdict += fmt.Sprintf(" (%d row%s changed during the check, not counted)", d.Changed, plural(int(d.Changed)))
		}
		if sample {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", d.Table, d.Source, d.Missing, d.Different, verdict)
		} else {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", d.Table, d.Source, d.Target, d.Missing, d.Extra, d.Different, verdict)
		}
	}
	tw.Flush()
}
