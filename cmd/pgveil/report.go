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

	"github.com/jackc/pgx/v5"

	"pgveil/rules"
	"pgveil/rules/refs"
	"pgveil/rules/report"
	"pgveil/schema"
)

// privacyReport is what report prints, as text or as one JSON object (the
// fields are documented in docs/operations.md). It holds names from the
// rules and counts: never a value of the database.
type privacyReport struct {
	Config string `json:"config"`
	K      int    `json:"k"`
	// References says where the joins the report follows come from.
	References referencesInfo `json:"references"`
	Tables     []privacyTable `json:"tables"`
	// Noise holds each noised column set against a kept column it meets
	// (in its row or a joined one), in the order of the rules.
	Noise []noiseResult `json:"noise_exposures"`
	// Truncation holds each truncated column set against a kept column
	// it meets, measured in the source (see truncResult); TruncationNote
	// says why none was measured when the source was not used.
	Truncation     []truncResult `json:"truncation_exposures"`
	TruncationNote string        `json:"truncation_note,omitempty"`
	// Measured counts the sets measured, Empty those of them on an empty
	// table (no k), BelowK those whose k is below K, Exposed the noised
	// columns' pairs whose kept side holds what the noise hides, Failed
	// the sets and pairs that could not be measured. TruncationExposed
	// counts the truncated columns' pairs whose kept side gives back what
	// the truncation hides (apart from Exposed, which stays the noise's).
	Measured          int  `json:"measured"`
	Empty             int  `json:"empty"`
	BelowK            int  `json:"below_k"`
	Exposed           int  `json:"exposed"`
	TruncationExposed int  `json:"truncation_exposed"`
	Failed            int  `json:"failed"`
	OK                bool `json:"ok"` // nothing failed and, with --fail-under, no k below the threshold and nothing exposed
}

