package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/transform"
)

func runValidate(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "validate")
	fileFlag := configFlag(fs)
	offline := fs.Bool("offline", false, "check the file alone, without connecting to the source database")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	file := *fileFlag
	reg := transform.Builtin()
	cfg, err := rules.Load(file, e.lookupEnv, reg)
	if err != nil {
		return reportProblems(e, err)
	}
	if !*offline {
		return validateOnline(ctx, e, cfg, reg)
	}
	// Offline there is no catalog: only the references the rules declare.
	if ps := refs.Check(cfg, nil); len(ps) > 0 {
		printReferenceProblems(e, ps)
		fmt.Fprintf(e.stderr, "%d problem%s\n", len(ps), plural(len(ps)))
		return exitProblems
	}
	fmt.Fprintf(e.stdout, "%s: OK (offline): %s\n", file, summarize(cfg))
	printTenancy(e, cfg)
	fmt.Fprintln(e.stdout, offlineReferenceSummary(cfg))
	return exitOK
}

// reportProblems prints every problem of a rules file, or the error.
func reportProblems(e *env, err error) int {
	var ps rules.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(e.stderr, p.String())
		}
		n := len(ps.Errors())
		fmt.Fprintf(e.stderr, "%d problem%s\n", n, plural(n))
		if n == 0 {
			return exitOK
		}
		return exitProblems
	}
	fmt.Fprintf(e.stderr, "pgveil: %v\n", err)
	return exitProblems
}

// summarize counts tables and the columns using each transformer.
func summarize(cfg *rules.Config) string {
	counts := map[string]int{}
	cols := 0
	for _, t := range cfg.Tables {
		for _, c := range t.Columns {
			counts[c.Rule.Name]++
			cols++
		}
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, counts[n])
	}
	return fmt.Sprintf("%d table%s, %d column%s (%s)", len(cfg.Tables), plural(len(cfg.Tables)), cols, plural(cols), strings.Join(parts, ", "))
}

// printTenancy says how the tenants read the tables, naming those they
// cannot read: a table left out by mistake shows there.
func printTenancy(e *env, cfg *rules.Config) {
	if cfg.Tenancy == nil {
		return
	}
	s := cfg.Split()
	line := fmt.Sprintf("tenancy: %d tenant table%s, %d shared, %d hidden from tenants", s.Tenant, plural(s.Tenant), s.Shared, len(s.Hidden))
	if len(s.Hidden) > 0 {
		line += " (" + strings.Join(s.Hidden, ", ") + ")"
	}
	fmt.Fprintln(e.stdout, line)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
