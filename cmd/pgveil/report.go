package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"pgveil/rules"
	"pgveil/rules/report"
)

// privacyReport is what report prints, as text or as one JSON object (the
// fields are documented in docs/operations.md). It holds names from the
// rules and counts: never a value of the database.
type privacyReport struct {
	Config string         `json:"config"`
	K      int            `json:"k"`
	Tables []privacyTable `json:"tables"`
	// Measured counts the sets measured, Empty those of them on an empty
	// table (no k), BelowK those whose k is below K, Failed those that
	// could not be measured.
	Measured int  `json:"measured"`
	Empty    int  `json:"empty"`
	BelowK   int  `json:"below_k"`
	Failed   int  `json:"failed"`
	OK       bool `json:"ok"` // no set failed and, with --fail-under, none is below k
}

type privacyTable struct {
	Table   string        `json:"table"`
	KeptRaw []string      `json:"kept_raw"`
	Quasi   []quasiColumn `json:"quasi_identifiers"`
	Sets    []setResult   `json:"sets"`
}

type quasiColumn struct {
	Column string `json:"column"`
	Kind   string `json:"kind"`
	Rule   string `json:"rule"`
}

type setResult struct {
	Columns []string `json:"columns"`
	Default bool     `json:"default"` // every quasi-identifier of the table, no --qi for it
	// WithinTenant is the tenant column when the set was measured within
	// each tenant (tenancy): what one tenant's role sees.
	WithinTenant string `json:"within_tenant,omitempty"`
	Rows         int64  `json:"rows"`
	Groups       int64  `json:"groups"`
	K            *int64 `json:"k"` // null when the table is empty or the set failed
	// GroupsBelowK and RowsBelowK count the groups of fewer than the
	// threshold's rows, and the rows in them.
	GroupsBelowK int64  `json:"groups_below_k"`
	RowsBelowK   int64  `json:"rows_below_k"`
	BelowK       bool   `json:"below_k"`
	Error        string `json:"error,omitempty"`
}

// qiFlag collects the --qi flags, each TABLE=column,column as given.
type qiFlag []string

func (q *qiFlag) String() string     { return strings.Join(*q, " ") }
func (q *qiFlag) Set(s string) error { *q = append(*q, s); return nil }

func runReport(ctx context.Context, e *env, args []string) int {
	fs := newFlags(e, "report")
	file := configFlag(fs)
	var qis qiFlag
	fs.Var(&qis, "qi", "measure the k-anonymity of this set of columns, `TABLE=COLUMNS` (comma-separated; repeatable; a table without one: all its quasi-identifiers together; TABLE= alone: nothing on that table)")
	k := fs.Int("k", 5, "the threshold: groups of fewer rows are counted, and a set whose smallest group is smaller is flagged")
	failUnder := fs.Bool("fail-under", false, "exit 1 when a set's k is below --k (for CI)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	timeout := fs.Duration("timeout", 5*time.Minute, "statement timeout of each set's query (0: none)")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	if *k < 1 || *timeout < 0 {
		fmt.Fprintln(e.stderr, "pgveil report: --k must be at least 1 and --timeout cannot be negative")
		return exitUsage
	}
	cfg, _, code := loadRules(e, *file)
	if code >= 0 {
		return code
	}
	var asked []report.Set
	bad := 0
	for _, arg := range qis {
		s, err := parseQI(cfg, arg)
		if err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: --qi %s: %v\n", arg, err)
			bad++
			continue
		}
		asked = append(asked, s)
	}
	if bad > 0 {
		return exitUsage
	}
	tables := report.Analyze(cfg)
	sets := report.WithinTenants(cfg, report.Sets(tables, asked))
	var ms []report.Measurement
	if len(sets) > 0 {
		tgt, err := openTarget(ctx, cfg)
		if err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: %v\n", err)
			return exitProblems
		}
		defer tgt.Close(context.Background())
		if ms, err = report.Measure(ctx, tgt, sets, report.Options{K: *k, StatementTimeout: *timeout}); err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: %v\n", err)
			return exitProblems
		}
	}
	r := buildReport(cfg, tables, ms, *k, *failUnder)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: %v\n", err)
			return exitProblems
		}
	} else {
		printReport(e.stdout, r, *failUnder)
	}
	for _, m := range ms {
		if m.Err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: set (%s): %v\n", strings.Join(m.Set.Columns, ", "), m.Err)
		}
	}
	if !r.OK {
		return exitProblems
	}
	return exitOK
}

// parseQI reads one --qi, TABLE=col1,col2: the table as preview and
// verify take it (name or schema.name, quoted parts keep their case), the
// columns comma-separated, each folded to lower case unless quoted.
func parseQI(cfg *rules.Config, arg string) (report.Set, error) {
	table, list, ok := strings.Cut(arg, "=")
	if !ok || strings.TrimSpace(table) == "" {
		return report.Set{}, errors.New("write TABLE=column,column")
	}
	tr, err := findTableRule(cfg, strings.TrimSpace(table))
	if err != nil {
		return report.Set{}, err
	}
	if strings.TrimSpace(list) == "" {
		return report.Skip(tr), nil // TABLE=: measure nothing there
	}
	var cols []string
	for _, c := range strings.Split(list, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		parts, err := splitName(c)
		if err != nil || len(parts) != 1 {
			return report.Set{}, fmt.Errorf("column %q: write a column name (quoted if it holds a dot)", c)
		}
		cols = append(cols, parts[0])
	}
	return report.NewSet(tr, cols)
}

