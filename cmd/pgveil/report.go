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
	// Noise holds each noised column set against a kept column it meets
	// (in its row or a joined one), in the order of the rules.
	Noise []noiseResult `json:"noise_exposures"`
	// Measured counts the sets measured, Empty those of them on an empty
	// table (no k), BelowK those whose k is below K, Exposed the noised
	// columns' pairs whose kept side holds what the noise hides, Failed
	// the sets and pairs that could not be measured.
	Measured int  `json:"measured"`
	Empty    int  `json:"empty"`
	BelowK   int  `json:"below_k"`
	Exposed  int  `json:"exposed"`
	Failed   int  `json:"failed"`
	OK       bool `json:"ok"` // nothing failed and, with --fail-under, no k below the threshold and nothing exposed
}

// noiseResult is a noised column against a kept column: names and
// counts, never a value.
type noiseResult struct {
	Noised   string `json:"noised"`    // schema.table.column
	Noise    string `json:"noise"`     // the rule's ratio (0.05) or duration (2h)
	Kept     string `json:"kept"`      // schema.table.column, with ->'key' for a json key
	KeptRule string `json:"kept_rule"` // keep, or json (a key its paths leave as it is)
	Join     string `json:"join"`      // "same row", or the join condition
	// Rows counts the joined rows where both hold a value, WithinNoise
	// those whose kept value lies within the noise of the noised one,
	// WithinByChance the same against another joined row's noised value.
	Rows           int64  `json:"rows"`
	WithinNoise    int64  `json:"within_noise"`
	WithinByChance int64  `json:"within_by_chance"`
	Verdict        string `json:"verdict"` // exposed, ok, few_rows, undecided or error
	Exposed        bool   `json:"exposed"`
	Error          string `json:"error,omitempty"`
	// keptColumn and keptKey are the kept column and json key (if any),
	// for the advice.
	keptColumn, keptKey string
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
	failUnder := fs.Bool("fail-under", false, "exit 1 when a set's k is below --k or a kept column exposes a noised one (for CI)")
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
	pairs := report.Candidates(cfg)
	var res report.Result
	if len(sets) > 0 || len(pairs) > 0 {
		tgt, err := openTarget(ctx, cfg)
		if err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: %v\n", err)
			return exitProblems
		}
		defer tgt.Close(context.Background())
		if res, err = report.Measure(ctx, tgt, sets, pairs, report.Options{K: *k, StatementTimeout: *timeout}); err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: %v\n", err)
			return exitProblems
		}
	}
	r := buildReport(cfg, tables, res, *k, *failUnder)
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
	for _, m := range res.Sets {
		if m.Err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: set (%s): %v\n", strings.Join(m.Set.Columns, ", "), m.Err)
		}
	}
	for _, x := range res.Exposures {
		if x.Err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: noise of %s against %s: %v\n", x.Pair.Noised, x.Pair.Kept, x.Err)
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
// replica together, table by table, then the noised columns' pairs.
func buildReport(cfg *rules.Config, tables []report.Table, res report.Result, k int, failUnder bool) *privacyReport {
	ms := res.Sets
	r := &privacyReport{Config: cfg.File, K: k, Tables: make([]privacyTable, 0, len(tables)), Noise: []noiseResult{}}
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
	for _, x := range res.Exposures {
		r.Noise = append(r.Noise, r.addExposure(x))
	}
	r.OK = r.Failed == 0 && (!failUnder || r.BelowK == 0 && r.Exposed == 0)
	return r
}

// addExposure counts a pair in the totals and returns its result.
func (r *privacyReport) addExposure(x report.Exposure) noiseResult {
	p := x.Pair
	col := p.Kept
	col.Key = ""
	n := noiseResult{Noised: p.Noised.String(), Noise: strings.TrimPrefix(p.NoiseLabel(), "noise "), Kept: p.Kept.String(),
		KeptRule: p.KeptRule, Join: p.Join(), Rows: x.Rows, WithinNoise: x.Within, WithinByChance: x.Chance, Verdict: string(x.Verdict()),
		keptColumn: col.String(), keptKey: p.Kept.Key}
	switch x.Verdict() {
	case report.Failed:
		r.Failed++
		n.Error = x.Err.Error()
	case report.Exposed:
		r.Exposed++
		n.Exposed = true
	}
	return n
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
	if len(r.Noise) > 0 {
		printNoise(w, r.Noise)
	}
	fmt.Fprintln(w, reportSummary(r, failUnder))
}

// printNoise prints the noised columns' pairs, then a sentence for each
// exposed one saying what to do.
func printNoise(w io.Writer, ns []noiseResult) {
	fmt.Fprintf(w, "\nnoise against kept columns it meets (ROWS: joined rows holding both; WITHIN NOISE: kept value within the noise of the noised one; BY CHANCE: the same against another row):\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NOISED\tKEPT\tJOIN\tROWS\tWITHIN NOISE\tBY CHANCE\tRESULT")
	listed := 0
	for _, n := range ns {
		if n.Rows == 0 && n.Error == "" {
			continue // the replica holds no such joined row: nothing to say
		}
		fmt.Fprintf(tw, "  %s (noise %s)\t%s (%s)\t%s\t%s\n", n.Noised, n.Noise, n.Kept, n.KeptRule, n.Join, noiseCounts(n))
		listed++
	}
	if listed == 0 {
		fmt.Fprintln(tw, "  (no pair has a joined row in the replica)")
	}
	tw.Flush()
	for _, n := range ns {
		if n.Exposed {
			fmt.Fprintf(w, "  %s (noise %s) is exposed by %s (%s) via %s: %d of %d joined rows within the noise (%d by chance): the kept column gives away what the noise hides; %s\n",
				n.Noised, n.Noise, n.Kept, n.KeptRule, n.Join, n.WithinNoise, n.Rows, n.WithinByChance, noiseAdvice(n))
		}
	}
}

// noiseCounts is the tab-separated counts and verdict of a pair.
func noiseCounts(n noiseResult) string {
	var verdict string
	switch report.Verdict(n.Verdict) {
	case report.Failed:
		return "-\t-\t-\tERROR"
	case report.Exposed:
		verdict = "EXPOSED"
	case report.FewRows:
		verdict = fmt.Sprintf("FEW ROWS (< %d)", report.MinRows)
	case report.Undecided:
		verdict = "CANNOT TELL (as often by chance)"
	default:
		verdict = "OK"
	}
	return fmt.Sprintf("%d\t%d\t%d\t%s", n.Rows, n.WithinNoise, n.WithinByChance, verdict)
}

// noiseAdvice says how to stop a kept column exposing a noised one.
func noiseAdvice(n noiseResult) string {
	if n.keptKey != "" {
		return fmt.Sprintf("mask the key '%s' of %s in its json rule (drop it, or {noise: %s}) or drop the column", n.keptKey, n.keptColumn, n.Noise)
	}
	return fmt.Sprintf("mask %s with the same noise rule ({noise: %s}) or drop it", n.Kept, n.Noise)
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
	if len(r.Noise) > 0 {
		none := 0
		for _, n := range r.Noise {
			if n.Rows == 0 && n.Error == "" {
				none++
			}
		}
		p := fmt.Sprintf("%d noised/kept pair%s checked", len(r.Noise), plural(len(r.Noise)))
		if none > 0 {
			p += fmt.Sprintf(" (%d with no joined row, not listed)", none)
		}
		parts = append(parts, p+fmt.Sprintf(", %d exposed", r.Exposed))
	}
	if r.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d could not be measured", r.Failed))
	}
	line := "report: " + strings.Join(parts, ", ")
	if (r.BelowK > 0 || r.Exposed > 0) && failUnder {
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
