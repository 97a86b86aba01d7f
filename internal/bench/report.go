package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one subject measured in one scenario. Fields that do not apply
// are zero.
type Result struct {
	Scenario string `json:"scenario"`
	Subject  string `json:"subject"`
	// Size is the point of a cost-growth curve: the tables, columns or
	// tables per transaction its scenario varies.
	Size    int64   `json:"size,omitempty"`
	Rows    int64   `json:"rows,omitempty"`    // rows copied, changes applied
	Bytes   int64   `json:"bytes,omitempty"`   // COPY text bytes of the rows
	Seconds float64 `json:"seconds,omitempty"` // wall time
	// Lag, for the steady-load scenario: source commit to visible in the
	// replica, in milliseconds.
	LagP50ms float64 `json:"lag_p50_ms,omitempty"`
	LagP99ms float64 `json:"lag_p99_ms,omitempty"`
	LagMaxms float64 `json:"lag_max_ms,omitempty"`
	Rate     float64 `json:"rate,omitempty"`           // achieved transactions/s
	PeakRSS  int64   `json:"peak_rss_bytes,omitempty"` // of the pgveil process
	// CPU seconds (user and system) used by production's server
	// processes, the analytics server's, and pgveil's process.
	ProdCPU   float64 `json:"prod_cpu_seconds,omitempty"`
	TargetCPU float64 `json:"target_cpu_seconds,omitempty"`
	PgveilCPU float64 `json:"pgveil_cpu_seconds,omitempty"`
	Note      string  `json:"note,omitempty"`
}

// PerSecond is Rows per second.
func (r Result) PerSecond() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Rows) / r.Seconds
}

// MBPerSecond is Bytes per second, in MiB.
func (r Result) MBPerSecond() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Seconds / (1 << 20)
}

// Goal is one target of issue 20, measured in the same run.
type Goal struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	Target   float64 `json:"target"`
	Unit     string  `json:"unit"` // "x" for ratios, "ms", "MiB"
	AtMost   bool    `json:"at_most,omitempty"`
	Met      bool    `json:"met"`
}

// Report is a whole run.
type Report struct {
	Started  time.Time `json:"started"`
	Command  string    `json:"command"`
	Machine  string    `json:"machine"`
	Scale    int       `json:"scale"`
	Quick    bool      `json:"quick"`
	Postgres string    `json:"postgres"`
	Results  []Result  `json:"results"`
	Goals    []Goal    `json:"goals"`
	Curves   []Curve   `json:"curves,omitempty"`
	Micro    []Micro   `json:"micro,omitempty"`
	Seconds  float64   `json:"seconds"`
}

// Find returns the result of a subject in a scenario.
func (r *Report) Find(scenario, subject string) (Result, bool) {
	for _, x := range r.Results {
		if x.Scenario == scenario && x.Subject == subject {
			return x, true
		}
	}
	return Result{}, false
}

// Add records a result.
func (r *Report) Add(x Result) { r.Results = append(r.Results, x) }

// goal records a goal: measured against target (at least, or at most).
func (r *Report) goal(name string, measured, target float64, unit string, atMost bool) {
	met := measured >= target
	if atMost {
		met = measured <= target
	}
	r.Goals = append(r.Goals, Goal{Name: name, Measured: measured, Target: target, Unit: unit, AtMost: atMost, Met: met})
}

// maxRSS is the goal's bound on pgveil's peak memory, in every scenario.
const maxRSS = 200 << 20

// isPgveil says whether a result is pgveil's (and not a baseline's).
func isPgveil(x Result) bool { return strings.HasPrefix(x.Subject, "pgveil") }