// buildReport puts the analysis of the rules and the measurements of the
// replica together, table by table.
func buildReport(cfg *rules.Config, tables []report.Table, ms []report.Measurement, k int, failUnder bool) *privacyReport {
	r := &privacyReport{Config: cfg.File, K: k, Tables: make([]privacyTable, 0, len(tables))}
	for _, t := range tables {
		pt := privacyTable{Table: t.QualifiedName(), KeptRaw: append([]string{}, t.KeptRaw...), Quasi: []quasiColumn{}, Sets: []setResult{}}
		for _, q := range t.Quasi {
			pt.Quasi = append(pt.Quasi, quasiColumn{Column: q.Column, Kind: q.Kind, Rule: q.Rule})
		}
		for _, m := range ms {
			if m.Set.Schema == t.Schema && m.Set.Table == t.Name {
				pt.Sets = append(pt.Sets, r.add(m))
			}
		}
		r.Tables = append(r.Tables, pt)
	}
	r.OK = r.Failed == 0 && (!failUnder || r.BelowK == 0)
	return r
}

// add counts a measurement in the totals and returns its result.
func (r *privacyReport) add(m report.Measurement) setResult {
	s := setResult{Columns: m.Set.Columns, Default: m.Set.Default, WithinTenant: m.Set.Within}
	if m.Err != nil {
		r.Failed++
		s.Error = m.Err.Error()
		return s
	}
	r.Measured++
	s.Rows, s.Groups, s.GroupsBelowK, s.RowsBelowK = m.Rows, m.Groups, m.SmallGroups, m.RowsInSmallGroups
	if m.Empty() {
		r.Empty++
	} else {
		k := m.K
		s.K = &k
	}
	if s.BelowK = m.Below(r.K); s.BelowK {
		r.BelowK++
	}
	return s
}

// printReport prints the report as aligned text: the kept columns, the
// quasi-identifiers and the k of each set, then a summary line.
func printReport(w io.Writer, r *privacyReport, failUnder bool) {
	fmt.Fprintln(w, "kept raw (rule keep):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TABLE\tCOLUMNS")
	for _, t := range r.Tables {
		fmt.Fprintf(tw, "  %s\t%s\n", t.Table, listOrDash(t.KeptRaw))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nquasi-identifiers (named like demographic data, meaning left in the replica):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TABLE\tCOLUMN\tKIND\tRULE")
	n := 0
	for _, t := range r.Tables {
		for _, q := range t.Quasi {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.Table, q.Column, q.Kind, q.Rule)
			n++
		}
	}
	if n == 0 {
		fmt.Fprintln(tw, "  (none)")
	}
	tw.Flush()

	fmt.Fprintf(w, "\nk-anonymity in the replica (k: the rows of the smallest group sharing the set's values):\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  TABLE\tSET\tROWS\tGROUPS\tK\tGROUPS < %d\tROWS IN THEM\tRESULT\n", r.K)
	sets := 0
	for _, t := range r.Tables {
		for _, s := range t.Sets {
			sets++
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Table, setLabel(s), setCounts(s, r.K))
		}
	}
	if sets == 0 {
		fmt.Fprintln(tw, "  (no set to measure: no quasi-identifier found and no --qi given)")
	}
	tw.Flush()
	fmt.Fprintln(w, reportSummary(r, failUnder))
}

// setLabel is a set's columns, * marking a table's default set.
func setLabel(s setResult) string {
	l := strings.Join(s.Columns, ", ")
	if s.Default {
		l += " *"
	}
	if s.WithinTenant != "" {
		l += " (per " + s.WithinTenant + ")"
	}
	return l
}

// setCounts is the tab-separated counts and verdict of a set.
func setCounts(s setResult, k int) string {
	switch {
	case s.Error != "":
		return "-\t-\t-\t-\t-\tERROR"
	case s.K == nil:
		return "0\t0\t-\t0\t0\tEMPTY (no k)"
	}
	verdict := "OK"
	if s.BelowK {
		verdict = fmt.Sprintf("K < %d", k)
	}
	return fmt.Sprintf("%d\t%d\t%d\t%d\t%d\t%s", s.Rows, s.Groups, *s.K, s.GroupsBelowK, s.RowsBelowK, verdict)
}

// reportSummary is the last line of the text report.
func reportSummary(r *privacyReport, failUnder bool) string {
	var parts []string
	parts = append(parts, fmt.Sprintf("%d set%s measured", r.Measured, plural(r.Measured)))
	if r.Empty > 0 {
		parts = append(parts, fmt.Sprintf("%d on an empty table (no k)", r.Empty))
	}
	if r.BelowK > 0 {
		parts = append(parts, fmt.Sprintf("%d with k below %d", r.BelowK, r.K))
	} else if r.Measured > 0 {
		parts = append(parts, fmt.Sprintf("none with k below %d", r.K))
	}
	if r.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d could not be measured", r.Failed))
	}
	line := "report: " + strings.Join(parts, ", ")
	if r.BelowK > 0 && failUnder {
		line += " (--fail-under: exit 1)"
	}
	var star, per bool
	for _, t := range r.Tables {
		for _, s := range t.Sets {
			star = star || s.Default
			per = per || s.WithinTenant != ""
		}
	}
	if star {
		line += "; * marks a table's quasi-identifiers together (no --qi for it)"
	}
	if per {
		line += "; (per COLUMN): within each tenant, as a tenant's role sees the table"
	}
	return line
}

func listOrDash(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ", ")
}