// truncResult is a truncated column against a kept column, measured in
// the source: names and counts, never a value.
type truncResult struct {
	Truncated string `json:"truncated"` // schema.table.column
	Truncate  string `json:"truncate"`  // the rule's unit (day) or step (step 1000)
	Kept      string `json:"kept"`      // schema.table.column
	KeptRule  string `json:"kept_rule"` // keep
	Join      string `json:"join"`      // "same row", or the join condition
	// Window is the truncation's width divided by --truncation-divisor
	// (1h for a day and 24).
	Window string `json:"window"`
	// Rows counts the source's joined rows where both hold a value,
	// WithinWindow those whose offset kept − raw lies within Window of
	// the offsets' median, WithinByChance the same against another
	// joined row's raw value.
	Rows           int64  `json:"rows"`
	WithinWindow   int64  `json:"within_window"`
	WithinByChance int64  `json:"within_by_chance"`
	Verdict        string `json:"verdict"` // exposed, ok, few_rows, undecided or error
	Exposed        bool   `json:"exposed"`
	Error          string `json:"error,omitempty"`
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

// referencesInfo is where the report's joins come from: "source" (the
// source's catalog: foreign keys, on partitions too) or "names" (the
// naming convention <table>_id → table.id), with the references of the
// model between tables of the rules, and why names were used.
type referencesInfo struct {
	From  string `json:"from"`
	Count int    `json:"count"`
	Note  string `json:"note,omitempty"`
}

type privacyTable struct {
	Table   string        `json:"table"`
	KeptRaw []string      `json:"kept_raw"`
	Quasi   []quasiColumn `json:"quasi_identifiers"`
	// Lookup is true for a lookup table (referenced, no person): its
	// quasi-identifiers are measured only through the tables listed in
	// MeasuredThrough (empty: none reaches them within the depth).
	Lookup          bool        `json:"lookup"`
	MeasuredThrough []string    `json:"measured_through"`
	Sets            []setResult `json:"sets"`
}

type quasiColumn struct {
	Column string `json:"column"`
	Kind   string `json:"kind"`
	Rule   string `json:"rule"`
}

type setResult struct {
	// Columns are the set's columns: the table's by name, a joined
	// table's as table.column.
	Columns []string `json:"columns"`
	// Across, for a set measured across references, is how the table's
	// rows reach the joined ones: "customer → address → city".
	Across  string `json:"across,omitempty"`
	Default bool   `json:"default"` // every quasi-identifier of the table, no --qi for it
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
	failUnder := fs.Bool("fail-under", false, "exit 1 when a set's k is below --k or a kept column exposes a noised or truncated one (for CI)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	timeout := fs.Duration("timeout", 5*time.Minute, "statement timeout of each set's query (0: none)")
	divisor := fs.Int("truncation-divisor", report.DefaultDivisor, "a kept column exposes a truncated one when, in the source, its offset to the raw value stays within the truncation's width divided by this (a day / 24: an hour) for most joined rows")
	refsFrom := fs.String("references", "auto", "where joins come from: source (the source's foreign keys), names (<table>_id → table.id, no source connection), auto (source, or names when the source cannot be reached)")
	if code := parseNoArgs(e, fs, args); code >= 0 {
		return code
	}
	if *k < 1 || *timeout < 0 {
		fmt.Fprintln(e.stderr, "pgveil report: --k must be at least 1 and --timeout cannot be negative")
		return exitUsage
	}
	if *divisor < 1 {
		fmt.Fprintln(e.stderr, "pgveil report: --truncation-divisor must be at least 1")
		return exitUsage
	}
	if *refsFrom != "auto" && *refsFrom != "source" && *refsFrom != "names" {
		fmt.Fprintf(e.stderr, "pgveil report: --references %q: write source, names or auto\n", *refsFrom)
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
	model, info, src, err := reportModel(ctx, cfg, *refsFrom)
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil report: %v\n", err)
		return exitProblems
	}
	if src != nil {
		defer src.Close(context.Background())
	}
	tables := report.AnalyzeAcross(cfg, model, report.JoinOptions{})
	sets := report.WithinTenants(cfg, report.Sets(tables, asked))
	pairs := report.CandidatesFrom(cfg, model)
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
	truncs, truncNote, err := measureTruncations(ctx, src, cfg, model, info, report.TruncOptions{Divisor: *divisor, StatementTimeout: *timeout})
	if err != nil {
		fmt.Fprintf(e.stderr, "pgveil report: %v\n", err)
		return exitProblems
	}
	r := buildReport(cfg, tables, res, *k, *failUnder)
	r.References = info
	r.addTruncations(truncs, truncNote, *failUnder)
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
			fmt.Fprintf(e.stderr, "pgveil report: set (%s): %v\n", strings.Join(m.Set.Labels(), ", "), m.Err)
		}
	}
	for _, x := range res.Exposures {
		if x.Err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: noise of %s against %s: %v\n", x.Pair.Noised, x.Pair.Kept, x.Err)
		}
	}
	for _, x := range truncs {
		if x.Err != nil {
			fmt.Fprintf(e.stderr, "pgveil report: truncation of %s against %s: %v\n", x.Pair.Truncated, x.Pair.Kept, x.Err)
		}
	}
	if !r.OK {
		return exitProblems
	}
	return exitOK
}

