package bench

import (
	"fmt"
	"io"
	"time"
)

// TargetRatio is the goal: ChartGuard keeps at least half the bare
// proxy's throughput.
const TargetRatio = 0.5

// WriteResults prints the Markdown results table: direct, bare, ChartGuard,
// with the ratios bare/direct and ChartGuard/bare, then the verdict line.
func WriteResults(w io.Writer, direct, bare, cg Result) error {
	rows := []struct {
		r     Result
		ratio string
	}{
		{direct, "—"},
		{bare, ratio(bare, direct) + " × direct"},
		{cg, ratio(cg, bare) + " × bare"},
	}
	pw := &printer{w: w}
	pw.printf("| target | requests | errors | req/s | p50 | p99 | CPU/req | other procs | ratio |\n")
	pw.printf("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, row := range rows {
		r := row.r
		pw.printf("| %s | %d | %d | %.0f | %s | %s | %s | %s | %s |\n", r.Target, r.Requests, r.Errors,
			r.Throughput(), ms(r.Percentile(0.50)), ms(r.Percentile(0.99)), us(r.CPUPerRequest()),
			load(r.OtherLoad()), row.ratio)
	}
	verdict := "meets"
	if cg.Throughput() < TargetRatio*bare.Throughput() {
		verdict = "BELOW"
	}
	pw.printf("\nChartGuard/bare throughput %s (target >= %.2f: %s); bare/direct %s.\n",
		ratio(cg, bare), TargetRatio, verdict, ratio(bare, direct))
	return pw.err
}

// WriteStages prints the stage breakdown tables. requests is the number of
// ChartGuard requests the profile covers (for CPU µs per request); if zero,
// that column is left out.
func WriteStages(w io.Writer, b Breakdown, requests int) error {
	pw := &printer{w: w}
	pw.printf("Whole process (%s CPU sampled; components by pprof label):\n\n", b.Total.Round(time.Millisecond))
	pw.printf("| stage | CPU | %% of process |\n|---|---:|---:|\n")
	for _, s := range b.Process {
		pw.printf("| %s | %s | %.1f%% |\n", s.Name, s.CPU.Round(time.Millisecond), s.Percent)
	}
	pw.printf("\nChartGuard only (%s CPU, %.1f%% of process):\n\n", b.ChartGuard.Round(time.Millisecond),
		pct(b.ChartGuard, b.Total))
	pw.printf("| stage | %% of ChartGuard | %% of process | µs/request |\n|---|---:|---:|---:|\n")
	for _, s := range b.Stages {
		pw.printf("| %s | %.1f%% | %.1f%% | %s |\n", s.Name, s.Percent, pct(s.CPU, b.Total), perReq(s.CPU, requests))
	}
	pw.printf("| **total** | 100%% | %.1f%% | %s |\n", pct(b.ChartGuard, b.Total), perReq(b.ChartGuard, requests))
	pw.printf("\nHottest ChartGuard functions (self time):\n\n| function | %% of ChartGuard |\n|---|---:|\n")
	for _, s := range b.Top {
		pw.printf("| %s | %.1f%% |\n", s.Name, s.Percent)
	}
	return pw.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func load(l float64) string {
	if l < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", 100*l)
}

func ratio(a, b Result) string {
	if b.Throughput() == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a.Throughput()/b.Throughput())
}

func pct(a, total time.Duration) float64 {
	if total <= 0 {
		return 0
	}
	return 100 * float64(a) / float64(total)
}

func perReq(d time.Duration, requests int) string {
	if requests <= 0 {
		return "—"
	}
	return us(d / time.Duration(requests))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