// EvaluateGoals computes the goals of issue 20, and the cost-growth
// curves, from the results present: a goal whose results are missing is
// left out.
func (r *Report) EvaluateGoals() {
	r.Goals = nil
	ratio := func(a, b Result) float64 { // a's speed over b's
		if a.Seconds <= 0 || b.Seconds <= 0 {
			return 0
		}
		return b.Seconds / a.Seconds
	}
	if p, ok := r.Find("snapshot", "pgveil"); ok {
		if nat, ok := r.Find("snapshot", "native initial sync"); ok {
			r.goal("snapshot: pgveil vs native initial sync", ratio(p, nat), 1.0, "x", false)
		}
		if raw, ok := r.Find("snapshot", "raw COPY pipe"); ok {
			r.goal("snapshot: pgveil vs raw COPY pipe", ratio(p, raw), 1.2, "x", false)
		}
	}
	if p, ok := r.Find("catch-up", "pgveil"); ok {
		if nat, ok := r.Find("catch-up", "native"); ok {
			r.goal("catch-up: pgveil vs native apply", ratio(p, nat), 1.5, "x", false)
		}
	}
	if p, ok := r.Find("big transaction", "pgveil"); ok {
		if nat, ok := r.Find("big transaction", "native"); ok {
			r.goal(fmt.Sprintf("big transaction (%d rows): pgveil vs native, commit to visible", p.Rows), ratio(p, nat), 1.0, "x", false)
		}
	}
	if p, ok := r.Find("steady lag 500 tx/s", "pgveil"); ok {
		if nat, ok := r.Find("steady lag 500 tx/s", "native"); ok {
			r.goal("steady lag at 500 tx/s: pgveil p99 - native p99", p.LagP99ms-nat.LagP99ms, 20, "ms", true)
		}
	}
	if p, ok := r.Find("steady lag 2000 tx/s", "pgveil"); ok {
		if nat, ok := r.Find("steady lag 2000 tx/s", "native"); ok {
			r.goal("steady lag at 2000 tx/s: pgveil p50 - native p50", p.LagP50ms-nat.LagP50ms, 10, "ms", true)
		}
	}
	// Peak memory: the largest over every pgveil run; a run without a
	// figure fails the goal, since the bound is for every scenario.
	var runs, unmeasured int
	var peak Result
	for _, x := range r.Results {
		if !isPgveil(x) {
			continue
		}
		runs++
		if x.PeakRSS <= 0 {
			unmeasured++
		}
		if x.PeakRSS > peak.PeakRSS {
			peak = x
		}
	}
	if runs > 0 {
		name := fmt.Sprintf("peak RSS, largest of %d pgveil runs (%s, %s)", runs, peak.Scenario, peak.Subject)
		if unmeasured > 0 {
			name = fmt.Sprintf("peak RSS, largest of %d pgveil runs (%s, %s; %d runs not measured)", runs, peak.Scenario, peak.Subject, unmeasured)
		}
		r.goal(name, float64(peak.PeakRSS)/(1<<20), maxRSS>>20, "MiB", true)
		if unmeasured > 0 {
			r.Goals[len(r.Goals)-1].Met = false
		}
	}
	r.Curves = r.curves()
	for _, c := range r.Curves {
		for _, m := range c.Metrics {
			r.goal(fmt.Sprintf("%s, %s: worst growth over size growth", c.Scenario, m.Name), m.WorstRatio(), 1.0, "x", true)
		}
	}
}

// Print writes the results and goals as tables.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tsubject\trows\tseconds\trows/s\tMiB/s\tp50 ms\tp99 ms\tmax ms\ttx/s\tpeak RSS\tCPU s: prod\ttarget\tpgveil\t")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", x.Scenario, x.Subject,
			num(float64(x.Rows), 0), num(x.Seconds, 2), num(x.PerSecond(), 0), num(x.MBPerSecond(), 1),
			num(x.LagP50ms, 1), num(x.LagP99ms, 1), num(x.LagMaxms, 1), num(x.Rate, 0), mib(x.PeakRSS),
			num(x.ProdCPU, 2), num(x.TargetCPU, 2), num(x.PgveilCPU, 2))
	}
	tw.Flush()
	for _, x := range r.Results {
		if x.Note != "" {
			fmt.Fprintf(w, "  %s, %s: %s\n", x.Scenario, x.Subject, x.Note)
		}
	}
	if len(r.Goals) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "goal\tmeasured\ttarget\tmet")
		for _, g := range r.Goals {
			cmp := "≥"
			if g.AtMost {
				cmp = "≤"
			}
			met := "yes"
			if !g.Met {
				met = "NO"
			}
			fmt.Fprintf(tw, "%s\t%.2f %s\t%s %.2f %s\t%s\n", g.Name, g.Measured, g.Unit, cmp, g.Target, g.Unit, met)
		}
		tw.Flush()
	}
	printCurves(w, r.Curves)
	printCPU(w, r.Results)
	if len(r.Micro) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "transformer\tns/op\tallocs/op")
		for _, m := range r.Micro {
			fmt.Fprintf(tw, "%s\t%.0f\t%d\n", m.Name, m.NsPerOp, m.AllocsPerOp)
		}
		tw.Flush()
	}
}

// CPUPerChange is the CPU microseconds per row (snapshot) or change
// (catch-up, big transaction) production's servers, the analytics
// server and pgveil spent on a result; ok is false where the result
// counts something else (heartbeats) or nothing.
func (x Result) CPUPerChange() (prod, target, pgveil float64, ok bool) {
	if x.Rows <= 0 || strings.HasPrefix(x.Scenario, "steady lag") || x.ProdCPU+x.TargetCPU+x.PgveilCPU == 0 {
		return 0, 0, 0, false
	}
	per := func(s float64) float64 { return s * 1e6 / float64(x.Rows) }
	return per(x.ProdCPU), per(x.TargetCPU), per(x.PgveilCPU), true
}

// printCPU writes the CPU per row or change of every subject that has
// one, pgveil's beside the servers'.
func printCPU(w io.Writer, results []Result) {
	var lines []string
	for _, x := range results {
		if prod, target, pg, ok := x.CPUPerChange(); ok {
			lines = append(lines, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t", x.Scenario, x.Subject, num(prod, 2), num(target, 2), num(pg, 2)))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "CPU µs per row or change\t\tprod\ttarget\tpgveil\t")
	for _, l := range lines {
		fmt.Fprintln(tw, l)
	}
	tw.Flush()
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// MachineDescription names the CPU, cores and memory.
func MachineDescription() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%s, %d cores%s, %s %s/%s", cpu, runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func num(v float64, prec int) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func mib(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}