// reportModel is the reference model the report follows: the source's
// references as validate reads them (foreign keys, and inferred ones
// confirmed by counting sampled overlaps: no value leaves the server)
// with the rules' own `references:`, or the naming
// convention with "names", or, with "auto", when the source cannot be
// reached (the report may run where only the replica is), with a note
// saying why. Only references between tables of the rules are counted.
// The source's connection, when one was opened, is returned open for the
// truncation's measure (the caller closes it); nil otherwise.
func reportModel(ctx context.Context, cfg *rules.Config, from string) (*refs.Model, referencesInfo, *pgx.Conn, error) {
	ruled := map[schema.TableName]bool{}
	for _, t := range cfg.Tables {
		if t != nil {
			ruled[refs.Table(t.Schema, t.Name)] = true
		}
	}
	count := func(m *refs.Model) int {
		n := 0
		for _, r := range m.Refs {
			if ruled[r.From.Table] && ruled[r.To.Table] {
				n++
			}
		}
		return n
	}
	names := func(note string) (*refs.Model, referencesInfo, *pgx.Conn, error) {
		m := report.NamingModel(cfg).WithRules(cfg)
		return m, referencesInfo{From: "names", Count: count(m), Note: note}, nil, nil
	}
	if from == "names" {
		return names("")
	}
	src, err := openSource(ctx, cfg)
	if err == nil {
		var m *refs.Model
		if m, err = sourceReferences(ctx, src, cfg); err == nil {
			m = m.WithRules(cfg)
			return m, referencesInfo{From: "source", Count: count(m)}, src, nil
		}
		src.Close(context.Background())
	}
	if from == "source" || ctx.Err() != nil {
		return nil, referencesInfo{}, nil, fmt.Errorf("reading references from the source (source.dsn): %w; --references names follows column names instead", err)
	}
	return names("the source could not be reached: " + err.Error())
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
		pt := privacyTable{Table: t.QualifiedName(), KeptRaw: append([]string{}, t.KeptRaw...), Quasi: []quasiColumn{}, Sets: []setResult{},
			Lookup: t.Lookup, MeasuredThrough: append([]string{}, t.Through...)}
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

// measureTruncations pairs each truncated column with the kept columns
// its rows meet (through model) and measures the pairs in the source,
// src, which the replica cannot do: it holds the truncated values only.
// Without a source connection (--references names, or the source could
// not be reached) nothing is measured and, when the rules truncate a
// column, the note says why (the joins of the names' model may differ
// from the source's: the note does not depend on them).
func measureTruncations(ctx context.Context, src *pgx.Conn, cfg *rules.Config, model *refs.Model, info referencesInfo, opts report.TruncOptions) ([]report.TruncExposure, string, error) {
	if src == nil {
		truncated := false
		for _, t := range cfg.Tables {
			if t == nil {
				continue
			}
			for _, c := range t.Columns {
				truncated = truncated || c.Rule.Name == "truncate"
			}
		}
		if !truncated {
			return nil, "", nil
		}
		why := "the source could not be reached"
		if info.Note == "" {
			why = "--references names opens no connection to the source"
		}
		return nil, "truncated columns were not set against the kept columns they meet: that is measured in the source (the replica holds only the truncated values), and " + why, nil
	}
	pairs := report.TruncationCandidatesFrom(cfg, model)
	xs, err := report.MeasureTruncations(ctx, src, pairs, opts)
	if err != nil {
		return xs, "", fmt.Errorf("measuring truncations in the source (source.dsn): %w", err)
	}
	return xs, "", nil
}

// addTruncations adds the truncation's pairs and note to the report, in
// the totals, and judges the report again.
func (r *privacyReport) addTruncations(xs []report.TruncExposure, note string, failUnder bool) {
	r.Truncation = []truncResult{}
	r.TruncationNote = note
	for _, x := range xs {
		p := x.Pair
		t := truncResult{Truncated: p.Truncated.String(), Truncate: p.TruncateLabel(), Kept: p.Kept.String(), KeptRule: p.KeptRule,
			Join: p.Join(), Window: x.Window(), Rows: x.Rows, WithinWindow: x.Within, WithinByChance: x.Chance, Verdict: string(x.Verdict())}
		switch x.Verdict() {
		case report.Failed:
			r.Failed++
			t.Error = x.Err.Error()
		case report.Exposed:
			r.TruncationExposed++
			t.Exposed = true
		}
		r.Truncation = append(r.Truncation, t)
	}
	r.OK = r.Failed == 0 && (!failUnder || r.BelowK == 0 && r.Exposed == 0 && r.TruncationExposed == 0)
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
	s := setResult{Columns: m.Set.Labels(), Across: m.Set.Path(), Default: m.Set.Default, WithinTenant: m.Set.Within}
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
	sets, across := 0, 0
	for _, t := range r.Tables {
		for _, s := range t.Sets {
			if s.Across != "" {
				across++
				continue
			}
			sets++
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Table, setLabel(s), setCounts(s, r.K))
		}
	}
	if sets == 0 && across == 0 {
		fmt.Fprintln(tw, "  (no set to measure: no quasi-identifier found and no --qi given)")
	}
	tw.Flush()
	printAcross(w, r, across)
	if len(r.Noise) > 0 {
		printNoise(w, r.Noise)
	}
	if len(r.Truncation) > 0 {
		printTruncation(w, r.Truncation)
	}
	if r.TruncationNote != "" {
		fmt.Fprintf(w, "\ntruncation: %s\n", r.TruncationNote)
	}
	if r.References.Note != "" {
		fmt.Fprintf(w, "\nreferences: joins found by column names only (<table>_id → table.id): %s\n", r.References.Note)
	}
	fmt.Fprintln(w, reportSummary(r, failUnder))
}

