package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is a snapshot of ChartGuard's Prometheus metrics: each sample
// summed over its labels, keyed by sample name (e.g.
// chartguard_audit_fsync_seconds_count).
type Metrics map[string]float64

// Metrics scrapes ChartGuard's admin /metrics with the admin token.
func (h *Harness) Metrics(ctx context.Context) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.adminURL+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+h.adminToken)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: metrics: status %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format, summing samples of the
// same name over their labels.
func parseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			rest = line[i+1:]
		} else {
			rest = line[len(name):]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("bench: metrics: no value in %q", name)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bench: metrics: %s: %w", name, err)
		}
		m[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	return m, nil
}

// WriteInternals prints what ChartGuard's own metrics say about a phase
// (after minus before): group-commit batch size and fsync time of the
// audit log, and the wall time of policy evaluation and of the upstream.
func WriteInternals(w io.Writer, before, after Metrics) error {
	d := func(name string) float64 { return after[name] - before[name] }
	mean := func(hist string) string {
		n := d(hist + "_count")
		if n <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f µs", 1e6*d(hist+"_sum")/n)
	}
	fsyncs, events := d("chartguard_audit_fsync_seconds_count"), d("chartguard_audit_events_written_total")
	batch := "—"
	if fsyncs > 0 {
		batch = fmt.Sprintf("%.1f", events/fsyncs)
	}
	pw := &printer{w: w}
	pw.printf("| ChartGuard internals (its /metrics) | value |\n|---|---:|\n")
	pw.printf("| requests | %.0f |\n", d("chartguard_requests_total"))
	pw.printf("| audit events written | %.0f |\n", events)
	pw.printf("| audit fsyncs | %.0f |\n", fsyncs)
	pw.printf("| audit events per fsync (group commit) | %s |\n", batch)
	pw.printf("| audit fsync, mean | %s |\n", mean("chartguard_audit_fsync_seconds"))
	pw.printf("| policy evaluation, mean wall time | %s |\n", mean("chartguard_policy_duration_seconds"))
	pw.printf("| upstream response headers, mean wall time | %s |\n", mean("chartguard_upstream_duration_seconds"))
	pw.printf("| request to audit commit, mean wall time | %s |\n", mean("chartguard_request_duration_seconds"))
	return pw.err
}
