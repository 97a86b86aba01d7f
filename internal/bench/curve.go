package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// Curve is one cost-growth scenario: pgveil's figures at each size it
// varies (tables, columns, tables per transaction), smallest first.
type Curve struct {
	Scenario string        `json:"scenario"`
	Sizes    []int64       `json:"sizes"`
	Metrics  []CurveMetric `json:"metrics"`
}

// CurveMetric is one figure along a curve.
type CurveMetric struct {
	Name   string    `json:"name"` // "seconds", "peak RSS MiB"
	Sizes  []int64   `json:"sizes"`
	Values []float64 `json:"values"`
}

// Growth is the factor between each point's value and the previous
// one's (0 where the previous one was not measured); it has one entry
// fewer than the points.
func (m CurveMetric) Growth() []float64 {
	var g []float64
	for i := 1; i < len(m.Values); i++ {
		if m.Values[i-1] <= 0 {
			g = append(g, 0)
			continue
		}
		g = append(g, m.Values[i]/m.Values[i-1])
	}
	return g
}

// SizeGrowth is the factor between each point's size and the previous
// one's.
func (m CurveMetric) SizeGrowth() []float64 {
	var g []float64
	for i := 1; i < len(m.Sizes); i++ {
		g = append(g, float64(m.Sizes[i])/float64(m.Sizes[i-1]))
	}
	return g
}

// WorstRatio is the largest, over the curve's steps, of the value's
// growth divided by the size's: at most 1 when the cost grows linearly
// with the size or slower, at every step.
func (m CurveMetric) WorstRatio() float64 {
	worst := 0.0
	sizes := m.SizeGrowth()
	for i, g := range m.Growth() {
		if sizes[i] > 0 {
			worst = max(worst, g/sizes[i])
		}
	}
	return worst
}

// Verdict says whether the metric grows linearly or better, and if not,
// between which points it does not.
func (m CurveMetric) Verdict() string {
	sizes := m.SizeGrowth()
	for i, g := range m.Growth() {
		if g > sizes[i] {
			return fmt.Sprintf("%s: NOT linear: from %d to %d, size x%.1f, %s x%.1f", m.Name, m.Sizes[i], m.Sizes[i+1], sizes[i], m.Name, g)
		}
	}
	return fmt.Sprintf("%s: linear or better (worst step: x%.2f the size's growth)", m.Name, m.WorstRatio())
}

// curves gathers the results that are points of a curve (Size set), by
// scenario in the order they first appear.
func (r *Report) curves() []Curve {
	var out []Curve
	points := map[string][]Result{}
	for _, x := range r.Results {
		if x.Size <= 0 || !isPgveil(x) {
			continue
		}
		if _, ok := points[x.Scenario]; !ok {
			out = append(out, Curve{Scenario: x.Scenario})
		}
		points[x.Scenario] = append(points[x.Scenario], x)
	}
	for i := range out {
		p := points[out[i].Scenario]
		slices.SortStableFunc(p, func(a, b Result) int { return cmp.Compare(a.Size, b.Size) })
		secs := CurveMetric{Name: "seconds"}
		rss := CurveMetric{Name: "peak RSS MiB"}
		for _, x := range p {
			out[i].Sizes = append(out[i].Sizes, x.Size)
			secs.Values = append(secs.Values, x.Seconds)
			rss.Values = append(rss.Values, float64(x.PeakRSS)/(1<<20))
		}
		secs.Sizes, rss.Sizes = out[i].Sizes, out[i].Sizes
		out[i].Metrics = []CurveMetric{secs, rss}
	}
	return out
}

// printCurves writes each curve as a small table, with the growth factor
// between points, and a verdict line per metric.
func printCurves(w io.Writer, curves []Curve) {
	for _, c := range curves {
		fmt.Fprintf(w, "\n%s\n", c.Scenario)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "size\tgrowth\t")
		for _, m := range c.Metrics {
			fmt.Fprintf(tw, "%s\tgrowth\t", m.Name)
		}
		fmt.Fprintln(tw)
		for i, size := range c.Sizes {
			fmt.Fprintf(tw, "%d\t%s\t", size, factor(c.Metrics[0].SizeGrowth(), i))
			for _, m := range c.Metrics {
				fmt.Fprintf(tw, "%s\t%s\t", num(m.Values[i], 2), factor(m.Growth(), i))
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
		for _, m := range c.Metrics {
			fmt.Fprintf(w, "  %s\n", m.Verdict())
		}
	}
}

// factor prints the growth into point i (from i-1), or "-" for the first.
func factor(g []float64, i int) string {
	if i == 0 || i-1 >= len(g) || g[i-1] == 0 {
		return "-"
	}
	return fmt.Sprintf("x%.2f", g[i-1])
}
