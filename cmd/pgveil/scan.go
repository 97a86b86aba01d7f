package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"pgveil/replicate"
	"pgveil/rules/refs"
	"pgveil/rules/scan"

	"github.com/jackc/pgx/v5"
)

// stringList is a flag that may be repeated.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// runScan reads the source catalog, samples each table and writes a
// proposed rules file. Sampled values are never printed.
func runScan(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "scan")
	dsn := fs.String("source", "", "the source `DSN` (default: $SOURCE_DSN)")
	n := fs.Int("sample", 200, "rows sampled per table (`N`; 0: decide from names and types only)")
	outFile := fs.String("o", "", "write the rules to `file` instead of stdout")
	var schemas stringList
	fs.Var(&schemas, "schema", "scan only this `schema` (repeatable; default: every schema)")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	if *dsn == "" {
		if v, ok := e.lookupEnv("SOURCE_DSN"); ok {
			*dsn = v
		}
	} else if dsnHasPassword(*dsn) {
		// Arguments are public on most systems (ps, /proc/PID/cmdline).
		fmt.Fprintln(e.stderr, "pgveil scan: warning: the DSN given with --source holds a password, which other users of this machine can read in the process list; set SOURCE_DSN instead (or leave the password out and use PGPASSWORD or ~/.pgpass)")
	}
	if *dsn == "" {
		fmt.Fprintln(e.stderr, "pgveil scan: --source DSN is required (or set SOURCE_DSN)")
		fs.Usage()
		return exitUsage
	}
	if *n < 0 {
		fmt.Fprintln(e.stderr, "pgveil scan: --sample must be 0 or more")
		return exitUsage
	}
	conn, err := replicate.ConnectSource(ctx, *dsn)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil scan: %v\n", scrubPassword(err, *dsn))
		return exitProblems
	}
	defer conn.Close(context.Background())
	skipped := 0
	tables, model, ruled, err := proposeRules(ctx, conn, schemas, *n, func(table, state string) {
		skipped++
		fmt.Fprintf(e.stderr, "pgveil scan: could not sample %s (%s): its rules come from names and types only\n", table, state)
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil scan: %v\n", scrubPassword(err, *dsn))
		return exitProblems
	}
	if len(tables) == 0 {
		fmt.Fprintln(e.stderr, "pgveil scan: no table found")
		return exitProblems
	}
	cols, masked := 0, 0
	for _, r := range ruled {
		for _, p := range r.Proposals {
			cols++
			if p.Masks() {
				masked++
			}
		}
	}
	var buf bytes.Buffer
	h := scan.Header{Comment: []string{
		"pgveil rules proposed by \"pgveil scan\" from the catalog and " + fmt.Sprint(*n) + " sampled rows per table.",
		"Review every rule: the scan guesses from names, types and values, and misses what it cannot see.",
		"Every column of every table has a rule; tables you do not want replicated can be removed.",
	}}
	if hint, ok := scan.ProposeTenancy(tables, model); ok {
		h.Tenancy = &hint
	}
	if err := scan.Write(&buf, h, ruled); err != nil {
		fmt.Fprintf(e.stderr, "pgveil scan: %v\n", err)
		return exitProblems
	}
	if *outFile == "" {
		if _, err := e.stdout.Write(buf.Bytes()); err != nil {
			return exitProblems
		}
	} else if err := os.WriteFile(*outFile, buf.Bytes(), 0o600); err != nil {
		fmt.Fprintf(e.stderr, "pgveil scan: %v\n", err)
		return exitProblems
	}
	notSampled := ""
	if skipped > 0 {
		notSampled = fmt.Sprintf(" (%d table%s not sampled)", skipped, plural(skipped))
	}
	fmt.Fprintf(e.stderr, "pgveil scan: %d table%s%s, %d column%s, %d masked; review the rules before use\n",
		len(tables), plural(len(tables)), notSampled, cols, plural(cols), masked)
	return exitOK
}

// proposeRules is the scanner: it reads the reference model (declared
// foreign keys, those on partitions lifted to their root, and references
// inferred where no constraint exists, confirmed by sampled overlap, so
// that every join keeps), the tables of schemas (every schema when
// empty) with sample rows of each (skipped is told of a table that could
// not be sampled), and proposes a rule for every column. scan and
// validate's suggestions both call it, so that they propose the same rule
// for the same column. It returns the tables, the reference model and
// the rules.
func proposeRules(ctx context.Context, conn *pgx.Conn, schemas []string, sample int, skipped func(table, state string)) ([]*scan.Table, *refs.Model, []scan.Ruled, error) {
	model, err := refs.Read(ctx, conn, refs.Options{Schemas: schemas, Infer: true})
	if err != nil {
		return nil, nil, nil, err
	}
	tables, _, err := scan.Read(ctx, conn, scan.Options{
		Schemas: schemas, Sample: sample, StatementTimeout: "30s", Skipped: skipped,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return tables, model, scan.Propose(tables, model), nil
}