// printAcross prints the sets measured across references (each table's
// quasi-identifiers with those of the rows it references, joined in the
// replica), then the lookup tables and the tables they are measured
// through.
func printAcross(w io.Writer, r *privacyReport, across int) {
	var lookups []privacyTable
	for _, t := range r.Tables {
		if t.Lookup {
			lookups = append(lookups, t)
		}
	}
	if across == 0 && len(lookups) == 0 {
		return
	}
	fmt.Fprintf(w, "\nk-anonymity across references (references from %s; a table's quasi-identifiers with those of the rows it references, joined in the replica):\n", r.References.From)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  JOIN\tSET\tROWS\tGROUPS\tK\tGROUPS < %d\tROWS IN THEM\tRESULT\n", r.K)
	for _, t := range r.Tables {
		for _, s := range t.Sets {
			if s.Across != "" {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Across, setLabel(s), setCounts(s, r.K))
			}
		}
	}
	if across == 0 {
		fmt.Fprintln(tw, "  (no table reaches quasi-identifiers through its references)")
	}
	tw.Flush()
	if len(lookups) == 0 {
		return
	}
	fmt.Fprintln(w, "\nlookup tables (referenced by others, no person: one row per value, measured only through the tables that reference them):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TABLE\tMEASURED THROUGH")
	for _, t := range lookups {
		through := strings.Join(t.MeasuredThrough, ", ")
		switch {
		case through == "" && len(t.Quasi) == 0:
			through = "- (no quasi-identifier)"
		case through == "":
			through = "- (no table measured reaches it within 3 references: --qi TABLE=columns measures it alone)"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", t.Table, through)
	}
	tw.Flush()
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

// printTruncation prints the truncated columns' pairs measured in the
// source, then a sentence for each exposed one saying what to do.
func printTruncation(w io.Writer, ts []truncResult) {
	fmt.Fprintf(w, "\ntruncation against kept columns it meets, measured in the source (ROWS: joined rows holding both; IN WINDOW: offset kept - raw within WINDOW of its median; BY CHANCE: the same against another row):\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TRUNCATED\tKEPT\tJOIN\tWINDOW\tROWS\tIN WINDOW\tBY CHANCE\tRESULT")
	listed := 0
	for _, t := range ts {
		if t.Rows == 0 && t.Error == "" {
			continue // the source holds no such joined row: nothing to say
		}
		n := noiseResult{Rows: t.Rows, WithinNoise: t.WithinWindow, WithinByChance: t.WithinByChance, Verdict: t.Verdict}
		fmt.Fprintf(tw, "  %s (truncate %s)\t%s (%s)\t%s\t%s\t%s\n", t.Truncated, t.Truncate, t.Kept, t.KeptRule, t.Join, t.Window, noiseCounts(n))
		listed++
	}
	if listed == 0 {
		fmt.Fprintln(tw, "  (no pair has a joined row in the source)")
	}
	tw.Flush()
	for _, t := range ts {
		if t.Exposed {
			fmt.Fprintf(w, "  %s (truncate %s) is exposed by %s (%s) via %s: %d of %d joined rows within %s of the usual offset (%d by chance): the kept column gives back what the truncation hides; mask %s as well (%s) or drop it\n",
				t.Truncated, t.Truncate, t.Kept, t.KeptRule, t.Join, t.WithinWindow, t.Rows, t.Window, t.WithinByChance, t.Kept, truncateRule(t.Truncate))
		}
	}
}

// truncateRule is a truncation's label as a rule: {truncate: day},
// {truncate: {step: 5}}.
func truncateRule(label string) string {
	if step, ok := strings.CutPrefix(label, "step "); ok {
		return "{truncate: {step: " + step + "}}"
	}
	return "{truncate: " + label + "}"
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
		parts = append(parts, pairsChecked("noised/kept", "", len(r.Noise), none, r.Exposed))
	}
	if len(r.Truncation) > 0 {
		none := 0
		for _, t := range r.Truncation {
			if t.Rows == 0 && t.Error == "" {
				none++
			}
		}
		parts = append(parts, pairsChecked("truncated/kept", " in the source", len(r.Truncation), none, r.TruncationExposed))
	}
	if r.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d could not be measured", r.Failed))
	}
	line := "report: " + strings.Join(parts, ", ")
	if (r.BelowK > 0 || r.Exposed > 0 || r.TruncationExposed > 0) && failUnder {
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

// pairsChecked is the summary's phrase for one kind of exposure pairs.
func pairsChecked(kind, where string, n, none, exposed int) string {
	p := fmt.Sprintf("%d %s pair%s checked%s", n, kind, plural(n), where)
	if none > 0 {
		p += fmt.Sprintf(" (%d with no joined row, not listed)", none)
	}
	return p + fmt.Sprintf(", %d exposed", exposed)
}
