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
	Scenario string  `json:"scenario"`
	Subject  string  `json:"subject"`
	Rows     int64   `json:"rows,omitempty"`    // rows copied, changes applied
	Bytes    int64   `json:"bytes,omitempty"`   // COPY text bytes of the rows
	Seconds  float64 `json:"seconds,omitempty"` // wall time
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

// Goal is one target of issue 6, as a ratio measured in the same run.
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

// EvaluateGoals computes the goals of issue 6 from the results present.
func (r *Report) EvaluateGoals() {
	r.Goals = nil
	ratio := func(a, b Result) float64 { // a's speed over b's
		if a.Seconds <= 0 || b.Seconds <= 0 {
			return 0
		}
		return b.Seconds / a.Seconds
	}
	if p, ok := r.Find("snapshot", "pgveil"); ok {
		if raw, ok := r.Find("snapshot", "raw COPY pipe"); ok {
			r.goal("snapshot: pgveil vs raw COPY pipe", ratio(p, raw), 0.8, "x", false)
		}
		if nat, ok := r.Find("snapshot", "native initial sync"); ok {
			r.goal("snapshot: pgveil vs native initial sync", ratio(p, nat), 1.0, "x", false)
		}
	}
	if p, ok := r.Find("catch-up", "pgveil"); ok {
		if nat, ok := r.Find("catch-up", "native"); ok {
			r.goal("catch-up: pgveil vs native apply", ratio(p, nat), 1.0, "x", false)
		}
	}
	for _, rate := range []string{"500 tx/s", "2000 tx/s"} {
		p, ok1 := r.Find("steady lag "+rate, "pgveil")
		nat, ok2 := r.Find("steady lag "+rate, "native")
		if ok1 && ok2 && rate == "500 tx/s" {
			r.goal("steady lag at 500 tx/s: pgveil p99 - native p99", p.LagP99ms-nat.LagP99ms, 100, "ms", true)
		}
	}
	if p, ok := r.Find("big transaction", "pgveil"); ok {
		r.goal("big transaction: pgveil peak RSS", float64(p.PeakRSS)/(1<<20), 200, "MiB", true)
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
